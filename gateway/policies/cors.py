"""CORS for the portal origins of the configuration (``TALLY_CORS_ORIGINS``).

Only listed origins are ever echoed, never ``*``, because answers may carry
credentials (``Access-Control-Allow-Credentials: true`` needs an explicit origin).
Preflights are answered here and never reach a service: a listed origin gets 204
with what it may send; any other origin, or a method or header outside the lists,
gets a 403 problem. Actual calls from a listed origin get the allow fields on the
answer, whatever its status, so a browser app can read a 401 or a 429 too.
"""

from __future__ import annotations

ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
ALLOWED_HEADERS = frozenset(
    {
        "accept",
        "authorization",
        "content-type",
        "idempotency-key",
        "if-match",
        "if-none-match",
        "traceparent",
        "x-correlation-id",
    }
)
EXPOSED_HEADERS = (
    b"X-Correlation-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
    b"RateLimit-Policy, Retry-After, Deprecation, Sunset, Link, Idempotent-Replayed, Location"
)
MAX_AGE = b"600"


class Cors:
    def __init__(self, origins: tuple[str, ...]) -> None:
        self.origins = frozenset(origin.rstrip("/").encode("latin-1") for origin in origins)

    def is_preflight(self, method: str, request_method: bytes | None) -> bool:
        return method == "OPTIONS" and request_method is not None

    def preflight(
        self, origin: bytes | None, request_method: bytes, request_headers: bytes | None
    ) -> tuple[list[tuple[bytes, bytes]] | None, str]:
        """(fields of the 204, "") when allowed, else (None, why)."""
        if origin is None or origin not in self.origins:
            return None, "This origin may not call the Tally APIs from a browser."
        method = request_method.decode("latin-1").strip().upper()
        if method not in ALLOWED_METHODS:
            return None, f"Method {method} is not allowed from a browser."
        names = [
            name.strip().lower()
            for name in (request_headers or b"").decode("latin-1").split(",")
            if name.strip()
        ]
        refused = [name for name in names if name not in ALLOWED_HEADERS]
        if refused:
            return None, f"Header(s) not allowed from a browser: {', '.join(refused)}."
        fields = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-allow-methods", method.encode()),
            (b"access-control-max-age", MAX_AGE),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        ]
        if names:
            fields.append((b"access-control-allow-headers", ", ".join(names).encode()))
        return fields, ""

    def answer_fields(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """Fields for an actual call that carries ``Origin``."""
        if origin not in self.origins:
            return [(b"vary", b"Origin")]
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", EXPOSED_HEADERS),
            (b"vary", b"Origin"),
        ]
