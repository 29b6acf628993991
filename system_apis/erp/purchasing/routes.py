"""Purchase orders and advance shipping notices (ASNs)."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_ERP
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import CursorParam, IdParam, LimitParam, Page
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.adapters.purchasing import po_version
from system_apis.erp.events import asn_shipped, purchase_order_changed
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import Asn, AsnIn, PurchaseOrder, PurchaseOrderIn


class PurchaseOrderController(Controller):
    path = "/erp/v1/purchase-orders"
    tags = ["purchasing"]

    @post(
        "/",
        operation_id="createPurchaseOrder",
        summary="Place a purchase order, emits purchase_order.changed",
        responses=problem_responses(409, 422),
        **requires("erp:write"),
    )
    async def create_purchase_order(
        self,
        data: JSONBody[PurchaseOrderIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[PurchaseOrder]:
        async def effect(tx: Tx) -> tuple[int, PurchaseOrder]:
            order = await erp.create_purchase_order(tx, data)
            version = await po_version(tx.conn, order.purchase_order_id)
            tx.emit(STREAM_ERP, purchase_order_changed(order, version))
            return 201, order

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/",
        operation_id="listPurchaseOrders",
        summary="List purchase orders",
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def list_purchase_orders(
        self, erp: NamedDependency[ErpPort], cursor: CursorParam = None, limit: LimitParam = 50
    ) -> Page[PurchaseOrder]:
        found = await erp.list_purchase_orders(decode_cursor(cursor), limit + 1)
        return keyset_page(found, limit, key=lambda o: o.purchase_order_id)

    @get(
        "/{purchase_order_id:str}",
        operation_id="getPurchaseOrder",
        summary="Read one purchase order with its open quantities",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_purchase_order(
        self, purchase_order_id: IdParam, erp: NamedDependency[ErpPort]
    ) -> PurchaseOrder:
        order = await erp.get_purchase_order(purchase_order_id)
        if order is None:
            raise Refusal(
                404, "purchase-order-not-found", f"No purchase order {purchase_order_id}."
            )
        return order

    @post(
        "/{purchase_order_id:str}/cancel",
        operation_id="cancelPurchaseOrder",
        summary="Cancel what is still open on a purchase order, emits purchase_order.changed",
        status_code=200,
        responses=problem_responses(404, 409),
        **requires("erp:write"),
    )
    async def cancel_purchase_order(
        self,
        purchase_order_id: IdParam,
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
    ) -> PurchaseOrder:
        async with idempotency.db.transaction() as tx:
            order = await erp.cancel_purchase_order(tx, purchase_order_id)
            version = await po_version(tx.conn, purchase_order_id)
            tx.emit(STREAM_ERP, purchase_order_changed(order, version))
        return order


class AsnController(Controller):
    path = "/erp/v1/asns"
    tags = ["purchasing"]

    @post(
        "/",
        operation_id="createAsn",
        summary="Record a supplier's ASN (goods in transit), emits asn.shipped",
        responses=problem_responses(409, 422),
        **requires("erp:write"),
    )
    async def create_asn(
        self,
        data: JSONBody[AsnIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Asn]:
        """Quantities move from the PO lines' open quantity to in transit; more than is
        open is 409 and changes nothing."""

        async def effect(tx: Tx) -> tuple[int, Asn]:
            asn, order = await erp.create_asn(tx, data)
            tx.emit(STREAM_ERP, asn_shipped(asn))
            version = await po_version(tx.conn, order.purchase_order_id)
            tx.emit(STREAM_ERP, purchase_order_changed(order, version))
            return 201, asn

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/{asn_id:str}",
        operation_id="getAsn",
        summary="Read one ASN",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_asn(self, asn_id: IdParam, erp: NamedDependency[ErpPort]) -> Asn:
        asn = await erp.get_asn(asn_id)
        if asn is None:
            raise Refusal(404, "asn-not-found", f"No ASN {asn_id}.")
        return asn
