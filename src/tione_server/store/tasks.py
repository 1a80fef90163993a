"""Tasks: the rows DescribeTrainingTasks lists and counts, written in bulk by `tione-server import`.

The one mapping between a Task and its `tasks` row (`task_row`, `task_of`) lives here, and so does the one
lookup of a scope's task by Id (`Tasks.find`), which the lifecycle requests use inside their transactions.
Lifecycle writes are in store/lifecycle.py; the list's reads in store/pages.py; the filters and counts as SQL in
store/query.py and store/counts.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from sqlalchemy import Connection, RowMapping, Table, bindparam, delete, select, update

from tione_server.models import Scope, Task
from tione_server.store import counts
from tione_server.store.database import Database
from tione_server.store.revisions import new_rev
from tione_server.store.schema import UNSET_TIME, runs, scopes, task_tags, tasks
from tione_server.store.scopes import Scopes

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder(dict[str, Any]).decode
BATCH = 2000
TASK_COLUMNS = tuple(c.name for c in tasks.c)


class IdElsewhere(Exception):
    """A task Id being put is already another scope's, or a task's created here (issue 7 E13): replacing it
    would move a task out of its owner's sight, or turn a task with runs into history."""

    def __init__(self, task_id: str, owner: Scope | None) -> None:
        super().__init__(task_id)
        self.task_id = task_id
        self.owner = owner
        """The scope holding the Id; None when the holder is a task created on this server."""


def task_row(t: Task, scope_id: int) -> dict[str, Any]:
    """The `tasks` row of a Task (its tags are rows of `task_tags`, and also kept in `doc`)."""
    doc = dict(t.doc)
    doc["Tags"] = [[k, v] for k, v in t.tags]
    return {
        "num": t.num,
        "id": t.id,
        "scope_id": scope_id,
        "app_id": t.app_id,
        "name": t.name,
        "creator": t.creator,
        "charge_type": t.charge_type,
        "charge_status": t.charge_status,
        "status": t.status,
        "resource_group_id": t.resource_group_id,
        "create_time": t.create_time,
        "update_time": t.update_time,
        "start_time": UNSET_TIME if t.start_time is None else t.start_time,
        "end_time": UNSET_TIME if t.end_time is None else t.end_time,
        "doc": _json_encode(doc).decode(),
        "rev": new_rev(),
    }


def task_of(m: Mapping[str, Any] | RowMapping, scope: Scope) -> Task:
    """The Task of a `tasks` row (any mapping with its columns)."""
    doc = _json_decode(m["doc"])
    tags = [(k, v) for k, v in doc.pop("Tags", [])]
    return Task(
        id=m["id"],
        scope=scope,
        app_id=m["app_id"],
        name=m["name"],
        creator=m["creator"],
        charge_type=m["charge_type"],
        charge_status=m["charge_status"],
        status=m["status"],
        resource_group_id=m["resource_group_id"],
        create_time=m["create_time"],
        update_time=m["update_time"],
        start_time=None if m["start_time"] == UNSET_TIME else m["start_time"],
        end_time=None if m["end_time"] == UNSET_TIME else m["end_time"],
        tags=tags,
        doc=doc,
        doc_json=m["doc"],
    )


def patch_doc(conn: Connection, task_num: int, patch: dict[str, Any]) -> None:
    """Merge `patch` into the task's stored wire fields (`doc`), in the caller's transaction."""
    raw = conn.execute(_DOC_OF, {"num": task_num}).scalar()
    if raw is None:
        return
    conn.execute(SET_DOC, {"w_num": task_num, "new_doc": patched(raw, patch)})


def patched(doc: str, patch: dict[str, Any]) -> str:
    """A stored doc's text with `patch` merged in."""
    merged = _json_decode(doc)
    merged.update(patch)
    return _json_encode(merged).decode()


_DOC_OF = select(tasks.c.doc).where(tasks.c.num == bindparam("num"))
SET_DOC = update(tasks).where(tasks.c.num == bindparam("w_num")).values(doc=bindparam("new_doc"))
"""The statements patching a doc, built once (the runner patches a task's doc on most of its transitions)."""


def _copy(conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY rows (columns in table order) into a PostgreSQL table, in the connection's transaction."""
    if not rows:
        return
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {table.name} ({', '.join(c.name for c in table.c)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


def _positional_insert(db: Database, table: Table) -> str:
    """`INSERT INTO table (all columns) VALUES (...)` in the driver's own placeholder style, columns in table order."""
    style = "?" if db.engine.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(c.name for c in table.c)
    return f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([style] * len(table.c))})"


class Tasks:
    """The `tasks` and `task_tags` tables: import, lookup by Id, and list pages with exact TotalCount."""

    def __init__(self, db: Database, scopes: Scopes) -> None:
        self._db = db
        self._scopes = scopes
        self._insert_task_sql = _positional_insert(db, tasks)
        self._insert_tag_sql = _positional_insert(db, task_tags)

    # -- reads ------------------------------------------------------------------------------------

    def find(self, conn: Connection, scope: Scope, task_id: str) -> Task | None:
        """The scope's task with this Id, or None, on the caller's connection (inside its transaction)."""
        sid = self._scopes.id(conn, scope)
        if sid is None:
            return None
        row = conn.execute(select(*tasks.c).where(tasks.c.id == task_id, tasks.c.scope_id == sid)).first()
        return None if row is None else task_of(row._mapping, scope)

    def get(self, scope: Scope, task_id: str) -> Task | None:
        """The scope's task with this Id, or None."""
        with self._db.engine.connect() as conn:
            return self.find(conn, scope, task_id)

    def fold_counts(self) -> None:
        """Fold recorded count changes (counts.fold); the runner calls it every tick, imports when done."""
        with self._db.tx() as conn:
            counts.fold(conn, self._db.dialect)

    # -- import -----------------------------------------------------------------------------------

    def put(self, items: Iterable[Task], progress: Callable[[int], object] | None = None) -> int:
        """Insert tasks, replacing any stored task with the same Id, all in one transaction; `progress` is told
        the size of every batch written.

        Raises IdElsewhere (and puts nothing) when an Id is held in another scope or by a task created here.
        """
        count = 0
        with self._db.tx() as conn, self._bulk_cache(conn):
            scope_id = self._scopes.creating(conn)
            batch: list[Task] = []
            for task in items:
                batch.append(task)
                if len(batch) >= BATCH:
                    self._write_batch(conn, scope_id, batch)
                    count += len(batch)
                    if progress is not None:
                        progress(len(batch))
                    batch = []
            if batch:
                self._write_batch(conn, scope_id, batch)
                count += len(batch)
                if progress is not None:
                    progress(len(batch))
        self.fold_counts()
        return count

    @contextmanager
    def _bulk_cache(self, conn: Connection) -> Iterator[None]:
        """On SQLite, a page cache of up to 512 MB for this connection while it imports: with the default
        2 MB the index pages of a million-task import are spilled and rewritten over and over (131 s vs 117 s
        for 1M tasks). It grows only as pages are used, and is given back when the import ends."""
        if self._db.dialect != "sqlite":
            yield
            return
        conn.exec_driver_sql("PRAGMA cache_size=-524288")
        try:
            yield
        finally:
            conn.exec_driver_sql("PRAGMA cache_size=-2000")

    def _write_batch(self, conn: Connection, scope_id: Callable[[Scope], int], items: Sequence[Task]) -> None:
        batch = [*{t.num: t for t in items}.values()]  # a repeated Id: the last one wins
        nums = [t.num for t in batch]
        self._refuse_taken(conn, scope_id, batch)
        conn.execute(delete(task_tags).where(task_tags.c.num.in_(nums)))
        conn.execute(delete(tasks).where(tasks.c.num.in_(nums)))
        # Straight to the driver's executemany with tuples: SQLAlchemy's per-row parameter handling costs a
        # good share of a large import (issue: 1M tasks in under 2 minutes).
        rows = [tuple(r[c] for c in TASK_COLUMNS) for r in (task_row(t, scope_id(t.scope)) for t in batch)]
        tag_rows = [(t.num, k, v, i) for t in batch for i, (k, v) in enumerate(t.tags)]
        if self._db.dialect == "postgresql":
            _copy(conn, tasks, rows)  # COPY: several times faster than executemany, triggers still fire
            _copy(conn, task_tags, tag_rows)
            return
        conn.exec_driver_sql(self._insert_task_sql, rows)
        if tag_rows:
            conn.exec_driver_sql(self._insert_tag_sql, tag_rows)

    @staticmethod
    def _refuse_taken(conn: Connection, scope_id: Callable[[Scope], int], batch: Sequence[Task]) -> None:
        """Raise IdElsewhere for the first task of the batch whose Id another scope holds, or a task with runs.
        Two indexed lookups per batch: a fresh import pays almost nothing."""
        by_num = {t.num: t for t in batch}
        held = conn.execute(
            select(tasks.c.num, tasks.c.scope_id, scopes.c.uin, scopes.c.region, scopes.c.project)
            .join(scopes, scopes.c.id == tasks.c.scope_id)
            .where(tasks.c.num.in_(list(by_num)))
        ).all()
        for num, sid, uin, region, project in held:
            if sid != scope_id(by_num[num].scope):
                raise IdElsewhere(by_num[num].id, Scope(uin=uin, region=region, project=project))
        if held:
            ran = conn.execute(select(runs.c.task_num).where(runs.c.task_num.in_([h[0] for h in held])).limit(1))
            found = ran.scalar()
            if found is not None:
                raise IdElsewhere(by_num[found].id, None)
