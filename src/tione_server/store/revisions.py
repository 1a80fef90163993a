"""Schema version 5: every task row carries `rev`, a random number that changes with every write to the row.

Issue 12: the list keeps each item rendered, and needs to know whether a row changed without reading it whole
(reading 50 whole rows was most of a page's cost). `rev` is that stamp: a new row gets a random one (task_row), and
a trigger gives an updated row a new random one unless the update set it itself. Random rather than counted, so a
task replaced by a re-import (deleted, then inserted under the same number) never shows an old rendering; two
revisions of one row agree with odds of 2^-62. A database of an older version gains the column (0 for every row
until it is next written) and the trigger when a newer server opens it.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Connection, inspect
from sqlalchemy.schema import CreateColumn

from tione_server.store.schema import tasks

VERSION = 5
BITS = 62
"""Revisions are in [0, 2^62): positive on both databases, whatever their random functions give."""

_SQLITE = [
    "DROP TRIGGER IF EXISTS tione_tasks_rev",
    f"""CREATE TRIGGER tione_tasks_rev AFTER UPDATE ON tasks WHEN NEW.rev IS OLD.rev BEGIN
      UPDATE tasks SET rev = random() & {(1 << BITS) - 1} WHERE num = NEW.num;
    END""",
]
_PG = [
    f"""CREATE OR REPLACE FUNCTION tione_tasks_rev() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      IF NEW.rev = OLD.rev THEN
        NEW.rev := floor(random() * {float(1 << BITS)})::bigint;
      END IF;
      RETURN NEW;
    END $fn$""",
    """CREATE OR REPLACE TRIGGER tione_tasks_rev BEFORE UPDATE ON tasks
       FOR EACH ROW EXECUTE FUNCTION tione_tasks_rev()""",
]


def new_rev() -> int:
    """The revision of a row being inserted."""
    return secrets.randbits(BITS)


def install(conn: Connection, dialect: str, *, upgrading_from: int | None) -> None:
    """Create the trigger (idempotent); on a database older than version 5, first add `tasks.rev`."""
    upgrading = upgrading_from is not None and upgrading_from < VERSION
    if upgrading and "rev" not in {c["name"] for c in inspect(conn).get_columns("tasks")}:
        column = CreateColumn(tasks.c.rev).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE tasks ADD COLUMN {column}")
    for statement in _PG if dialect == "postgresql" else _SQLITE:
        conn.exec_driver_sql(statement)
