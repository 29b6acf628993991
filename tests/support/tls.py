"""One TLS context for every test client. httpx builds a new one per ``Client`` by
default (loading the CA bundle: about 25 ms of CPU), even for the plain-HTTP loopback
services the tests call; some tests open a client per request."""

from __future__ import annotations

import httpx

TLS = httpx.create_ssl_context()
