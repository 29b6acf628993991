"""Purchase orders, ASNs and the financial inventory of the reference ERP.

A PO line's open quantity is ordered - in transit - received: an ASN moves quantity
from open to in transit, the goods receipt that closes it from in transit to received.
Financial on-hand moves only by postings of warehouse facts, so it lags the WMS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import Select, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, Tx
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


async def load_purchase_orders(conn: AsyncConnection, query: Select[Any]) -> list[PurchaseOrder]:
    heads = (await conn.execute(query)).all()
    ids = [h.purchase_order_id for h in heads]
    lines: dict[str, list[PurchaseOrderLine]] = {i: [] for i in ids}
    rows = await conn.execute(
        select(POL).where(POL.c.purchase_order_id.in_(ids)).order_by(POL.c.line_no)
    )
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


async def _load_asn(conn: AsyncConnection, asn_id: str) -> Asn | None:
    head = (await conn.execute(select(ASN).where(ASN.c.asn_id == asn_id))).first()
    if head is None:
        return None
    rows = await conn.execute(select(ASNL).where(ASNL.c.asn_id == asn_id).order_by(ASNL.c.line_no))
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


def _po(purchase_order_id: str) -> Select[Any]:
    return select(PO).where(PO.c.purchase_order_id == purchase_order_id)


async def _touch_po(conn: AsyncConnection, purchase_order_id: str, now: datetime) -> PurchaseOrder:
    """Raise the PO's version, close it when everything is received, and reload it."""
    rows = (
        await conn.execute(select(POL).where(POL.c.purchase_order_id == purchase_order_id))
    ).all()
    head = (await conn.execute(_po(purchase_order_id))).one()
    status = head.status
    if status == "open" and all(r.received >= r.ordered for r in rows):
        status = "closed"
    await conn.execute(
        update(PO)
        .where(PO.c.purchase_order_id == purchase_order_id)
        .values(status=status, version=PO.c.version + 1, updated_at=now)
    )
    return (await load_purchase_orders(conn, _po(purchase_order_id)))[0]


async def po_version(conn: AsyncConnection, purchase_order_id: str) -> int:
    return int(
        await conn.scalar(select(PO.c.version).where(PO.c.purchase_order_id == purchase_order_id))
        or 0
    )


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
        return (await load_purchase_orders(tx.conn, _po(purchase_order_id)))[0]

    async def get_purchase_order(self, purchase_order_id: str) -> PurchaseOrder | None:
        async with self.db.read() as conn:
            found = await load_purchase_orders(conn, _po(purchase_order_id))
        return found[0] if found else None

    async def list_purchase_orders(self, after: str | None, limit: int) -> list[PurchaseOrder]:
        query = select(PO).order_by(PO.c.purchase_order_id).limit(limit)
        if after:
            query = query.where(PO.c.purchase_order_id > after)
        async with self.db.read() as conn:
            return await load_purchase_orders(conn, query)

    async def cancel_purchase_order(self, tx: Tx, purchase_order_id: str) -> PurchaseOrder:
        head = (await tx.conn.execute(_po(purchase_order_id).with_for_update())).first()
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
        head = (await conn.execute(_po(asn.purchase_order_id).with_for_update())).first()
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
        conn = tx.conn
        now = datetime.now(UTC)
        posting_id = f"GP-{uuid_utils.uuid7()}"
        try:
            async with conn.begin_nested():
                await conn.execute(
                    insert(tables.inventory_postings).values(
                        posting_id=posting_id,
                        kind=posting.kind,
                        reference=posting.reference,
                        warehouse_id=posting.warehouse_id,
                        posted_at=now,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(
                "duplicate-posting", f"{posting.kind} of {posting.reference} is already posted."
            ) from exc
        await conn.execute(
            insert(tables.inventory_posting_lines),
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
        dialect_insert: Any = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        for sku, delta in sorted(totals.items()):
            stmt = dialect_insert(FIN).values(
                sku=sku, warehouse_id=posting.warehouse_id, on_hand=delta, updated_at=now
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["sku", "warehouse_id"],
                    set_={"on_hand": FIN.c.on_hand + stmt.excluded.on_hand, "updated_at": now},
                )
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
        )
        return result, asn, order

    async def _receive_asn(
        self, conn: AsyncConnection, posting: PostingIn, now: datetime
    ) -> tuple[Asn, PurchaseOrder]:
        head = (
            await conn.execute(select(ASN).where(ASN.c.asn_id == posting.asn_id).with_for_update())
        ).first()
        if head is None or head.warehouse_id != posting.warehouse_id:
            raise Invalid("unknown-asn", f"No ASN {posting.asn_id} to {posting.warehouse_id}.")
        if head.status != "in_transit":
            raise Conflict("asn-already-received", f"ASN {posting.asn_id} is already received.")
        rows = (await conn.execute(select(ASNL).where(ASNL.c.asn_id == head.asn_id))).all()
        for r in sorted(rows, key=lambda x: x.sku):
            await conn.execute(
                update(POL)
                .where(
                    POL.c.purchase_order_id == head.purchase_order_id,
                    POL.c.sku == r.sku,
                    POL.c.warehouse_id == head.warehouse_id,
                )
                .values(
                    in_transit=POL.c.in_transit - r.quantity, received=POL.c.received + r.quantity
                )
            )
        await conn.execute(
            update(ASN)
            .where(ASN.c.asn_id == head.asn_id)
            .values(status="received", receipt_id=posting.reference, updated_at=now)
        )
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
        head = (await conn.execute(_po(purchase_order_id).with_for_update())).first()
        if head is None:
            raise Invalid("unknown-purchase-order", f"No purchase order {purchase_order_id}.")
        for sku, quantity in sorted(totals.items()):
            # Receiving more than is open receives what is open; the rest is just stock.
            row = (
                await conn.execute(
                    select(POL).where(
                        POL.c.purchase_order_id == purchase_order_id,
                        POL.c.sku == sku,
                        POL.c.warehouse_id == posting.warehouse_id,
                    )
                )
            ).first()
            if row is None:
                continue
            take = min(quantity, row.ordered - row.in_transit - row.received)
            if take > 0:
                await conn.execute(
                    update(POL)
                    .where(
                        POL.c.purchase_order_id == purchase_order_id, POL.c.line_no == row.line_no
                    )
                    .values(received=POL.c.received + take)
                )
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
