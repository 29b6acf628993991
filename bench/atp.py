"""Hot availability reads against the service's own ``/healthz``, in the same run.

    .venv/bin/python -m bench.atp [--duration 5] [--connections 1,16] [--skus 500]
                                  [--workers 1] [--quick] [--json [FILE]]

Starts the availability service as ``tally serve availability`` (uvicorn, uvloop,
httptools, as a container runs it) on a throwaway data directory with the embedded
SQLite database, seeds ``--skus`` items at two warehouses through ``receipt.posted``
events (the WMS's way in), and takes a token from a test issuer whose JWKS the service
fetches over HTTP, as it fetches the gateway's. The service is called directly, not
through the gateway.

wrk (Debian's package, a C event loop) drives the load, so the client is not what is
measured: a Lua script picks a random seeded sku for every request. Rows, each at every
connection count, one after the other against the same process:

- ``healthz``: ``GET /healthz``, the service's floor (no auth, no database);
- ``item``: ``GET /availability/v2/items/{sku}``, a random sku among those seeded;
- ``batch100``: ``GET /availability/v2/items?sku=..`` with 100 random distinct skus.

Each row has a short warm-up first (the same requests, not counted). Prints req/s, p50
and p99 (wrk's own latency histogram), the ratio healthz/item, and whether issue 19's
targets are met: item >= 5,000 req/s on one worker and within 2x of healthz, batch of
100 under 5 ms p50 (one connection). The machine's cores are shared by the service and
wrk: read the figures as relative, and note the load average printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = Path(__file__).parent / "results" / "atp.json"
WAREHOUSES = ("WH-EAST", "WH-WEST")

WRK_SCRIPT = """
local token, mode, nskus, skus, headers
local non200 = 0

function init(a)
  token, mode, nskus = a[1], a[2], tonumber(a[3])
  skus = {}
  for i = 1, nskus do skus[i] = string.format("ATP-%05d", i) end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  headers = { ["Authorization"] = "Bearer " .. token }
end

request = function()
  if mode == "healthz" then
    return wrk.format("GET", "/healthz")
  elseif mode == "item" then
    return wrk.format("GET", "/availability/v2/items/" .. skus[math.random(nskus)], headers)
  else
    local parts, seen, n = {}, {}, 0
    while n < 100 do
      local i = math.random(nskus)
      if not seen[i] then seen[i] = true; n = n + 1; parts[n] = "sku=" .. skus[i] end
    end
    return wrk.format("GET", "/availability/v2/items?" .. table.concat(parts, "&"), headers)
  end
end

response = function(status, _headers, _body)
  if status ~= 200 then non200 = non200 + 1 end
end

done = function(summary, latency, _requests)
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "errors": %d, '
    .. '"non_2xx": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout + summary.errors.status, summary.errors.status))
end
"""


def _wrk(url: str, script: Path, args: list[str], connections: int, seconds: float) -> Any:
    threads = min(2, connections)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
    ]
    out = subprocess.run(
        [*command, "-s", str(script), url, "--", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    return json.loads(line.removeprefix("RESULT "))


def _row(url: str, script: Path, token: str, mode: str, skus: int, conns: int, secs: float) -> Any:
    args = [token, mode, str(skus)]
    _wrk(url, script, args, conns, max(1.0, secs / 3))  # warm-up, not counted
    result = _wrk(url, script, args, conns, secs)
    if result["errors"]:
        raise RuntimeError(f"{mode}: {result['errors']} errors (non-2xx {result['non_2xx']})")
    return {
        "row": mode,
        "connections": conns,
        "requests_per_s": round(result["requests"] / result["seconds"]),
        "p50_ms": round(result["p50_ms"], 3),
        "p99_ms": round(result["p99_ms"], 3),
    }


def _seed(service: Any, skus: int) -> None:
    from tests.availability.helpers import publish
    from tests.support.events import receipt_posted

    names = [f"ATP-{i:05d}" for i in range(1, skus + 1)]
    for n, warehouse in enumerate(WAREHOUSES):
        lines = [(sku, 10 + i % 7 + n, None) for i, sku in enumerate(names)]
        publish(service.settings, receipt_posted(warehouse, lines))
    last = names[-1]
    service.wait_for_atp(last, 2 * (10 + (skus - 1) % 7) + 1, timeout=60)


def run(duration: float, connections: list[int], skus: int, workers: int) -> list[Any]:
    from tests.support.availability import AvailabilityProcess
    from tests.support.tokens import TestIssuer

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-atp-") as tmp:
        script = Path(tmp) / "atp.lua"
        script.write_text(WRK_SCRIPT)
        env = {"TALLY_AVAILABILITY_WORKERS": str(workers)}
        with AvailabilityProcess(Path(tmp) / "data", TestIssuer(), env=env) as service:
            _seed(service, skus)
            token = service.token("inventory:read")
            for conns in connections:
                for mode in ("healthz", "item", "batch100"):
                    row = _row(service.url, script, token, mode, skus, conns, duration)
                    rows.append(row)
                    print(_line(row), flush=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['row']:<9} c={row['connections']:<3} {row['requests_per_s']:>7} req/s"
        f"  p50 {row['p50_ms']:>7.2f} ms  p99 {row['p99_ms']:>7.2f} ms"
    )


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 19's targets, from the rows of this run."""
    by = {(r["row"], r["connections"]): r for r in rows}
    best = max(r["connections"] for r in rows)
    health, item = by[("healthz", best)], by[("item", best)]
    batch = by.get(("batch100", 1)) or by[("batch100", best)]
    ratio = health["requests_per_s"] / max(1, item["requests_per_s"])
    return {
        "connections": best,
        "healthz_over_item": round(ratio, 2),
        "item_at_least_5000": item["requests_per_s"] >= 5000,
        "item_within_2x_of_healthz": ratio <= 2.0,
        "batch100_p50_ms": batch["p50_ms"],
        "batch100_p50_under_5ms": batch["p50_ms"] < 5.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per row")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--skus", type=int, default=500, help="items seeded")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 s rows, 200 skus")
    parser.add_argument("--json", nargs="?", const=str(DEFAULT_JSON), default=None)
    args = parser.parse_args()
    duration, skus = (2.0, 200) if args.quick else (args.duration, args.skus)
    connections = [int(c) for c in args.connections.split(",")]
    print(
        f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; python {sys.version.split()[0]}"
    )
    rows = run(duration, connections, skus, args.workers)
    summary = verdict(rows)
    print(
        f"healthz/item {summary['healthz_over_item']}x at c={summary['connections']}; "
        f"item >= 5000 req/s: {summary['item_at_least_5000']}; within 2x of healthz: "
        f"{summary['item_within_2x_of_healthz']}; batch100 p50 {summary['batch100_p50_ms']} ms "
        f"< 5 ms: {summary['batch100_p50_under_5ms']}"
    )
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"rows": rows, "verdict": summary, "load_average": os.getloadavg()[0]}
        out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
