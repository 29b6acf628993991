"""The availability service on two worker processes (``tally serve --workers 2``,
decision 0018) over one SQLite file: the workers take turns at the writer's file lock,
so the 200-client stampede still allocates exactly the stock; each allocation's event
is published once (each worker publishes its own commits; only the leader passes over
the outbox); stock events are consumed once (only the leader consumes); /metrics
merges both workers; and when the leader is killed, another worker takes the lead."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.availability.test_contention import (
    SKU,
    STOCK,
    check_exactly_the_stock_allocated,
    stampede,
)
from tests.support.availability import AvailabilityProcess
from tests.support.polling import wait_until
from tests.support.tokens import TestIssuer

pytestmark = pytest.mark.slow  # starts services as processes or a stack on real ports


def workers_of(service: AvailabilityProcess) -> set[int]:
    """The worker processes (multiprocessing's resource tracker is a child too)."""
    assert service.process is not None
    children = Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children")
    workers = set()
    for pid in children.read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.add(int(pid))
        except FileNotFoundError:
            continue  # gone meanwhile
    return workers


def leader_of(service: AvailabilityProcess) -> int | None:
    """The pid holding the service's leader file lock (from /proc/locks)."""
    inode = (service.data_dir / "availability.leader").stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and fields[-3].split(":")[-1] == str(inode):
            return int(fields[-4])
    return None


def published(service: AvailabilityProcess, event_type: str) -> Counter[str]:
    """Subjects of the events of ``event_type`` in the embedded log, with their counts."""
    with sqlite3.connect(service.data_dir / "events.db") as conn:
        rows = conn.execute("SELECT subject FROM entries WHERE type = ?", (event_type,))
        return Counter(subject for (subject,) in rows)


def test_two_workers_allocate_exactly_the_stock_and_publish_each_event_once(
    tmp_path: Path, issuer: TestIssuer
) -> None:
    env = {"TALLY_AVAILABILITY_WORKERS": "2"}
    with AvailabilityProcess(tmp_path, issuer, env=env) as service:
        wait_until(
            lambda: len(workers_of(service)) == 2 and leader_of(service) is not None,
            timeout=20.0,
            interval=0.1,
        )
        for warehouse, quantity in STOCK.items():
            service.receive(warehouse, SKU, quantity)
        service.wait_for_atp(SKU, sum(STOCK.values()))

        placed = asyncio.run(stampede(service.url, service.token()))
        check_exactly_the_stock_allocated(service, placed)

        granted = {p.order_id for p in placed if p.status_code == 201}
        wait_until(
            lambda: set(published(service, "inventory.allocated")) == granted,
            timeout=20.0,
            interval=0.1,
        )
        assert set(published(service, "inventory.allocated").values()) == {1}

        # Both workers answered, and /metrics (from either) counts every answer.
        metric_files = list((service.data_dir / "metrics" / "availability").glob("*.db"))
        assert len({f.stem.rsplit("_", 1)[-1] for f in metric_files}) >= 2
        metrics = httpx.get(f"{service.url}/metrics").text
        answered = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("tally_http_request_seconds_count")
            and 'route="/availability/v1/allocations"' in line
        )
        assert answered >= len(placed)


def test_when_the_leader_dies_another_worker_consumes(tmp_path: Path, issuer: TestIssuer) -> None:
    env = {"TALLY_AVAILABILITY_WORKERS": "2", "TALLY_LEADER_RETRY_SECONDS": "0.2"}
    with AvailabilityProcess(tmp_path, issuer, env=env) as service:
        wait_until(
            lambda: len(workers_of(service)) == 2 and leader_of(service) is not None,
            timeout=20.0,
            interval=0.1,
        )
        service.receive("WH-EAST", SKU, 10)
        service.wait_for_atp(SKU, 10)

        first = leader_of(service)
        assert first is not None and first in workers_of(service)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: leader_of(service) not in (None, first), timeout=20.0, interval=0.1)

        service.receive("WH-WEST", SKU, 5)  # consumed by the new leader
        service.wait_for_atp(SKU, 15)
