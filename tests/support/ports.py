"""Loopback ports for the servers a test starts.

Each pytest-xdist worker takes ports from a range of its own, below Linux's ephemeral
range (32768-60999, where outgoing connections take theirs), and walks it in turn: two
workers, or a platform started while another's ports are picked but not yet bound, never
get the same port. (With the OS's pick, two workers launching platforms at once could
both be handed one port; the second service failed to bind while its health check was
answered by the first, another platform's service.)"""

from __future__ import annotations

import itertools
import os
import socket

from shared.topology import SERVICES

_FIRST, _END = 20_000, 32_000


def _own_range() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    span = (_END - _FIRST) // count
    start = _FIRST + (index % count) * span
    return range(start, start + span)


_RANGE = _own_range()
_NEXT = itertools.cycle(_RANGE)


def free_port() -> int:
    """A port of this worker's range that nothing listens on now, not handed out again
    before the range has been walked round."""
    for _ in range(len(_RANGE)):
        port = next(_NEXT)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free loopback port in {_RANGE}")


def free_ports() -> dict[str, int]:
    """One free port per service of the topology."""
    return {spec.name: free_port() for spec in SERVICES}


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"
