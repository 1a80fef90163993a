"""Schema version 5: a change feed on runs, so the runner reads what changed instead of every live run each tick.

Every insert or update of a `runs` row stamps its `seq` column, whoever writes it (an API request, the runner,
another replica), by a trigger. A reader keeps a cursor and asks for the rows stamped since (`WHERE seq >= c`):

- SQLite has one writer at a time, so `seq` is a counter (in `meta`) counted up by each write: commit order, and
  a reader's next cursor is the largest `seq` it saw plus one.
- PostgreSQL commits concurrent transactions in any order, so `seq` is the writing transaction's id
  (`txid_current()`), and the next cursor is the oldest transaction still running when the read began
  (`txid_snapshot_xmin`): a row committed later by a transaction older than the read is still at or above it. A
  row may be read twice this way (never missed), which the runner does not mind.

Deleted runs leave no row to read: the runner learns of them when its own write to one finds it gone, and from
its periodic sweep (runner.py).
"""

from __future__ import annotations

from sqlalchemy import Connection, func, inspect, select, text

VERSION = 5

_NEXT = """UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'runs_seq';
      UPDATE runs SET seq = (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'runs_seq') WHERE num = NEW.num;"""
_SQLITE = [
    f"CREATE TRIGGER tione_runs_seq_ai AFTER INSERT ON runs BEGIN {_NEXT} END",
    f"CREATE TRIGGER tione_runs_seq_au AFTER UPDATE ON runs WHEN NEW.seq IS OLD.seq BEGIN {_NEXT} END",
]
# The counter lives in `meta`, not in max(seq): deleting the run written last must not let the next write reuse its
# seq, which a reader's cursor is already past. The inner UPDATE does not fire the update trigger again: SQLite's
# recursive triggers are off by default, and the WHEN clause skips a write that set seq itself.
_SQLITE_COUNTER = """INSERT INTO meta (key, value)
    SELECT 'runs_seq', (SELECT CAST(coalesce(max(seq), 0) AS TEXT) FROM runs)
    WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'runs_seq')"""
CURSOR_SQLITE = "SELECT CAST(value AS INTEGER) + 1 FROM meta WHERE key = 'runs_seq'"
"""Where the feed stands on SQLite: one past the last seq handed out."""

_PG = [
    """CREATE OR REPLACE FUNCTION tione_runs_seq() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      NEW.seq := txid_current();
      RETURN NEW;
    END $fn$""",
    """CREATE OR REPLACE TRIGGER tione_runs_seq BEFORE INSERT OR UPDATE ON runs
       FOR EACH ROW EXECUTE FUNCTION tione_runs_seq()""",
]


def install(conn: Connection, dialect: str, *, upgrading_from: int | None) -> None:
    """Create the triggers (idempotent); a database older than version 5 first gains `runs.seq`, `runs.scope_id`
    (its task's scope, for the quota count) and their indexes."""
    if upgrading_from is not None and upgrading_from < VERSION:
        columns = {c["name"] for c in inspect(conn).get_columns("runs")}
        if "seq" not in columns:
            conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN seq BIGINT NOT NULL DEFAULT 0")
        if "scope_id" not in columns:  # the quota's index (store/lifecycle.py), filled before the triggers exist
            conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN scope_id INTEGER NOT NULL DEFAULT 0")
            conn.exec_driver_sql(
                "UPDATE runs SET scope_id = (SELECT scope_id FROM tasks WHERE tasks.num = runs.task_num)"
            )
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_runs_seq ON runs (seq)")
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_runs_scope ON runs (scope_id, live)")
    if dialect != "postgresql":
        for name in ("tione_runs_seq_ai", "tione_runs_seq_au"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        conn.execute(text(_SQLITE_COUNTER))
    for statement in _PG if dialect == "postgresql" else _SQLITE:
        conn.execute(text(statement))


HORIZON = select(func.txid_snapshot_xmin(func.txid_current_snapshot()))
"""PostgreSQL: the next cursor, read before the rows (the oldest transaction still running: every row stamped
below it is committed or rolled back). SQLite needs none: the next cursor is one past the largest `seq` read."""
