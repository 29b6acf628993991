"""The WMS port: what the system API needs from a WMS, in canonical terms. The
reference adapter keeps it on SQL; a vendor adapter maps its own dialect onto it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shared.db import Tx
from shared.refusals import CatalogRefusal
from system_apis.wms.schemas import (
    Adjustment,
    AdjustmentIn,
    CycleCount,
    CycleCountIn,
    Delay,
    DelayIn,
    DeliveryIn,
    DispositionIn,
    FulfillmentOrder,
    FulfillmentOrderIn,
    LineCancellationIn,
    Pick,
    PickIn,
    PutAway,
    PutAwayIn,
    Receipt,
    ReceiptIn,
    ReleaseIn,
    ReturnAuthorization,
    ReturnAuthorizationIn,
    ReturnIn,
    ReturnReceipt,
    Shipment,
    ShipmentIn,
    Shortage,
    ShortageIn,
    StockPosition,
    Warehouse,
    WarehouseIn,
)


class WmsError(CatalogRefusal):
    """A refusal of the WMS; the message is safe to show the caller. Each kind states
    the answer the caller gets (``shared.refusals``)."""


class DuplicateRecord(WmsError):
    status, slug = 409, "duplicate-record"


class DuplicateWarehouse(DuplicateRecord):
    slug = "duplicate-warehouse"


class UnknownWarehouse(WmsError):
    status, slug = 422, "unknown-warehouse"


class DuplicateLine(WmsError):
    status, slug = 422, "duplicate-line"


class NotFound(WmsError):
    status, slug = 404, "not-found"


class FulfillmentOrderNotFound(NotFound):
    slug = "fulfillment-order-not-found"


class ReturnNotFound(NotFound):
    slug = "return-not-found"


class ReceiptNotFound(NotFound):
    slug = "receipt-not-found"


class InvalidState(WmsError):
    """The fulfillment order's status does not allow the operation."""

    status, slug = 409, "invalid-fulfillment-status"


class OverShipment(WmsError):
    status, slug = 409, "over-shipment"


class InsufficientStock(WmsError):
    status, slug = 409, "insufficient-stock"


class StaleExpectation(WmsError):
    """A compare-and-set whose expected value is no longer the WMS's figure."""

    status, slug = 409, "stale-count"

    def __init__(self, message: str, current: int) -> None:
        super().__init__(message, extra={"current_quantity": current})
        self.current = current


class ShipmentNotFound(NotFound):
    slug = "shipment-not-found"


class UnknownLine(WmsError):
    """A sku the fulfillment order has no line for."""

    status, slug = 422, "unknown-line"


class OverPutAway(WmsError):
    """More would be put away than the order has picked and not shipped."""

    status, slug = 409, "over-put-away"


class NotOpen(WmsError):
    """More of a line would be cancelled or shorted than is open and unpicked: picked
    units are put away first, shipped ones never come back."""

    status, slug = 409, "quantity-not-open"

    def __init__(self, message: str, sku: str, open_quantity: int) -> None:
        super().__init__(message, extra={"sku": sku, "open_quantity": open_quantity})


class AlreadyDelivered(WmsError):
    status, slug = 409, "shipment-delivered"


class DeliveryBeforeShipment(WmsError):
    status, slug = 422, "delivered-before-shipped"


class OverDisposition(WmsError):
    """More of a return line would be dispositioned than was received."""

    status, slug = 409, "over-disposition"


class OverRelease(WmsError):
    """More of a return line would be released than inspection kept in quality control."""

    status, slug = 409, "over-release"


# -- return authorizations (ADR 0032) ----------------------------------------
class RmaNotFound(NotFound):
    slug = "rma-not-found"


class RmaRequired(WmsError):
    """A return receipt names no return authorization."""

    status, slug = 422, "rma-required"


class UnknownRma(WmsError):
    status, slug = 422, "unknown-rma"


class RmaClosed(WmsError):
    """The RMA is cancelled or past its ``expires_at``."""

    status, slug = 409, "rma-closed"


class RmaExhausted(WmsError):
    """More of a sku would be received than the RMA authorizes and has not received yet
    (or a sku it does not authorize at all)."""

    status, slug = 409, "rma-exhausted"

    def __init__(self, message: str, sku: str, authorized: int, received: int) -> None:
        super().__init__(
            message, extra={"sku": sku, "authorized": authorized, "received": received}
        )


class RmaOrderMismatch(WmsError):
    """The receipt's (or the replacing RMA's) order is not the RMA's."""

    status, slug = 422, "rma-order-mismatch"


class RmaBelowReceived(WmsError):
    """A replacing RMA would authorize less of a sku than was already received."""

    status, slug = 409, "rma-below-received"

    def __init__(self, message: str, sku: str, received: int) -> None:
        super().__init__(message, extra={"sku": sku, "received": received})


@runtime_checkable
class WmsPort(Protocol):
    async def create_warehouse(self, tx: Tx, warehouse: WarehouseIn) -> Warehouse: ...
    async def list_warehouses(self, after: str | None, limit: int) -> list[Warehouse]: ...
    async def post_receipt(self, tx: Tx, receipt: ReceiptIn) -> Receipt: ...
    async def get_receipt(self, receipt_id: str) -> Receipt | None: ...
    async def create_fulfillment_order(
        self, tx: Tx, order: FulfillmentOrderIn
    ) -> FulfillmentOrder: ...
    async def get_fulfillment_order(self, fulfillment_order_id: str) -> FulfillmentOrder | None: ...
    async def list_fulfillment_orders(
        self, order_ids: list[str], statuses: list[str], after: str | None, limit: int
    ) -> list[FulfillmentOrder]: ...
    async def cancel_fulfillment_order(
        self, tx: Tx, fulfillment_order_id: str
    ) -> FulfillmentOrder: ...
    async def create_shipment(
        self, tx: Tx, fulfillment_order_id: str, shipment: ShipmentIn
    ) -> Shipment: ...
    async def list_shipments(self, fulfillment_order_id: str) -> list[Shipment]: ...
    async def stock_version(self, tx: Tx, warehouse_id: str) -> int:
        """The warehouse's stock version as of this transaction. ``post_receipt`` and
        ``create_shipment`` raise it by one, in their transaction; the events they cause
        carry it as their ``sequence``."""
        ...

    async def list_stock(
        self,
        skus: list[str] | None,
        warehouse_id: str | None,
        after: tuple[str, str, str] | None,
        limit: int,
    ) -> list[StockPosition]: ...

    # -- picks, adjustments, counts, returns (each raises the stock version) ----
    async def confirm_pick(self, tx: Tx, fulfillment_order_id: str, pick: PickIn) -> Pick: ...
    async def post_adjustment(self, tx: Tx, adjustment: AdjustmentIn) -> Adjustment: ...
    async def post_cycle_count(
        self, tx: Tx, count: CycleCountIn
    ) -> tuple[CycleCount, Adjustment | None]:
        """Sets physical on-hand to the count when ``expected_quantity`` is still the
        figure (StaleExpectation with the current one otherwise). The adjustment is the
        change it made (None when the count matched)."""
        ...

    async def receive_return(self, tx: Tx, receipt: ReturnIn) -> ReturnReceipt: ...
    async def get_return(self, return_id: str) -> ReturnReceipt | None: ...
    async def disposition_return(
        self, tx: Tx, return_id: str, disposition: DispositionIn
    ) -> ReturnReceipt:
        """Final dispositions move stock (and raise the stock version, once); units
        dispositioned ``quality_control`` stay there, counted in the line's ``held``
        (no stock change: a call that only holds raises no stock version)."""
        ...

    async def release_return(self, tx: Tx, return_id: str, release: ReleaseIn) -> ReturnReceipt:
        """Held units given their final disposition (OverRelease beyond ``held``)."""
        ...

    # -- return authorizations (ADR 0032) ----------------------------------
    async def put_return_authorization(
        self, tx: Tx, rma_id: str, rma: ReturnAuthorizationIn
    ) -> tuple[ReturnAuthorization, bool]:
        """Creates or replaces the RMA; True when it was created."""
        ...

    async def get_return_authorization(self, rma_id: str) -> ReturnAuthorization | None: ...

    # -- corrections of a fulfillment order --------------------------------
    async def put_away(self, tx: Tx, fulfillment_order_id: str, put_away: PutAwayIn) -> PutAway:
        """Picked, unshipped units back to free stock, newest picks first (raises the
        stock version). OverPutAway, changing nothing, for more than that."""
        ...

    async def cancel_lines(
        self, tx: Tx, fulfillment_order_id: str, cancellation: LineCancellationIn
    ) -> FulfillmentOrder:
        """Lines shrink by what is open and unpicked (NotOpen otherwise); the order is
        ``cancelled`` when nothing is left and nothing shipped, ``shipped`` when all that
        is left has shipped. Stock is untouched: no stock version."""
        ...

    async def report_shortage(
        self, tx: Tx, fulfillment_order_id: str, shortage: ShortageIn
    ) -> tuple[Shortage, Adjustment | None]:
        """Lines shrink as in ``cancel_lines``, and up to the shorted quantity of free
        stock moves to ``hold`` by the adjustment returned (stock version raised for it),
        then the stock version is raised once more for the shortage itself."""
        ...

    # -- shipments after dispatch ------------------------------------------
    async def get_shipment(self, shipment_id: str) -> Shipment | None: ...
    async def record_delivery(
        self, tx: Tx, shipment_id: str, delivery: DeliveryIn
    ) -> tuple[Shipment, bool]:
        """The shipment, delivered; True when this call delivered it (once only)."""
        ...

    async def record_delay(
        self, tx: Tx, shipment_id: str, delay: DelayIn
    ) -> tuple[Shipment, Delay]:
        """The shipment with its new promise, and the delay as recorded (numbered 1, 2,
        ...). AlreadyDelivered once the shipment is delivered."""
        ...
