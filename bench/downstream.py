"""Service-to-service calls: httpx's own transport (httpcore/anyio, ``TALLY_HTTP_CLIENT=httpx``)
against ``Http1Transport`` (``shared/http_transport.py``), in the same run.

    .venv/bin/python -m bench.downstream [--duration 5] [--concurrency 1,16]
                                         [--json bench/results/downstream.json]

Starts a small Litestar service as its own process (uvicorn with uvloop + httptools, as
``tally serve`` runs services) on a free loopback port: ``GET /items/{sku}`` answers a
~300-byte JSON, ``POST /echo`` sends back the ~500-byte JSON it gets. This process is
the client: ``new_http_client()`` under uvloop, as a service calls another, each call
``client.get`` / ``client.post(json=...)`` and ``response.json()``. For every operation
and concurrency (that many tasks calling in a closed loop), the two clients run one
after the other (a short warm-up, then ``--duration`` seconds each): calls/s, p50/p99
ms, and the client's CPU µs per call (``time.process_time()`` of this process over the
measured window / calls: the figure that does not depend on the machine's load). The
service shares the 2 cores with the client: read calls/s as relative, and note the
load average printed first.

Two more rows per cell measure a service's whole call, ``Downstream.request`` (headers,
token, breaker, the first attempt) on ``new_http_client()``: through
``AsyncClient.request`` as before decision 0053 (``downstream-client``) and straight
to the transport (``downstream``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import uvloop

from shared.auth.service_tokens import ServiceTokens
from shared.breaker import CircuitBreaker
from shared.http import CLIENT_ENV, Downstream, new_http_client

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("httpx", "http1")  # the TALLY_HTTP_CLIENT values
CALLERS = ("downstream-client", "downstream")  # Downstream.request through either path
ITEM = {
    "sku": "SKU-000123",
    "description": "Stainless steel hex bolt M8 x 40, DIN 933, zinc plated, box of 100",
    "unit_of_measure": "box",
    "on_hand": 1250,
    "allocated": 310,
    "available": 940,
    "warehouse_id": "WH-NORTH-01",
    "reorder_point": 200,
    "updated_at": "2026-12-05T12:05:00Z",
    "tags": ["fasteners", "din-933", "zinc"],
}
ORDER = {
    "order_id": "SO-000123456",
    "customer_id": "CUST-000042",
    "channel": "b2b_portal",
    "currency": "EUR",
    "lines": [
        {"sku": f"SKU-{n:06d}", "quantity": 1 + n % 5, "unit_price": "12.50"} for n in range(6)
    ],
    "ship_to": {"name": "Acme GmbH", "city": "Hamburg", "postal_code": "20095", "country": "DE"},
}


def service_app() -> Any:
    """The service the client calls."""
    from litestar import Litestar, get, post

    @get("/items/{sku:str}", sync_to_thread=False)
    def item(sku: str) -> dict[str, Any]:
        return {**ITEM, "sku": sku}

    @post("/echo", sync_to_thread=False)
    def echo(data: dict[str, Any]) -> dict[str, Any]:
        return data

    return Litestar(route_handlers=[item, echo], debug=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def service() -> Iterator[str]:
    port = _free_port()
    args = [
        sys.executable, "-m", "uvicorn", "bench.downstream:service_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/items/SKU-1", timeout=1.0)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# One call of the measured kind: ``(op, n)`` -> the answer.
Call = Callable[[str, int], Awaitable[httpx.Response]]


def _by_client(client: httpx.AsyncClient, url: str) -> Call:
    async def call(op: str, n: int) -> httpx.Response:
        if op == "GET":
            return await client.get(f"{url}/items/SKU-{n:06d}")
        return await client.post(f"{url}/echo", json=ORDER)

    return call


def _by_downstream(downstream: Downstream) -> Call:
    async def call(op: str, n: int) -> httpx.Response:
        if op == "GET":
            return await downstream.request("GET", f"/items/SKU-{n:06d}")
        return await downstream.request("POST", "/echo", json=ORDER)

    return call


async def _loop(call: Call, op: str, until: float, latencies: list[float]) -> None:
    n = 0
    while True:
        started = time.perf_counter()
        if started >= until:
            return
        n += 1
        response = await call(op, n)
        response.raise_for_status()
        response.json()
        latencies.append(time.perf_counter() - started)


class _Token:
    """A service's token source, already holding its token."""

    async def bearer(self) -> str:
        return "bench-token"

    def forget(self, _token: str) -> None:
        return None


async def _cell(url: str, op: str, concurrency: int, duration: float, kind: str) -> dict[str, Any]:
    os.environ[CLIENT_ENV] = kind if kind in CLIENTS else "http1"
    async with new_http_client() as client:
        downstream = Downstream(
            "bench",
            url,
            client,
            cast(ServiceTokens, _Token()),
            breaker=CircuitBreaker("bench"),
        )
        if kind == "downstream-client":
            downstream._direct = None  # through AsyncClient.request, as before 0053

        call = _by_client(client, url) if kind in CLIENTS else _by_downstream(downstream)
        warm: list[float] = []
        warm_until = time.perf_counter() + min(1.0, duration / 5)
        await asyncio.gather(*(_loop(call, op, warm_until, warm) for _ in range(concurrency)))
        latencies: list[float] = []
        cpu, wall = time.process_time(), time.perf_counter()
        until = wall + duration
        await asyncio.gather(*(_loop(call, op, until, latencies) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    calls = len(latencies)
    latencies.sort()
    return {
        "op": op,
        "concurrency": concurrency,
        "client": kind,
        "calls": calls,
        "calls_per_s": calls / wall,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(calls - 1, int(calls * 0.99))] * 1e3,
        "cpu_us_per_call": cpu / calls * 1e6,
    }


async def _run(url: str, concurrencies: list[int], duration: float) -> list[dict[str, Any]]:
    rows = []
    for op in ("GET", "POST"):
        for concurrency in concurrencies:
            for kind in (*CLIENTS, *CALLERS):
                rows.append(await _cell(url, op, concurrency, duration, kind))
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    print("| op | concurrency | client | calls/s | p50 ms | p99 ms | client CPU µs/call |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['op']} | {row['concurrency']} | {row['client']} | {row['calls_per_s']:.0f} "
            f"| {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['cpu_us_per_call']:.0f} |"
        )
    print()
    print(
        "| op | concurrency | calls/s http1/httpx | CPU per call http1/httpx "
        "| Downstream CPU per call direct/client |"
    )
    print("|---|---|---|---|---|")
    cells: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["op"], row["concurrency"]), {})[row["client"]] = row
    for (op, concurrency), pair in cells.items():
        old, new = pair["httpx"], pair["http1"]
        speed = new["calls_per_s"] / old["calls_per_s"]
        cpu = new["cpu_us_per_call"] / old["cpu_us_per_call"]
        direct = (
            pair["downstream"]["cpu_us_per_call"] / pair["downstream-client"]["cpu_us_per_call"]
        )
        print(f"| {op} | {concurrency} | {speed:.2f} | {cpu:.2f} | {direct:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated task counts")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    before = os.getloadavg()[0]
    with service() as url:
        rows = uvloop.run(_run(url, concurrencies, args.duration))
    print(f"load average before: {before:.2f}, after: {os.getloadavg()[0]:.2f}")
    _print(rows)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"load_before": before, "rows": rows}, out, indent=2)


if __name__ == "__main__":
    main()
