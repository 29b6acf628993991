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
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

_MISSING = object()


class _Compiled:
    """The SQL, and how a row's mapping becomes the driver's parameters."""

    def __init__(
        self,
        sql: str,
        positional: bool,
        columns: Sequence[tuple[str, Callable[[Any], Any] | None, Any]],
    ) -> None:
        self.sql = sql
        self.positional = positional
        # (column name, bind processor or None, Python default or _MISSING), bind order
        self.columns = tuple(columns)
        names = [name for name, _, _ in self.columns]
        self._take = itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
        self._processed = [
            (i, _remembering(process))
            for i, (_, process, _) in enumerate(self.columns)
            if process is not None
        ]

    def values(self, row: Mapping[str, Any], table: str) -> tuple[Any, ...]:
        try:
            values = self._take(row)
        except KeyError:
            values = self._with_defaults(row, table)
        if not self._processed:
            return tuple(values)
        processed = list(values)
        for i, process in self._processed:
            processed[i] = process(processed[i])
        return tuple(processed)

    def _with_defaults(self, row: Mapping[str, Any], table: str) -> tuple[Any, ...]:
        values = []
        for name, _, default in self.columns:
            value = row.get(name, default)
            if value is _MISSING:
                raise KeyError(f"{table}.{name} missing from a row")
            values.append(value)
        return tuple(values)


def _remembering(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process``, skipped when handed the object it was handed last: a batch's rows
    share one timestamp, and SQLite's datetime processor formats it at every row."""
    last: list[Any] = [_MISSING, None]

    def remembered(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        result = process(value)
        if value is None or isinstance(value, (str, int, float, datetime)):
            last[0], last[1] = value, result  # immutable: the same object, the same text
        return result

    return remembered


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
        params: list[Any] = [compiled.values(row, self.table.name) for row in rows]
        if not compiled.positional:
            names = [c[0] for c in compiled.columns]
            params = [dict(zip(names, values, strict=True)) for values in params]
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
