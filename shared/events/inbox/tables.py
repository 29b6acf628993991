"""The consumer's tables: the inbox of applied event ids, the last applied sequence
per ordered subject, and the park counts of bus entries."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


class InboxTables(NamedTuple):
    inbox: Table
    applied: Table
    attempts: Table


def inbox_tables(metadata: MetaData, prefix: str = "") -> InboxTables:
    """The inbox tables, named with ``prefix``: a second consumer group of one service
    that reads a stream another of its groups reads too keeps its own (event ids and
    bus entries are the same for both groups)."""
    names = (f"{prefix}inbox", f"{prefix}applied_sequences", f"{prefix}event_attempts")
    if names[0] in metadata.tables:
        return InboxTables(*(metadata.tables[name] for name in names))
    inbox = Table(
        names[0],
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    applied = Table(
        names[1],
        metadata,
        Column("subject_key", String(300), primary_key=True),
        Column("sequence", Integer, nullable=False),
    )
    # Deliveries that were parked (a gap, or NotYet) per bus entry: the bus's delivery
    # count includes them, and they must not count toward max_deliveries. Rows go when
    # the event applies, settles without effect, or is dead-lettered.
    attempts = Table(
        names[2],
        metadata,
        Column("stream", String(100), primary_key=True),
        Column("entry_id", String(64), primary_key=True),
        Column("event_id", String(64), nullable=False, index=True),
        Column("parks", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return InboxTables(inbox, applied, attempts)


def dialect_insert(table: Table, *, sqlite: bool) -> Any:
    """An INSERT of the database's dialect, for its ``on_conflict_do_*`` clauses."""
    return (sqlite_insert if sqlite else pg_insert)(table)
