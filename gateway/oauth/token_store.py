"""What the authorization server remembers about tokens, in the gateway's database:
the live tokens it issued (jti, client, exp), the revoked ones until they expire, and
the ``private_key_jwt`` assertion ids already used.

SQLite serializes writers, which is what makes "disable a client" airtight: issuing
writes the jti *then* re-reads the client in one write transaction, and disabling
flips the client *and* revokes every recorded jti in another. Whichever commits
second sees the other's write, so no token escapes a disable.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from gateway.clients.tables import (
    assertion_jtis_table,
    clients_table,
    issued_tokens_table,
    revocations_table,
    store_meta_table,
)

# Rows are kept this long after the token's exp: more than any verifier's leeway.
RETAIN_AFTER_EXP_SECONDS = 120
PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class RevocationPage:
    store_id: str
    items: list[tuple[int, str, int]]  # (seq, jti, exp)
    cursor: int
    has_more: bool


def revoke_client_tokens(conn: Connection, client_id: str, reason: str, now: int) -> int:
    """Revokes every live token recorded for ``client_id``; returns how many were new."""
    issued = issued_tokens_table
    live = sa.select(
        issued.c.jti,
        issued.c.client_id,
        issued.c.exp,
        sa.literal(reason),
        sa.literal(now),
    ).where(issued.c.client_id == client_id, issued.c.exp > now)
    result = conn.execute(
        revocations_table.insert()
        .prefix_with("OR IGNORE")
        .from_select(["jti", "client_id", "exp", "reason", "revoked_at"], live)
    )
    return int(result.rowcount or 0)


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store_id = self._store_id()

    def _store_id(self) -> str:
        """A random id for this database: a verifier that sees it change (a reset
        store) starts its revocation cursor again from zero."""
        meta = store_meta_table
        with self.engine.begin() as conn:
            conn.execute(
                meta.insert()
                .prefix_with("OR IGNORE")
                .values(name="store_id", value=secrets.token_urlsafe(12))
            )
            value = conn.execute(sa.select(meta.c.value).where(meta.c.name == "store_id")).scalar()
        return str(value)

    def record_issued(self, jti: str, client_id: str, exp: int) -> bool:
        """Records a token about to be handed out; False (and nothing recorded) when
        the client was disabled meanwhile."""
        with self.engine.connect() as conn, conn.begin() as transaction:
            conn.execute(issued_tokens_table.insert().values(jti=jti, client_id=client_id, exp=exp))
            disabled = conn.execute(
                sa.select(clients_table.c.disabled).where(clients_table.c.client_id == client_id)
            ).scalar()
            if disabled is None or disabled:
                transaction.rollback()
                return False
        return True

    def revoke(self, jti: str, client_id: str, exp: int, reason: str) -> bool:
        """True when the jti was not revoked before."""
        with self.engine.begin() as conn:
            result = conn.execute(
                revocations_table.insert()
                .prefix_with("OR IGNORE")
                .values(
                    jti=jti,
                    client_id=client_id,
                    exp=exp,
                    reason=reason,
                    revoked_at=int(time.time()),
                )
            )
        return bool(result.rowcount)

    def is_revoked(self, jti: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(revocations_table.c.seq).where(revocations_table.c.jti == jti)
            ).first()
        return found is not None

    def revocations_after(self, seq: int, limit: int = PAGE_SIZE) -> RevocationPage:
        """Revocations numbered above ``seq`` whose tokens have not yet expired."""
        table = revocations_table
        now = int(time.time())
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.seq, table.c.jti, table.c.exp)
                .where(table.c.seq > seq, table.c.exp + RETAIN_AFTER_EXP_SECONDS > now)
                .order_by(table.c.seq)
                .limit(limit + 1)
            ).all()
        has_more = len(rows) > limit
        items = [(int(r.seq), str(r.jti), int(r.exp)) for r in rows[:limit]]
        cursor = items[-1][0] if items else seq
        return RevocationPage(self.store_id, items, cursor, has_more)

    def use_assertion_jti(self, client_id: str, jti: str, exp: int) -> bool:
        """False when the client already used this assertion id (a replay)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    assertion_jtis_table.insert().values(client_id=client_id, jti=jti, exp=exp)
                )
        except IntegrityError:
            return False
        return True

    def prune(self) -> dict[str, Any]:
        """Forgets what has expired; returns the row counts removed."""
        cutoff = int(time.time()) - RETAIN_AFTER_EXP_SECONDS
        removed: dict[str, Any] = {}
        with self.engine.begin() as conn:
            for table in (issued_tokens_table, revocations_table, assertion_jtis_table):
                result = conn.execute(table.delete().where(table.c.exp < cutoff))
                removed[table.name] = result.rowcount
        return removed
