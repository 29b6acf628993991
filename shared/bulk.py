"""Multi-row INSERTs for hot write paths (decision 0018).

``conn.execute(insert(table), rows)`` builds each row's parameters through the compiled
statement (``construct_params``, then every column's bind processor): about 10 µs a row
on SQLite, more than the driver takes to insert it. ``BulkInsert`` compiles the INSERT
once per dialect, resolves the columns' bind processors once, and hands the driver
plain positional rows through ``exec_driver_sql`` (one ``executemany``). The SQL,
the types' conversions (a datetime to SQLite's text form, JSON, ...) and the Python
scalar defaults are SQLAlchemy's own; only the per-row bookkeeping is skipped."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positional: bool
    # (column name, bind processor or None, Python default or _MISSING), in bind order
    columns: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...]


class BulkInsert:
    """An INSERT of ``columns`` into ``table``, run for many rows at once. A row may
    leave out a column that has a scalar Python default; any other missing column is a
    KeyError (no silent NULL)."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        unknown = set(columns) - set(table.c.keys())
        if unknown:
            raise ValueError(f"{table.name} has no columns {sorted(unknown)}")
        self.table = table
        self.names = tuple(columns)
        self._by_dialect: dict[str, _Compiled] = {}

    async def __call__(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        compiled = self._compiled(conn.dialect)
        params: list[Any] = []
        for row in rows:
            values = []
            for name, process, default in compiled.columns:
                value = row.get(name, default)
                if value is _MISSING:
                    raise KeyError(f"{self.table.name}.{name} missing from a row")
                values.append(process(value) if process is not None else value)
            params.append(
                tuple(values)
                if compiled.positional
                else dict(zip((c[0] for c in compiled.columns), values, strict=True))
            )
        await conn.exec_driver_sql(compiled.sql, params)

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        statement = insert(self.table).values(
            {name: bindparam(name, type_=self.table.c[name].type) for name in self.names}
        )
        compiled = statement.compile(dialect=dialect)
        order = list(compiled.positiontup or self.names)
        columns = []
        for name in order:
            column = self.table.c[name]
            default = column.default
            scalar = default.arg if default is not None and default.is_scalar else _MISSING  # type: ignore[attr-defined]
            process = column.type.dialect_impl(dialect).bind_processor(dialect)
            columns.append((name, process, scalar))
        return _Compiled(compiled.string, bool(compiled.positional), tuple(columns))
