"""Purchase orders, ASNs and the financial inventory of the reference ERP.

A PO line's open quantity is ordered - in transit - received: an ASN moves quantity
from open to in transit, the goods receipt that closes it from in transit to received.
Financial on-hand moves only by postings of warehouse facts, so it lags the WMS."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

import uuid_utils
from sqlalchemy import Insert, Select, bindparam, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Tx, savepoint
from system_apis.erp import db as tables
from system_apis.erp.port import Conflict, Invalid, NotFound
from system_apis.erp.schemas import (
    Asn,
    AsnIn,
    AsnLine,
    FinancialStock,
    Posting,
    PostingIn,
    PostingLine,
    PurchaseOrder,
    PurchaseOrderIn,
    PurchaseOrderLine,
)

PO = tables.purchase_orders
POL = tables.purchase_order_lines
ASN = tables.asns
ASNL = tables.asn_lines
FIN = tables.financial_stock

_SIGN = {"goods_receipt": 1, "return_receipt": 1, "goods_issue": -1, "scrap": -1}

# The statements of a posting and of the receipts it makes, built once with bind
# parameters: a statement built per call costs SQLAlchemy more than running it (its
# cache key is computed from the whole statement every time). Bind names inside an
# UPDATE's values differ from the columns' (SQLAlchemy reserves those).
_PO_HEAD = select(PO).where(PO.c.purchase_order_id == bindparam("purchase_order_id"))
_PO_LOCKED = _PO_HEAD.with_for_update()
_PO_VERSION = select(PO.c.version).where(PO.c.purchase_order_id == bindparam("purchase_order_id"))
_PO_LINES = select(POL).where(POL.c.purchase_order_id == bindparam("purchase_order_id"))
_PO_LINES_OF_MANY = (
    select(POL)
    .where(POL.c.purchase_order_id.in_(bindparam("ids", expanding=True)))
    .order_by(POL.c.line_no)
)
_PO_LINE_OF_SKU = _PO_LINES.where(
    POL.c.sku == bindparam("sku"), POL.c.warehouse_id == bindparam("warehouse_id")
)
_TOUCH_PO = (
    update(PO)
    .where(PO.c.purchase_order_id == bindparam("at_po"))
    .values(status=bindparam("new_status"), version=PO.c.version + 1, updated_at=bindparam("now"))
)
_RECEIVE_PO_LINE = (
    update(POL)
    .where(POL.c.purchase_order_id == bindparam("at_po"), POL.c.line_no == bindparam("at_line"))
    .values(received=POL.c.received + bindparam("take", type_=POL.c.received.type))
)
_ASN_HEAD = select(ASN).where(ASN.c.asn_id == bindparam("asn_id"))
_ASN_LOCKED = _ASN_HEAD.with_for_update()
_ASN_LINES = select(ASNL).where(ASNL.c.asn_id == bindparam("asn_id"))
_ASN_LINES_IN_ORDER = _ASN_LINES.order_by(ASNL.c.line_no)
_moved = bindparam("quantity", type_=POL.c.received.type)
_RECEIVE_ASN_LINE = (
    update(POL)
    .where(
        POL.c.purchase_order_id == bindparam("at_po"),
        POL.c.sku == bindparam("at_sku"),
        POL.c.warehouse_id == bindparam("at_warehouse"),
    )
    .values(in_transit=POL.c.in_transit - _moved, received=POL.c.received + _moved)
)
_ASN_RECEIVED = (
    update(ASN)
    .where(ASN.c.asn_id == bindparam("at_asn"))
    .values(status="received", receipt_id=bindparam("receipt"), updated_at=bindparam("now"))
)
_INSERT_POSTING = insert(tables.inventory_postings)  # the row is the execution's parameters
_INSERT_POSTING_LINES = BulkInsert(
    tables.inventory_posting_lines, ["posting_id", "line_no", "sku", "quantity_delta"]
)


@cache
def _book_stock(dialect: str) -> Insert:
    """Adds a posting's ``delta`` of a sku to the warehouse's financial on-hand (a row
    the first time), built once per dialect (their ON CONFLICT clauses differ)."""
    dialect_insert: Any = sqlite_insert if dialect == "sqlite" else pg_insert
    now = bindparam("now", type_=FIN.c.updated_at.type)
    stmt = dialect_insert(FIN).values(
        sku=bindparam("at_sku"),
        warehouse_id=bindparam("at_warehouse"),
        on_hand=bindparam("delta"),
        updated_at=now,
    )
    booked: Insert = stmt.on_conflict_do_update(
        index_elements=["sku", "warehouse_id"],
        set_={"on_hand": FIN.c.on_hand + stmt.excluded.on_hand, "updated_at": now},
    )
    return booked


async def load_purchase_orders(
    conn: AsyncConnection, query: Select[Any], params: Mapping[str, Any] | None = None
) -> list[PurchaseOrder]:
    heads = (await conn.execute(query, params)).all()
    ids = [h.purchase_order_id for h in heads]
    lines: dict[str, list[PurchaseOrderLine]] = {i: [] for i in ids}
    rows = await conn.execute(_PO_LINES_OF_MANY, {"ids": ids})
    status_of = {h.purchase_order_id: h.status for h in heads}
    for r in rows:
        still_open = status_of[r.purchase_order_id] == "open"
        lines[r.purchase_order_id].append(
            PurchaseOrderLine(
                sku=r.sku,
                warehouse_id=r.warehouse_id,
                ordered=r.ordered,
                in_transit=r.in_transit,
                received=r.received,
                open_quantity=(r.ordered - r.in_transit - r.received) if still_open else 0,
                expected_date=r.expected_date,
            )
        )
    return [
        PurchaseOrder(
            h.purchase_order_id,
            h.supplier_id,
            h.status,
            lines[h.purchase_order_id],
            h.created_at,
            h.updated_at,
        )
        for h in heads
    ]


async def _load_po(conn: AsyncConnection, purchase_order_id: str) -> PurchaseOrder | None:
    found = await load_purchase_orders(conn, _PO_HEAD, {"purchase_order_id": purchase_order_id})
    return found[0] if found else None


async def _load_asn(conn: AsyncConnection, asn_id: str) -> Asn | None:
    head = (await conn.execute(_ASN_HEAD, {"asn_id": asn_id})).first()
    if head is None:
        return None
    rows = await conn.execute(_ASN_LINES_IN_ORDER, {"asn_id": asn_id})
    return Asn(
        asn_id=head.asn_id,
        purchase_order_id=head.purchase_order_id,
        warehouse_id=head.warehouse_id,
        status=head.status,
        expected_date=head.expected_date,
        lines=[AsnLine(r.sku, r.quantity) for r in rows],
        receipt_id=head.receipt_id,
        created_at=head.created_at,
        updated_at=head.updated_at,
    )


async def _touch_po(conn: AsyncConnection, purchase_order_id: str, now: datetime) -> PurchaseOrder:
    """Raise the PO's version, close it when everything is received, and reload it."""
    params = {"purchase_order_id": purchase_order_id}
    rows = (await conn.execute(_PO_LINES, params)).all()
    head = (await conn.execute(_PO_HEAD, params)).one()
    status = head.status
    if status == "open" and all(r.received >= r.ordered for r in rows):
        status = "closed"
    await conn.execute(_TOUCH_PO, {"at_po": purchase_order_id, "new_status": status, "now": now})
    order = await _load_po(conn, purchase_order_id)
    assert order is not None
    return order


async def po_version(conn: AsyncConnection, purchase_order_id: str) -> int:
    return int(await conn.scalar(_PO_VERSION, {"purchase_order_id": purchase_order_id}) or 0)


class ReferencePurchasing:
    db: Database

    async def create_purchase_order(self, tx: Tx, order: PurchaseOrderIn) -> PurchaseOrder:
        keys = [(line.sku, line.warehouse_id) for line in order.lines]
        if len(set(keys)) != len(keys):
            raise Invalid("duplicate-line", "Each (sku, warehouse) may appear on one PO line.")
        now = datetime.now(UTC)
        purchase_order_id = f"PO-{uuid_utils.uuid7()}"
        await tx.conn.execute(
            insert(PO).values(
                purchase_order_id=purchase_order_id,
                supplier_id=order.supplier_id,
                status="open",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        await tx.conn.execute(
            insert(POL),
            [
                {
                    "purchase_order_id": purchase_order_id,
                    "line_no": n,
                    "sku": line.sku,
                    "warehouse_id": line.warehouse_id,
                    "ordered": line.quantity,
                    "in_transit": 0,
                    "received": 0,
                    "expected_date": line.expected_date,
                }
                for n, line in enumerate(order.lines, start=1)
            ],
        )
        created = await _load_po(tx.conn, purchase_order_id)
        assert created is not None
        return created

    async def get_purchase_order(self, purchase_order_id: str) -> PurchaseOrder | None:
        async with self.db.read() as conn:
            return await _load_po(conn, purchase_order_id)

    async def list_purchase_orders(self, after: str | None, limit: int) -> list[PurchaseOrder]:
        query = select(PO).order_by(PO.c.purchase_order_id).limit(limit)
        if after:
            query = query.where(PO.c.purchase_order_id > after)
        async with self.db.read() as conn:
            return await load_purchase_orders(conn, query)

    async def cancel_purchase_order(self, tx: Tx, purchase_order_id: str) -> PurchaseOrder:
        params = {"purchase_order_id": purchase_order_id}
        head = (await tx.conn.execute(_PO_LOCKED, params)).first()
        if head is None:
            raise NotFound("purchase-order-not-found", f"No purchase order {purchase_order_id}.")
        if head.status != "open":
            raise Conflict(
                "invalid-purchase-order-status", f"{purchase_order_id} is {head.status}."
            )
        await tx.conn.execute(
            update(PO).where(PO.c.purchase_order_id == purchase_order_id).values(status="cancelled")
        )
        return await _touch_po(tx.conn, purchase_order_id, datetime.now(UTC))

    async def create_asn(self, tx: Tx, asn: AsnIn) -> tuple[Asn, PurchaseOrder]:
        conn = tx.conn
        params = {"purchase_order_id": asn.purchase_order_id}
        head = (await conn.execute(_PO_LOCKED, params)).first()
        if head is None:
            raise Invalid("unknown-purchase-order", f"No purchase order {asn.purchase_order_id}.")
        if head.status != "open":
            raise Conflict(
                "invalid-purchase-order-status", f"{asn.purchase_order_id} is {head.status}."
            )
        skus = [line.sku for line in asn.lines]
        if len(set(skus)) != len(skus):
            raise Invalid("duplicate-line", "Each sku may appear on one ASN line.")
        for line in sorted(asn.lines, key=lambda x: x.sku):
            result = await conn.execute(
                update(POL)
                .where(
                    POL.c.purchase_order_id == asn.purchase_order_id,
                    POL.c.sku == line.sku,
                    POL.c.warehouse_id == asn.warehouse_id,
                    POL.c.in_transit + POL.c.received + line.quantity <= POL.c.ordered,
                )
                .values(in_transit=POL.c.in_transit + line.quantity)
            )
            if result.rowcount != 1:
                raise Conflict(
                    "over-shipment",
                    f"{asn.purchase_order_id} has not {line.quantity} of {line.sku} open "
                    f"for {asn.warehouse_id}.",
                )
        now = datetime.now(UTC)
        asn_id = f"ASN-{uuid_utils.uuid7()}"
        await conn.execute(
            insert(ASN).values(
                asn_id=asn_id,
                purchase_order_id=asn.purchase_order_id,
                warehouse_id=asn.warehouse_id,
                status="in_transit",
                expected_date=asn.expected_date,
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            insert(ASNL),
            [
                {"asn_id": asn_id, "line_no": n, "sku": line.sku, "quantity": line.quantity}
                for n, line in enumerate(asn.lines, start=1)
            ],
        )
        order = await _touch_po(conn, asn.purchase_order_id, now)
        found = await _load_asn(conn, asn_id)
        assert found is not None
        return found, order

    async def get_asn(self, asn_id: str) -> Asn | None:
        async with self.db.read() as conn:
            return await _load_asn(conn, asn_id)

    async def post_inventory(
        self, tx: Tx, posting: PostingIn
    ) -> tuple[Posting, Asn | None, PurchaseOrder | None]:
        """Book a warehouse fact. A goods receipt naming an ASN receives it whole."""
        sign = _SIGN.get(posting.kind)
        for line in posting.lines:
            if line.quantity_delta == 0 or (sign and line.quantity_delta * sign < 0):
                raise Invalid(
                    "invalid-quantity",
                    f"A {posting.kind} line must be "
                    + {1: "positive", -1: "negative"}.get(sign or 0, "non-zero")
                    + ".",
                )
        if (posting.asn_id or posting.purchase_order_id) and posting.kind != "goods_receipt":
            raise Invalid("invalid-posting", "Only a goods receipt may name an ASN or PO.")
        if posting.order_id and posting.kind != "goods_issue":
            raise Invalid("invalid-posting", "Only a goods issue may name a sales order.")
        conn = tx.conn
        now = datetime.now(UTC)
        posting_id = f"GP-{uuid_utils.uuid7()}"
        try:
            async with savepoint(conn):
                await conn.execute(
                    _INSERT_POSTING,
                    {
                        "posting_id": posting_id,
                        "kind": posting.kind,
                        "reference": posting.reference,
                        "warehouse_id": posting.warehouse_id,
                        "posted_at": now,
                        "order_id": posting.order_id,
                    },
                )
        except IntegrityError as exc:
            raise Conflict(
                "duplicate-posting", f"{posting.kind} of {posting.reference} is already posted."
            ) from exc
        await _INSERT_POSTING_LINES(
            conn,
            [
                {
                    "posting_id": posting_id,
                    "line_no": n,
                    "sku": x.sku,
                    "quantity_delta": x.quantity_delta,
                }
                for n, x in enumerate(posting.lines, start=1)
            ],
        )
        totals: dict[str, int] = {}
        for line in posting.lines:
            totals[line.sku] = totals.get(line.sku, 0) + line.quantity_delta
        # One row per sku, in sku order (the rows' lock order), in one executemany.
        await conn.execute(
            _book_stock(conn.dialect.name),
            [
                {"at_sku": sku, "at_warehouse": posting.warehouse_id, "delta": delta, "now": now}
                for sku, delta in sorted(totals.items())
            ],
        )
        asn, order = None, None
        if posting.asn_id:
            asn, order = await self._receive_asn(conn, posting, now)
        elif posting.purchase_order_id:
            order = await self._receive_po(conn, posting.purchase_order_id, posting, totals, now)
        result = Posting(
            posting_id=posting_id,
            kind=posting.kind,
            reference=posting.reference,
            warehouse_id=posting.warehouse_id,
            lines=[PostingLine(x.sku, x.quantity_delta) for x in posting.lines],
            posted_at=now,
            asn_id=posting.asn_id,
            purchase_order_id=order.purchase_order_id if order else None,
            order_id=posting.order_id,
        )
        return result, asn, order

    async def _receive_asn(
        self, conn: AsyncConnection, posting: PostingIn, now: datetime
    ) -> tuple[Asn, PurchaseOrder]:
        head = (await conn.execute(_ASN_LOCKED, {"asn_id": posting.asn_id})).first()
        if head is None or head.warehouse_id != posting.warehouse_id:
            raise Invalid("unknown-asn", f"No ASN {posting.asn_id} to {posting.warehouse_id}.")
        if head.status != "in_transit":
            raise Conflict("asn-already-received", f"ASN {posting.asn_id} is already received.")
        rows = (await conn.execute(_ASN_LINES, {"asn_id": head.asn_id})).all()
        for r in sorted(rows, key=lambda x: x.sku):
            moved = {
                "at_po": head.purchase_order_id,
                "at_sku": r.sku,
                "at_warehouse": head.warehouse_id,
                "quantity": r.quantity,
            }
            await conn.execute(_RECEIVE_ASN_LINE, moved)
        received = {"at_asn": head.asn_id, "receipt": posting.reference, "now": now}
        await conn.execute(_ASN_RECEIVED, received)
        order = await _touch_po(conn, head.purchase_order_id, now)
        asn = await _load_asn(conn, head.asn_id)
        assert asn is not None
        return asn, order

    async def _receive_po(
        self,
        conn: AsyncConnection,
        purchase_order_id: str,
        posting: PostingIn,
        totals: dict[str, int],
        now: datetime,
    ) -> PurchaseOrder:
        head = (await conn.execute(_PO_LOCKED, {"purchase_order_id": purchase_order_id})).first()
        if head is None:
            raise Invalid("unknown-purchase-order", f"No purchase order {purchase_order_id}.")
        for sku, quantity in sorted(totals.items()):
            # Receiving more than is open receives what is open; the rest is just stock.
            line = {
                "purchase_order_id": purchase_order_id,
                "sku": sku,
                "warehouse_id": posting.warehouse_id,
            }
            row = (await conn.execute(_PO_LINE_OF_SKU, line)).first()
            if row is None:
                continue
            take = min(quantity, row.ordered - row.in_transit - row.received)
            if take > 0:
                taken = {"at_po": purchase_order_id, "at_line": row.line_no, "take": take}
                await conn.execute(_RECEIVE_PO_LINE, taken)
        return await _touch_po(conn, purchase_order_id, now)

    async def list_financial_stock(
        self,
        skus: list[str] | None,
        warehouse_id: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[FinancialStock]:
        key = (FIN.c.sku, FIN.c.warehouse_id)
        query = select(FIN).order_by(*key).limit(limit)
        if skus:
            query = query.where(FIN.c.sku.in_(skus))
        if warehouse_id:
            query = query.where(FIN.c.warehouse_id == warehouse_id)
        if after:
            query = query.where(tuple_(*key) > tuple_(*after))
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [FinancialStock(r.sku, r.warehouse_id, r.on_hand, r.updated_at) for r in rows]
