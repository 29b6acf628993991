"""Which headers cross the gateway, in each direction."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict

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


def request_headers(
    raw: Iterable[tuple[bytes, bytes]],
    *,
    correlation_id: str,
    traceparent: str,
    client_host: str | None,
    scheme: str,
) -> CIMultiDict[str]:
    decoded = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw]
    listed = _connection_tokens(decoded)
    headers: CIMultiDict[str] = CIMultiDict()
    host = None
    forwarded_for = None
    for name, value in decoded:
        if name == "host":
            host = value
        if name == "x-forwarded-for":
            forwarded_for = value if forwarded_for is None else f"{forwarded_for}, {value}"
            continue
        if not _drop(name, listed, REPLACED_ON_REQUEST):
            headers.add(name, value)
    headers["X-Correlation-Id"] = correlation_id
    headers["traceparent"] = traceparent
    if client_host:
        forwarded_for = f"{forwarded_for}, {client_host}" if forwarded_for else client_host
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    headers["X-Forwarded-Proto"] = scheme
    if host:
        headers["X-Forwarded-Host"] = host
    return headers


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
