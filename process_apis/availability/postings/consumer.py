"""The ``erp_postings`` consumer group: every stock fact of the WMS posted to the ERP.

``prepare`` (outside the transaction) skips a posting this service recorded already,
else posts it with Idempotency-Key ``posting:{kind}:{reference}``: a 201 (or its
replay) is posted; a 409 ``duplicate-posting`` means the ERP holds it already (posted
before under another key or before our record committed): done, nothing fetched. The
ERP unreachable is Downstream's 503, a wait (``is_not_yet``: redelivered with backoff);
any other refusal raises: retried, then dead-lettered (replayable once fixed).
``apply`` records the posting in ``erp_postings`` with the inbox row.

The facts of one bus batch are posted together (``prepare_many``, the inbox's
``PreparesTogether``): one ``POST /erp/v1/inventory/postings/batch`` of up to 100, each
under its own key and answered as its single post would be. A batch refused as a
whole (4xx) goes again one posting per call, so that only the bad one waits."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from sqlalchemy import bindparam, select

from process_apis.availability.postings import plans
from process_apis.availability.postings.plans import Plan
from process_apis.availability.postings.table import erp_postings
from shared.db import Database, Tx
from shared.events.envelope import Event
from shared.events.inbox import EventHandler
from shared.events.inbox.tables import dialect_insert
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
_POSTED = select(erp_postings.c.reference).where(
    erp_postings.c.kind == bindparam("kind"), erp_postings.c.reference == bindparam("reference")
)


class CannotPost(Exception):
    """The ERP refused the posting (4xx other than a duplicate) or failed (5xx other
    than unreachable): retried, then dead-lettered."""


class Posted(msgspec.Struct, frozen=True):
    plan: Plan
    posting_id: str | None
    posted_at: datetime


class PostToErp:
    """Every stock fact's posting: one handler for all of ``planners``' event types, so
    a bus batch's facts of every kind go in one call."""

    def __init__(
        self, db: Database, erp: Downstream, planners: Mapping[str, Callable[[Event], Plan | None]]
    ) -> None:
        self.db = db
        self.erp = erp
        self.planners = planners
        # Built once: a statement built per event cost more than running it. A fact
        # applied meanwhile under another event id (the same kind and reference) is
        # left as it is.
        self._record = dialect_insert(erp_postings, sqlite=db.sqlite).on_conflict_do_nothing()

    async def prepare(self, event: Event) -> Posted | None:
        plan = self.planners[event.type](event)
        if plan is None or await self._known(plan):
            return None
        response = await self.erp.request(
            "POST", POSTINGS_PATH, json=plan.body(), idempotency_key=plan.idempotency_key
        )
        return _posted(plan, response.status_code, _json(response))

    async def prepare_many(self, events: Sequence[Event]) -> list[Any]:
        plans = [self.planners[event.type](event) for event in events]
        known = await self._known_many([p for p in plans if p is not None])
        # Two events of one fact (the same kind and reference) post it once.
        sent: dict[str, Plan] = {}
        for plan in plans:
            if plan is not None and (plan.kind, plan.reference) not in known:
                sent.setdefault(plan.idempotency_key, plan)
        answers = await self._post_batch(list(sent.values())) if sent else {}
        prepared: list[Any] = []
        for event, plan in zip(events, plans, strict=True):
            if plan is None or (plan.kind, plan.reference) in known:
                prepared.append(None)
            elif plan.idempotency_key in answers:
                prepared.append(answers[plan.idempotency_key])
            else:  # the batch was refused as a whole: this one alone
                try:
                    prepared.append(await self.prepare(event))
                except Exception as exc:
                    prepared.append(exc)
        return prepared

    async def _post_batch(self, plans: list[Plan]) -> dict[str, Posted | Exception]:
        """Each plan's outcome by key; the batch refused as a whole: posted one by one
        by ``prepare_many``'s caller (an empty answer)."""
        body = {
            "postings": [{"idempotency_key": p.idempotency_key, "posting": p.body()} for p in plans]
        }
        response = await self.erp.request("POST", POSTINGS_PATH + "/batch", json=body)
        if response.status_code != 200:
            if response.status_code >= 500:
                raise CannotPost(
                    f"the ERP failed a batch of {len(plans)} postings: {response.status_code}"
                )
            log.warning(
                "the ERP refused a batch of %d postings (%d); posting them one by one",
                len(plans),
                response.status_code,
            )
            return {}
        answers: dict[str, Posted | Exception] = {}
        for plan, result in zip(plans, response.json()["results"], strict=True):
            refusal = result.get("refusal")
            try:
                if refusal is None:
                    answers[plan.idempotency_key] = _posted(plan, 201, result["posting"])
                else:
                    answers[plan.idempotency_key] = _posted(plan, int(refusal["status"]), refusal)
            except CannotPost as exc:
                answers[plan.idempotency_key] = exc
        return answers

    async def _known_many(self, plans: list[Plan]) -> set[tuple[str, str]]:
        if not plans:
            return set()
        t = erp_postings.c
        async with self.db.lookup() as conn:
            rows = await conn.execute(
                select(t.kind, t.reference).where(
                    t.reference.in_(sorted({p.reference for p in plans}))
                )
            )
        return {(row.kind, row.reference) for row in rows}

    async def _known(self, plan: Plan) -> bool:
        async with self.db.lookup() as conn:
            found = await conn.scalar(_POSTED, {"kind": plan.kind, "reference": plan.reference})
        return found is not None

    async def apply(self, tx: Tx, event: Event, prepared: Posted | None) -> None:  # noqa: ARG002
        if prepared is None:
            return
        plan = prepared.plan
        await tx.conn.execute(
            self._record,
            {
                "kind": plan.kind,
                "reference": plan.reference,
                "warehouse_id": plan.warehouse_id,
                "posting_id": prepared.posting_id,
                "posted_at": prepared.posted_at,
            },
        )


def enabled() -> bool:
    """``TALLY_ERP_POSTINGS`` (``on``): ``off`` where another integration posts the
    warehouse's movements to the ERP."""
    raw = (os.environ.get("TALLY_ERP_POSTINGS") or "on").strip().lower()
    if raw not in ("on", "off"):
        raise ValueError(f"TALLY_ERP_POSTINGS must be on or off, not {raw!r}")
    return raw == "on"


def handlers(db: Database, erp: Downstream) -> dict[str, EventHandler]:
    """Every WMS stock fact's type, all to one handler posting through ``erp``."""
    posting = PostToErp(db, erp, PLANNERS)
    return dict.fromkeys(PLANNERS, posting)


def _posted(plan: Plan, status: int, body: Any) -> Posted:
    """What an answer of the ERP to the plan's posting means: posted (201, or the
    replay's 200), posted before (409 ``duplicate-posting``); otherwise ``CannotPost``."""
    if status in (200, 201):
        return Posted(plan, body["posting_id"], datetime.fromisoformat(body["posted_at"]))
    kind = body.get("type") if isinstance(body, dict) else None
    if status == 409 and kind == "/problems/duplicate-posting":
        log.info("%s of %s was already posted in the ERP", plan.kind, plan.reference)
        return Posted(plan, None, datetime.now(UTC))
    raise CannotPost(
        f"{plan.kind} of {plan.reference}: the ERP answered {status} {str(body)[:500]}"
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
