"""One autocommit database connection per thread for the hot reads: a key check, a list page, its count.

A pool checkout and checkin cost more than the reads themselves (issue 12's profile showed them twice per list
request), so each thread that reads keeps its own DBAPI connection open: the event loop's thread for the list,
each handler thread for everything else. Every statement runs in autocommit, one consistent snapshot each, and
sees every commit made before it started, by any process. A connection that fails is dropped and the next read
opens a new one, so a restarted database costs one failed request per thread, as with the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine


class Readers:
    """DBAPI connections by thread, made by an unpooled autocommit engine (store/database.make_engine)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._open: list[Any] = []
        self._lock = threading.Lock()

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

    def sqlite_memo(self) -> tuple[dict[Any, Any], int]:
        """SQLite: this thread's memory of reads made on its connection, and the connection's
        `PRAGMA data_version`, which changes only when another connection (any process) commits. This thread's
        connection only reads, so every write counts: what was remembered at an equal version is still true."""
        version = self.fetch("PRAGMA data_version", ())[0][0]
        memo: dict[Any, Any] = self._local.memo
        return memo, int(version)

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
        self._local.conn = conn
        self._local.memo = {}  # a new connection counts data_version afresh
        return conn

    def _drop(self, conn: Any) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
        with contextlib.suppress(Exception):  # the connection is gone either way
            conn.invalidate()


class AsyncReaders:
    """PostgreSQL: up to `size` asynchronous autocommit connections for the reads the event loop makes itself (the
    list, issue 12). A blocking read holds the loop for the database's whole round trip; with these, the loop
    serves other requests meanwhile. Made on first use, on the loop that uses them; a connection that fails is
    dropped and the next read opens a new one."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int = 4) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._slots: asyncio.Semaphore | None = None

    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """The rows of one statement, in psycopg's paramstyle."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                cursor = conn.cursor()
                await cursor.execute(sql, params)
                rows = await cursor.fetchall()
            except BaseException:  # broken, or cancelled mid-statement: its state is unknown
                _finish(conn)
                raise
            self._idle.append(conn)
            return list(rows)

    def close(self) -> None:
        """Close the idle connections (the server is stopping; no read is in flight)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            _finish(conn)


def _finish(conn: Any) -> None:
    """Close an asynchronous connection from synchronous code: libpq's own close, no round trip."""
    with contextlib.suppress(Exception):
        conn.pgconn.finish()
