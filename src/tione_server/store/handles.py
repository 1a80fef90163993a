"""Schema version 4: pods keep their executor's opaque handle instead of pid, pgid and process start time.

Issue 8 item 3: process ids belong to the local executor, not to the store; a pod row now holds `handle`, the text
its executor returned at launch. A database of an older version gains the column when a newer server opens it, and
its live pods get the handle the local executor would have written for them, so pods that run through an upgrade
are re-attached. The old columns stay, unused (SQLite only drops columns from version 3.35 on).
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, bindparam, inspect, select, update
from sqlalchemy.schema import Column, CreateColumn, MetaData, Table

from tione_server.models import LIVE_POD_STATUSES
from tione_server.store.schema import pods

VERSION = 4


def local_handle(pid: int, start: int | None) -> str:
    """The local executor's handle of a process (executors/local.py `handle`; the format is its, written here once,
    for the upgrade)."""
    return json.dumps({"pid": pid, "start": start})


def install(conn: Connection, *, upgrading_from: int | None) -> None:
    """On a database older than version 4: add `pods.handle` and fill it for live pods from `pid`/`proc_start`."""
    if upgrading_from is None or upgrading_from >= VERSION:
        return
    columns = {c["name"] for c in inspect(conn).get_columns("pods")}
    if "handle" not in columns:
        spec = CreateColumn(pods.c.handle).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE pods ADD COLUMN {spec}")
    if "pid" not in columns:  # the pods table was made at this version (a version-1 database): nothing to fill
        return
    old = Table("pods", MetaData(), Column("run_num"), Column("name"), Column("status"), Column("pid"),
                Column("proc_start"))  # fmt: skip
    rows = conn.execute(
        select(old.c.run_num, old.c.name, old.c.pid, old.c.proc_start).where(
            old.c.pid.is_not(None), old.c.status.in_(sorted(LIVE_POD_STATUSES))
        )
    ).all()
    if rows:
        conn.execute(
            update(pods)
            .where(pods.c.run_num == bindparam("_run_num"), pods.c.name == bindparam("_name"))
            .values(handle=bindparam("_handle")),
            [{"_run_num": r.run_num, "_name": r.name, "_handle": local_handle(r.pid, r.proc_start)} for r in rows],
        )
