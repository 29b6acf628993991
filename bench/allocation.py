"""Allocation throughput: one hot sku, four channels, 64 concurrent connections through
the availability API (real HTTP to a real ``tally serve availability`` process, driven
by wrk with a Lua script; needs ``apt-get install wrk``).

    .venv/bin/python -m bench.allocation [--requests 4000] [--clients 64]
                                         [--databases sqlite,postgres] [--workers 1,2]
                                         [--json [FILE]]

For each database (the embedded SQLite default; PostgreSQL on a throwaway server from
``tests/support/servers.py``) and each count of worker processes (``tally serve
--workers``: one process, or one per core of this 2-core machine) it runs the service
twice:

- ``group commit``: the service as shipped; concurrent allocations are planned and
  written together in one transaction (``allocations/batcher.py``, ``batch.py``);
- ``baseline``: the same service with ``TALLY_ALLOCATION_GROUP_COMMIT=0``: one
  transaction per request (idempotency lookup, SELECT ... FOR UPDATE of the positions,
  conditional UPDATE, commit), the path before group commit.

Every request allocates 1 unit of the hot sku (policy ``partial``) under its own order
id and Idempotency-Key; the stock (two warehouses) covers 95% of the requests, so the
tail runs into sold-out. Prints requests/s, allocations/s (requests that got a unit),
p50/p99 latency, the service's CPU time per request (its processes' user + system:
steadier than req/s on a shared machine), and the oversell count computed from the positions after the run:
units allocated beyond what was sellable (sum of negative ATP), which must be 0; plus
the positions that differ from the ledger's rebuild (must be 0). The machine's load
average is printed too: the figures are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

SKU = "HOT-1"
CHANNELS = ("b2b", "ecommerce", "marketplace", "edi")
WAREHOUSES = ("WH-EAST", "WH-WEST")
MODES = {"group commit": "1", "baseline": "0"}
# The stock covers this share of the requests: the tail runs into sold-out, so an
# oversell would show.
STOCK_PERCENT = 95
DEFAULT_JSON = Path(__file__).parent / "results" / "allocation.json"


# wrk drives the load: 64 connections from a C event loop cost the shared 2 cores far
# less than 64 Python clients would, so the figure is the service's, not the client's.
# Each thread sends its share of one-unit allocations, every one under its own order id
# and Idempotency-Key, and stops when its share is answered.
WRK_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *now);
]]
local function seconds()
  local now = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, now)  -- CLOCK_MONOTONIC
  return tonumber(now.tv_sec) + tonumber(now.tv_nsec) / 1e9
end
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  token, prefix, sku, quota, marks = args[1], args[2], args[3], tonumber(args[4]), args[5]
  channels = {"b2b", "ecommerce", "marketplace", "edi"}
  sent, answered, created, allocated, other, started, finished = 0, 0, 0, 0, 0, 0, 0
end
function request()
  if sent == 0 then started = seconds() end
  sent = sent + 1
  local order = prefix .. "-" .. id .. "-" .. sent
  local body = '{"order_id":"' .. order .. '","channel":"' .. channels[sent % 4 + 1]
    .. '","policy":"partial","lines":[{"sku":"' .. sku .. '","quantity":1}]}'
  return wrk.format("POST", "/availability/v1/allocations", {
    ["Host"] = wrk.headers["Host"],
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "key-" .. order,
  }, body)
end
-- wrk's main thread sleeps for the whole -d duration: each thread leaves a marker when
-- its share is answered, and the bench ends the run with SIGINT once all have.
local function finish()
  finished = seconds()
  wrk.thread:stop()
  io.open(marks .. "/done-" .. id, "w"):close()
end
function response(status, headers, body)
  if finished > 0 then return end
  answered = answered + 1
  if status == 201 then
    created = created + 1
    allocated = allocated + tonumber(string.match(body, '"allocated":(%d+)'))
  else
    other = other + 1
  end
  if answered >= quota then finish() end
end
function done(summary, latency, requests)
  local totals = {answered = 0, created = 0, allocated = 0, other = 0}
  local first, last = math.huge, 0
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
    first = math.min(first, thread:get("started"))
    last = math.max(last, thread:get("finished"))
  end
  io.write(string.format(
    'RESULT {"seconds": %f, "answered": %d, "created": %d, "allocated": %d, '
    .. '"not_201": %d, "p50_ms": %f, "p99_ms": %f, "socket_errors": %d}\\n',
    last - first, totals.answered, totals.created, totals.allocated, totals.other,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
"""


def _load(
    url: str, token: str, requests: int, clients: int, prefix: str, sku: str = SKU
) -> dict[str, Any]:
    """``clients`` connections (wrk) share ``requests`` allocations of one unit each."""
    threads = 2
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as marks:
        script = Path(marks) / "allocate.lua"
        script.write_text(WRK_SCRIPT)
        # -d is only a ceiling: the run ends when every thread has its share answered.
        command = ["wrk", f"-t{threads}", f"-c{clients}", "-d900s", "--timeout", "30s"]
        script_args = [token, prefix, sku, str(requests // threads), marks]
        wrk = subprocess.Popen(
            [*command, "-s", str(script), url, "--", *script_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while wrk.poll() is None and len(list(Path(marks).glob("done-*"))) < threads:
            time.sleep(0.01)
        wrk.send_signal(signal.SIGINT)  # the timing is the threads' own, taken in Lua
        stdout, stderr = wrk.communicate()
    if "RESULT " not in stdout:
        raise RuntimeError(f"wrk failed: {stderr}")
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


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
    """User + system CPU time so far of a process and its live children (the workers of
    ``--workers``), from Linux /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) for child in children)


def run_one(
    database: str,
    mode: str,
    workers: int,
    requests: int,
    clients: int,
    pg_cluster: str | None,
    n: int,
) -> dict[str, Any]:
    from tests.support.availability import AvailabilityProcess
    from tests.support.servers import create_database
    from tests.support.tokens import TestIssuer

    stock = requests * STOCK_PERCENT // 100
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
                env={
                    "TALLY_ALLOCATION_GROUP_COMMIT": MODES[mode],
                    "TALLY_AVAILABILITY_WORKERS": str(workers),
                },
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
        _load(service.url, token, clients * 5, clients, "WARM", "WARM-UP")
        assert service.process is not None
        cpu_before = _cpu_seconds(service.process.pid)
        result = _load(service.url, token, requests, clients, "SO")
        cpu = _cpu_seconds(service.process.pid) - cpu_before
        allocated, oversold, drift = asyncio.run(_positions(service.settings.database_url))
    answered = result["answered"]
    return {
        "database": database,
        "mode": mode,
        "workers": workers,
        "clients": clients,
        "requests": answered,
        "stock": stock,
        "seconds": round(result["seconds"], 2),
        "requests_per_s": round(answered / result["seconds"]),
        "allocations_per_s": round(result["allocated"] / result["seconds"]),
        "p50_ms": round(result["p50_ms"], 1),
        "p99_ms": round(result["p99_ms"], 1),
        "service_cpu_ms_per_request": round(cpu / answered * 1000, 2),
        "allocated_answered": result["allocated"],
        "allocated_positions": allocated,
        "not_201": result["not_201"],
        "socket_errors": result["socket_errors"],
        "oversell": oversold,
        "ledger_drift": drift,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="worker processes of the service, one run of each mode per count (default 1,2)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=DEFAULT_JSON,
        help=f"also write the figures as JSON (default file {DEFAULT_JSON})",
    )
    args = parser.parse_args()
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        pg_cluster: str | None = None
        if "postgres" in databases:
            from tests.support.servers import postgres_server

            pg_cluster = stack.enter_context(postgres_server())
        cells = [(d, m, w) for d in databases for w in counts for m in MODES]
        for n, (database, mode, workers) in enumerate(cells):
            rows.append(
                run_one(database, mode, workers, args.requests, args.clients, pg_cluster, n)
            )
            print(_line(rows[-1]), flush=True)

    def rate(database: str, mode: str, workers: int) -> int:
        return int(
            next(
                r["allocations_per_s"]
                for r in rows
                if (r["database"], r["mode"], r["workers"]) == (database, mode, workers)
            )
        )

    speedups = {
        f"{d}, {w} worker{'s' if w > 1 else ''}": round(
            rate(d, "group commit", w) / max(1, rate(d, "baseline", w)), 2
        )
        for d in databases
        for w in counts
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
    ("workers", 7),
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
    "workers",
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
