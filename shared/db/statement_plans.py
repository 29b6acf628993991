"""SQLite: the writer's statements run on ``sqlite3`` from a plan, without
SQLAlchemy's per-execution set-up.

A Core statement's execution through ``Connection.execute`` builds an execution
context, a parameter dictionary, a positional list, a ``CursorResult`` and its
metadata each time: about two thirds of a statement's cost on SQLite (decision 0051).
A plan is made at the first run of a statement shape (SQLAlchemy's own cache key and
the parameter names) from SQLAlchemy's own compiled form, kept in its compiled cache:
the SQL, where each positional value comes from (the call's parameters, the statement's
bound values, a constant) with its bind processor, and the result's keys and result
processors. Running it takes the values, calls ``sqlite3`` and wraps the rows in an
``IteratorResult`` (rows, ``scalar()``, ``mappings()``, ``rowcount``).

Only what the plan reproduces exactly is planned: no executemany with RETURNING or IN
lists (a plain executemany is planned), no literal-execute
parameters, no empty or tuple IN lists (an IN list's SQL is kept per length), no
Python-side column defaults, no execution options, no textual SQL or result columns;
anything else (and any statement SQLAlchemy cannot cache) runs the usual way. Errors are SQLAlchemy's: ``sqlite3``'s exceptions are wrapped as
``Connection.execute`` wraps them (an ``IntegrityError`` stays one)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import exc
from sqlalchemy.engine import Connection, IteratorResult
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.sql import compiler
from sqlalchemy.sql.base import Executable

# What a value's source is: the call's parameters (by key, then by bind name), the
# statement's bound values (an index into its cache key's bind parameters), or the
# compiled statement's own bind parameter.
_Bind = tuple[str, str, int, bool, Any, Any, bool, bool]


@dataclass(frozen=True, slots=True)
class Plan:
    sql: str
    # (key, name, index, callable, own param, processor, required, expanding)
    binds: tuple[_Bind, ...]
    metadata: SimpleResultMetaData | None  # None: no rows (DML without RETURNING)
    expanding: tuple[str, ...]  # the names of the IN lists' parameters, in order
    sql_for: dict[tuple[int, ...], str]  # the SQL for the IN lists' lengths

    def sql_with(self, lengths: tuple[int, ...]) -> str:
        sql = self.sql_for.get(lengths)
        if sql is None:
            sql = self.sql
            for name, length in zip(self.expanding, lengths, strict=True):
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * length))
            if len(self.sql_for) < _MOST_SHAPES:
                self.sql_for[lengths] = sql
        return sql


class PlannedResult(IteratorResult[Any]):
    """An ``IteratorResult`` with the cursor's ``rowcount``, as a ``CursorResult`` has."""

    def __init__(self, metadata: SimpleResultMetaData, rows: list[Any], rowcount: int) -> None:
        super().__init__(metadata, iter(rows))
        self.rowcount = rowcount


NO_ROWS = SimpleResultMetaData([])
_UNPLANNED = object()
# Per dialect (each engine has its own): a statement shape's plan or _UNPLANNED.
_plans: WeakKeyDictionary[Any, dict[Any, Any]] = WeakKeyDictionary()
_MEMO = "_tally_plan"
_MOST_SHAPES = 2000  # a multi-row VALUES is a shape per row count: bounded, then begun anew


def run_planned(
    sync: Connection, driver: sqlite3.Connection, statement: Any, parameters: Any
) -> PlannedResult | None:
    """Runs ``statement`` from its plan on ``driver`` (inside ``sync``'s transaction);
    a list of parameter sets is an executemany, as SQLAlchemy runs it. None when it is
    not planned (the caller runs it the usual way)."""
    if not isinstance(statement, Executable) or statement._execution_options:
        return None
    sets = _parameter_sets(parameters)
    if sets is None or sync._execution_options or not transaction_active(sync):
        return None
    parameters, many = sets
    elem_key = getattr(statement, "_generate_cache_key", _no_key)()
    if elem_key is None or elem_key[2]:
        return None
    plan = _plan_of(sync, statement, elem_key[0], parameters[0] if many else parameters, many)
    if plan is None:
        return None
    if many:
        return _run_many(sync, driver, plan, elem_key[1], parameters)
    found = _values(plan, elem_key[1], parameters)
    if found is None:
        return None
    values, lengths = found
    sql = plan.sql_with(lengths) if lengths else plan.sql
    try:
        _, rowcount, _, rows = run_statement(driver, sql, values, False)
    except sqlite3.Error as error:
        raise wrapped_error(sync, sql, values, error) from error
    return PlannedResult(plan.metadata or NO_ROWS, rows, rowcount)


def run_statement(
    conn: sqlite3.Connection, sql: str, params: Any, many: bool
) -> tuple[Any, int, int | None, list[Any]]:
    """One statement on ``conn`` (an executemany when ``many``): its description,
    rowcount, lastrowid and rows. The driver's thread runs it for aiosqlite's adapter;
    the loop runs it for a plan."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        elif params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _parameter_sets(parameters: Any) -> tuple[Any, bool] | None:
    """(parameters, many): None, a dict, or a list of dicts (many unless it has one)."""
    if isinstance(parameters, list):
        if not parameters or not all(isinstance(p, dict) for p in parameters):
            return None
        if len(parameters) == 1:  # SQLAlchemy runs a list of one as a single execute
            return parameters[0], False
        return parameters, True
    if parameters is not None and not isinstance(parameters, dict):
        return None
    return parameters, False


def _plan_of(sync: Connection, statement: Any, key: Any, first: Any, many: bool) -> Plan | None:
    names = tuple(sorted(first)) if first else ()
    dialect = sync.dialect
    # The last plan a statement ran from is kept on it: hashing its cache key for the
    # table costs 1-2 µs a statement. It is checked by identity (a statement derived
    # from this one copies its attributes but has a cache key of its own).
    memo = statement.__dict__.get(_MEMO)
    if memo is not None and memo[0] is key and memo[1] is dialect and memo[2] == (names, many):
        plan = memo[3]
    else:
        shape = (key, names, many)
        plans = _plans.get(dialect)
        if plans is None or len(plans) >= _MOST_SHAPES:
            plans = _plans[dialect] = {}
        plan = plans.get(shape)
        if plan is None:
            plan = plans[shape] = _plan(sync, statement, list(names), many)
        statement.__dict__[_MEMO] = (key, dialect, (names, many), plan)
    return None if plan is _UNPLANNED else plan


def _run_many(
    sync: Connection, driver: sqlite3.Connection, plan: Plan, extracted: Any, sets: list[Any]
) -> PlannedResult | None:
    rows = []
    for parameters in sets:
        found = _values(plan, extracted, parameters)
        if found is None:
            return None
        rows.append(found[0])
    try:
        _, rowcount, _, _ = run_statement(driver, plan.sql, rows, True)
    except sqlite3.Error as error:
        raise wrapped_error(sync, plan.sql, rows, error) from error
    return PlannedResult(NO_ROWS, [], rowcount)


def wrapped_error(
    sync: Connection, sql: str, values: Any, error: sqlite3.Error
) -> exc.StatementError:
    """``sqlite3``'s error as ``Connection.execute`` raises it."""
    dialect = sync.dialect
    return exc.DBAPIError.instance(sql, values, error, dialect.loaded_dbapi.Error, dialect=dialect)


def _no_key() -> None:
    return None


def transaction_active(sync: Connection) -> bool:
    """SQLAlchemy's transaction on ``sync`` is open and usable (a failed savepoint
    block or flush leaves it inactive: SQLAlchemy's way then raises its error)."""
    transaction, nested = sync._transaction, sync._nested_transaction
    return (
        transaction is not None and transaction.is_active and (nested is None or nested.is_active)
    )


def _values(
    plan: Plan, extracted: Any, parameters: Any
) -> tuple[list[Any], tuple[int, ...]] | None:
    """The positional values, and the lengths of the IN lists (None: not planned)."""
    values: list[Any] = []
    lengths: list[int] = []
    for key, name, index, is_callable, own, processor, required, expanding in plan.binds:
        if parameters and key in parameters:
            value = parameters[key]
        elif parameters and name in parameters:
            value = parameters[name]
        elif required:
            return None  # SQLAlchemy's way says which value is missing
        else:
            source = extracted[index] if index >= 0 else own
            value = source.effective_value if is_callable else source.value
        if expanding:
            if not value or isinstance(value, (str, bytes)):
                return None  # an empty IN renders differently
            lengths.append(len(value))
            values.extend(value if processor is None else map(processor, value))
        else:
            values.append(value if processor is None else processor(value))
    return values, tuple(lengths)


def _plan(sync: Connection, statement: Any, names: list[str], many: bool) -> Any:
    dialect = sync.dialect
    compiled, _, collected, _ = statement._compile_w_cache(
        dialect=dialect,
        compiled_cache=sync.engine._compiled_cache,
        column_keys=names,
        for_executemany=many,
        schema_translate_map=None,
        linting=dialect.compiler_linting | compiler.WARN_LINTING,
    )
    if (
        collected
        or not isinstance(compiled, compiler.SQLCompiler)
        or not compiled.positional
        or compiled.isplaintext
        or compiled.cache_key is None
        or compiled.literal_execute_params
        or compiled.escaped_bind_names
        or any(not p.expanding or p.type._is_tuple_type for p in compiled.post_compile_params)
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.schema_translate_map
        or compiled._textual_ordered_columns
        or compiled._ad_hoc_textual
        or compiled._loose_column_name_matching
        or (compiled._result_columns and not compiled._ordered_columns)
        or (
            many
            and (
                compiled._result_columns
                or compiled._insertmanyvalues
                or compiled.post_compile_params
            )
        )
    ):
        return _UNPLANNED
    keys = [column[0] for column in compiled._result_columns]
    dml = compiled.isinsert or compiled.isupdate or compiled.isdelete
    if len(set(keys)) != len(keys) or not (keys or dml):
        return _UNPLANNED
    index_of: dict[Any, int] = {}
    if compiled._cache_key_bind_match is not None:
        by_original = compiled._cache_key_bind_match[0]
        for index, original in enumerate(compiled.cache_key[1]):
            for bind in by_original.get(original, ()):
                index_of[bind] = index
    param_of = {name: bind for bind, name in compiled.bind_names.items()}
    processors = compiled._bind_processors
    binds: list[_Bind] = []
    for name in compiled.positiontup or ():
        bind = param_of[name]
        binds.append(
            (
                bind.key,
                name,
                index_of.get(bind, -1),
                bool(bind.callable),
                bind,
                processors.get(name),
                bool(bind.required),
                bool(bind.expanding),
            )
        )
    metadata = None
    if keys:
        metadata = SimpleResultMetaData(
            keys,
            extra=[column[2] for column in compiled._result_columns],
            _processors=[
                column[3]._cached_result_processor(dialect, None)
                for column in compiled._result_columns
            ],
        )
    expanding = tuple(bind[1] for bind in binds if bind[7])
    if len(set(expanding)) != len(expanding):
        return _UNPLANNED
    return Plan(compiled.string, tuple(binds), metadata, expanding, {})
