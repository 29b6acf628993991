"""The ERP's financial inventory: postings of warehouse facts and on-hand per sku and
warehouse. It lags the WMS until each fact is posted."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_ERP
from shared.idempotency import IdempotencyKey, IdempotencyStore, item_outcomes
from shared.models import (
    ID_PATTERN,
    CursorParam,
    LimitParam,
    Page,
    SkuListQuery,
    SkuParam,
    query_filter,
)
from shared.paging import decode_key, keyset_page
from shared.problems import problem_responses
from system_apis.erp.adapters.purchasing import po_version
from system_apis.erp.events import asn_received, goods_issue_posted, purchase_order_changed
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import (
    FinancialStock,
    Posting,
    PostingBatch,
    PostingBatchIn,
    PostingBatchResult,
    PostingIn,
)

WarehouseQuery = Annotated[str | None, query_filter(ID_PATTERN, name="warehouse_id")]


async def _stock_page(
    erp: ErpPort, skus: list[str], warehouse_id: str | None, cursor: str | None, limit: int
) -> Page[FinancialStock]:
    # Ordered by (sku, warehouse); a cursor we did not issue is a position in it.
    after = decode_key(cursor, 2)
    found = await erp.list_financial_stock(skus, warehouse_id, after, limit + 1)
    return keyset_page(found, limit, key=lambda s: (s.sku, s.warehouse_id))


async def _post(erp: ErpPort, tx: Tx, data: PostingIn) -> tuple[int, Posting]:
    """Book one posting and emit what it changed (the single post's and each batch
    item's effect)."""
    posting, asn, order = await erp.post_inventory(tx, data)
    if posting.kind == "goods_issue":
        tx.emit(STREAM_ERP, goods_issue_posted(posting))
    if asn is not None:
        tx.emit(STREAM_ERP, asn_received(asn))
    if order is not None:
        version = await po_version(tx.conn, order.purchase_order_id)
        tx.emit(STREAM_ERP, purchase_order_changed(order, version))
    return 201, posting


class InventoryController(Controller):
    path = "/erp/v1/inventory"
    tags = ["inventory"]

    @post(
        "/postings",
        operation_id="postInventory",
        summary="Post a warehouse fact (receipt, issue, return, scrap, adjustment) to the ERP",
        responses=problem_responses(409, 422),
        **requires("erp:write"),
    )
    async def post_inventory(
        self,
        data: JSONBody[PostingIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Posting]:
        """One posting per (kind, reference): a second is 409 ``duplicate-posting``. A
        goods receipt naming ``asn_id`` receives that ASN (emits ``asn.received``); one
        naming ``purchase_order_id`` receives against the PO's open lines. A goods issue
        emits ``goods_issue.posted`` (with the ``order_id`` it names): billing invoices
        the shipment on it."""

        async def effect(tx: Tx) -> tuple[int, Posting]:
            return await _post(erp, tx, data)

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @post(
        "/postings/batch",
        operation_id="postInventoryBatch",
        summary="Post up to 100 warehouse facts in one call, each as its single post would",
        status_code=200,
        responses=problem_responses(422),
        **requires("erp:write"),
    )
    async def post_inventory_batch(
        self,
        data: JSONBody[PostingBatchIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> PostingBatch:
        """One transaction for the batch. Each item is answered as ``POST /postings``
        with ``Idempotency-Key: <idempotency_key>`` would answer it: a key seen before
        (by either endpoint) replays its posting; a new one books it (emitting
        ``asn.received`` / ``purchase_order.changed`` as the single post does); a
        refusal (409 ``duplicate-posting``, the key reused with another payload, a line
        of the wrong sign, ...) changes nothing of that item and nothing of the others.
        Keys repeated within the batch are 422 ``duplicate-idempotency-key``."""
        items = data.postings

        async def effect(tx: Tx, n: int) -> tuple[int, Posting]:
            return await _post(erp, tx, items[n].posting)

        answers = await idempotency.run_each_once(
            client_id=principal.client_id,
            items=[(item.idempotency_key, item.posting) for item in items],
            effect=effect,
        )
        return PostingBatch(
            [
                PostingBatchResult(item.idempotency_key, posting=booked, refusal=why)
                for item, (booked, why) in zip(items, item_outcomes(answers, Posting), strict=True)
            ]
        )

    @get(
        "/",
        operation_id="listFinancialStock",
        summary="Financial on-hand per sku and warehouse",
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def list_financial_stock(
        self,
        erp: NamedDependency[ErpPort],
        sku: SkuListQuery = (),  # type: ignore[assignment]
        warehouse_id: WarehouseQuery = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[FinancialStock]:
        return await _stock_page(erp, list(sku), warehouse_id, cursor, limit)

    @get(
        "/{sku:str}",
        operation_id="getFinancialStock",
        summary="Financial on-hand of one sku per warehouse (empty when never posted)",
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def get_financial_stock(
        self,
        sku: SkuParam,
        erp: NamedDependency[ErpPort],
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[FinancialStock]:
        return await _stock_page(erp, [sku], None, cursor, limit)
