"""The gateway's hot path against a direct call and an nginx reverse proxy, in one go.

    .venv/bin/python -m bench.gateway [--duration 5] [--connections 1,32] [--no-redis]
                                      [--json bench/results/gateway.json]

Starts, each as its own process on a free loopback port:
- a plain Litestar service (``GET /erp/v1/ping``, uvicorn with uvloop and
  ``shared.http_server.HttpProtocol``, as ``tally serve`` serves);
- the real gateway (``gateway.app:create_app``, same uvicorn options as ``tally serve``)
  forwarding ``/erp`` to it, with token verification and rate limiting ON (a gold
  client whose limits are set far above what the bench can send), its limiter
  in-process; and, when ``redis-server`` is on PATH, a second gateway whose limiter is
  a throwaway Redis (one EVALSHA per call);
- nginx (Debian's package) with a generated config: one worker, a keep-alive
  upstream pool to the same service.

Then wrk (Debian's package) drives each target at every connection count and the
script prints req/s, p50 and p99, the ratio gateway/direct and the p50 the gateway
adds. The machine has 2 cores shared by the service, the proxy and wrk (and whatever
else runs): read the figures as relative, and note ``uptime``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx

PATH = "/erp/v1/ping"
ROOT = Path(__file__).resolve().parent.parent


def upstream_app() -> Any:
    """The service behind every target: one cheap JSON GET."""
    from litestar import Litestar, get

    @get(PATH, sync_to_thread=False)
    def ping() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[ping], debug=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer")


@contextmanager
def _process(args: list[str], env: dict[str, str] | None = None) -> Iterator[int]:
    process = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--loop", "uvloop", "--http", "shared.http_server:HttpProtocol",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


@contextmanager
def service() -> Iterator[tuple[str, int]]:
    port = _free_port()
    with _process(_uvicorn("bench.gateway:upstream_app", port)) as pid:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + PATH)
        yield url, pid


@contextmanager
def gateway(
    service_url: str, data_dir: Path, redis_url: str | None
) -> Iterator[tuple[str, str, int]]:
    """The real gateway; yields (its URL, a gold client's access token, its pid)."""
    from gateway.clients.registry import ClientRegistry
    from shared.settings import database_url_for

    port = _free_port()
    env = {
        "TALLY_DATA_DIR": str(data_dir),
        "TALLY_ERP_URL": service_url,
        "TALLY_RATE_LIMITS": "gold=100000000/6000000000",  # on, but never reached
        "TALLY_REDIS_URL": redis_url or "",
    }
    registry = ClientRegistry(database_url_for("gateway", data_dir))
    client_id, secret = registry.create("bench", "erp:read", tier="gold")
    registry.close()
    with _process(_uvicorn("gateway.app:create_app", port), env) as pid:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/healthz")
        response = httpx.post(
            url + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            timeout=30,
        )
        response.raise_for_status()
        token = str(response.json()["access_token"])
        check = httpx.get(url + PATH, headers={"Authorization": f"Bearer {token}"})
        check.raise_for_status()
        if "ratelimit-remaining" not in check.headers:
            raise RuntimeError("the gateway answered without rate limit headers")
        yield url, token, pid


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream service {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


@contextmanager
def nginx(service_url: str, root: Path) -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("nginx not found: apt-get install -y nginx")
    port = _free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(root=root, upstream=service_url.removeprefix("http://"), port=port)
    )
    with _process([binary, "-c", str(conf), "-p", str(root)]):
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + PATH)
        yield url


@contextmanager
def redis() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with _process(args):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, connections: int, duration: int, token: str | None) -> dict[str, Any]:
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    args = [binary, "-t", "1" if connections == 1 else "2", "-c", str(connections)]
    args += ["-d", f"{duration}s", "--latency"]  # whole seconds only
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run([*args, url + PATH], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: (.*)$", output, re.MULTILINE)
    return {
        "req_per_s": round(rate),
        "p50_ms": round(_ms(percentiles["50"]), 3),
        "p99_ms": round(_ms(percentiles["99"]), 3),
        "non_2xx": int(failed.group(1)) if failed else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(target: Target, connections: int, duration: int) -> dict[str, Any]:
    before = _cpu_seconds(target.pid) if target.pid else 0.0
    figures = wrk(target.url, connections, duration, target.token)
    if target.pid:  # CPU of the measured process per call: robust to others' load
        calls = figures["req_per_s"] * duration
        spent = _cpu_seconds(target.pid) - before
        figures["cpu_us_per_call"] = round(spent / calls * 1e6) if calls else None
    return {"target": target.name, "connections": connections, **figures}


class Target(NamedTuple):
    name: str
    url: str
    token: str | None
    pid: int | None  # the process whose CPU per call is reported (None: not measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--connections", default="1,32", help="comma separated")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis-limited gateway")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    levels = [int(level) for level in args.connections.split(",")]
    load = os.getloadavg()
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tally-bench-gw-")))
        service_url, service_pid = stack.enter_context(service())
        targets = [Target("direct", service_url, None, service_pid)]
        gw_url, token, gw_pid = stack.enter_context(gateway(service_url, root / "gw", None))
        targets.append(Target("gateway", gw_url, token, gw_pid))
        redis_url = None if args.no_redis else stack.enter_context(redis())
        if redis_url:
            url, redis_token, pid = stack.enter_context(
                gateway(service_url, root / "gw-redis", redis_url)
            )
            targets.append(Target("gateway+redis", url, redis_token, pid))
        nginx_root = root / "nginx"
        nginx_root.mkdir()
        targets.append(
            Target("nginx", stack.enter_context(nginx(service_url, nginx_root)), None, None)
        )
        for target in targets:  # warm up every path (pools, token caches)
            wrk(target.url, 8, 1, target.token)
        for connections in levels:
            for target in targets:
                results.append(_measure(target, connections, args.duration))
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"{'target':<15}{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'non-2xx':>9}{'CPU us/call':>13}"
    )
    for row in results:
        cpu = row.get("cpu_us_per_call")
        print(
            f"{row['target']:<15}{row['connections']:>6}{row['req_per_s']:>9}"
            f"{row['p50_ms']:>9.3f}{row['p99_ms']:>9.3f}{row['non_2xx']:>9}"
            f"{cpu if cpu is not None else '-':>13}"
        )
    summary = []
    for connections in levels:
        at = {row["target"]: row for row in results if row["connections"] == connections}
        for name in ("gateway", "gateway+redis", "nginx"):
            if name in at:
                entry = {
                    "target": name,
                    "connections": connections,
                    "ratio_to_direct": round(at[name]["req_per_s"] / at["direct"]["req_per_s"], 3),
                    "added_p50_ms": round(at[name]["p50_ms"] - at["direct"]["p50_ms"], 3),
                }
                summary.append(entry)
                print(
                    f"{name} / direct at {connections} conn: ratio {entry['ratio_to_direct']:.2f}, "
                    f"added p50 {entry['added_p50_ms']:.3f} ms"
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "load_average": [round(value, 2) for value in load],
            "duration_s": args.duration,
            "results": results,
            "summary": summary,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
