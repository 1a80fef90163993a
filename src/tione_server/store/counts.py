"""Exact TotalCount without scanning every match (issue: fast at a million tasks).

- `task_counts` holds how many tasks each scope has per combination of the low-cardinality columns
  (status, charge type, charge status, creator, resource group). A query filtering only on those is
  counted by summing a few hundred rows, whatever the number of tasks.
- A scope's *version* changes whenever one of its tasks is added, removed, or changes a filtered column.
  Tags are written only together with their task's row (import replaces the row, create inserts it,
  delete removes it), so tag changes move the version too. Any other count (fuzzy names, ids, tag
  filters) is computed once and cached in this process with the version it was computed at, and served
  again only while the version is unchanged.

Database triggers keep both current for every writer (import, lifecycle actions, the runner, another
replica). Writers only ever *insert* into `count_deltas` (one row per change: a +1/-1 for a combination), so
they never wait on one another's counters and cannot deadlock over them; `fold` later adds those rows to
`task_counts` and their number to `scopes.gen`. Readers add the unfolded rows in the same statement, so every
answer is exact.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from sqlalchemy import Connection, inspect, text

from tione_server.store.schema import COUNTED

_COLS = ", ".join(COUNTED)
_FILTERED = ("scope_id", "name", *COUNTED)


def _values(prefix: str) -> str:
    return ", ".join(f"{prefix}.{c}" for c in COUNTED)


_SQLITE = [
    f"""CREATE TRIGGER tione_tasks_ai AFTER INSERT ON tasks BEGIN
      INSERT INTO count_deltas (scope_id, {_COLS}, d) VALUES (NEW.scope_id, {_values("NEW")}, 1);
    END""",
    f"""CREATE TRIGGER tione_tasks_ad AFTER DELETE ON tasks BEGIN
      INSERT INTO count_deltas (scope_id, {_COLS}, d) VALUES (OLD.scope_id, {_values("OLD")}, -1);
    END""",
    f"""CREATE TRIGGER tione_tasks_au AFTER UPDATE OF {", ".join(_FILTERED)} ON tasks
    WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _FILTERED)} BEGIN
      INSERT INTO count_deltas (scope_id, {_COLS}, d) VALUES (OLD.scope_id, {_values("OLD")}, -1);
      INSERT INTO count_deltas (scope_id, {_COLS}, d) VALUES (NEW.scope_id, {_values("NEW")}, 1);
    END""",
]

# PostgreSQL: statement-level triggers over transition tables, so a bulk write of N rows inserts one
# grouped delta per combination instead of N rows. A group whose delta sums to 0 (a rename) is kept: it
# still marks the change for the scope version.
_PG_DIFF = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in _FILTERED)
_PG_EMPTY = "SELECT * FROM tasks WHERE false"


def _pg_function(name: str, *, old: str = _PG_EMPTY, new: str = _PG_EMPTY) -> str:
    """A trigger function recording the rows `old` removed and the rows `new` added."""
    return f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
      WITH old_rows AS ({old}), new_rows AS ({new})
      INSERT INTO count_deltas (scope_id, {_COLS}, d)
        SELECT scope_id, {_COLS}, sum(d) FROM (
          SELECT scope_id, {_COLS}, -1 AS d FROM old_rows
          UNION ALL SELECT scope_id, {_COLS}, 1 AS d FROM new_rows
        ) AS changes GROUP BY scope_id, {_COLS};
      RETURN NULL;
    END $fn$"""


_PG = [
    _pg_function("tione_tasks_ins", new="SELECT * FROM inserted"),
    _pg_function("tione_tasks_del", old="SELECT * FROM deleted"),
    _pg_function(
        "tione_tasks_upd",
        old=f"SELECT o.* FROM before_rows o JOIN after_rows n ON o.num = n.num WHERE {_PG_DIFF}",
        new=f"SELECT n.* FROM before_rows o JOIN after_rows n ON o.num = n.num WHERE {_PG_DIFF}",
    ),
    """CREATE OR REPLACE TRIGGER tione_tasks_ins AFTER INSERT ON tasks
       REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION tione_tasks_ins()""",
    """CREATE OR REPLACE TRIGGER tione_tasks_del AFTER DELETE ON tasks
       REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION tione_tasks_del()""",
    """CREATE OR REPLACE TRIGGER tione_tasks_upd AFTER UPDATE ON tasks
       REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
       FOR EACH STATEMENT EXECUTE FUNCTION tione_tasks_upd()""",
]

_UPSERT = f"""INSERT INTO task_counts (scope_id, {_COLS}, n)
    SELECT scope_id, {_COLS}, sum(d) FROM {{source}} GROUP BY scope_id, {_COLS} ORDER BY scope_id, {_COLS}
    ON CONFLICT (scope_id, {_COLS}) DO UPDATE SET n = task_counts.n + excluded.n"""
_ADD_GEN = """UPDATE scopes SET gen = gen + agg.c
    FROM (SELECT scope_id, count(*) AS c FROM {source} GROUP BY scope_id) AS agg WHERE scopes.id = agg.scope_id"""

# PostgreSQL: one statement (one snapshot) deletes the rows and applies them to both the counts and the scope
# versions, so a delta committed during the fold is either moved whole or left whole for the next one.
_PG_FOLD = [
    "WITH moved AS (DELETE FROM count_deltas WHERE id <= :upto RETURNING *), "
    "counted AS (" + _UPSERT.replace("{source}", "moved") + " RETURNING 1) " + _ADD_GEN.replace("{source}", "moved"),
]
# SQLite has one writer at a time: inside the fold's write transaction nothing else can commit.
_SQLITE_FOLD = [
    _UPSERT.replace("{source}", "(SELECT * FROM count_deltas WHERE id <= :upto) AS moved WHERE true"),
    _ADD_GEN.replace("{source}", "(SELECT scope_id FROM count_deltas WHERE id <= :upto) AS moved"),
    "DELETE FROM count_deltas WHERE id <= :upto",
]


def install(conn: Connection, dialect: str, *, upgrading_from: int | None) -> None:
    """Create the triggers (idempotent); when upgrading an older database, add `scopes.gen` and fill
    `task_counts` from the tasks already stored."""
    if upgrading_from is not None and upgrading_from < 3:
        if "gen" not in {c["name"] for c in inspect(conn).get_columns("scopes")}:
            conn.exec_driver_sql("ALTER TABLE scopes ADD COLUMN gen BIGINT NOT NULL DEFAULT 0")
        conn.exec_driver_sql("DELETE FROM task_counts")
        conn.exec_driver_sql("DELETE FROM count_deltas")
        conn.exec_driver_sql(
            f"INSERT INTO task_counts (scope_id, {_COLS}, n) "
            f"SELECT scope_id, {_COLS}, count(*) FROM tasks GROUP BY scope_id, {_COLS}"
        )
    if dialect != "postgresql":
        # SQLite has no CREATE OR REPLACE TRIGGER: drop first, so a server always runs its own definitions.
        for name in ("tione_tasks_ai", "tione_tasks_ad", "tione_tasks_au"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    for statement in _PG if dialect == "postgresql" else _SQLITE:
        conn.execute(text(statement))


def fold(conn: Connection, dialect: str) -> None:
    """Move recorded deltas into `task_counts` and changes into `scopes.gen`, in the caller's transaction.

    Readers add unfolded rows themselves, so folding changes no answer; it keeps what they add small.
    """
    if dialect == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7468797)")  # two folds never overlap
    upto = conn.execute(text("SELECT max(id) FROM count_deltas")).scalar()
    if upto is None:
        return
    for statement in _PG_FOLD if dialect == "postgresql" else _SQLITE_FOLD:
        conn.execute(text(statement), {"upto": upto})
    conn.execute(text("DELETE FROM task_counts WHERE n = 0"))


class CountCache:
    """Counts computed by scanning, remembered with the scope version they are exact for (bounded, LRU)."""

    def __init__(self, size: int = 4096) -> None:
        self._entries: OrderedDict[tuple[int, Hashable], tuple[int, int]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, scope_id: int, key: Hashable, version: int) -> int | None:
        """The cached count for this query, if it was computed at `version`."""
        with self._lock:
            entry = self._entries.get((scope_id, key))
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end((scope_id, key))
            return entry[1]

    def latest(self, scope_id: int, key: Hashable) -> int | None:
        """The last count remembered for this query, whatever its version: a guess, never an answer."""
        entry = self._entries.get((scope_id, key))
        return None if entry is None else entry[1]

    def put(self, scope_id: int, key: Hashable, version: int, count: int) -> None:
        """Remember a count computed at `version`."""
        with self._lock:
            self._entries[(scope_id, key)] = (version, count)
            self._entries.move_to_end((scope_id, key))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
