"""One simulated day: the world, the parties acting concurrently under a progress bar,
the platform left to settle (everything shipped is invoiced, every return credited),
then the accuracy report."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.http_transport import Http1Transport
from tally.simulate import world
from tally.simulate.actors.channels import Channels
from tally.simulate.actors.customers import Customers
from tally.simulate.actors.operator import Operator
from tally.simulate.actors.warehouse import Warehouse
from tally.simulate.api import Party
from tally.simulate.chaos import Chaos
from tally.simulate.journal import Journal
from tally.simulate.plan import Day, Mix, plan_day
from tally.simulate.report import (
    MOVING,
    build_report,
    dead_letters,
    inbound,
    orders_of,
    returns_and_credits,
)

FINAL_RMA = frozenset({"closed", "rejected", "expired"})
SETTLE_PAGE = 500  # moving orders read per settle check, at most, while some are ours


@dataclass(frozen=True)
class Options:
    gateway: str
    data_dir: Path
    lines: int = 2000
    seed: int = 1
    day_seconds: float = 0.0  # the day compressed into this long; 0: as fast as it goes
    settle_seconds: float = 300.0
    tag: str | None = None
    chaos_every: float | None = None  # seconds between kills (``--chaos``); None: none
    mix: Mix = field(default_factory=Mix)


@dataclass
class Progress:
    """What the run tells its progress bar."""

    planned: Callable[[int], None] = lambda _: None
    placed: Callable[[int], None] = lambda _: None
    phase: Callable[[str], None] = lambda _: None


def _wire(gateway: str) -> dict[str, Any]:
    """httpx's API either way. To a plain-HTTP gateway (the platform on this machine)
    the platform's own keep-alive transport carries the calls: with httpcore the
    simulator took 2.0 ms of CPU per line, with it 0.7, on cores the platform shares
    (decision 0050).
    Over TLS, httpx's own (the client's certificate checks apply)."""
    if gateway.startswith("http://"):
        return {"transport": Http1Transport(max_connections=64)}
    return {"limits": httpx.Limits(max_connections=64, max_keepalive_connections=64)}


async def simulate(options: Options, progress: Progress | None = None) -> dict[str, Any]:
    progress = progress or Progress()
    tag = options.tag or uuid.uuid4().hex[:6].upper()
    day = plan_day(options.seed, options.lines, tag, options.mix)
    progress.planned(day.lines)
    async with httpx.AsyncClient(timeout=60, **_wire(options.gateway)) as http:
        staff = Party(options.gateway, world.staff_credentials(options.data_dir), http)
        dead_before = frozenset(d.dead_letter_id for d in await dead_letters(options.data_dir))
        progress.phase("setting up the world")
        await world.build(staff, day)
        made = world.register_clients(options.data_dir, day)
        parties = {c: Party(options.gateway, creds, http) for c, creds in made.items()}
        started = time.monotonic()
        journal = await _run_day(day, staff, parties, options, progress)
        progress.phase("reporting")
        report = await build_report(
            staff,
            day,
            data_dir=options.data_dir,
            dead_letters_before=dead_before,
            wall_seconds=time.monotonic() - started,
        )
    report["chaos"] = (
        {"kills": dict(sorted(journal.kills.items()))} if options.chaos_every else None
    )
    report["simulator"] = {
        "outcomes": dict(sorted(journal.outcomes.items())),
        "retries": staff.retries + sum(p.retries for p in parties.values()),
        "unexpected_answers": journal.errors,
    }
    return report


async def _run_day(
    day: Day, staff: Party, parties: dict[str, Party], options: Options, progress: Progress
) -> Journal:
    journal = Journal()
    channels = Channels(day, parties, journal, options.day_seconds, progress.placed)
    warehouse = Warehouse(day, staff, journal, options.day_seconds)
    customers = Customers(day, parties, staff, journal)
    operator = Operator(day, staff, journal)
    progress.phase("the day" + (" (chaos)" if options.chaos_every else ""))
    chaos = Chaos(options.data_dir, day.seed, options.chaos_every or 0)
    killing = asyncio.create_task(chaos.run(options.day_seconds)) if options.chaos_every else None
    shipping = asyncio.create_task(warehouse.run())
    ordering = asyncio.create_task(channels.run())
    while not ordering.done():
        await operator.release_held()
        await customers.pass_once(closing=False)
        await asyncio.wait({ordering}, timeout=1.0)
    await ordering  # its errors surface here
    if killing is not None:  # the platform settles without kills, then is counted
        chaos.stop.set()
        await killing
        journal.kills.update(chaos.kills)
    progress.phase("settling")
    deadline = time.monotonic() + options.settle_seconds
    while time.monotonic() < deadline:
        await operator.release_held()
        await customers.pass_once(closing=True)
        waiting = await _unsettled(staff, day)
        if waiting is None:
            break
        progress.phase(f"settling: {waiting}")
        await asyncio.sleep(1.0)
    warehouse.stop.set()
    await shipping
    return journal


async def _first_moving(staff: Party, day: Day) -> str | None:
    """How many of this day's orders are still moving ("500+" when more pages follow),
    or None when none is."""
    ours = {customer.customer_id for customer in day.customers}
    query: dict[str, Any] = {"status": list(MOVING), "limit": SETTLE_PAGE}
    while True:
        answer = await staff.get("/orders/v1/orders", params=query)
        answer.raise_for_status()
        body = answer.json()
        found = sum(1 for order in body["items"] if order["customer_id"] in ours)
        more = body.get("next_cursor")
        if found:
            return f"{found}+" if more else str(found)
        if not more:
            return None
        query["cursor"] = more


async def _unsettled(staff: Party, day: Day) -> str | None:
    """What the platform is still doing, or None once everything shipped is invoiced and
    every return has reached a final state and is credited as the policy says (a credit
    waits for its invoice, which may wait for an ERP that was down)."""
    # The orders still moving first, up to the first page that holds one of this day's
    # (a listing of every order still moving, each second, was a third of the order
    # service's loop while 20,000 waited to ship); the whole day's orders only once
    # nothing is left to ship.
    if unshipped := await _first_moving(staff, day):
        return f"{unshipped} orders to ship"
    orders = await orders_of(staff, day)
    uninvoiced = sum(1 for o in orders if any(x["shipped"] != x["invoiced"] for x in o["lines"]))
    if uninvoiced:
        return f"{uninvoiced} orders to invoice"
    found = await returns_and_credits(staff, day, [o["order_id"] for o in orders])
    open_rmas = sum(1 for r in found["rmas"] if r["status"] not in FINAL_RMA)
    if open_rmas:
        return f"{open_rmas} returns open"
    if found["mismatches"]:
        return f"{found['mismatches']} returns to credit"
    # The day's receipts reach the ERP's purchase order through availability's postings.
    received: dict[str, Any] = {}
    await inbound(staff, day, received)
    if received["inbound_not_received_units"]:
        return f"{received['inbound_not_received_units']} inbound units to post"
    return None
