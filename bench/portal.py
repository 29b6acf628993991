"""The portal's GraphQL against the plain REST calls that return the same data, through
the gateway with one customer-bound token, on the whole platform as `tally up` starts it.

    .venv/bin/python -m bench.portal [--duration 10] [--connections 1,8] [--orders 50]
                                     [--skus 20] [--quick] [--json FILE]

It starts the platform (``tally.launcher.launch`` on a temporary data dir, SQLite) and
sets up through the gateway: ``--skus`` items with list prices and stock, one ERP
customer, a client bound to it (``tally clients create``: ``portal orders:read
orders:write inventory:read billing:read``, tier ``internal`` so the rate limit never
answers), ``--orders`` orders of 2 lines placed with that client, every one released,
shipped by the warehouse and invoiced by billing, and a return asked on one in five.

Then, for each connection count, a closed loop of ``--duration`` seconds per row (after
a 1 s warm-up), each query timed from send to the last byte of its last answer:
- ``graphql viewer``: ``viewer { id name orders(first: N) { lines shipments invoices
  returns } }`` (every quantity of each line, shipment and invoice fields, RMA lines);
  ``graphql viewer direct`` is the same query sent to the portal itself (no gateway);
- ``rest viewer``: the same data the way a client without the portal reads it, as fast
  as REST allows: the account and the orders page (``count=true``) together, then the
  invoices and the returns of those orders together (``order_id`` repeated): 4 calls;
- ``graphql availability``: ``availability(skus: [20 skus]) { sku availableToPromise
  asOf }``;
- ``rest availability``: ``GET /availability/v2/items?sku=...`` (20 skus, one call).

Printed per row: queries/s, p50/p99/max ms, HTTP requests the client sent per query,
and the downstream calls per query: requests answered by each process API (and the
system APIs behind them), from every service's ``tally_http_request_seconds_count``
(``/metrics``) before and after the row, background polls left out. Then the ratios
graphql/rest and the issue's targets: the viewer query p50 under 50 ms (at 1 connection)
and the availability query at least half the REST call's queries/s.

The load generator is Python (httpx, asyncio) on the same 2 cores as the platform; its
own CPU per query is printed so its share is visible. Tests never assert timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE = "WH-PORTAL-BENCH"
PROCESS = ("order_to_ship", "billing", "availability")
SYSTEM = ("erp", "wms")
PORTAL_SCOPES = "portal orders:read orders:write inventory:read billing:read"
# Polled by every service on its own: never part of a query's cost.
BACKGROUND_ROUTES = ("/oauth/revocations", "/.well-known/jwks.json", "/oauth/token")
QUIET_ROUTES = ("/metrics", "/readyz", "/healthz")

MONEY = "{ amountMinor currency }"
VIEWER_QUERY = f"""
query BenchViewer($first: Int!) {{
  viewer {{
    id
    name
    orders(first: $first) {{
      totalCount
      pageInfo {{ hasNextPage endCursor }}
      edges {{
        node {{
          id
          status
          channel
          createdAt
          lines {{
            sku quantity allocated backordered released picked shipped delivered
            cancelled invoiced returned unitPrice {MONEY}
          }}
          shipments {{
            shipmentId carrier trackingNumber shippedAt deliveredAt delayed promisedDate
            delayReason lines {{ sku quantity }}
          }}
          invoices {{
            id status dueDate overdue subtotal {MONEY} tax {MONEY} total {MONEY}
          }}
          returns {{ id status lines {{ sku authorized received }} }}
        }}
      }}
    }}
  }}
}}
"""
AVAILABILITY_QUERY = """
query BenchAvailability($skus: [ID!]!) {
  availability(skus: $skus) { sku availableToPromise asOf }
}
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the platform and its data -------------------------------------------------------------


@contextmanager
def platform() -> Iterator[Any]:
    from tally.launcher import launch
    from tests.support.ports import free_ports

    with tempfile.TemporaryDirectory(prefix="bench-portal-") as tmp:
        launched = launch(Path(tmp), ports=free_ports(), seed_demo=False)
        try:
            yield launched
        finally:
            launched.platform.stop()


def _create_client(data_dir: Path, name: str, scopes: str, customer: str) -> dict[str, str]:
    command = [sys.executable, "-m", "tally", "clients", "create", "--name", name]
    command += ["--scopes", scopes, "--tier", "internal", "--customer", customer]
    command += ["--json", "--data-dir", str(data_dir)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    created: dict[str, str] = json.loads(done.stdout)
    return created


def _token(gateway: str, client: dict[str, str]) -> str:
    response = httpx.post(
        f"{gateway}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:500]}"
        )
    return response.json()


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _wait(check: Callable[[], Any], what: str, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"never saw {what}")
        time.sleep(0.2)


def setup(launched: Any, n_orders: int, n_skus: int) -> dict[str, Any]:
    """Items, stock, one customer, its portal client, and its orders shipped and invoiced."""
    gateway = launched.platform.url("gateway")
    run = os.urandom(3).hex().upper()
    skus = [f"P{run}-{i:03d}" for i in range(n_skus)]
    customer = f"CUST-P{run}"
    staff_token = _token(gateway, launched.clients["demo"])
    started = time.monotonic()
    with httpx.Client(
        base_url=gateway, headers={"Authorization": f"Bearer {staff_token}"}, timeout=30
    ) as staff:
        for i, sku in enumerate(skus):
            price = {"amount_minor": 500 + 37 * i, "currency": "USD"}
            _ok(staff.post("/erp/v1/items", json={"sku": sku, "name": sku, "unit_price": price}))
        _ok(
            staff.post(
                "/wms/v1/warehouses", json={"warehouse_id": WAREHOUSE, "name": "Portal bench"}
            )
        )
        stock = [{"sku": sku, "quantity": 10 * n_orders} for sku in skus]
        _ok(
            staff.post(
                "/wms/v1/receipts", json={"warehouse_id": WAREHOUSE, "lines": stock}, headers=_key()
            )
        )
        limit = {"amount_minor": 10**13, "currency": "USD"}
        body = {"customer_id": customer, "name": f"Portal bench {run}", "credit_limit": limit}
        _ok(staff.post("/erp/v1/customers", json=body))
        _wait(
            lambda: all(
                _ok(staff.get(f"/availability/v1/items/{sku}"))["available_to_promise"]
                >= 10 * n_orders
                for sku in skus
            ),
            "the stock in availability",
        )
        client = _create_client(
            launched.platform.data_dir, f"portal-{run}", PORTAL_SCOPES, customer
        )
        token = _token(gateway, client)
        orders = []
        with httpx.Client(
            base_url=gateway, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as partner:
            for i in range(n_orders):
                lines = [
                    {"sku": skus[i % n_skus], "quantity": 1 + i % 3},
                    {"sku": skus[(i + 7) % n_skus], "quantity": 1},
                ]
                order = {"customer_id": customer, "channel": "b2b_portal", "lines": lines}
                placed = _ok(partner.post("/orders/v1/orders", json=order, headers=_key()))
                orders.append(placed["order_id"])
            for order_id in orders:
                _wait(partial(_released, staff, order_id), f"the release of {order_id}")
                _ship(staff, order_id)
            _wait(
                lambda: (
                    len(
                        _ok(
                            partner.get(
                                "/billing/v1/invoices",
                                params={"customer_id": customer, "limit": 100},
                            )
                        )["items"]
                    )
                    >= n_orders
                ),
                "every order invoiced",
            )
            for order_id in orders[::5]:
                order = _ok(partner.get(f"/orders/v1/orders/{order_id}"))
                first = order["lines"][0]
                rma = {"lines": [{"sku": first["sku"], "quantity": 1}], "reason": "bench"}
                _ok(partner.post(f"/orders/v1/orders/{order_id}/returns", json=rma, headers=_key()))
    return {
        "gateway": gateway,
        "customer": customer,
        "skus": skus,
        "orders": orders,
        "token": token,
        "setup_s": round(time.monotonic() - started, 1),
    }


def _released(staff: httpx.Client, order_id: str) -> bool:
    """At the warehouse: no release pending, and its fulfillment order exists."""
    pending = _ok(staff.get(f"/orders/v1/orders/{order_id}"))["releases_pending"]
    return pending == 0 and bool(_fulfillment(staff, order_id))


def _fulfillment(staff: httpx.Client, order_id: str) -> list[Any]:
    found = _ok(staff.get("/wms/v1/fulfillment-orders", params={"order_id": order_id}))
    items: list[Any] = found["items"]
    return items


def _ship(staff: httpx.Client, order_id: str) -> None:
    for fo in _fulfillment(staff, order_id):
        shipment = {
            "carrier": "UPS",
            "tracking_number": f"1Z{uuid.uuid4().hex[:10].upper()}",
            "lines": [{"sku": x["sku"], "quantity": x["quantity"]} for x in fo["lines"]],
        }
        path = f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments"
        _ok(staff.post(path, json=shipment, headers=_key()))


# -- counters (/metrics) -------------------------------------------------------------------

_COUNT = re.compile(
    r'^tally_http_request_seconds_count\{(?P<labels>(?:[^}"]|"[^"]*")*)\} (?P<value>[0-9.e+]+)$',
    re.MULTILINE,
)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def http_counts(launched: Any) -> Counter[tuple[str, str]]:
    """Requests answered so far per (service, route), background polls left out."""
    counts: Counter[tuple[str, str]] = Counter()
    with httpx.Client(timeout=10) as client:
        for name in launched.platform.processes:
            text = client.get(f"{launched.platform.url(name)}/metrics").text
            for match in _COUNT.finditer(text):
                labels = dict(_LABEL.findall(match["labels"]))
                route = labels.get("route", "")
                if route in QUIET_ROUTES or route in BACKGROUND_ROUTES:
                    continue
                counts[(name, f"{labels.get('method', '')} {route}")] += round(
                    float(match["value"])
                )
    return counts


def wait_quiet(launched: Any, seconds: float = 1.0, timeout: float = 60.0) -> None:
    """Until no service answers anything but the background polls for ``seconds``."""
    started = time.monotonic()
    last, still_since = http_counts(launched), time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(0.25)
        now = http_counts(launched)
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= seconds:
            return


# -- the queries ---------------------------------------------------------------------------

Query = Callable[[httpx.AsyncClient], Awaitable[int]]  # -> HTTP requests it sent


def _answer(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:300]}")
    return response.json()


def graphql(query: str, variables: dict[str, Any], expect: Callable[[Any], bool]) -> Query:
    payload = {"query": query, "variables": variables}

    async def send(client: httpx.AsyncClient) -> int:
        body = _answer(await client.post("/graphql", json=payload))
        if body.get("errors") or not expect(body.get("data")):
            raise RuntimeError(f"graphql answered {json.dumps(body)[:600]}")
        return 1

    return send


def rest_viewer(ctx: dict[str, Any], first: int) -> Query:
    """What the portal's viewer query reads, through the REST APIs: 2 rounds, 4 calls."""
    account = f"/orders/v1/customers/{ctx['customer']}/account"
    page_params = {"customer_id": ctx["customer"], "limit": first, "count": "true"}

    async def send(client: httpx.AsyncClient) -> int:
        who, page = await asyncio.gather(
            client.get(account), client.get("/orders/v1/orders", params=page_params)
        )
        _answer(who)
        ids = [order["order_id"] for order in _answer(page)["items"]]
        if len(ids) < first:
            raise RuntimeError(f"the orders page has {len(ids)} orders")
        by_order = httpx.QueryParams([("order_id", i) for i in ids] + [("limit", "100")])
        invoices, returns = await asyncio.gather(
            client.get("/billing/v1/invoices", params=by_order),
            client.get("/orders/v1/returns", params=by_order),
        )
        if len(_answer(invoices)["items"]) < len(ids):
            raise RuntimeError("fewer invoices than orders")
        _answer(returns)
        return 4

    return send


def rest_availability(skus: list[str]) -> Query:
    params = httpx.QueryParams([("sku", sku) for sku in skus])

    async def send(client: httpx.AsyncClient) -> int:
        items = _answer(await client.get("/availability/v2/items", params=params))["items"]
        if len(items) != len(skus):
            raise RuntimeError(f"availability answered {len(items)} of {len(skus)} skus")
        return 1

    return send


async def _loop(
    ctx: dict[str, Any], query: Query, connections: int, seconds: float, base: str
) -> tuple[list[float], int, float]:
    """Closed loop: ``connections`` workers send ``query`` back to back for ``seconds``;
    (latencies in s, HTTP requests sent, wall time until the last answer)."""
    limits = httpx.Limits(
        max_connections=4 * connections, max_keepalive_connections=4 * connections
    )
    headers = {"Authorization": f"Bearer {ctx['token']}"}
    latencies: list[float] = []
    requests = 0
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal requests
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                count = await query(client)  # not `requests += await ...`: lost updates
                latencies.append(time.perf_counter() - sent)
                requests += count

        await asyncio.gather(*(worker() for _ in range(connections)))
        return latencies, requests, time.perf_counter() - started


def measure(
    launched: Any,
    ctx: dict[str, Any],
    name: str,
    query: Query,
    connections: int,
    seconds: float,
    base: str | None = None,
) -> dict[str, Any]:
    base = base or ctx["gateway"]
    asyncio.run(_loop(ctx, query, connections, min(1.0, seconds), base))  # warm-up
    wait_quiet(launched)
    before = http_counts(launched)
    cpu_before = os.times()
    latencies, requests, wall = asyncio.run(_loop(ctx, query, connections, seconds, base))
    cpu_after = os.times()
    wait_quiet(launched, seconds=0.5)
    delta = http_counts(launched) - before
    queries = len(latencies)
    by_service: Counter[str] = Counter()
    for (service, _), count in delta.items():
        by_service[service] += count
    downstream = {
        s: round(by_service[s] / queries, 2) for s in (*PROCESS, *SYSTEM) if by_service[s]
    }
    routes = {
        f"{service} {route}": round(count / queries, 2)
        for (service, route), count in sorted(delta.items())
        if service in PROCESS or service in SYSTEM
    }
    client_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {
        "name": name,
        "connections": connections,
        "seconds": round(wall, 2),
        "queries": queries,
        "queries_per_s": round(queries / wall, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "client_requests_per_query": round(requests / queries, 2),
        "process_api_calls_per_query": round(sum(by_service[s] for s in PROCESS) / queries, 2),
        "system_api_calls_per_query": round(sum(by_service[s] for s in SYSTEM) / queries, 2),
        "downstream_by_service": downstream,
        "downstream_by_route": routes,
        "gateway_requests_per_query": round(by_service["gateway"] / queries, 2),
        "bench_client_cpu_ms_per_query": round(client_cpu / queries * 1000, 2),
    }


# -- output --------------------------------------------------------------------------------


def report(row: dict[str, Any]) -> None:
    print(
        f"{row['name']:<22}{row['connections']:>3} conn  {row['queries_per_s']:>8} q/s  "
        f"p50 {row['p50_ms']:>7} ms  p99 {row['p99_ms']:>7} ms  max {row['max_ms']:>7} ms  "
        f"client requests/q {row['client_requests_per_query']}  "
        f"process API calls/q {row['process_api_calls_per_query']}  "
        f"system API calls/q {row['system_api_calls_per_query']}  "
        f"(bench CPU {row['bench_client_cpu_ms_per_query']} ms/q)"
    )
    for route, count in row["downstream_by_route"].items():
        print(f"{'':>26}{count:>7}  {route}")


def ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """graphql/rest per kind and connection count, and the issue's targets."""
    found: dict[str, Any] = {}
    index = {(r["name"], r["connections"]): r for r in rows}
    for kind in ("viewer", "availability"):
        for (name, connections), row in index.items():
            if name != f"graphql {kind}":
                continue
            rest = index.get((f"rest {kind}", connections))
            if rest is None:
                continue
            found[f"{kind} @{connections}"] = {
                "qps_graphql_over_rest": round(row["queries_per_s"] / rest["queries_per_s"], 2),
                "p50_graphql_over_rest": round(row["p50_ms"] / rest["p50_ms"], 2),
                "process_api_calls_graphql_rest": [
                    row["process_api_calls_per_query"],
                    rest["process_api_calls_per_query"],
                ],
            }
    single = [r for r in rows if r["name"] == "graphql viewer" and r["connections"] == 1]
    if single:
        found["target_viewer_p50_under_50ms"] = single[0]["p50_ms"] < 50
    availability = [v for k, v in found.items() if k.startswith("availability @")]
    if availability:
        found["target_availability_at_least_half_rest_qps"] = all(
            v["qps_graphql_over_rest"] >= 0.5 for v in availability
        )
    return found


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "experience_apis", "process_apis", "shared"],
        cwd=ROOT,
        capture_output=True,
    )
    return head.stdout.decode().strip() + (" (modified)" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row")
    parser.add_argument("--connections", default="1,8", help="comma-separated, e.g. 1,8,32")
    parser.add_argument("--orders", type=int, default=50, help="orders of the customer")
    parser.add_argument("--skus", type=int, default=20, help="skus asked per availability query")
    parser.add_argument("--quick", action="store_true", help="2 s per row: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.duration = 2.0
    connections = [int(c) for c in args.connections.split(",") if c.strip()]
    load_before = os.getloadavg()
    started = datetime.now().astimezone()
    rows: list[dict[str, Any]] = []
    with platform() as launched:
        ctx = setup(launched, args.orders, args.skus)
        print(
            f"setup: {args.orders} orders shipped and invoiced, {args.skus} skus, "
            f"{ctx['setup_s']} s"
        )
        first = args.orders

        def has_orders(data: Any) -> bool:
            return bool(len(data["viewer"]["orders"]["edges"]) == first)

        def has_skus(data: Any) -> bool:
            return bool(len(data["availability"]) == len(ctx["skus"]))

        viewer = graphql(VIEWER_QUERY, {"first": first}, has_orders)
        portal = launched.platform.url("portal")
        queries: list[tuple[str, Query, str | None]] = [
            ("graphql viewer", viewer, None),
            # The same query straight to the portal: what the gateway hop adds.
            ("graphql viewer direct", viewer, portal),
            ("rest viewer", rest_viewer(ctx, first), None),
            (
                "graphql availability",
                graphql(AVAILABILITY_QUERY, {"skus": ctx["skus"]}, has_skus),
                None,
            ),
            ("rest availability", rest_availability(ctx["skus"]), None),
        ]
        for n in connections:
            print(f"\n== {n} connection(s), {args.duration} s per row ==")
            for name, query, base in queries:
                rows.append(measure(launched, ctx, name, query, n, args.duration, base))
                report(rows[-1])
    summary = ratios(rows)
    print("\ngraphql / rest:")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"tree: {_commit()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "started": started.isoformat(timespec="seconds"),
            "commit": _commit(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in load_after],
            "cpus": os.cpu_count(),
            "orders": args.orders,
            "skus": args.skus,
            "duration_s": args.duration,
            "rows": rows,
            "graphql_over_rest": summary,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
