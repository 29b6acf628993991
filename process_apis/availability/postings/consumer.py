"""The ``erp_postings`` consumer group: every stock fact of the WMS posted to the ERP.

``prepare`` (outside the transaction) skips a posting this service recorded already,
else posts it with Idempotency-Key ``posting:{kind}:{reference}``: a 201 (or its
replay) is posted; a 409 ``duplicate-posting`` means the ERP holds it already (posted
before under another key or before our record committed): done, nothing fetched. The
ERP unreachable is Downstream's 503, a wait (``is_not_yet``: redelivered with backoff);
any other refusal raises: retried, then dead-lettered (replayable once fixed).
``apply`` records the posting in ``erp_postings`` with the inbox row."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import msgspec
from sqlalchemy import insert, select

from process_apis.availability.postings import plans
from process_apis.availability.postings.plans import Plan
from process_apis.availability.postings.table import erp_postings
from shared.db import Database, Tx
from shared.events.envelope import Event
from shared.events.inbox import EventHandler
from shared.http import Downstream

log = logging.getLogger("tally.availability.postings")

CONSUMER_GROUP = "erp_postings"
POSTINGS_PATH = "/erp/v1/inventory/postings"
PLANNERS: dict[str, Callable[[Event], Plan | None]] = {
    "receipt.posted": plans.receipt,
    "shipment.dispatched": plans.shipment,
    "return.received": plans.return_receipt,
    "return.dispositioned": plans.scrap,
    "inventory.adjusted": plans.adjustment,
}


class CannotPost(Exception):
    """The ERP refused the posting (4xx other than a duplicate) or failed (5xx other
    than unreachable): retried, then dead-lettered."""


class Posted(msgspec.Struct, frozen=True):
    plan: Plan
    posting_id: str | None
    posted_at: datetime


class PostToErp:
    def __init__(self, db: Database, erp: Downstream, planner: Callable[[Event], Plan | None]):
        self.db = db
        self.erp = erp
        self.planner = planner

    async def prepare(self, event: Event) -> Posted | None:
        plan = self.planner(event)
        if plan is None or await self._known(plan):
            return None
        response = await self.erp.request(
            "POST", POSTINGS_PATH, json=plan.body(), idempotency_key=plan.idempotency_key
        )
        if response.status_code in (200, 201):
            body = response.json()
            return Posted(plan, body["posting_id"], datetime.fromisoformat(body["posted_at"]))
        if response.status_code == 409 and _problem_type(response) == "/problems/duplicate-posting":
            log.info("%s of %s was already posted in the ERP", plan.kind, plan.reference)
            return Posted(plan, None, datetime.now(UTC))
        raise CannotPost(
            f"{plan.kind} of {plan.reference}: the ERP answered {response.status_code} "
            f"{response.text[:500]}"
        )

    async def _known(self, plan: Plan) -> bool:
        async with self.db.read() as conn:
            found = await conn.scalar(
                select(erp_postings.c.reference).where(
                    erp_postings.c.kind == plan.kind, erp_postings.c.reference == plan.reference
                )
            )
        return found is not None

    async def apply(self, tx: Tx, event: Event, prepared: Posted | None) -> None:  # noqa: ARG002
        if prepared is None:
            return
        plan = prepared.plan
        t = erp_postings.c
        known = await tx.conn.scalar(
            select(t.reference).where(t.kind == plan.kind, t.reference == plan.reference)
        )
        if known is not None:  # the same fact under another event id, applied meanwhile
            return
        await tx.conn.execute(
            insert(erp_postings).values(
                kind=plan.kind,
                reference=plan.reference,
                warehouse_id=plan.warehouse_id,
                posting_id=prepared.posting_id,
                posted_at=prepared.posted_at,
            )
        )


def enabled() -> bool:
    """``TALLY_ERP_POSTINGS`` (``on``): ``off`` where another integration posts the
    warehouse's movements to the ERP."""
    raw = (os.environ.get("TALLY_ERP_POSTINGS") or "on").strip().lower()
    if raw not in ("on", "off"):
        raise ValueError(f"TALLY_ERP_POSTINGS must be on or off, not {raw!r}")
    return raw == "on"


def handlers(db: Database, erp: Downstream) -> dict[str, EventHandler]:
    """One handler per WMS stock fact, all posting through ``erp``."""
    return {kind: PostToErp(db, erp, planner) for kind, planner in PLANNERS.items()}


def _problem_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None
