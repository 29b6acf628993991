"""The answers of a deprecated availability major point at its successor.

Every answer under ``/availability/v1/`` (refusals and problems included) carries
``Deprecation`` (RFC 9745), ``Sunset`` (RFC 8594) and ``Link: <...>;
rel="successor-version"``, taken from the one version table (shared/versions.py), so
a caller sees them whether it calls the service directly or through the gateway."""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import Message, Scope

from shared.versions import VERSIONS, deprecation_headers

# Encoded once: the hook runs on every answer, on the hot allocation path too.
DEPRECATED: dict[str, list[tuple[bytes, bytes]]] = {
    f"{v.base_path}/": [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
    for v in VERSIONS
    if v.api == "availability" and (headers := deprecation_headers(v))
}


async def stamp_deprecation(message: Message, scope: Scope) -> None:
    """A Litestar ``before_send`` hook."""
    if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
        return
    path = scope["path"]
    for prefix, headers in DEPRECATED.items():
        if path.startswith(prefix):
            # Appended: no handler of the service sets these, so none is repeated.
            message["headers"] = [*message.get("headers", ()), *headers]
            return
