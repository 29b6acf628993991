"""What strict request decoding costs per request (decision 0022): the allocation fast
path's decoding before (msgspec straight into ``AllocationIn``) and after (the kernel's
``strict_json.decode``, then ``msgspec.convert``), the kernel check alone, and the
alternative it was weighed against (Python's parser with an ``object_pairs_hook``).
Single-threaded micro-benchmark: the best of several repeats, in µs per body.

Run: ``.venv/bin/python -m bench.strict_json [--json FILE]``."""

from __future__ import annotations

import argparse
import json
import os
import timeit
from collections.abc import Callable
from typing import Any

import msgspec

from process_apis.availability.schemas import AllocationIn
from shared import strict_json


def _allocation(lines: int, indent: int | None = None) -> bytes:
    body = {
        "order_id": "SO-000123456",
        "channel": "web",
        "lines": [{"sku": f"SKU-{n:04d}", "quantity": 1 + n % 5} for n in range(lines)],
        "policy": "reject",
    }
    return json.dumps(body, indent=indent, separators=None if indent else (",", ":")).encode()


BODIES = {
    "allocation, 1 line": _allocation(1),
    "allocation, 3 lines": _allocation(3),
    "allocation, 3 lines, indented": _allocation(3, indent=2),
    "allocation, 200 lines (its maximum)": _allocation(200),
}


def _pairs_hook(members: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(members)
    if len(found) != len(members):
        raise ValueError("duplicate key")
    return found


def _measure(run: Callable[[], object]) -> float:
    number = 2000
    best = min(timeit.repeat(run, number=number, repeat=7))
    return best / number * 1e6


def _figures(body: bytes, typed: msgspec.json.Decoder[AllocationIn]) -> dict[str, float]:
    def before() -> object:
        return typed.decode(body)

    def after() -> object:
        return msgspec.convert(strict_json.decode(body), AllocationIn)

    def check() -> object:
        return strict_json.decode(body)

    def pairs_hook() -> object:
        return json.loads(body, object_pairs_hook=_pairs_hook)

    return {
        "before: typed decode": _measure(before),
        "after: strict + convert": _measure(after),
        "strict check alone": _measure(check),
        "json.loads + pairs hook": _measure(pairs_hook),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    typed = msgspec.json.Decoder(AllocationIn)
    rows = []
    for name, body in BODIES.items():
        figures = _figures(body, typed)
        rows.append({"body": name, "bytes": len(body), **figures})
    columns = list(rows[0])
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
