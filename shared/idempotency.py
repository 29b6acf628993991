"""Idempotency-Key handling (IETF draft semantics), keyed by (client, key) and written
in the same transaction as the effect.

- same key, same payload, completed: the stored response is replayed with
  ``Idempotent-Replayed: true``;
- same key, another payload: 422 ``/problems/idempotency-key-reused``;
- same key while the first request still runs (a multi-step flow): 409.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Response
from litestar.params import HeaderParameter
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, Tx
from shared.problems import ProblemError

RETENTION = timedelta(hours=24)

IdempotencyKey = Annotated[
    str,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Unique per intended effect; a retry with the same key replays the result.",
    ),
]


OptionalIdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Optional: a retry with the same key replays the first result.",
    ),
]


def idempotency_table(metadata: MetaData) -> Table:
    if "idempotency_keys" in metadata.tables:
        return metadata.tables["idempotency_keys"]
    return Table(
        "idempotency_keys",
        metadata,
        Column("client_id", String(100), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("state", String(16), nullable=False),  # in_progress | completed
        Column("status_code", Integer, nullable=True),
        Column("body", LargeBinary, nullable=True),
        Column("resource_id", String(100), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()


def replay(status_code: int, body: bytes) -> Response[Any]:
    return Response(
        body,
        status_code=status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = idempotency_table(db.metadata)

    async def lookup(self, conn: AsyncConnection, client_id: str, key: str) -> Any:
        row = (
            await conn.execute(
                select(self.table).where(
                    self.table.c.client_id == client_id, self.table.c.key == key
                )
            )
        ).first()
        if row is not None and row.created_at.replace(tzinfo=UTC) < datetime.now(UTC) - RETENTION:
            await conn.execute(
                delete(self.table).where(
                    self.table.c.client_id == client_id, self.table.c.key == key
                )
            )
            return None
        return row

    def check(self, row: Any, fp: str) -> Response[Any] | None:
        """Replay, refuse, or None when the request should run."""
        if row is None:
            return None
        if row.fingerprint != fp:
            raise ProblemError(
                422,
                "idempotency-key-reused",
                "This Idempotency-Key was used with a different request payload.",
            )
        if row.state != "completed":
            raise ProblemError(
                409,
                "request-in-progress",
                "A request with this Idempotency-Key is still being processed; retry later.",
                headers={"Retry-After": "1"},
            )
        return replay(row.status_code, row.body)

    async def reserve(
        self, conn: AsyncConnection, client_id: str, key: str, fp: str, resource_id: str
    ) -> None:
        await conn.execute(
            insert(self.table).values(
                client_id=client_id,
                key=key,
                fingerprint=fp,
                state="in_progress",
                resource_id=resource_id,
                created_at=datetime.now(UTC),
            )
        )

    async def complete(
        self, conn: AsyncConnection, client_id: str, key: str, status_code: int, body: bytes
    ) -> None:
        await conn.execute(
            update(self.table)
            .where(self.table.c.client_id == client_id, self.table.c.key == key)
            .values(state="completed", status_code=status_code, body=body)
        )

    async def forget(self, conn: AsyncConnection, client_id: str, key: str) -> None:
        await conn.execute(
            delete(self.table).where(self.table.c.client_id == client_id, self.table.c.key == key)
        )

    async def run_once(
        self,
        *,
        client_id: str,
        key: str | None,
        payload: Any,
        effect: Callable[[Tx], Awaitable[tuple[int, msgspec.Struct]]],
    ) -> Response[Any]:
        """A single-transaction effect: look up, run, store the response, commit.
        Without a key (where the contract makes it optional) the effect just runs."""
        if key is None:
            async with self.db.transaction() as tx:
                status_code, result = await effect(tx)
            return Response(result, status_code=status_code)
        fp = fingerprint(payload)
        try:
            async with self.db.transaction() as tx:
                found = self.check(await self.lookup(tx.conn, client_id, key), fp)
                if found is not None:
                    return found
                # The key row goes in first: a concurrent request with the same key waits
                # on its unique index and then replays this one's answer.
                await self.reserve(tx.conn, client_id, key, fp, resource_id="")
                status_code, result = await effect(tx)
                body = msgspec.json.encode(result)
                await self.complete(tx.conn, client_id, key, status_code, body)
        except IntegrityError:
            # A concurrent request with the same key committed first: replay its answer.
            async with self.db.read() as conn:
                found = self.check(await self.lookup(conn, client_id, key), fp)
            if found is None:
                raise
            return found
        return Response(body, status_code=status_code, media_type="application/json")
