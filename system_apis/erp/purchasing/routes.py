"""Purchase orders and advance shipping notices (ASNs)."""

from __future__ import annotations

from litestar import Controller, Response, get, post

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_ERP
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import CursorParam, IdParam, LimitParam, Page, decode_cursor, encode_cursor
from shared.problems import ProblemError, problem_responses
from system_apis.erp.adapters.purchasing import po_version
from system_apis.erp.events import asn_shipped, purchase_order_changed
from system_apis.erp.port import ErpPort, ErpRefusal
from system_apis.erp.refusals import problem
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
        data: PurchaseOrderIn,
        erp: ErpPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[PurchaseOrder]:
        async def effect(tx: Tx) -> tuple[int, PurchaseOrder]:
            try:
                order = await erp.create_purchase_order(tx, data)
            except ErpRefusal as exc:
                raise problem(exc) from exc
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
        self, erp: ErpPort, cursor: CursorParam = None, limit: LimitParam = 50
    ) -> Page[PurchaseOrder]:
        found = await erp.list_purchase_orders(decode_cursor(cursor), limit + 1)
        page = found[:limit]
        more = len(found) > limit
        return Page(page, encode_cursor(page[-1].purchase_order_id) if more else None)

    @get(
        "/{purchase_order_id:str}",
        operation_id="getPurchaseOrder",
        summary="Read one purchase order with its open quantities",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_purchase_order(self, purchase_order_id: IdParam, erp: ErpPort) -> PurchaseOrder:
        order = await erp.get_purchase_order(purchase_order_id)
        if order is None:
            raise ProblemError(
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
        self, purchase_order_id: IdParam, erp: ErpPort, idempotency: IdempotencyStore
    ) -> PurchaseOrder:
        async with idempotency.db.transaction() as tx:
            try:
                order = await erp.cancel_purchase_order(tx, purchase_order_id)
            except ErpRefusal as exc:
                raise problem(exc) from exc
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
        data: AsnIn,
        erp: ErpPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[Asn]:
        """Quantities move from the PO lines' open quantity to in transit; more than is
        open is 409 and changes nothing."""

        async def effect(tx: Tx) -> tuple[int, Asn]:
            try:
                asn, order = await erp.create_asn(tx, data)
            except ErpRefusal as exc:
                raise problem(exc) from exc
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
    async def get_asn(self, asn_id: IdParam, erp: ErpPort) -> Asn:
        asn = await erp.get_asn(asn_id)
        if asn is None:
            raise ProblemError(404, "asn-not-found", f"No ASN {asn_id}.")
        return asn
