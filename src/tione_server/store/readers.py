"""One autocommit database connection per thread for the hot reads: a key check, a list page, its count.

A pool checkout and checkin cost more than the reads themselves (issue 12's profile showed them twice per list
request), so each thread that reads keeps its own DBAPI connection open: the event loop's thread for the list,
each handler thread for everything else. Every statement runs in autocommit, one consistent snapshot each, and
sees every commit made before it started, by any process. A connection that fails is dropped and the next read
opens a new one, so a restarted database costs one failed request per thread, as with the pool.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Any

from sqlalchemy import Engine


class Readers:
    """DBAPI connections by thread, made by an unpooled autocommit engine (store/database.make_engine)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._open: list[Any] = []
        self._lock = threading.Lock()
        self._serials = itertools.count(1)

    def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """The rows of one statement, in the driver's own paramstyle, on this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
            finally:
                cursor.close()
        except self._engine.dialect.loaded_dbapi.Error:
            self._drop(conn)
            raise

    def sqlite_changes(self) -> tuple[int, int]:
        """SQLite: a token that stays the same between two calls on this thread only if no other connection (any
        process) committed a change to the database in between: this connection's serial and its
        `PRAGMA data_version`. This thread's own connection only reads, so every write counts."""
        version = self.fetch("PRAGMA data_version", ())[0][0]
        return self._local.serial, int(version)

    def close(self) -> None:
        """Close every thread's connection (the server is stopping)."""
        with self._lock:
            opened, self._open = self._open, []
        for conn in opened:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                conn.close()

    def _connect(self) -> Any:
        conn = self._engine.raw_connection()  # unpooled: a new DBAPI connection, set up by the engine's events
        with self._lock:
            self._open.append(conn)
            self._local.serial = next(self._serials)
        self._local.conn = conn
        return conn

    def _drop(self, conn: Any) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
        with contextlib.suppress(Exception):  # the connection is gone either way
            conn.invalidate()
