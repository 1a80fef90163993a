"""Schema version 4: pods keep their executor's opaque handle instead of pid, pgid and process start time.

Issue 8 item 3: process ids belong to the local executor, not to the store; a pod row now holds `handle`, the text
its executor returned at launch. A database of an older version gains the column when a newer server opens it, and
its live pods get the handle the local executor would have written for them, so pods that run through an upgrade
are re-attached. The old columns stay, unused (SQLite only drops columns from version 3.35 on).
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, inspect, text
from sqlalchemy.schema import CreateColumn

from tione_server.models import LIVE_POD_STATUSES
from tione_server.store.schema import pods

VERSION = 4

_FILL = text(
    """UPDATE pods SET handle = '{"pid": ' || CAST(pid AS TEXT) || ', "start": '
    || COALESCE(CAST(proc_start AS TEXT), 'null') || '}' WHERE pid IS NOT NULL AND status IN :live"""
).bindparams(bindparam("live", value=sorted(LIVE_POD_STATUSES), expanding=True))
"""The local executor's handle (executors/local.py `handle`: JSON `{"pid": P, "start": S}`) of every live pod."""


def install(conn: Connection, *, upgrading_from: int | None) -> None:
    """On a database older than version 4: add `pods.handle` and fill it for live pods from `pid`/`proc_start`."""
    if upgrading_from is None or upgrading_from >= VERSION:
        return
    columns = {c["name"] for c in inspect(conn).get_columns("pods")}
    if "handle" not in columns:
        conn.exec_driver_sql(f"ALTER TABLE pods ADD COLUMN {CreateColumn(pods.c.handle).compile(dialect=conn.dialect)}")
    if "pid" in columns:  # else the pods table was made at this version (from a version-1 database): nothing to fill
        conn.execute(_FILL)
