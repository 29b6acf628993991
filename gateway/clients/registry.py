"""OAuth clients of the gateway in its own database (SQLAlchemy Core, *sync* engine).

Sync on purpose: Authlib calls back synchronously (in a worker thread of the token
endpoint) and the ``tally clients`` CLI writes from another process. Nothing is
cached: every token request reads the client's row, so a CLI ``disable`` takes
effect on the next request. Secrets are random (``secrets.token_urlsafe(32)``), shown
once, and stored only as argon2id hashes.

Only SQLite is supported for now: the project ships no sync PostgreSQL driver
(``postgresql+asyncpg`` is async-only), see docs/decisions/0003.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from shared.topology import ALL_AUDIENCES, ALL_SCOPES, RATE_TIERS

metadata = sa.MetaData()

clients_table = sa.Table(
    "oauth_clients",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(255), nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),  # space separated, as in OAuth
    sa.Column("allowed_apis", sa.Text, nullable=False),  # space separated API names
    sa.Column("customer_id", sa.String(100), nullable=True),
    sa.Column("tier", sa.String(20), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Secrets are 256 random bits, so the hash need not resist guessing; the parameters
# (OWASP's argon2id minimum: 19 MiB, t=2, p=1) keep a token request cheap in memory.
# Each hash records its own parameters, so they can change without breaking old rows.
HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(32))

# Which APIs a scope needs as token audience when a client is created without an
# explicit list. The portal forwards its caller's token to the process APIs it reads
# through, so "portal" also names those (each still checks its own scopes).
SCOPE_APIS: dict[str, tuple[str, ...]] = {
    "erp": ("erp",),
    "wms": ("wms",),
    "inventory": ("availability",),
    "orders": ("orders",),
    "billing": ("billing",),
    "portal": ("graphql", "orders", "availability", "billing"),
    "admin": ALL_AUDIENCES,
}


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    name: str
    scopes: tuple[str, ...]
    allowed_apis: tuple[str, ...]
    customer_id: str | None
    tier: str
    disabled: bool
    created_at: datetime
    secret_hash: str

    def check_secret(self, secret: str) -> bool:
        return verify_secret(self.secret_hash, secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return HASHER.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def burn_verify(secret: str) -> None:
    """Costs what a real check costs, so an unknown client id cannot be told apart by time."""
    verify_secret(_DUMMY_HASH, secret)


def sync_url(url: str) -> str:
    """The registry's sync URL from the service's (async) database URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(
            "the gateway's client registry supports SQLite only for now "
            f"(got {parsed.drivername!r}); set TALLY_GATEWAY_DATABASE_URL to a sqlite URL"
        )
    return parsed.set(drivername="sqlite").render_as_string(hide_password=False)


def _split(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split() if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def apis_for_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    apis: list[str] = []
    for scope in scopes:
        apis.extend(SCOPE_APIS.get(scope.split(":", 1)[0], ()))
    return tuple(api for api in ALL_AUDIENCES if api in apis)


def _create_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # the CLI writes while the gateway reads
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _row_to_record(row: Any) -> ClientRecord:
    created = row.created_at
    if created.tzinfo is None:  # SQLite keeps no offset; we always write UTC
        created = created.replace(tzinfo=UTC)
    return ClientRecord(
        client_id=row.client_id,
        name=row.name,
        scopes=_split(row.scopes),
        allowed_apis=_split(row.allowed_apis),
        customer_id=row.customer_id,
        tier=row.tier,
        disabled=bool(row.disabled),
        created_at=created,
        secret_hash=row.secret_hash,
    )


class ClientRegistry:
    def __init__(self, url: str) -> None:
        self.engine = _create_engine(sync_url(url))
        self._create_schema()

    def _create_schema(self) -> None:
        try:
            metadata.create_all(self.engine)
        except OperationalError:  # another process created it between check and create
            metadata.create_all(self.engine)

    def create(
        self,
        name: str,
        scopes: str | Iterable[str],
        customer_id: str | None = None,
        tier: str = "bronze",
        allowed_apis: str | Iterable[str] | None = None,
    ) -> tuple[str, str]:
        """Registers a client; returns ``(client_id, secret)``. The secret is not kept."""
        scope_list = _split(scopes)
        unknown = [s for s in scope_list if s not in ALL_SCOPES]
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
        if not scope_list:
            raise ValueError("a client needs at least one scope")
        if tier not in RATE_TIERS:
            raise ValueError(f"unknown tier {tier!r}; one of {', '.join(RATE_TIERS)}")
        apis = _split(allowed_apis) if allowed_apis is not None else apis_for_scopes(scope_list)
        bad_apis = [a for a in apis if a not in ALL_AUDIENCES]
        if bad_apis:
            raise ValueError(f"unknown API(s): {', '.join(bad_apis)}")
        if not name.strip():
            raise ValueError("a client needs a name")
        client_id = f"cli_{secrets.token_urlsafe(12)}"
        secret = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                clients_table.insert().values(
                    client_id=client_id,
                    name=name.strip(),
                    secret_hash=HASHER.hash(secret),
                    scopes=" ".join(scope_list),
                    allowed_apis=" ".join(apis),
                    customer_id=customer_id or None,
                    tier=tier,
                    disabled=False,
                    created_at=datetime.now(UTC),
                )
            )
        return client_id, secret

    def get(self, client_id: str) -> ClientRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(clients_table).where(clients_table.c.client_id == client_id)
            ).first()
        return _row_to_record(row) if row else None

    def list(self) -> builtins.list[ClientRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(clients_table).order_by(
                    clients_table.c.created_at, clients_table.c.client_id
                )
            ).all()
        return [_row_to_record(row) for row in rows]

    def disable(self, client_id: str) -> bool:
        """True when the client exists (it is disabled afterwards)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                clients_table.update()
                .where(clients_table.c.client_id == client_id)
                .values(disabled=True)
            )
        return bool(result.rowcount)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()
