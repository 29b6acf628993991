"""Kill -9 a consuming service (availability) in the middle of a burst of events and
restart it: every event is applied exactly once.

Effects are counted in availability's own database: on_hand per (sku, warehouse) equals
the sum of the received quantities, the ledger holds one movement per event line, and
the inbox one row per event.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from shared.events.catalog import STREAM_WMS
from shared.events.envelope import Event
from tests.faults.helpers import bus_at, count, group_settled, on_hand, receipt_event
from tests.faults.procs import ServiceProcess
from tests.support.polling import eventually_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EVENTS = 1_200
KILL_AFTER = 250  # applied events seen before the SIGKILL
WAREHOUSES = ("WH-A", "WH-B")
SKUS = tuple(f"SKU-{n}" for n in range(6))


def receipt_burst(total: int, seed: int = 7) -> tuple[list[Event], dict[tuple[str, str], int], int]:
    """``total`` receipts over two warehouses, each with one or two lines of distinct
    skus; per warehouse the sequence counts up from 1 (the WMS's stock-event counter).
    Returns the events, the expected on_hand per (sku, warehouse), and the line count."""
    rng = random.Random(seed)
    sequence = dict.fromkeys(WAREHOUSES, 0)
    expected: dict[tuple[str, str], int] = {}
    events, lines_total = [], 0
    for n in range(total):
        warehouse = WAREHOUSES[n % len(WAREHOUSES)]
        sequence[warehouse] += 1
        lines = [(sku, rng.randint(1, 50)) for sku in rng.sample(SKUS, rng.randint(1, 2))]
        for sku, quantity in lines:
            expected[(sku, warehouse)] = expected.get((sku, warehouse), 0) + quantity
        lines_total += len(lines)
        events.append(receipt_event(warehouse, sequence[warehouse], f"RCV-{n:05d}", lines))
    return events, expected, lines_total


async def test_a_consumer_killed_mid_burst_applies_every_event_exactly_once(
    bus_url: str, tmp_path: Path
) -> None:
    events, expected, lines_total = receipt_burst(EVENTS)
    db = tmp_path / "availability.db"
    availability = ServiceProcess("availability", tmp_path, bus_url=bus_url)
    availability.start()
    try:
        availability.wait_ready()
        async with bus_at(bus_url) as bus:
            for start in range(0, EVENTS, 250):
                await bus.publish(STREAM_WMS, events[start : start + 250])

            applied = await eventually_async(lambda: count(db, "inbox") >= KILL_AFTER, timeout=60)
            assert applied, f"availability applied nothing:\n{availability.log_tail()}"
            availability.kill()
            at_kill = count(db, "inbox")
            assert at_kill < EVENTS, (
                f"the burst was over ({at_kill} applied) before the kill: the test proves nothing"
            )

            availability.start()
            availability.wait_ready()

            def done() -> bool:
                return count(db, "inbox") >= EVENTS and on_hand(db) == expected

            # The dead consumer's claimed, unacked entries come back after the bus's
            # visibility timeout (FAULT_VISIBILITY_TIMEOUT here, 30 s by default).
            finished = await eventually_async(done, timeout=60, interval=0.2)
            assert finished, (
                f"after restart: {count(db, 'inbox')} of {EVENTS} events in the inbox,"
                f" on_hand {sum(on_hand(db).values())} of {sum(expected.values())},"
                f" {count(db, 'movements')} of {lines_total} movements\n"
                f"{availability.log_tail()}"
            )
            settled = await eventually_async(lambda: group_settled(bus, "availability"), timeout=30)
            assert settled, await bus.lag()

        # Exactly once: no effect twice, none missing.
        assert on_hand(db) == expected
        assert count(db, "movements", "reason = 'receipt'") == lines_total
        assert count(db, "movements") == lines_total
        assert count(db, "inbox", "type = 'receipt.posted'") == EVENTS
        assert availability.alive(), availability.log_tail()
    finally:
        availability.stop()
