"""Which headers cross the gateway, in each direction."""

from __future__ import annotations

from collections.abc import Iterable

# RFC 9110 section 7.6.1 connection-specific fields, plus Host (the upstream's own)
# and Expect (the gateway has read the body already when it forwards it).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "host",
        "expect",
    }
)
# Set by the gateway itself on the way in / out.
REPLACED_ON_REQUEST = frozenset({"x-correlation-id", "traceparent"})
REPLACED_ON_RESPONSE = frozenset({"x-correlation-id", "server", "date"})


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name == "connection":
            tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return tokens


def _drop(name: str, listed: set[str], replaced: frozenset[str]) -> bool:
    return name in HOP_BY_HOP or name.startswith("proxy-") or name in listed or name in replaced


def response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    decoded = [(name.lower(), value) for name, value in raw]
    listed = _connection_tokens(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in decoded
    )
    return [
        (name, value)
        for name, value in decoded
        if not _drop(name.decode("latin-1"), listed, REPLACED_ON_RESPONSE)
    ]


_HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
_REPLACED_ON_REQUEST_BYTES = frozenset(name.encode() for name in REPLACED_ON_REQUEST)


def _listed_in_connection(raw: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """The header names the Connection fields list: hop-by-hop for this request."""
    listed: set[bytes] = set()
    for name, value in raw:
        if name == b"connection":
            listed.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return listed


def request_head(
    method: str,
    target: bytes,
    raw: Iterable[tuple[bytes, bytes]],
    *,
    upstream_host: bytes,
    correlation_id: str,
    traceparent: str,
    client_host: str | None,
    scheme: str,
    chunked: bool,
) -> bytes:
    """The request line and header block for the service, joined once, without decoding
    (ASGI names are lowercase already). Same rules as ``request_headers``."""
    listed = _listed_in_connection(raw)
    parts = [method.encode("latin-1"), b" ", target, b" HTTP/1.1\r\nhost: ", upstream_host, b"\r\n"]
    host = None
    forwarded_for = None
    for name, value in raw:
        if name == b"host":
            host = value
        elif name == b"x-forwarded-for":
            forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
        elif not (
            name in _HOP_BY_HOP_BYTES
            or name in _REPLACED_ON_REQUEST_BYTES
            or name in listed
            or name.startswith(b"proxy-")
        ):
            parts += (name, b": ", value, b"\r\n")
    if client_host:
        client = client_host.encode("latin-1")
        forwarded_for = forwarded_for + b", " + client if forwarded_for else client
    parts += (b"x-correlation-id: ", correlation_id.encode("latin-1"), b"\r\n")
    parts += (b"traceparent: ", traceparent.encode("latin-1"), b"\r\n")
    if forwarded_for:
        parts += (b"x-forwarded-for: ", forwarded_for, b"\r\n")
    parts += (b"x-forwarded-proto: ", scheme.encode("latin-1"), b"\r\n")
    if host:
        parts += (b"x-forwarded-host: ", host, b"\r\n")
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
