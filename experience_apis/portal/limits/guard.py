"""The guard's settings for one portal app, and which guard the running request uses.

The schema is built once (schema.py) while each app has its own settings, so the
extensions read their limits from the request's guard: the endpoint enters
``guarding(guard)`` around each operation. Outside a request (a test executing the
schema directly) the development defaults apply."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from experience_apis.portal.limits.persisted import ApqStore, OperationRegistry
from shared.settings import Settings

# The portal cuts every page to this many items (connections.page_size), so a bigger
# `first` never costs more than this.
MAX_CONNECTION_SIZE = 100
# A `first`/`last` the query leaves out (and the schema gives no default for).
DEFAULT_CONNECTION_SIZE = 20

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OPERATIONS_DIR = REPO_ROOT / "contracts" / "graphql" / "examples"


@dataclass(frozen=True)
class Guard:
    max_depth: int = 10
    max_tokens: int = 2_000
    max_aliases: int = 30
    cost_budget: int = 1_000
    introspection: bool = True
    mask_errors: bool = False
    registered_only: bool = False
    registry: OperationRegistry = field(default_factory=OperationRegistry)
    apq: ApqStore = field(default_factory=ApqStore)

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        development = settings.environment == "development"
        introspection = settings.portal_introspection
        registered_only = settings.portal_registered_only
        return cls(
            max_depth=settings.portal_max_depth,
            max_tokens=settings.portal_max_tokens,
            max_aliases=settings.portal_max_aliases,
            cost_budget=settings.portal_cost_budget,
            introspection=development if introspection is None else introspection,
            mask_errors=not development,
            registered_only=(
                settings.environment == "production" if registered_only is None else registered_only
            ),
            registry=OperationRegistry.load(operations_dir(settings)),
        )


def operations_dir(settings: Settings) -> Path:
    """Where the registered (example) operations are: the setting, else the contracts."""
    configured = settings.portal_operations_dir
    return Path(configured).expanduser() if configured else DEFAULT_OPERATIONS_DIR


DEFAULT_GUARD = Guard()
_current: contextvars.ContextVar[Guard | None] = contextvars.ContextVar(
    "portal_guard", default=None
)


def current_guard() -> Guard:
    return _current.get() or DEFAULT_GUARD


@contextmanager
def guarding(guard: Guard) -> Iterator[Guard]:
    token = _current.set(guard)
    try:
        yield guard
    finally:
        _current.reset(token)
