"""Statements sent to the database together: on PostgreSQL in one round trip (one query string, its parameters
bound on this side), on SQLite one after another (an embedded database has no round trips to save).

A create, or a runner's step of a run, is several statements in one transaction. Sent one at a time through
SQLAlchemy, each cost a round trip, a wait on the handler thread and SQLAlchemy's own per-statement work; on
PostgreSQL that was most of a create's cost (issue 12 target 5). Here each statement is compiled once by SQLAlchemy
and run on the driver's cursor of the caller's transaction; the caller reads the results and decides whether the
transaction commits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Dialect, any_, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Values = Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""A statement's parameters by name; a sequence of them runs it once for each (executemany)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement compiled for one dialect: its SQL in the driver's paramstyle and how to order parameters."""

    sql: str
    names: tuple[str, ...] | None
    """Positional parameter names in order (SQLite's `?`); None where the driver takes them by name."""
    fixed: Mapping[str, Any]
    """Values the statement carries itself (an IN list's, a literal's bound value)."""

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for these values (names the statement binds; its own values fill the rest)."""
        if self.names is None:
            return {**self.fixed, **values}
        return tuple([values[n] if n in values else self.fixed[n] for n in self.names])


class Statements:
    """Statements compiled once per dialect, by identity: callers pass module-level (or cached) statements."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._prepared: dict[int, tuple[ClauseElement, Prepared]] = {}
        self._lock = threading.Lock()

    def __call__(self, stmt: ClauseElement) -> Prepared:
        found = self._prepared.get(id(stmt))
        if found is not None:
            return found[1]
        c = stmt.compile(dialect=self._dialect)
        assert isinstance(c, SQLCompiler)
        # Its IN lists of constants expanded into parameters of their own; the caller's values fill the rest.
        state = c.construct_expanded_state(c.construct_params(_check=False))
        names = tuple(state.positiontup or ()) if c.positional else None
        prepared = Prepared(state.statement, names, dict(state.parameters))
        with self._lock:  # the statement is kept with it, so its id is never reused for another
            self._prepared[id(stmt)] = (stmt, prepared)
        return prepared


def among(column: ColumnElement[int], dialect: str, name: str = "nums") -> ColumnElement[bool]:
    """`column` is one of the numbers bound as `name` (their value: `numbers`). An IN list has a parameter per
    number, so a new SQL text for each count, compiled anew; this is one text for any count: `= ANY(array)` on
    PostgreSQL, a JSON array through json_each on SQLite."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(name))))


def numbers(nums: Iterable[int], dialect: str) -> Any:
    """The value of an `among` parameter."""
    return list(nums) if dialect == "postgresql" else json.dumps(list(nums))


@dataclass(frozen=True, slots=True)
class Result:
    """What one statement of a batch gave."""

    rows: list[tuple[Any, ...]]
    rowcount: int


class Refused(Exception):
    """A statement of the batch broke a constraint (`cause`, the driver's error, says which): nothing after it
    ran, and the transaction must be rolled back (leaving the caller's `tx` with this exception does that)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(cause)
        self.cause = cause


def run(conn: Connection, steps: Sequence[tuple[Prepared, Values]], *, last: bool = False) -> list[Result]:
    """Run `steps` in order in `conn`'s transaction; their results, in the same order.

    `last`: nothing follows in this transaction but its commit, which on PostgreSQL then goes in the same round
    trip (the caller's `tx` finds nothing left to commit); SQLite commits when `tx` ends, as always.
    Raises Refused for the first statement that breaks a constraint; other driver errors propagate.
    """
    raw = conn.connection.driver_connection
    integrity = conn.dialect.loaded_dbapi.IntegrityError
    if conn.dialect.name == "postgresql":
        return _sent_together(raw, steps, integrity, last)
    return _in_turn(raw, steps, integrity)


def _execute(cursor: Any, prepared: Prepared, values: Values) -> None:
    if isinstance(values, Mapping):
        cursor.execute(prepared.sql, prepared.params(values))
    else:
        cursor.executemany(prepared.sql, [prepared.params(v) for v in values])


def _in_turn(raw: Any, steps: Sequence[tuple[Prepared, Values]], integrity: type[Exception]) -> list[Result]:
    out: list[Result] = []
    cursor = raw.cursor()
    try:
        for prepared, values in steps:
            try:
                _execute(cursor, prepared, values)
            except integrity as err:
                raise Refused(err) from err
            rows = list(cursor.fetchall()) if cursor.description is not None else []
            out.append(Result(rows, cursor.rowcount))
    finally:
        cursor.close()
    return out


def _sent_together(
    raw: Any, steps: Sequence[tuple[Prepared, Values]], integrity: type[Exception], commit: bool
) -> list[Result]:
    """Every statement bound on this side and sent as one query string (PostgreSQL's simple query protocol, which
    runs a string's statements in order and stops at the first error): one round trip, and little of the
    driver's Python per statement. psycopg's pipeline mode sent them together too, at twice the CPU a create."""
    from psycopg import ClientCursor  # PostgreSQL's driver: installed only with the postgres extra

    cursor = ClientCursor(raw)
    try:
        texts: list[str] = []
        sizes: list[int] = []  # how many statements of the string each step became
        for prepared, values in steps:
            rows = [values] if isinstance(values, Mapping) else list(values)
            texts += [cursor.mogrify(prepared.sql, prepared.params(v)) for v in rows]
            sizes.append(len(rows))
        if commit:
            texts.append("COMMIT")
        if not texts:
            return [Result([], 0) for _ in steps]
        try:
            cursor.execute(";\n".join(texts))
        except integrity as err:
            raise Refused(err) from err
        out: list[Result] = []
        for size in sizes:
            rows_out: list[tuple[Any, ...]] = []
            count = 0
            for _ in range(size):
                if cursor.description is not None:
                    rows_out += cursor.fetchall()
                count += max(cursor.rowcount, 0)
                cursor.nextset()
            out.append(Result(rows_out, count))
        return out
    finally:
        cursor.close()
