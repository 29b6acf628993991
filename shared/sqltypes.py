"""Column types that mean the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, stored in UTC and read back as an aware UTC datetime.

    SQLite keeps no offset (SQLAlchemy stores the wall time as text and reads it back
    naive) while PostgreSQL's ``timestamptz`` answers aware datetimes: this type writes
    UTC and answers aware UTC on both, so no caller converts. The DDL is that of
    ``DateTime(timezone=True)``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    # TypeDecorator's signatures: the conversion is the same for every dialect.
    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        # Naive values pass unchanged: they are UTC by the house rule (section 4).
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        return None if value is None else as_utc(value)
