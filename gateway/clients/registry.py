"""OAuth clients of the gateway in its own database (SQLAlchemy Core, *sync* engine).

Sync on purpose: Authlib calls back synchronously (in a worker thread of the token
endpoint) and the ``tally clients`` CLI writes from another process. Nothing is
cached: every token request reads the client's row, so a CLI ``disable`` takes
effect on the next request, and the same transaction revokes the client's live
tokens. A client authenticates either with a secret (random, shown once, stored only
as an argon2id hash) or with ``private_key_jwt`` against the public keys it registered.

Only SQLite is supported for now: the project ships no sync PostgreSQL driver
(``postgresql+asyncpg`` is async-only), see docs/decisions/0003.
"""

from __future__ import annotations

import builtins
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import make_url

from gateway.clients.public_keys import parse_client_jwks
from gateway.clients.tables import clients_table, create_engine, create_schema
from gateway.oauth.token_store import revoke_client_tokens
from shared.auth.litestar_auth import SYSTEM_API_SCOPE_PREFIXES, is_admin_scope
from shared.topology import ALL_AUDIENCES, ALL_SCOPES, RATE_TIERS

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


# Scopes of the platform's staff beside the administration ones (``is_admin_scope``):
# the portal's view of every customer (ADR 0021), and introspection, which answers any
# token's client, customer and scopes (resource servers only).
STAFF_SCOPES: frozenset[str] = frozenset({"portal:staff", "introspect"})

SECRET_AUTH = "client_secret"  # noqa: S105 (a method name: client_secret_basic or _post)
PRIVATE_KEY_JWT = "private_key_jwt"


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
    auth_method: str = SECRET_AUTH
    jwks: dict[str, Any] | None = None

    def check_secret(self, secret: str) -> bool:
        if self.auth_method != SECRET_AUTH:
            burn_verify(secret)  # a key-only client: same time, same refusal
            return False
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
        auth_method=row.auth_method or SECRET_AUTH,
        jwks=json.loads(row.jwks) if row.jwks else None,
    )


class ClientRegistry:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(sync_url(url))
        create_schema(self.engine)

    def create(
        self,
        name: str,
        scopes: str | Iterable[str],
        customer_id: str | None = None,
        tier: str = "bronze",
        allowed_apis: str | Iterable[str] | None = None,
    ) -> tuple[str, str]:
        """Registers a client with a secret; returns ``(client_id, secret)``. The
        secret is not kept."""
        secret = secrets.token_urlsafe(32)
        values = _validated(name, scopes, customer_id, tier, allowed_apis)
        client_id = self._insert(values | {"secret_hash": HASHER.hash(secret)})
        return client_id, secret

    def create_with_keys(
        self,
        name: str,
        scopes: str | Iterable[str],
        jwks: str,
        customer_id: str | None = None,
        tier: str = "bronze",
        allowed_apis: str | Iterable[str] | None = None,
    ) -> str:
        """Registers a ``private_key_jwt`` client (RFC 7523) with its public keys
        (a JWKS, a JWK or a PEM public key); returns the client id. It has no secret."""
        values = _validated(name, scopes, customer_id, tier, allowed_apis)
        keys = parse_client_jwks(jwks)
        return self._insert(
            values | {"secret_hash": "", "auth_method": PRIVATE_KEY_JWT, "jwks": json.dumps(keys)}
        )

    def _insert(self, values: dict[str, Any]) -> str:
        client_id = f"cli_{secrets.token_urlsafe(12)}"
        with self.engine.begin() as conn:
            conn.execute(
                clients_table.insert().values(
                    client_id=client_id, disabled=False, created_at=datetime.now(UTC), **values
                )
            )
        return client_id

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
        """True when the client exists. It is refused from now on, and in the same
        transaction every token it holds is revoked (gateway and services refuse them
        once their revocation lists have caught up, about a second)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                clients_table.update()
                .where(clients_table.c.client_id == client_id)
                .values(disabled=True)
            )
            if result.rowcount:
                revoke_client_tokens(conn, client_id, "client_disabled", int(time.time()))
        return bool(result.rowcount)

    def rotate_secret(self, client_id: str, *, revoke_tokens: bool = False) -> str | None:
        """A new secret for the client (the old one stops working at once); None for
        an unknown client. With ``revoke_tokens`` its live tokens are revoked too."""
        record = self.get(client_id)
        if record is None:
            return None
        if record.auth_method != SECRET_AUTH:
            raise ValueError(f"{client_id} authenticates with private_key_jwt: it has no secret")
        secret = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                clients_table.update()
                .where(clients_table.c.client_id == client_id)
                .values(secret_hash=HASHER.hash(secret))
            )
            if revoke_tokens:
                revoke_client_tokens(conn, client_id, "secret_rotated", int(time.time()))
        return secret

    def regrant(
        self, client_id: str, scopes: str | Iterable[str], allowed_apis: str | Iterable[str]
    ) -> bool:
        """Sets an existing client's scopes and APIs, under the same rules as a new
        client's (the platform's own service clients, when a release needs more of
        them); False for an unknown client. Tokens already issued keep their scopes
        until they expire."""
        record = self.get(client_id)
        if record is None:
            return False
        values = _validated(record.name, scopes, record.customer_id, record.tier, allowed_apis)
        with self.engine.begin() as conn:
            conn.execute(
                clients_table.update()
                .where(clients_table.c.client_id == client_id)
                .values(scopes=values["scopes"], allowed_apis=values["allowed_apis"])
            )
        return True

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()


def _validated(
    name: str,
    scopes: str | Iterable[str],
    customer_id: str | None,
    tier: str,
    allowed_apis: str | Iterable[str] | None,
) -> dict[str, Any]:
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
    staff_only = [s for s in scope_list if s in STAFF_SCOPES or is_admin_scope(s)]
    if customer_id and staff_only:
        raise ValueError(
            "a client bound to a customer may not hold administration or staff scopes "
            f"({', '.join(staff_only)}): they reach configuration or every customer's business"
        )
    if customer_id and (
        any(s.startswith(SYSTEM_API_SCOPE_PREFIXES) for s in scope_list)
        or {"erp", "wms"} & set(apis)
    ):
        raise ValueError("a client bound to a customer may not use the system APIs (erp, wms)")
    return {
        "name": name.strip(),
        "scopes": " ".join(scope_list),
        "allowed_apis": " ".join(apis),
        "customer_id": customer_id or None,
        "tier": tier,
    }
