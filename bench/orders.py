"""Order intake of issue 16: orders of 3 lines from 4 channels through the gateway with
real tokens, 32 connections, on the embedded default (SQLite) and on PostgreSQL.

    .venv/bin/python -m bench.orders [--databases sqlite,postgres] [--duration 20]
                                     [--connections 32] [--shipments 100] [--quick]
                                     [--profile] [--py-spy PATH] [--json FILE]

Per database it starts the whole platform as real processes (``tally.launcher.launch``,
the code path of ``tally up``, on a temporary data dir; on PostgreSQL the five business
services get their own database on a throwaway server, the gateway's client registry and
the event log stay embedded), then sets up through the gateway: 50 items with list
prices, one warehouse with stock for every order, 4 ERP customers and 4 OAuth clients
made with ``tally clients create --json``: one per channel (b2b_portal, webshop,
marketplace, edi), each bound to its customer with ``orders:write orders:read``, tier
``gold`` (500/s, 15,000/min each: above what the run sends, and any 429 is counted),
plus an unbound ``internal``-tier staff client for the bench's own reads and shipments.

Measured:
- wrk (a Lua script: a unique Idempotency-Key, a random 3-line body, the channel's token
  per request) for ``--duration`` seconds: orders placed/s, lines/s, p50/p99 of
  ``POST /orders/v1/orders`` through the gateway, answers other than 201;
- order-to-released: from the history of a sample of the placed orders
  (``GET /orders/v1/orders/{id}/history``), ``accepted`` (the 201's transaction) to
  ``released`` (the releaser's), both stamped by the service;
- shipment-to-invoice, after the load: a sample of released orders shipped through the
  WMS, 4 at a time, timed until ``GET /billing/v1/invoices?order_id=`` lists the invoice;
- what one order costs: HTTP requests per service and route from each service's
  ``tally_http_request_seconds_count`` (``/metrics``), and database transactions per
  service counted by SQLAlchemy connection events (begin/commit/rollback) installed
  from outside the services by a ``sitecustomize`` on ``PYTHONPATH`` (no service code
  changes); both from the start of the load until the platform is quiet again (the
  releases and ERP syncs that the orders queued included), divided by the orders;
  the same per shipment;
- CPU seconds per process (user + system, /proc) over the load window, wrk's included;
- ``--profile``: py-spy (``--py-spy PATH``, else on PATH or in .venv/bin) records the
  order_to_ship process for 10 s during the load; the top frames are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = ("b2b_portal", "webshop", "marketplace", "edi")
ITEMS = 50
LINES = 3
WAREHOUSE = "WH-BENCH"
BUSINESS = ("erp", "wms", "availability", "order_to_ship", "billing")
PROFILED = "order_to_ship"
BILLING_READ = "/billing/v1/invoices"

WRK_SCRIPT = r"""
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  prefix, sample_every, out_dir, nskus, sku_prefix = args[1], tonumber(args[2]), args[3],
    tonumber(args[4]), args[5]
  tokens = {args[6], args[7], args[8], args[9]}
  customers = {args[10], args[11], args[12], args[13]}
  channels = {"b2b_portal", "webshop", "marketplace", "edi"}
  sent, created, accepted, s202, s429, other = 0, 0, 0, 0, 0, 0
  samples = io.open(out_dir .. "/sample-" .. id, "w")
  samples:setvbuf("line")
  timeline = io.open(out_dir .. "/timeline-" .. id, "w")
  timeline:setvbuf("line")
  second, in_second = os.time(), 0
  failures = io.open(out_dir .. "/failed-" .. id, "w")
  failures:setvbuf("line")
  math.randomseed(id * 7919 + os.time())
end
function request()
  sent = sent + 1
  local c = sent % 4 + 1
  local first = math.random(0, nskus - 1)
  local step = math.floor(nskus / 3)
  local lines = {}
  for i = 0, 2 do
    local sku = sku_prefix .. string.format("%03d", (first + i * step) % nskus)
    lines[#lines + 1] = '{"sku":"' .. sku .. '","quantity":' .. math.random(1, 3) .. '}'
  end
  local body = '{"customer_id":"' .. customers[c] .. '","channel":"' .. channels[c]
    .. '","lines":[' .. table.concat(lines, ",") .. ']}'
  return wrk.format("POST", "/orders/v1/orders", {
    ["Host"] = wrk.headers["Host"],
    ["Authorization"] = "Bearer " .. tokens[c],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. id .. "-" .. sent,
  }, body)
end
function response(status, headers, body)
  local now = os.time()
  if now ~= second then
    timeline:write(second, " ", in_second, "\n")
    second, in_second = now, 0
  end
  if status == 201 then
    in_second = in_second + 1
    created = created + 1
    local state = string.match(body, '"status":"([%w_]+)"')
    if state == "accepted" or state == "released" then accepted = accepted + 1 end
    if created % sample_every == 0 then
      samples:write(string.match(body, '"order_id":"([^"]+)"'), "\n")
    end
    return
  end
  if status == 202 then s202 = s202 + 1
  elseif status == 429 then s429 = s429 + 1
  else other = other + 1 end
  if s202 + s429 + other <= 20 then failures:write(status, " ", body, "\n") end
end
function done(summary, latency, requests)
  local names = {"created", "accepted", "s202", "s429", "other"}
  local totals = {}
  for _, name in ipairs(names) do totals[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do totals[name] = totals[name] + thread:get(name) end
  end
  io.write(string.format(
    'RESULT {"seconds": %f, "answered": %d, "created": %d, "accepted": %d, "s202": %d, '
    .. '"s429": %d, "other": %d, "p50_ms": %f, "p90_ms": %f, "p99_ms": %f, "max_ms": %f, '
    .. '"socket_errors": %d}\n',
    summary.duration / 1e6, summary.requests, totals.created, totals.accepted, totals.s202,
    totals.s429, totals.other, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
"""

# Loaded by every service process through PYTHONPATH: counts SQLAlchemy transactions per
# process (connection events of every engine) and writes them to a file every 0.2 s.
SITECUSTOMIZE = r"""
import os as _os

def _bench_count_transactions(folder):
    import json, threading, time
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts = {"begin": 0, "commit": 0, "rollback": 0, "before_cursor_execute": 0}

    def counter(name):
        def bump(*_args, **_kwargs):
            counts[name] += 1
        return bump

    for name in counts:
        event.listen(Engine, name, counter(name))

    def dump():
        with open("/proc/self/cmdline", "rb") as cmdline:
            argv = cmdline.read().decode().split("\0")
        path = _os.path.join(folder, "tx-%d.json" % _os.getpid())
        while True:
            with open(path + ".tmp", "w") as out:
                json.dump({"pid": _os.getpid(), "argv": argv, **counts}, out)
            _os.replace(path + ".tmp", path)
            time.sleep(0.2)

    threading.Thread(target=dump, name="bench-tx-count", daemon=True).start()

if _os.environ.get("TALLY_BENCH_TX_DIR"):
    _bench_count_transactions(_os.environ["TALLY_BENCH_TX_DIR"])
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a process and its live children (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(int(child)) for child in children)


def _cpus(pids: dict[str, int]) -> dict[str, float]:
    cpus = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    cpus[f"{PROFILED} loop thread"] = _thread_cpu_seconds(pids[PROFILED])
    return cpus


def _thread_cpu_seconds(pid: int) -> float:
    """The main thread's CPU (the event loop's; the driver threads are the others)."""
    try:
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def closed_connections(launched: Any) -> dict[str, int]:
    """Loopback connections to each service closed by their client within the last
    minute (TIME-WAIT, Linux keeps them 60 s): a client that keeps its connections
    alive leaves none; one that opens a connection per call leaves one per call."""
    ports = {
        int(launched.platform.url(name).rsplit(":", 1)[1]): name
        for name in launched.platform.processes
    }
    listing = subprocess.run(
        ["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True
    ).stdout
    closed: Counter[str] = Counter()
    for line in listing.splitlines():
        peer = line.split()[-1]
        port = int(peer.rsplit(":", 1)[1]) if ":" in peer else 0
        if port in ports:
            closed[ports[port]] += 1
    return dict(closed)


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


# -- the platform -------------------------------------------------------------------------


@contextmanager
def platform(
    database: str,
    pg_cluster: str | None,
    tx_dir: Path,
    n: int,
    source: Path | None = None,
    extra: dict[str, str] | None = None,
) -> Iterator[Any]:
    """The platform of this tree, or (``source``) of another tree, in a child process."""
    from tests.support.ports import free_ports

    env = {
        **(extra or {}),
        "TALLY_BENCH_TX_DIR": str(tx_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tx_dir), os.environ.get("PYTHONPATH")])),
    }
    (tx_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    if database == "postgres":
        from tests.support.servers import create_database

        assert pg_cluster is not None
        for service in BUSINESS:
            url = create_database(pg_cluster, f"bench_orders_{n}_{service}_{os.getpid()}")
            env[f"TALLY_{service.upper()}_DATABASE_URL"] = url
    with tempfile.TemporaryDirectory(prefix="bench-orders-") as tmp:
        if source is None:
            from tally.launcher import launch

            launched = launch(Path(tmp), ports=free_ports(), extra_env=env, seed_demo=False)
            try:
                yield launched
            finally:
                launched.platform.stop()
            return
        with _launched_elsewhere(source, Path(tmp), free_ports(), env) as launched:
            yield launched


# Run by the interpreter of this venv in another tree (cwd): that tree's `tally up` code.
CHILD_LAUNCH = """
import json, sys
from pathlib import Path
from tally.launcher import launch
args = json.loads(sys.argv[1])
launched = launch(Path(args["data_dir"]), ports=args["ports"], extra_env=args["env"],
                  seed_demo=False)
pids = {n: p.process.pid for n, p in launched.platform.processes.items() if p.process}
print(json.dumps({"clients": launched.clients, "pids": pids}), flush=True)
try:
    sys.stdin.read()
finally:
    launched.platform.stop()
"""


class _Elsewhere:
    """Quacks like ``Launched`` for what the bench reads of it."""

    def __init__(self, root: Path, data_dir: Path, ports: dict[str, int], seen: Any) -> None:
        from types import SimpleNamespace

        self.root = root
        self.clients = seen["clients"]
        processes = {
            name: SimpleNamespace(process=SimpleNamespace(pid=pid))
            for name, pid in seen["pids"].items()
        }
        self.platform = SimpleNamespace(
            data_dir=data_dir,
            processes=processes,
            url=lambda name: f"http://127.0.0.1:{ports[name]}",
        )


@contextmanager
def _launched_elsewhere(
    root: Path, data_dir: Path, ports: dict[str, int], env: dict[str, str]
) -> Iterator[Any]:
    args = json.dumps({"data_dir": str(data_dir), "ports": ports, "env": env})
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_LAUNCH, args],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"the platform of {root} did not start")
        yield _Elsewhere(root, data_dir, ports, json.loads(line))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)


@contextmanager
def source_tree(revision: str) -> Iterator[Path]:
    """The files of ``revision`` (``git archive``; the work tree is not touched)."""
    with tempfile.TemporaryDirectory(prefix="bench-orders-tree-") as tmp:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", revision], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)


def _pids(launched: Any) -> dict[str, int]:
    return {
        name: proc.process.pid
        for name, proc in launched.platform.processes.items()
        if proc.process is not None
    }


def _create_client(
    root: Path, data_dir: Path, name: str, scopes: str, tier: str, customer: str | None
) -> Any:
    """``tally clients create --json``: {client_id, client_secret}."""
    command = [sys.executable, "-m", "tally", "clients", "create", "--name", name]
    command += ["--scopes", scopes, "--tier", tier, "--json", "--data-dir", str(data_dir)]
    if customer:
        command += ["--customer", customer]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


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
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


def setup(launched: Any, stock_per_sku: int) -> dict[str, Any]:
    """Items, stock, customers and the channels' clients; returns what the load needs."""
    gateway = launched.platform.url("gateway")
    data_dir = launched.platform.data_dir
    root = getattr(launched, "root", ROOT)
    run = os.urandom(3).hex().upper()
    sku_prefix = f"B{run}-"
    skus = [f"{sku_prefix}{i:03d}" for i in range(ITEMS)]
    demo = _token(gateway, launched.clients["demo"])
    with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {demo}"}) as api:
        for i, sku in enumerate(skus):
            price = {"amount_minor": 500 + 37 * i, "currency": "USD"}
            _ok(api.post("/erp/v1/items", json={"sku": sku, "name": sku, "unit_price": price}))
        _ok(
            api.post(
                "/wms/v1/warehouses",
                json={"warehouse_id": WAREHOUSE, "name": "Bench"},
                headers={"Idempotency-Key": f"wh-{run}"},
            )
        )
        lines = [{"sku": sku, "quantity": stock_per_sku} for sku in skus]
        _ok(
            api.post(
                "/wms/v1/receipts",
                json={"warehouse_id": WAREHOUSE, "lines": lines},
                headers={"Idempotency-Key": f"rcpt-{run}"},
            )
        )
        customers = [f"CUST-{run}-{channel.upper()}" for channel in CHANNELS]
        for customer in customers:
            limit = {"amount_minor": 10**13, "currency": "USD"}
            body = {"customer_id": customer, "name": customer, "credit_limit": limit}
            _ok(api.post("/erp/v1/customers", json=body))
        _wait_stock(api, skus, stock_per_sku)
    channel_tokens = []
    for channel, customer in zip(CHANNELS, customers, strict=True):
        client = _create_client(
            root, data_dir, channel, "orders:write orders:read", "gold", customer
        )
        channel_tokens.append(_token(gateway, client))
    staff = _create_client(
        root,
        data_dir,
        "bench-staff",
        "orders:read wms:read wms:write billing:read",
        "internal",
        None,
    )
    return {
        "gateway": gateway,
        "sku_prefix": sku_prefix,
        "skus": skus,
        "customers": customers,
        "tokens": channel_tokens,
        "staff": _token(gateway, staff),
        "demo": demo,
        "run": run,
    }


def _wait_stock(api: httpx.Client, skus: list[str], quantity: int) -> None:
    deadline = time.monotonic() + 120
    pending = list(skus)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"availability never showed the stock of {pending[:3]}")
        pending = [
            sku
            for sku in pending
            if _ok(api.get(f"/availability/v1/items/{sku}"))["available_to_promise"] < quantity
        ]
        if pending:
            time.sleep(0.2)


# -- the load -----------------------------------------------------------------------------


def wrk(
    ctx: dict[str, Any], connections: int, duration: int, prefix: str, marks: Path
) -> tuple[dict[str, Any], float]:
    """Runs wrk for ``duration`` s; (its RESULT, its own CPU seconds)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    marks.mkdir(parents=True, exist_ok=True)
    script = marks / "orders.lua"
    script.write_text(WRK_SCRIPT)
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "30s"]
    command += ["-s", str(script), ctx["gateway"], "--"]
    command += [prefix, "10", str(marks), str(ITEMS), ctx["sku_prefix"]]
    command += [*ctx["tokens"], *ctx["customers"]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate()
    usage = _children_cpu()
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {stdout} {stderr}")
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    failed = [p.read_text() for p in marks.glob("failed-*") if p.read_text()]
    result["failures"] = "".join(failed)[:2000]
    return result, usage


_children_seen = 0.0


def _children_cpu() -> float:
    """CPU of the children waited for since the last call (wrk's own share)."""
    global _children_seen
    usage = os.times()
    total = usage.children_user + usage.children_system
    spent, _children_seen = total - _children_seen, total
    return spent


def timeline(marks: Path) -> list[int]:
    """Orders answered 201 per wall-clock second of the run, all threads (the first and
    the last second are partial)."""
    per_second: Counter[int] = Counter()
    for path in marks.glob("timeline-*"):
        for line in path.read_text().splitlines():
            second, count = line.split()
            per_second[int(second)] += int(count)
    return [per_second[s] for s in sorted(per_second)]


def sampled_orders(marks: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(marks.glob("sample-*")):
        ids += [line for line in path.read_text().splitlines() if line]
    return ids


# -- counters: /metrics and the transaction files ------------------------------------------

_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _samples(launched: Any, metric: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(service, labels, value) of every sample of ``metric`` on every /metrics."""
    pattern = re.compile(
        rf'^{metric}\{{(?P<labels>(?:[^}}"]|"[^"]*")*)\}} (?P<value>[0-9.e+]+)$', re.MULTILINE
    )
    with httpx.Client(timeout=10) as client:
        for name in launched.platform.processes:
            text = client.get(f"{launched.platform.url(name)}/metrics").text
            for match in pattern.finditer(text):
                yield name, dict(_LABEL.findall(match["labels"])), float(match["value"])


def http_counts(launched: Any) -> Counter[tuple[str, str, str]]:
    """Requests answered so far per (service, method, route), from every /metrics."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for name, labels, value in _samples(launched, "tally_http_request_seconds_count"):
        if labels.get("route") in ("/metrics", "/readyz", "/healthz"):
            continue
        counts[(name, labels.get("method", ""), labels.get("route", ""))] += round(value)
    return counts


def event_counts(launched: Any) -> Counter[tuple[str, str, str]]:
    """Events consumed so far per (group, type, outcome), from every /metrics."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for _, labels, value in _samples(launched, "tally_events_handled_total"):
        key = (labels.get("group", ""), labels.get("type", ""), labels.get("outcome", ""))
        counts[key] += round(value)
    return counts


def tx_counts(tx_dir: Path, pids: dict[str, int]) -> dict[str, Counter[str]]:
    """Transactions so far per service (begin, commit, rollback), from the files the
    sitecustomize writes; a service's worker processes are summed."""
    by_service: dict[str, Counter[str]] = {}
    for path in tx_dir.glob("tx-*.json"):
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        argv = data["argv"]
        name = next((s for s in pids if s in argv), None)
        if name is None:
            continue
        counter = by_service.setdefault(name, Counter())
        for key in ("begin", "commit", "rollback", "before_cursor_execute"):
            counter[key] += int(data[key])
    return by_service


def snapshot(launched: Any, tx_dir: Path) -> dict[str, Any]:
    time.sleep(0.5)  # the transaction files are rewritten every 0.2 s
    return {
        "at": time.monotonic(),
        "http": http_counts(launched),
        "tx": tx_counts(tx_dir, _pids(launched)),
    }


# Polled by every service on its own (revocation list, signing keys): never quiet.
BACKGROUND_ROUTES = ("/oauth/revocations", "/.well-known/jwks.json", "/oauth/token")


def wait_quiet(launched: Any, seconds: float = 2.0, timeout: float = 120.0) -> float:
    """Waits until no service answers a request other than the background polls for
    ``seconds``; returns how long the platform was still busy."""

    def busy() -> Counter[tuple[str, str, str]]:
        counts = http_counts(launched)
        return Counter({k: v for k, v in counts.items() if k[2] not in BACKGROUND_ROUTES})

    started = time.monotonic()
    last, still_since = busy(), time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(0.25)
        now = busy()
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= seconds:
            break
    return round(still_since - started, 1)


def _rate(idle: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """What the platform does per second with nothing to do (polls, relays, jobs)."""
    first, last = idle
    seconds = last["at"] - first["at"]
    http = {k: v / seconds for k, v in (last["http"] - first["http"]).items()}
    tx = {
        service: {k: v / seconds for k, v in (counts - first["tx"].get(service, Counter())).items()}
        for service, counts in last["tx"].items()
    }
    return {"http": http, "tx": tx}


def per_unit(
    before: dict[str, Any], after: dict[str, Any], units: int, idle: dict[str, Any]
) -> dict[str, Any]:
    """HTTP requests per service and route, and transactions per service, per unit,
    less what the idle platform does in as much time."""
    seconds = after["at"] - before["at"]
    calls = {
        key: count - idle["http"].get(key, 0.0) * seconds
        for key, count in (after["http"] - before["http"]).items()
    }
    by_route = {
        f"{service} {method} {route}": round(count / units, 3)
        for (service, method, route), count in sorted(calls.items())
        if count / units >= 0.005
    }
    by_service: Counter[str] = Counter()
    for (service, _, _), count in calls.items():
        by_service[service] += max(0.0, count)
    tx: dict[str, dict[str, float]] = {}
    for service, counts in sorted(after["tx"].items()):
        spent = counts - before["tx"].get(service, Counter())
        background = idle["tx"].get(service, {})
        net = {k: max(0.0, spent[k] - background.get(k, 0.0) * seconds) / units for k in counts}
        tx[service] = {
            "transactions": round(net["begin"], 2),
            "commits": round(net["commit"], 2),
            "rollbacks": round(net["rollback"], 2),
            "statements": round(net["before_cursor_execute"], 1),
        }
    return {
        "http_by_service": {s: round(c / units, 2) for s, c in sorted(by_service.items())},
        "http_total": round(sum(by_service.values()) / units, 2),
        "http_by_route": by_route,
        "transactions_by_service": tx,
        "transactions_total": round(sum(t["transactions"] for t in tx.values()), 2),
        "statements_total": round(sum(t["statements"] for t in tx.values()), 1),
        "window_s": round(seconds, 1),
    }


# -- probes: do the order's reads grow with the orders placed? -------------------------------


def probe(ctx: dict[str, Any], data_dir: Path, flow: str) -> dict[str, float]:
    """Median ms of the ERP reads of one acceptance check (through the gateway, one at a
    time) and of order_to_ship's own query of the customer's orders not yet synced to
    the ERP (on the SQLite file), on the idle platform."""
    customer = ctx["customers"][0]
    skus = "&".join(f"sku={sku}" for sku in ctx["skus"][:LINES])
    paths = {
        "erp_customer_ms": f"/erp/v1/customers/{customer}",
        "erp_prices_ms": f"/erp/v1/customers/{customer}/prices?{skus}",
        "erp_credit_ms": f"/erp/v1/customers/{customer}/credit",
    }
    found: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {ctx['demo']}"}
    with httpx.Client(base_url=ctx["gateway"], headers=headers, timeout=30) as api:
        for name, path in paths.items():
            if api.get(path).status_code == 404:  # a tree without the route
                continue
            found[name] = _median_ms(lambda p=path: _ok(api.get(p)))
    database = data_dir / "order_to_ship.db"
    if flow.startswith("this tree") and database.exists():
        found["orders_unsynced_value_ms"] = asyncio.run(_probe_unsynced(database, customer))
    return found


def _median_ms(call: Any, times: int = 20) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        spent.append(time.perf_counter() - started)
    return round(statistics.median(spent) * 1000, 2)


async def _probe_unsynced(database: Path, customer: str) -> float:
    from sqlalchemy.ext.asyncio import create_async_engine

    from process_apis.order_to_ship.orders.repository import unsynced_open_value

    engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
    spent = []
    try:
        async with engine.connect() as conn:
            for _ in range(20):
                started = time.perf_counter()
                await unsynced_open_value(conn, customer)
                spent.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    return round(statistics.median(spent) * 1000, 2)


# -- latencies after the load --------------------------------------------------------------


def _at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def release_latencies(ctx: dict[str, Any], order_ids: list[str]) -> dict[str, Any]:
    """accepted -> released per sampled order, from the service's own history."""
    waits: list[float] = []
    unreleased = 0
    headers = {"Authorization": f"Bearer {ctx['staff']}"}
    with httpx.Client(base_url=ctx["gateway"], headers=headers, timeout=30) as api:
        for order_id in order_ids:
            response = api.get(f"/orders/v1/orders/{order_id}/history")
            if response.status_code == 404 and not waits:  # a flow without history
                return {"order_to_released": "released before the 201 (no history route)"}
            items = _ok(response)["items"]
            at = {item["to"]: _at(item["at"]) for item in items}
            if "released" in at and "accepted" in at:
                waits.append(at["released"] - at["accepted"])
            else:
                unreleased += 1
    return _summary("order_to_released", waits) | {"unreleased_in_sample": unreleased}


def _summary(name: str, seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {f"{name}_samples": 0}
    return {
        f"{name}_samples": len(seconds),
        f"{name}_p50_ms": round(statistics.median(seconds) * 1000, 1),
        f"{name}_p99_ms": round(_percentile(seconds, 0.99) * 1000, 1),
        f"{name}_max_ms": round(max(seconds) * 1000, 1),
    }


async def _ship_one(api: httpx.AsyncClient, order_id: str, n: int) -> float | None:
    found = _ok(await api.get("/wms/v1/fulfillment-orders", params={"order_id": order_id}))
    if not found["items"]:
        return None
    fo = found["items"][0]
    lines = [{"sku": line["sku"], "quantity": line["quantity"]} for line in fo["lines"]]
    body = {"carrier": "UPS", "tracking_number": f"1ZBENCH{n:06d}", "lines": lines}
    path = f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments"
    _ok(await api.post(path, json=body, headers={"Idempotency-Key": f"ship-{order_id}"}))
    shipped = time.perf_counter()
    deadline = shipped + 60
    while time.perf_counter() < deadline:
        invoices = _ok(await api.get(BILLING_READ, params={"order_id": order_id}))
        if invoices["items"]:
            return time.perf_counter() - shipped
        await asyncio.sleep(0.005)
    return None


async def _ship_sample(ctx: dict[str, Any], order_ids: list[str], parallel: int) -> list[Any]:
    headers = {"Authorization": f"Bearer {ctx['staff']}"}
    gate = asyncio.Semaphore(parallel)
    async with httpx.AsyncClient(base_url=ctx["gateway"], headers=headers, timeout=30) as api:

        async def one(n: int, order_id: str) -> float | None:
            async with gate:
                return await _ship_one(api, order_id, n)

        return await asyncio.gather(*(one(n, o) for n, o in enumerate(order_ids)))


def shipment_latencies(ctx: dict[str, Any], order_ids: list[str]) -> dict[str, Any]:
    results = asyncio.run(_ship_sample(ctx, order_ids, parallel=4))
    waits = [r for r in results if r is not None]
    return _summary("shipment_to_invoice", waits) | {"not_invoiced": len(results) - len(waits)}


# -- the profile ---------------------------------------------------------------------------


def _py_spy(explicit: str | None) -> str | None:
    for candidate in (explicit, shutil.which("py-spy"), str(ROOT / ".venv/bin/py-spy")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def start_profile(binary: str, pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes]:
    command = [binary, "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", "200", "--format", "raw", "--gil", "--nonblocking", "--subprocesses"]
    command += ["--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:]*)(?::\d+)?\)$")


def _frame(text: str) -> str:
    match = _FRAME.match(text)
    if not match:
        return text
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['function']} ({path})"


def _activity(frames: list[str]) -> str:
    """What a sample was doing: the root coroutine or callback of the event loop's
    turn (the frame under ``Runner.run``: uvloop's own frames are C), or the thread's
    target."""
    for i, frame in enumerate(frames[:-1]):
        if frame.startswith("Thread.run "):
            return "thread " + frames[i + 1]
        if frame.startswith("Runner.run "):
            return frames[i + 1]
    return frames[-1]


def _package(frame: str) -> str:
    """The top-level package (or stdlib module) of a frame: where its own time goes."""
    path = frame.rsplit(" (", 1)[-1].rstrip(")")
    head = path.split("/", 1)[0]
    return head.removesuffix(".py")


def top_frames(collapsed: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function from py-spy's collapsed stacks, and the
    share of each activity (a task's root coroutine, a loop callback, a thread)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        # --subprocesses names the process as the first frame.
        frames = [_frame(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            frames = ["(no Python frame)"]
        own[frames[-1]] += samples
        packages[_package(frames[-1])] += samples
        activities[_activity(frames)] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    share = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731
    ours = ("process_apis/", "shared/", "system_apis/")
    return {
        "samples": total,
        "activities": [(f, share(n)) for f, n in activities.most_common(top)],
        "self_by_package": [(f, share(n)) for f, n in packages.most_common(top)],
        "self_top": [(f, share(n)) for f, n in own.most_common(top)],
        "inclusive_ours": [
            (f, share(n)) for f, n in inclusive.most_common() if any(o in f for o in ours)
        ][:top],
        "inclusive_libraries": [
            (f, share(n)) for f, n in inclusive.most_common() if not any(o in f for o in ours)
        ][:top],
    }


# -- one database ----------------------------------------------------------------------------


def run_one(
    database: str,
    pg_cluster: str | None,
    args: argparse.Namespace,
    n: int,
    flow: tuple[str, Path | None, dict[str, str]],
) -> dict[str, Any]:
    name, source, flow_env = flow
    load_average = os.getloadavg()[0]
    work = args.work / f"{n}-{database}"
    tx_dir = work / "tx"
    tx_dir.mkdir(parents=True)
    stock = 250 * (args.duration + 5)
    extra = {**dict(item.split("=", 1) for item in args.env), **flow_env}
    with platform(database, pg_cluster, tx_dir, n, source, extra) as launched:
        ctx = setup(launched, stock)
        pids = _pids(launched)
        wrk(ctx, args.connections, 3, f"WARM{ctx['run']}", work / "warm")
        wait_quiet(launched, seconds=1.0)
        data_dir = launched.platform.data_dir
        probe_before = probe(ctx, data_dir, name)
        idle_start, cpu_idle = snapshot(launched, tx_dir), _cpus(pids)
        time.sleep(args.idle)
        before = snapshot(launched, tx_dir)
        cpu_before = _cpus(pids)
        idle = _rate((idle_start, before))
        idle["cpu"] = {
            k: (v - cpu_idle[k]) / (before["at"] - idle_start["at"]) for k, v in cpu_before.items()
        }
        machine_before = _machine_busy()
        profiler, profile_out = None, work / "profile.txt"
        if args.profile:
            profiler = _profile_during(args, pids[PROFILED], profile_out)
        marks = work / "load"
        load, wrk_cpu = wrk(ctx, args.connections, args.duration, f"SO{ctx['run']}", marks)
        machine_after = _machine_busy()
        cpu_load = _cpus(pids)
        closed = closed_connections(launched)
        drained = wait_quiet(launched)
        after = snapshot(launched, tx_dir)
        cpu_after = _cpus(pids)
        orders = int(load["created"])
        # Requests still in flight when wrk stopped are placed but not in its count.
        placed = (after["http"] - before["http"])[(PROFILED, "POST", "/orders/v1/orders")]
        per_order = per_unit(before, after, max(1, placed), idle)
        per_order["cpu_ms_net_of_idle"] = {
            k: round(
                (cpu_after[k] - cpu_before[k] - idle["cpu"][k] * per_order["window_s"])
                / max(1, placed)
                * 1000,
                2,
            )
            for k in cpu_after
        }
        probe_after = probe(ctx, data_dir, name)
        sample = sampled_orders(marks)
        released = release_latencies(ctx, sample[:: max(1, len(sample) // 400)])
        wait_quiet(launched, seconds=1.0)
        ready = snapshot(launched, tx_dir)
        shipping = shipment_latencies(ctx, sample[: args.shipments])
        wait_quiet(launched, seconds=1.0)
        shipped = snapshot(launched, tx_dir)
        for polled in (("billing", "GET", BILLING_READ), ("gateway", "GET", "/billing/v1/{path}")):
            shipped["http"].pop(polled, None)  # the bench's own polls for the invoice
            ready["http"].pop(polled, None)
        per_shipment = per_unit(
            ready, shipped, max(1, shipping["shipment_to_invoice_samples"]), idle
        )
        profile = _profile_result(profiler, profile_out)
    busy = (machine_after[0] - machine_before[0]) / max(1.0, machine_after[1] - machine_before[1])
    cpu = {k: round(v - cpu_before[k], 2) for k, v in cpu_load.items()}
    cpu["wrk"] = round(wrk_cpu, 2)
    seconds = float(load["seconds"])
    return {
        "flow": name,
        "env": args.env,
        "database": database,
        "load_average_before_after": [round(load_average, 2), round(os.getloadavg()[0], 2)],
        "connections": args.connections,
        "duration_s": round(seconds, 2),
        "orders": orders,
        "orders_placed_incl_in_flight": placed,
        "orders_per_s": round(orders / seconds, 1),
        "lines_per_s": round(orders * LINES / seconds, 1),
        "p50_ms": round(load["p50_ms"], 1),
        "p90_ms": round(load["p90_ms"], 1),
        "p99_ms": round(load["p99_ms"], 1),
        "max_ms": round(load["max_ms"], 1),
        "non_201": load["answered"] - orders,
        "answers_202": load["s202"],
        "answers_429": load["s429"],
        "answers_other": load["other"],
        "socket_errors": load["socket_errors"],
        "accepted_share": round(load["accepted"] / max(1, orders), 3),
        "failures": load["failures"],
        "drain_after_load_s": drained,
        "connections_closed_in_last_60s_by_service": closed,
        "orders_per_second_timeline": timeline(marks),
        "probe_before_load": probe_before,
        "probe_after_load": probe_after,
        **released,
        **shipping,
        "cpu_s_over_load": cpu,
        "cpu_ms_per_order": {k: round(v / max(1, orders) * 1000, 2) for k, v in cpu.items()},
        "machine_busy_share": round(busy, 3),
        "per_order": per_order,
        "per_shipment": per_shipment,
        "profile": profile,
    }


def _profile_during(args: argparse.Namespace, pid: int, out: Path) -> Any:
    binary = _py_spy(args.py_spy)
    if binary is None:
        print("py-spy not found (pip install py-spy, or --py-spy PATH): no profile")
        return None
    seconds = min(10, max(1, args.duration - 4))
    delay = max(0.0, (args.duration - seconds) / 2)
    holder: dict[str, Any] = {}

    def later() -> None:
        holder["process"] = start_profile(binary, pid, out, seconds)

    import threading

    timer = threading.Timer(delay, later)
    timer.start()
    return (timer, holder, seconds)


def _profile_result(profiler: Any, out: Path) -> dict[str, Any] | None:
    if profiler is None:
        return None
    timer, holder, seconds = profiler
    timer.join()
    process = holder.get("process")
    if process is None:
        return None
    _, stderr = process.communicate(timeout=seconds + 60)
    if not out.exists():
        return {"error": stderr.decode()[-500:]}
    return {"seconds": seconds, "rate_hz": 200, **top_frames(out)}


# -- output ------------------------------------------------------------------------------------


def report(row: dict[str, Any]) -> None:
    print(
        f"\n== {row['flow']}, {row['database']}: {row['connections']} connections, "
        f"{row['duration_s']} s ==  load average {row['load_average_before_after']}"
    )
    print(
        f"orders placed/s {row['orders_per_s']}  lines/s {row['lines_per_s']}  "
        f"p50 {row['p50_ms']} ms  p90 {row['p90_ms']} ms  p99 {row['p99_ms']} ms  "
        f"max {row['max_ms']} ms"
    )
    print(
        f"orders {row['orders']}  non-201 {row['non_201']} (202 {row['answers_202']}, "
        f"429 {row['answers_429']}, other {row['answers_other']})  socket errors "
        f"{row['socket_errors']}  accepted/released at the 201 {row['accepted_share']:.1%}"
    )
    if row["failures"]:
        print("first failures:\n" + row["failures"])
    for name in ("order_to_released", "shipment_to_invoice"):
        if row.get(f"{name}_samples"):
            print(
                f"{name}: p50 {row[f'{name}_p50_ms']} ms  p99 {row[f'{name}_p99_ms']} ms  "
                f"max {row[f'{name}_max_ms']} ms  ({row[f'{name}_samples']} samples)"
            )
    print(f"drain after the load (releases, ERP syncs): {row['drain_after_load_s']} s")
    print(f"201s per second over the run: {row['orders_per_second_timeline']}")
    print(
        "connections closed by their client in the last 60 s, per service called: "
        f"{row['connections_closed_in_last_60s_by_service']}"
    )
    print(f"probe before the load: {row['probe_before_load']}")
    print(f"probe after the load:  {row['probe_after_load']}")
    print(f"machine busy over the load: {row['machine_busy_share']:.0%} of 2 cores")
    print("CPU s over the load / ms per order:")
    for name, spent in sorted(row["cpu_s_over_load"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<14}{spent:>8.2f} s{row['cpu_ms_per_order'][name]:>9.2f} ms")
    for unit in ("per_order", "per_shipment"):
        costs = row[unit]
        print(
            f"{unit}: HTTP requests {costs['http_total']} {costs['http_by_service']}; "
            f"DB transactions {costs['transactions_total']}, statements "
            f"{costs['statements_total']}"
        )
        if "cpu_ms_net_of_idle" in costs:
            print(f"    CPU ms net of idle, load + drain: {costs['cpu_ms_net_of_idle']}")
        for route, count in costs["http_by_route"].items():
            print(f"    {count:>7}  {route}")
        for service, tx in costs["transactions_by_service"].items():
            print(f"    tx {service:<14}{tx}")
    _report_profile(row.get("profile"))


def _report_profile(profile: dict[str, Any] | None) -> None:
    if not profile or "self_top" not in profile:
        if profile:
            print(f"py-spy failed: {profile}")
        return
    print(f"py-spy --gil on {PROFILED}: {profile['samples']} samples in {profile['seconds']} s")
    titles = ("self_by_package", "activities", "self_top", "inclusive_ours", "inclusive_libraries")
    for title in titles:
        print(f"  {title}:")
        for frame, share in profile[title][:15]:
            print(f"    {share:>5}%  {frame}")


def _commit() -> str:
    """HEAD, and whether the services' files differ from it (others edit the tree)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *BUSINESS_PACKAGES], cwd=ROOT, capture_output=True
    )
    return head.stdout.decode().strip() + (" (modified)" if dirty.stdout.strip() else "")


BUSINESS_PACKAGES = ("shared", "system_apis", "process_apis", "gateway", "tally")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite", help="sqlite,postgres")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--shipments", type=int, default=100, help="orders shipped after")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle baseline")
    parser.add_argument("--quick", action="store_true", help="a 5 s smoke run, 20 shipments")
    parser.add_argument("--profile", action="store_true", help="py-spy on order_to_ship")
    parser.add_argument("--py-spy", dest="py_spy", help="path of the py-spy binary")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run today's flow: the platform of an earlier commit (e.g. 400e33b, the "
        "tree before issue 16), from `git archive` in a temporary folder",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of every service, e.g. TALLY_ORDER_TO_SHIP_WORKERS=2 (repeatable)",
    )
    parser.add_argument(
        "--compare-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="also run this tree with NAME=VALUE in every service's environment, e.g. "
        "TALLY_PLACEMENT_QUEUE=0 (single placements one by one, decision 0060)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.shipments = 5, 20
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    load_before = os.getloadavg()
    started = datetime.now().astimezone()
    rows = []
    with ExitStack() as stack:
        args.work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-orders-")))
        flows: list[tuple[str, Path | None, dict[str, str]]] = [("this tree", None, {})]
        for item in args.compare_env:
            name, _, value = item.partition("=")
            flows.append((f"this tree, {item}", None, {name: value}))
        if args.baseline:
            flows.append(
                (f"today ({args.baseline})", stack.enter_context(source_tree(args.baseline)), {})
            )
        pg_cluster = None
        if "postgres" in databases:
            from tests.support.servers import postgres_server

            pg_cluster = stack.enter_context(postgres_server())
        cells = [(database, flow) for database in databases for flow in flows]
        for n, (database, flow) in enumerate(cells):
            rows.append(run_one(database, pg_cluster, args, n, flow))
            report(rows[-1])
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2 cores)")
    print(f"tree: {_commit()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "started": started.isoformat(timespec="seconds"),
            "commit": _commit(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in load_after],
            "cpus": os.cpu_count(),
            "runs": rows,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
