"""The WMS's return facts that move an RMA (decision 0033), consumed with the other
warehouse facts (``CONSUMER_GROUP`` over ``STREAM_WMS``, unordered):

- ``return.received`` (naming its ``rma_id``): the units count as received on the RMA
  (``authorized`` -> ``received``); applied once per ``return_id``;
- ``return.dispositioned``: the final dispositions (restock, damaged, scrap,
  return_to_vendor; units kept in quality control are not in it) count on the RMA's
  lines; every received unit dispositioned -> ``inspected``, then ``closed`` when every
  authorised unit arrived or the RMA is past its expiry. Applied once per
  ``disposition_id``; one that arrives before its receipt waits (``NotYet``).

Each locks the order first (``service.locked``) and recounts its lines' ``returned``.
A receipt without an RMA, or naming one this service does not know, is not a return of
an order of this platform: logged and ignored."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from process_apis.order_to_ship.flows import changes
from process_apis.order_to_ship.returns import repository as repo
from process_apis.order_to_ship.returns.service import commit, locked
from shared.db import Tx
from shared.events.catalog import ReturnDispositioned, ReturnReceived
from shared.events.envelope import Event
from shared.events.inbox import ApplyOnly, EventHandler, NotYet

log = logging.getLogger("tally.orders.returns")

FINAL = {
    "restock": "restocked",
    "damaged": "damaged",
    "scrap": "scrapped",
    "return_to_vendor": "returned_to_vendor",
}


def receipt_document(return_id: str) -> str:
    return f"rma-receipt:{return_id}"


class ReceiptNotYet(NotYet):
    """A disposition whose receipt has not been applied yet."""


async def on_return_received(tx: Tx, event: Event) -> None:
    received = event.payload(ReturnReceived)
    if received.rma_id is None:
        log.warning("return %s names no RMA; ignored", received.return_id)
        return
    found = await locked(tx, received.rma_id)
    if found is None:
        log.warning("return %s for unknown RMA %s; ignored", received.return_id, received.rma_id)
        return
    working, rma = found
    if await changes.document_applied(tx, receipt_document(received.return_id), rma.order_id):
        return
    for line in received.lines:
        if line.quantity <= 0:
            continue
        if line.sku not in rma.lines:
            log.error("return %s: %s is not on %s", received.return_id, line.sku, rma.rma_id)
            continue
        counts = rma.line(line.sku)
        taken = min(line.quantity, counts["authorized"] - counts["received"])
        if taken < line.quantity:
            log.error(
                "return %s: %d %s received against %s, %d were open",
                received.return_id,
                line.quantity,
                line.sku,
                rma.rma_id,
                taken,
            )
        counts["received"] += max(taken, 0)
    if rma.status == "authorized" or (rma.status == "inspected" and rma.finished < rma.received):
        rma.move("received")
    elif rma.status in ("rejected", "expired", "closed"):
        # Taken by the WMS before it heard the RMA ended: the goods are there.
        log.warning(
            "return %s received against %s RMA %s", received.return_id, rma.status, rma.rma_id
        )
    await commit(tx, working, rma, "return_received", causation=event)


async def on_return_dispositioned(tx: Tx, event: Event) -> None:
    decided = event.payload(ReturnDispositioned)
    if decided.rma_id is None:
        return
    found = await locked(tx, decided.rma_id)
    if found is None:
        return
    working, rma = found
    if not await repo.document_seen(tx.conn, receipt_document(decided.return_id)):
        raise ReceiptNotYet(f"return {decided.return_id} is not recorded on {rma.rma_id} yet")
    document = f"rma-disposition:{decided.disposition_id or event.id}"
    if await changes.document_applied(tx, document, rma.order_id):
        return
    for line in decided.lines:
        column = FINAL.get(line.disposition)
        if column is None or line.quantity <= 0 or line.sku not in rma.lines:
            log.error("disposition %s: %s %s ignored", document, line.sku, line.disposition)
            continue
        counts = rma.line(line.sku)
        done = sum(counts[name] for name in FINAL.values())
        taken = min(line.quantity, counts["received"] - done)
        if taken < line.quantity:
            log.error(
                "disposition %s: %d %s, %d received and not dispositioned",
                document,
                line.quantity,
                line.sku,
                taken,
            )
        counts[column] += max(taken, 0)
    if rma.status == "received" and rma.finished >= rma.received:
        rma.move("inspected")
    if rma.status == "inspected" and (rma.all_received or rma.head.expires_at <= datetime.now(UTC)):
        rma.move("closed")
    await commit(tx, working, rma, "return_dispositioned", causation=event)


def handlers() -> dict[str, EventHandler]:
    return {
        "return.received": ApplyOnly(on_return_received),
        "return.dispositioned": ApplyOnly(on_return_dispositioned),
    }
