"""Kill a producing service (the WMS) between the commit of a receipt and the publish
of its event: after a restart the event arrives on the bus exactly once, and
availability applies it once.

The crash is the outbox relay's test-only fault point
(``TALLY_FAULT_CRASH_BEFORE_PUBLISH=1``, see shared/events/outbox.py): the process exits
with 137 right after reading the committed, unpublished outbox rows.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import msgspec
import pytest

from shared.events.catalog import ReceiptPosted
from shared.events.envelope import Event
from shared.events.outbox import FAULT_CRASH_BEFORE_PUBLISH
from tests.faults.helpers import bus_at, count, group_settled, on_hand, query
from tests.faults.helpers import stream_events as wms_events
from tests.faults.procs import JwksServer, ServiceProcess
from tests.support.polling import eventually_async
from tests.support.tokens import TestIssuer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def receipts_on_bus(events: list[Event], receipt_id: str) -> int:
    return sum(
        1
        for event in events
        if event.type == "receipt.posted"
        and msgspec.json.decode(event.data, type=ReceiptPosted).receipt_id == receipt_id
    )


async def test_b_producer_killed_between_commit_and_publish_loses_nothing(
    bus_url: str, tmp_path: Path, jwks: JwksServer, issuer: TestIssuer
) -> None:
    wms_db, availability_db = tmp_path / "wms.db", tmp_path / "availability.db"
    wms = ServiceProcess("wms", tmp_path, bus_url=bus_url, jwks=jwks)
    availability = ServiceProcess("availability", tmp_path, bus_url=bus_url, jwks=jwks)
    wms.start(**{FAULT_CRASH_BEFORE_PUBLISH: "1"})
    availability.start()
    headers = {"Authorization": f"Bearer {issuer.token('wms:read wms:write', audience='wms')}"}
    try:
        wms.wait_ready()
        availability.wait_ready()
        with httpx.Client(base_url=wms.url, headers=headers, timeout=10) as api:
            created = api.post("/wms/v1/warehouses", json={"warehouse_id": "WH-X", "name": "X"})
            assert created.status_code == 201, created.text
            # The answer may or may not come back before the relay kills the process.
            with contextlib.suppress(httpx.TransportError):
                api.post(
                    "/wms/v1/receipts",
                    json={"warehouse_id": "WH-X", "lines": [{"sku": "SKU-CRASH", "quantity": 7}]},
                    headers={"Idempotency-Key": "crash-1"},
                )
        assert wms.wait_exit(timeout=15) == 137, wms.log_tail()

        # The crash fell where it should: the receipt is committed, its event is not out.
        receipt_ids = [row[0] for row in query(wms_db, "SELECT receipt_id FROM receipts")]
        assert len(receipt_ids) == 1
        receipt_id = receipt_ids[0]
        assert count(wms_db, "outbox", "published_at IS NULL") == 1
        async with bus_at(bus_url) as bus:
            assert receipts_on_bus(await wms_events(bus), receipt_id) == 0

            wms.start()  # without the fault
            wms.wait_ready()

            async def published() -> bool:
                return receipts_on_bus(await wms_events(bus), receipt_id) >= 1

            assert await eventually_async(published, timeout=20), wms.log_tail()
            arrived = await eventually_async(
                lambda: on_hand(availability_db) == {("SKU-CRASH", "WH-X"): 7}, timeout=20
            )
            assert arrived, availability.log_tail()
            assert await eventually_async(lambda: group_settled(bus, "availability"), timeout=20)

            assert receipts_on_bus(await wms_events(bus), receipt_id) == 1
        # The relay marks the row published in its own transaction, after the publish.
        marked = await eventually_async(
            lambda: count(wms_db, "outbox", "published_at IS NULL") == 0, timeout=20
        )
        assert marked, wms.log_tail()
        assert on_hand(availability_db) == {("SKU-CRASH", "WH-X"): 7}
        assert count(availability_db, "movements") == 1
        assert count(availability_db, "inbox", "type = 'receipt.posted'") == 1
    finally:
        wms.stop()
        availability.stop()
