"""Idempotency-Key: the rules (IETF draft "The Idempotency-Key HTTP Header Field"),
stated once, and the store that keeps them. Every idempotent create goes through
``IdempotencyStore``; no caller reads or writes ``idempotency_keys`` itself.

The rules:

- A record is keyed by (client, key): two clients never share a key.
- It is written in the same transaction as the effect (``run_once``; a multi-step
  flow reserves the key with its first write), so it exists if and only if the
  effect does. A refused request stores nothing: the key may be used again.
- Same key, same payload, completed: the stored response is replayed, same status
  and body, with ``Idempotent-Replayed: true``.
- Same key, another payload (the fingerprint is the SHA-256 of the canonical JSON):
  422 ``/problems/idempotency-key-reused``.
- Same key while the first request still runs (a reserved, not yet completed record):
  409 ``/problems/request-in-progress`` with ``Retry-After``.
- A record is kept 24 hours (``RETENTION``); an older one is deleted when looked up,
  and the key may then be used again.
- Two requests with one key racing: the loser's insert of the key (or of the effect's
  own unique row) conflicts; ``replay_committed`` then answers as the winner's record
  says (replay, 422 or 409).

The ways to use it:

- ``run_once``: a single-transaction effect (look up, run, store the answer, commit).
- ``reserve`` / ``complete`` / ``forget``: a multi-step flow (placing an order): the
  key is reserved with the first write, completed with the last, forgotten when the
  flow is compensated; ``stored_answer`` and ``replay_committed`` answer repeats.
- ``lookup_many`` / ``completed_record`` / ``insert_completed``: a batch of effects in
  one transaction (the allocation group commit): one lookup per client, the completed
  records written in one statement.
- ``run_each_once``: a batch endpoint whose items each carry their own key (``POST
  /wms/v1/fulfillment-orders/batch``): each item answered as ``run_once`` would answer
  it, all in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

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
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Tx, savepoint
from shared.models import ItemRefusal
from shared.refusals import Refusal

T = TypeVar("T")

RETENTION = timedelta(hours=24)
RECORD_COLUMNS = (
    "client_id",
    "key",
    "fingerprint",
    "state",
    "status_code",
    "body",
    "resource_id",
    "created_at",
)
Ident = tuple[str, str]  # (client, key)

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


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A key record as ``IdempotencyStore.check`` reads it, kept in memory (a batch's
    own answers, before they are written)."""

    fingerprint: str
    state: str
    status_code: int | None
    body: bytes | None


class _ItemRefused(Exception):
    """An item of an unguarded ``run_each_once`` attempt was refused: the attempt's
    transaction rolls back, and the batch runs again with a savepoint per item."""


@dataclass(frozen=True, slots=True)
class ItemAnswer:
    """One item of ``run_each_once``: the answer its single request would get (status
    and body, ``replayed`` when stored before), or the refusal (``refusal``)."""

    status_code: int = 0
    body: bytes = b""
    replayed: bool = False
    refusal: Refusal | None = None


def refuse_repeated_keys(keys: Sequence[str]) -> None:
    """A batch whose items repeat a key is refused whole, before anything runs."""
    if len(set(keys)) != len(keys):
        raise Refusal(
            422,
            "duplicate-idempotency-key",
            "Each item of a batch needs its own idempotency key.",
        )


def item_outcomes(
    answers: Sequence[ItemAnswer], answer_type: type[T]
) -> list[tuple[T | None, ItemRefusal | None]]:
    """``run_each_once``'s answers as a batch endpoint returns them, item by item: the
    body its single call answered (decoded as ``answer_type``), or its refusal."""
    return [
        (None, ItemRefusal.of(a.refusal))
        if a.refusal is not None
        else (msgspec.json.decode(a.body, type=answer_type), None)
        for a in answers
    ]


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = idempotency_table(db.metadata)
        table = self.table
        # ``client_id = ? AND key IN (...)`` walks the primary key; a row-value IN over
        # (client_id, key) pairs made SQLite scan the table.
        self._records_of_client = select(table).where(
            table.c.client_id == bindparam("client"),
            table.c.key.in_(bindparam("keys", expanding=True)),
        )
        self._insert_records = BulkInsert(table, list(RECORD_COLUMNS))
        # Every keyed write runs these: built once (decision 0043).
        this_key = (table.c.client_id == bindparam("of_client"), table.c.key == bindparam("of_key"))
        self._record = select(table).where(*this_key)
        self._forget = delete(table).where(*this_key)
        self._reserve = insert(table).values(
            client_id=bindparam("of_client"),
            key=bindparam("of_key"),
            fingerprint=bindparam("print"),
            state="in_progress",
            resource_id=bindparam("resource"),
            created_at=bindparam("now"),
        )
        self._complete = (
            update(table)
            .where(*this_key)
            .values(state="completed", status_code=bindparam("code"), body=bindparam("answer"))
        )

    async def lookup(self, conn: AsyncConnection, client_id: str, key: str) -> Any:
        this_key = {"of_client": client_id, "of_key": key}
        row = (await conn.execute(self._record, this_key)).first()
        if row is not None and row.created_at.replace(tzinfo=UTC) < datetime.now(UTC) - RETENTION:
            await conn.execute(self._forget, this_key)
            return None
        return row

    async def lookup_many(
        self, conn: AsyncConnection, idents: Iterable[Ident], *, expire: bool = True
    ) -> dict[Ident, Any] | None:
        """The stored records of many (client, key) pairs, one query per client; expired
        ones deleted (None instead when ``expire`` is off: a snapshot cannot delete)."""
        keys_of: dict[str, set[str]] = {}
        for client_id, key in idents:
            keys_of.setdefault(client_id, set()).add(key)
        rows: list[Any] = []
        for client_id, keys in sorted(keys_of.items()):
            rows += (
                await conn.execute(
                    self._records_of_client, {"client": client_id, "keys": sorted(keys)}
                )
            ).all()
        horizon = datetime.now(UTC) - RETENTION
        found: dict[Ident, Any] = {}
        for row in rows:
            if row.created_at.replace(tzinfo=UTC) < horizon:
                if not expire:
                    return None
                await self.lookup(conn, row.client_id, row.key)  # deletes it
                continue
            found[(row.client_id, row.key)] = row
        return found

    def check(self, row: Any, fp: str) -> Response[Any] | None:
        """Replay, refuse, or None when the request should run."""
        if row is None:
            return None
        if row.fingerprint != fp:
            raise Refusal(
                422,
                "idempotency-key-reused",
                "This Idempotency-Key was used with a different request payload.",
            )
        if row.state != "completed":
            raise Refusal(
                409,
                "request-in-progress",
                "A request with this Idempotency-Key is still being processed; retry later.",
                headers={"Retry-After": "1"},
            )
        return replay(row.status_code, row.body)

    async def stored_answer(
        self, conn: AsyncConnection, client_id: str, key: str, fp: str
    ) -> Response[Any] | None:
        """The stored answer replayed, a refusal (422, 409), or None: the request runs."""
        return self.check(await self.lookup(conn, client_id, key), fp)

    async def replay_committed(
        self, client_id: str, key: str, fp: str, *, conn: AsyncConnection | None = None
    ) -> Response[Any] | None:
        """After a unique-key conflict: the answer of the request that committed the
        same key first (replayed, or its refusal), or None when no record holds the key
        (the conflict was another one). Read on ``conn``, else in a read of its own."""
        if conn is not None:
            return await self.stored_answer(conn, client_id, key, fp)
        async with self.db.lookup() as own:
            return await self.stored_answer(own, client_id, key, fp)

    @staticmethod
    def completed_record(
        client_id: str,
        key: str,
        fp: str,
        status_code: int,
        body: bytes,
        *,
        resource_id: str,
        now: datetime,
    ) -> tuple[dict[str, Any], StoredRecord]:
        """A completed key record: the row for ``insert_completed``, and the record as
        ``check`` reads it (a repeat of the key before the row is written)."""
        row = {
            "client_id": client_id,
            "key": key,
            "fingerprint": fp,
            "state": "completed",
            "status_code": status_code,
            "body": body,
            "resource_id": resource_id,
            "created_at": now,
        }
        return row, StoredRecord(fp, "completed", status_code, body)

    async def insert_completed(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Completed records (``completed_record``) in one statement, in the caller's
        transaction: they commit if and only if the effects do."""
        await self._insert_records(conn, rows)

    async def reserve(
        self, conn: AsyncConnection, client_id: str, key: str, fp: str, resource_id: str
    ) -> None:
        await conn.execute(
            self._reserve,
            {
                "of_client": client_id,
                "of_key": key,
                "print": fp,
                "resource": resource_id,
                "now": datetime.now(UTC),
            },
        )

    async def complete(
        self, conn: AsyncConnection, client_id: str, key: str, status_code: int, body: bytes
    ) -> None:
        await conn.execute(
            self._complete,
            {"of_client": client_id, "of_key": key, "code": status_code, "answer": body},
        )

    async def forget(self, conn: AsyncConnection, client_id: str, key: str) -> None:
        await conn.execute(self._forget, {"of_client": client_id, "of_key": key})

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
                found = await self.stored_answer(tx.conn, client_id, key, fp)
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
            found = await self.replay_committed(client_id, key, fp)
            if found is None:
                raise
            return found
        return Response(body, status_code=status_code, media_type="application/json")

    async def run_each_once(
        self,
        *,
        client_id: str,
        items: Sequence[tuple[str, Any]],
        effect: Callable[[Tx, int], Awaitable[tuple[int, msgspec.Struct]]],
        attempts: int = 3,
    ) -> list[ItemAnswer]:
        """Several single-transaction effects, each under its own key ((key, payload)
        per item; ``effect(tx, n)`` runs item ``n``), in one transaction. Each item is
        answered as ``run_once`` would answer it: a key seen before replays its stored
        answer (or is refused: 422 reused, 409 in progress); a new one runs its effect
        in a savepoint, so a refusal undoes that item only (its events too) and stores
        nothing; the completed records are written in one statement with the effects.
        Keys repeated within the batch are refused (422 ``duplicate-idempotency-key``)
        before anything runs. A concurrent request that committed one of the keys first
        makes the insert conflict: the batch then runs again and replays that key.

        The savepoints are taken only when needed (decision 0059): the batch runs
        first without them, and should an item be refused, that transaction is rolled
        back and the batch runs again with one per item. A savepoint pair cost a
        batch item about 50 µs, and a refusal in a batch is rare."""
        keys = [key for key, _ in items]
        refuse_repeated_keys(keys)
        fps = [fingerprint(payload) for _, payload in items]
        guarded = False
        for attempt in range(1, attempts + 1):
            try:
                return await self._run_each(client_id, keys, fps, effect, guarded=guarded)
            except _ItemRefused:
                guarded = True
            except IntegrityError:
                if attempt == attempts:
                    raise
        return await self._run_each(client_id, keys, fps, effect, guarded=True)

    async def _run_each(
        self,
        client_id: str,
        keys: list[str],
        fps: list[str],
        effect: Callable[[Tx, int], Awaitable[tuple[int, msgspec.Struct]]],
        *,
        guarded: bool,
    ) -> list[ItemAnswer]:
        """One attempt in one transaction; ``guarded``: each new item's effect in a
        savepoint (else a refusal raises ``_ItemRefused``, rolling it all back)."""
        answers: list[ItemAnswer] = []
        records: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        async with self.db.transaction() as tx:
            found = await self.lookup_many(tx.conn, [(client_id, key) for key in keys]) or {}
            for n, (key, fp) in enumerate(zip(keys, fps, strict=True)):
                row: Any = found.get((client_id, key))
                try:
                    if self.check(row, fp) is not None:
                        answers.append(ItemAnswer(row.status_code, row.body, replayed=True))
                        continue
                    if not guarded:
                        try:
                            status_code, result = await effect(tx, n)
                        except Refusal as refused:
                            raise _ItemRefused from refused
                    else:
                        emitted = len(tx.events_written)
                        try:
                            async with savepoint(tx.conn):
                                status_code, result = await effect(tx, n)
                        except Refusal:
                            del tx.events_written[emitted:]
                            raise
                except Refusal as refused:
                    answers.append(ItemAnswer(refusal=refused))
                    continue
                body = msgspec.json.encode(result)
                record, _ = self.completed_record(
                    client_id, key, fp, status_code, body, resource_id="", now=now
                )
                records.append(record)
                answers.append(ItemAnswer(status_code, body))
            if records:
                await self.insert_completed(tx.conn, records)
        return answers
