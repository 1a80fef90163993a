"""Statements sent to the database together: on PostgreSQL in one round trip (psycopg's pipeline mode), on SQLite
one after another (an embedded database has no round trips to save).

A create, or a runner's step of a run, is several statements in one transaction. Sent one at a time through
SQLAlchemy, each cost a round trip, a wait on the handler thread and SQLAlchemy's own per-statement work; on
PostgreSQL that was most of a create's cost (issue 12 target 5). Here each statement is compiled once by SQLAlchemy
and run on the driver's cursor of the caller's transaction; the caller reads the results and decides whether the
transaction commits.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
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


@dataclass(frozen=True, slots=True)
class Result:
    """What one statement of a batch gave."""

    rows: list[tuple[Any, ...]]
    rowcount: int


class Refused(Exception):
    """A statement of the batch broke a constraint (`index` says which): nothing after it ran, and the
    transaction must be rolled back (leaving the caller's `tx` with this exception does that)."""

    def __init__(self, index: int, cause: Exception) -> None:
        super().__init__(index, cause)
        self.index = index
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
        return _pipelined(raw, steps, integrity, last)
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
        for i, (prepared, values) in enumerate(steps):
            try:
                _execute(cursor, prepared, values)
            except integrity as err:
                raise Refused(i, err) from err
            rows = list(cursor.fetchall()) if cursor.description is not None else []
            out.append(Result(rows, cursor.rowcount))
    finally:
        cursor.close()
    return out


def _pipelined(
    raw: Any, steps: Sequence[tuple[Prepared, Values]], integrity: type[Exception], commit: bool
) -> list[Result]:
    from psycopg.errors import PipelineAborted  # PostgreSQL's driver: installed only with the postgres extra

    cursors: list[Any] = []
    failed: Exception | None = None
    with raw.pipeline() as pipeline:
        try:
            for prepared, values in steps:
                cursor = raw.cursor()
                cursors.append(cursor)
                _execute(cursor, prepared, values)  # queued; may read earlier results as it sends, and raise
            if commit:
                raw.commit()  # queued behind them, and synced: still one round trip
            else:
                pipeline.sync()  # one round trip; raises the first statement's failure, and no later statement ran
        except integrity as err:
            failed = err
            with contextlib.suppress(PipelineAborted):  # the statements queued after it: none ran
                pipeline.sync()
    if failed is not None:
        # The failed statement is the first without a result of its own.
        index = next((i for i, c in enumerate(cursors) if c.pgresult is None), len(cursors) - 1)
        raise Refused(index, failed) from failed
    out = [Result(list(c.fetchall()) if c.description is not None else [], c.rowcount) for c in cursors]
    for cursor in cursors:
        cursor.close()
    return out
