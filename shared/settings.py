"""Typed settings, loaded once per process from the environment.

Every variable has a zero-setup default: SQLite files and the embedded event log
under the data directory, downstream services on 127.0.0.1 at their fixed ports.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from shared.topology import BY_NAME, SERVICES

DEFAULT_RATE_LIMITS: dict[str, tuple[int, int]] = {
    "bronze": (20, 600),
    "silver": (100, 3_000),
    "gold": (500, 15_000),
}


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    data_dir: Path
    host: str
    port: int
    database_url: str
    bus_url: str
    redis_url: str | None
    issuer: str
    jwks_url: str
    token_url: str
    client_id: str | None
    client_secret: str | None
    service_urls: dict[str, str]
    outbox_poll_seconds: float = 0.2
    # Worker processes of ``tally serve`` (decision 0018): all serve HTTP; one of them,
    # the leader, consumes and runs the scheduled jobs. Another worker retries for the
    # lead this often.
    workers: int = 1
    leader_retry_seconds: float = 1.0
    consumer_block_ms: int = 200
    # Consumers: failed deliveries before the dead letters, and the retry backoff
    # (min(cap, base * 2**(n-1)) with jitter); deliveries an ordered event may wait for
    # its predecessor (a gap) before it is dead-lettered.
    events_max_deliveries: int = 5
    events_retry_base_seconds: float = 0.2
    events_retry_cap_seconds: float = 30.0
    events_max_parks: int = 100
    # An unacked delivery goes back to the group after this (a dead consumer's entries
    # are reclaimed); streams keep about this many entries (None: all; trimming never
    # drops an entry a group has not acknowledged); the outbox relay's coalescing delay.
    bus_visibility_timeout: float = 30.0
    events_max_len: int | None = None
    outbox_coalesce_seconds: float = 0.005
    # Gateway edge policies (docs/decisions/0013): tier -> (per second, per minute);
    # route prefix ("erp", "/orders/v1/orders") -> upstream timeout in seconds.
    rate_limits: dict[str, tuple[int, int]] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS)
    )
    max_body_bytes: int = 1_048_576
    max_header_bytes: int = 16_384
    upstream_timeouts: dict[str, float] = msgspec.field(default_factory=dict)
    cors_origins: tuple[str, ...] = ()
    audit_flush_seconds: float = 0.2
    # Circuit breaker per downstream (decision 0025): consecutive failures that open
    # it, and how long it stays open before one probe may pass.
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 5.0
    # development | staging | production (TALLY_ENVIRONMENT). Outside development the
    # portal masks unexpected errors and, unless told otherwise, hides introspection.
    environment: str = "development"
    # The portal's GraphQL guard (experience_apis/portal/limits, decision 0037).
    portal_max_depth: int = 10
    portal_max_tokens: int = 2_000
    portal_max_aliases: int = 30
    portal_cost_budget: int = 1_000
    portal_introspection: bool | None = None  # None: on in development only
    portal_registered_only: bool | None = None  # None: on in production only
    portal_operations_dir: str | None = None  # None: contracts/graphql/examples

    def url_of(self, service: str) -> str:
        return self.service_urls[service]


def data_dir_from_env(explicit: str | Path | None = None) -> Path:
    raw = explicit or os.environ.get("TALLY_DATA_DIR") or "./var"
    return Path(raw).expanduser().resolve()


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def database_url_for(service: str, data_dir: Path) -> str:
    """Per-service URL: TALLY_<SERVICE>_DATABASE_URL, else TALLY_DATABASE_URL with an
    optional ``{service}`` placeholder, else a SQLite file in the data dir."""
    specific = _env(f"TALLY_{service.upper()}_DATABASE_URL")
    if specific:
        return specific
    shared = _env("TALLY_DATABASE_URL")
    if shared:
        return shared.replace("{service}", service)
    return f"sqlite+aiosqlite:///{data_dir / (service + '.db')}"


def bus_url_for(data_dir: Path) -> str:
    """TALLY_BUS_URL, else the embedded log of the data dir (``<data-dir>/events.db``)."""
    return _env("TALLY_BUS_URL") or f"sqlite:///{data_dir / 'events.db'}"


def service_urls_from_env() -> dict[str, str]:
    urls: dict[str, str] = {}
    for spec in SERVICES:
        default = f"http://127.0.0.1:{spec.port}"
        urls[spec.name] = _env(f"TALLY_{spec.name.upper()}_URL", default) or default
    return urls


def _number(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {raw!r}")
    return value


def _pairs(name: str) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"}."""
    raw = _env(name) or ""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{name}: expected name=value items, not {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _gateway_policies() -> dict[str, object]:
    """TALLY_RATE_LIMITS="bronze=20/600,gold=500/15000" (per second/per minute),
    TALLY_MAX_BODY_BYTES, TALLY_MAX_HEADER_BYTES, TALLY_UPSTREAM_TIMEOUTS="orders=10",
    TALLY_CORS_ORIGINS="https://portal.example.com,...", TALLY_AUDIT_FLUSH_SECONDS."""
    limits = dict(DEFAULT_RATE_LIMITS)
    for tier, value in _pairs("TALLY_RATE_LIMITS").items():
        second, sep, minute = value.partition("/")
        if not (sep and second.isdigit() and minute.isdigit() and int(second) and int(minute)):
            raise ValueError(
                f"TALLY_RATE_LIMITS: {tier} needs per-second/per-minute, not {value!r}"
            )
        limits[tier] = (int(second), int(minute))
    timeouts = {key: float(value) for key, value in _pairs("TALLY_UPSTREAM_TIMEOUTS").items()}
    origins = tuple(o.strip() for o in (_env("TALLY_CORS_ORIGINS") or "").split(",") if o.strip())
    return {
        "rate_limits": limits,
        "max_body_bytes": int(_number("TALLY_MAX_BODY_BYTES", 1_048_576)),
        "max_header_bytes": int(_number("TALLY_MAX_HEADER_BYTES", 16_384)),
        "upstream_timeouts": timeouts,
        "cors_origins": origins,
        "audit_flush_seconds": _number("TALLY_AUDIT_FLUSH_SECONDS", 0.2),
    }


def _optional_count(name: str) -> int | None:
    """A positive whole number, or None when unset."""
    raw = _env(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


ENVIRONMENTS = ("development", "staging", "production")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str) -> bool | None:
    """true/false (1/0, yes/no, on/off), or None when unset."""
    raw = _env(name)
    if raw is None:
        return None
    if raw.lower() in _TRUE | _FALSE:
        return raw.lower() in _TRUE
    raise ValueError(f"{name} must be true or false, not {raw!r}")


def _portal_guard() -> dict[str, object]:
    """TALLY_ENVIRONMENT, TALLY_PORTAL_MAX_DEPTH, _MAX_TOKENS, _MAX_ALIASES, _COST_BUDGET,
    _INTROSPECTION, _REGISTERED_ONLY, _OPERATIONS_DIR (decision 0037)."""
    environment = (_env("TALLY_ENVIRONMENT") or "development").lower()
    if environment not in ENVIRONMENTS:
        raise ValueError(f"TALLY_ENVIRONMENT must be one of {ENVIRONMENTS}, not {environment!r}")
    return {
        "environment": environment,
        "portal_max_depth": int(_number("TALLY_PORTAL_MAX_DEPTH", 10)),
        "portal_max_tokens": int(_number("TALLY_PORTAL_MAX_TOKENS", 2_000)),
        "portal_max_aliases": int(_number("TALLY_PORTAL_MAX_ALIASES", 30)),
        "portal_cost_budget": int(_number("TALLY_PORTAL_COST_BUDGET", 1_000)),
        "portal_introspection": _flag("TALLY_PORTAL_INTROSPECTION"),
        "portal_registered_only": _flag("TALLY_PORTAL_REGISTERED_ONLY"),
        "portal_operations_dir": _env("TALLY_PORTAL_OPERATIONS_DIR"),
    }


def load_settings(service: str, *, data_dir: str | Path | None = None) -> Settings:
    spec = BY_NAME[service]
    directory = data_dir_from_env(data_dir)
    urls = service_urls_from_env()
    gateway = urls["gateway"]
    port = int(_env(f"TALLY_{service.upper()}_PORT", str(spec.port)) or spec.port)
    return Settings(
        service=service,
        data_dir=directory,
        host=_env("TALLY_HOST", "127.0.0.1") or "127.0.0.1",
        port=port,
        database_url=database_url_for(service, directory),
        bus_url=bus_url_for(directory),
        redis_url=_env("TALLY_REDIS_URL"),
        issuer=_env("TALLY_ISSUER", gateway) or gateway,
        jwks_url=_env("TALLY_JWKS_URL", f"{gateway}/.well-known/jwks.json") or "",
        token_url=_env("TALLY_TOKEN_URL", f"{gateway}/oauth/token") or "",
        client_id=_env(f"TALLY_{service.upper()}_CLIENT_ID"),
        client_secret=_env(f"TALLY_{service.upper()}_CLIENT_SECRET"),
        service_urls=urls,
        events_max_deliveries=int(_number("TALLY_EVENTS_MAX_DELIVERIES", 5)),
        events_retry_base_seconds=_number("TALLY_EVENTS_RETRY_BASE_SECONDS", 0.2),
        events_retry_cap_seconds=_number("TALLY_EVENTS_RETRY_CAP_SECONDS", 30.0),
        events_max_parks=int(_number("TALLY_EVENTS_MAX_PARKS", 100)),
        bus_visibility_timeout=_number("TALLY_BUS_VISIBILITY_TIMEOUT", 30.0),
        events_max_len=_optional_count("TALLY_EVENTS_MAX_LEN"),
        outbox_coalesce_seconds=_number("TALLY_OUTBOX_COALESCE_SECONDS", 0.005),
        workers=_optional_count(f"TALLY_{service.upper()}_WORKERS") or 1,
        leader_retry_seconds=_number("TALLY_LEADER_RETRY_SECONDS", 1.0),
        breaker_failures=int(_number("TALLY_BREAKER_FAILURES", 5)),
        breaker_cooldown_seconds=_number("TALLY_BREAKER_COOLDOWN_SECONDS", 5.0),
        **_gateway_policies(),  # type: ignore[arg-type]
        **_portal_guard(),  # type: ignore[arg-type]
    )
