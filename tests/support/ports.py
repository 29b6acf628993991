"""Loopback ports for the servers a test starts."""

from __future__ import annotations

import socket

from shared.topology import SERVICES


def free_port() -> int:
    """A port nothing listens on now (the OS's pick; free until someone binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports() -> dict[str, int]:
    """One free port per service of the topology."""
    return {spec.name: free_port() for spec in SERVICES}


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"
