"""The ``audit_log`` table in the gateway's SQLite database (a *sync* engine: the
writer runs in a worker thread, the CLI in its own process)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

metadata = sa.MetaData()

audit_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False),  # RFC 3339 UTC, sorts as text
    sa.Column("client_id", sa.String(64), nullable=True),
    sa.Column("customer_id", sa.String(100), nullable=True),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("correlation_id", sa.String(128), nullable=True),
    sa.Index("ix_audit_log_client", "client_id", "id"),
    sa.Index("ix_audit_log_at", "at"),
)


_INSERT = (
    "INSERT INTO audit_log (at, client_id, customer_id, method, route, path, status,"
    " latency_ms, correlation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One call as the gateway saw it."""

    at: float  # unix seconds
    client_id: str | None
    customer_id: str | None
    method: str
    route: str
    path: str
    status: int
    latency_ms: float
    correlation_id: str | None


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sqlite_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(f"the audit log needs a sqlite URL for now, got {parsed.drivername!r}")
    return parsed.set(drivername="sqlite").render_as_string(hide_password=False)


class AuditStore:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(_sqlite_url(url), connect_args={"timeout": 30})

        @sa.event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        metadata.create_all(self.engine)

    def insert(self, entries: Sequence[AuditEntry]) -> None:
        rows = [
            (
                rfc3339(entry.at),
                entry.client_id,
                entry.customer_id,
                entry.method,
                entry.route,
                entry.path[:500],
                entry.status,
                round(entry.latency_ms, 3),
                entry.correlation_id,
            )
            for entry in entries
        ]
        with self.engine.begin() as conn:  # plain executemany: no per-row compilation
            conn.exec_driver_sql(_INSERT, rows)

    def query(
        self,
        *,
        client_id: str | None = None,
        status: int | None = None,
        since: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
        query = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if client_id is not None:
            query = query.where(audit_table.c.client_id == client_id)
        if status is not None:
            query = query.where(audit_table.c.status == status)
        if since is not None:
            query = query.where(audit_table.c.at >= since)
        if before_id is not None:
            query = query.where(audit_table.c.id < before_id)
        with self.engine.connect() as conn:
            return [{str(k): v for k, v in row._mapping.items()} for row in conn.execute(query)]

    def close(self) -> None:
        self.engine.dispose()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, *, now: float | None = None) -> str:
    """``2026-11-23T10:00:00Z`` (any RFC 3339 / ISO 8601 time, a date alone) or a
    relative ``30s``, ``15m``, ``2h``, ``7d``; returns the stored text form."""
    import time

    raw = text.strip()
    if raw[:-1].isdigit() and raw[-1:] in _UNITS:
        return rfc3339((now or time.time()) - int(raw[:-1]) * _UNITS[raw[-1]])
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (e.g. 2026-11-23T10:00:00Z or 15m)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return rfc3339(moment.timestamp())
