"""Allocation throughput: one hot sku, four channels, 64 concurrent clients through the
availability API (real HTTP to a real ``tally serve availability`` process).

    .venv/bin/python -m bench.allocation [--requests 4000] [--clients 64]
                                         [--databases sqlite,postgres] [--json [FILE]]

For each database (the embedded SQLite default; PostgreSQL on a throwaway server from
``tests/support/servers.py``) it runs the service twice:

- ``group commit``: the service as shipped; concurrent allocations are applied together
  in one transaction, each in its own savepoint (``allocations/batcher.py``);
- ``baseline``: the same service with ``TALLY_ALLOCATION_GROUP_COMMIT=0``: one
  transaction per request (idempotency lookup, SELECT ... FOR UPDATE of the positions,
  conditional UPDATE, commit), the path before group commit.

Every request allocates 1 unit of the hot sku (policy ``partial``) under its own order
id and Idempotency-Key; the stock (two warehouses) covers 90% of the requests, so the
tail runs into sold-out. Prints requests/s, allocations/s (requests that got a unit),
p50/p99 latency, the service process's CPU time per request (user + system: steadier
than req/s on a shared machine), and the oversell count computed from the positions after the run:
units allocated beyond what was sellable (sum of negative ATP), which must be 0; plus
the positions that differ from the ledger's rebuild (must be 0). The machine's load
average is printed too: the figures are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

SKU = "HOT-1"
CHANNELS = ("b2b", "ecommerce", "marketplace", "edi")
WAREHOUSES = ("WH-EAST", "WH-WEST")
MODES = {"group commit": "1", "baseline": "0"}
DEFAULT_JSON = Path(__file__).parent / "results" / "allocation.json"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _load(
    url: str, token: str, requests: int, clients: int, prefix: str, sku: str = SKU
) -> dict[str, Any]:
    """``clients`` concurrent callers share ``requests`` allocations of one unit each."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    allocated = statuses_other = 0
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as http:

        async def caller(n: int) -> None:
            nonlocal allocated, statuses_other
            channel = CHANNELS[n % len(CHANNELS)]
            for i in counter:
                order_id = f"{prefix}-{i}"
                body = msgspec.json.encode(
                    {
                        "order_id": order_id,
                        "channel": channel,
                        "policy": "partial",
                        "lines": [{"sku": sku, "quantity": 1}],
                    }
                )
                started = time.perf_counter()
                async with http.post(
                    "/availability/v1/allocations",
                    data=body,
                    headers={"Idempotency-Key": f"key-{order_id}"},
                ) as response:
                    answer = await response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 201:
                    statuses_other += 1
                    continue
                allocated += msgspec.json.decode(answer)["lines"][0]["allocated"]

        started = time.perf_counter()
        await asyncio.gather(*(caller(n) for n in range(clients)))
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "latencies": latencies,
        "allocated": allocated,
        "not_201": statuses_other,
    }


async def _positions(database_url: str) -> tuple[int, int, int]:
    """(allocated, oversold units, positions differing from the ledger)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from process_apis.availability.db import ATP_DEDUCTIONS
    from process_apis.availability.positions import ledger

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = await ledger.snapshot(conn)
            drift = await ledger.drift(conn)
    finally:
        await engine.dispose()
    hot = [b for key, b in stored.items() if key.sku == SKU]
    allocated = sum(b["allocated"] for b in hot)
    oversold = sum(max(0, -(b["on_hand"] - sum(b[d] for d in ATP_DEDUCTIONS))) for b in hot)
    return allocated, oversold, len(drift)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(
    database: str, mode: str, requests: int, clients: int, pg_cluster: str | None, n: int
) -> dict[str, Any]:
    from tests.support.availability import AvailabilityProcess
    from tests.support.servers import create_database
    from tests.support.tokens import TestIssuer

    stock = requests * 9 // 10
    with tempfile.TemporaryDirectory(prefix="bench-alloc-") as tmp, ExitStack() as stack:
        database_url = (
            create_database(pg_cluster, f"bench_alloc_{n}_{os.getpid()}")
            if database == "postgres" and pg_cluster
            else None
        )
        service = stack.enter_context(
            AvailabilityProcess(
                Path(tmp),
                TestIssuer(),
                database_url=database_url,
                env={"TALLY_ALLOCATION_GROUP_COMMIT": MODES[mode]},
            )
        )
        split = stock * 6 // 10
        service.receive(WAREHOUSES[0], SKU, split)
        service.receive(WAREHOUSES[1], SKU, stock - split)
        service.receive(WAREHOUSES[0], "WARM-UP", clients * 10)
        service.wait_for_atp(SKU, stock)
        service.wait_for_atp("WARM-UP", clients * 10)
        token = service.token()
        # Warm-up on another sku, same path: connections, caches, compiled statements.
        asyncio.run(_load(service.url, token, clients * 5, clients, "WARM", "WARM-UP"))
        assert service.process is not None
        cpu_before = _cpu_seconds(service.process.pid)
        result = asyncio.run(_load(service.url, token, requests, clients, "SO"))
        cpu = _cpu_seconds(service.process.pid) - cpu_before
        allocated, oversold, drift = asyncio.run(_positions(service.settings.database_url))
    latencies = result["latencies"]
    return {
        "database": database,
        "mode": mode,
        "clients": clients,
        "requests": requests,
        "stock": stock,
        "seconds": round(result["seconds"], 2),
        "requests_per_s": round(requests / result["seconds"]),
        "allocations_per_s": round(result["allocated"] / result["seconds"]),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "service_cpu_ms_per_request": round(cpu / requests * 1000, 2),
        "allocated_answered": result["allocated"],
        "allocated_positions": allocated,
        "not_201": result["not_201"],
        "oversell": oversold,
        "ledger_drift": drift,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=DEFAULT_JSON,
        help=f"also write the figures as JSON (default file {DEFAULT_JSON})",
    )
    args = parser.parse_args()
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        pg_cluster: str | None = None
        if "postgres" in databases:
            from tests.support.servers import postgres_server

            pg_cluster = stack.enter_context(postgres_server())
        for n, (database, mode) in enumerate((d, m) for d in databases for m in MODES):
            rows.append(run_one(database, mode, args.requests, args.clients, pg_cluster, n))
            print(_line(rows[-1]), flush=True)
    speedups = {
        d: round(
            next(r for r in rows if r["database"] == d and r["mode"] == "group commit")[
                "allocations_per_s"
            ]
            / max(
                1,
                next(r for r in rows if r["database"] == d and r["mode"] == "baseline")[
                    "allocations_per_s"
                ],
            ),
            2,
        )
        for d in databases
    }
    load_after = os.getloadavg()
    print()
    print(_table(rows))
    for database, factor in speedups.items():
        print(f"{database}: group commit / baseline = {factor}x")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2 cores)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "runs": rows,
                    "speedup_over_baseline": speedups,
                    "load_average_before": round(load_before[0], 2),
                    "load_average_after": round(load_after[0], 2),
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
        )


COLUMNS = (
    ("database", 9),
    ("mode", 13),
    ("requests_per_s", 10),
    ("allocations_per_s", 13),
    ("p50_ms", 8),
    ("p99_ms", 8),
    ("service_cpu_ms_per_request", 9),
    ("allocated_positions", 10),
    ("stock", 6),
    ("oversell", 8),
    ("ledger_drift", 6),
)
HEADERS = (
    "database",
    "mode",
    "req/s",
    "allocs/s",
    "p50 ms",
    "p99 ms",
    "cpu ms/req",
    "allocated",
    "stock",
    "oversell",
    "drift",
)


def _line(row: dict[str, Any]) -> str:
    return "  ".join(str(row[name]).rjust(width) for name, width in COLUMNS)


def _table(rows: list[dict[str, Any]]) -> str:
    head = "  ".join(h.rjust(w) for h, (_, w) in zip(HEADERS, COLUMNS, strict=True))
    return "\n".join([head, "-" * len(head), *(_line(r) for r in rows)])


if __name__ == "__main__":
    main()
