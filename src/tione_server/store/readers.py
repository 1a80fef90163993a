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
import re
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, cast

from sqlalchemy import Engine

NUMBERED_SIZE = 4096
"""Statements AsyncReaders remembers in asyncpg's form; when full, the memory starts again empty."""


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
    """PostgreSQL: up to `size` asyncpg connections, in autocommit, for the reads the event loop makes itself (the
    list, issue 12). A blocking read holds the loop for the database's whole round trip; with these, the loop
    serves other requests meanwhile. asyncpg rather than psycopg's asynchronous mode: it costs the loop half the
    CPU per statement, and prepares each statement once per connection (its statement cache). Made on first use,
    on the loop that uses them; a connection that fails is dropped and the next read opens a new one.

    Identical statements share their runs: one that arrives while the same statement (same SQL, same parameters)
    is running waits for that run to end and then shares the next one with every other that arrived meanwhile.
    The next run starts after each of them arrived, so each still sees every commit made before it started, as if
    it had run alone; a dashboard polled by many clients costs one round trip per round trip, not per request."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int = 4) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._slots: asyncio.Semaphore | None = None
        self._numbered: dict[str, tuple[str, tuple[str, ...] | None]] = {}
        self._running: dict[Hashable, asyncio.Future[None]] = {}
        """Statements running now, each with a future that is done when its run ends."""
        self._next: dict[Hashable, list[asyncio.Future[Any]]] = {}
        """The callers waiting for the next run of a running statement."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def fetch(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """The rows of one statement, given in psycopg's paramstyle (`%(name)s` with a dict, or `%s` with a
        sequence: what store/database.Database.compiled makes); asyncpg's Records index and slice as tuples.
        The list may be shared with other callers: read it, never change it."""
        found = self._numbered.get(sql)
        if found is None:
            if len(self._numbered) >= NUMBERED_SIZE:
                self._numbered.clear()
            found = self._numbered[sql] = numbered(sql)
        text, names = found
        args = tuple(params) if names is None else tuple([params[n] for n in names])
        key = (text, args)
        waiting = self._next.get(key)
        if waiting is None:
            running = self._running.get(key)
            if running is None:
                return cast(list[tuple[Any, ...]], await self._run(key, text, args))
            waiting = self._next[key] = []
            task = asyncio.ensure_future(self._after(running, key, text, args, waiting))
            self._tasks.add(task)  # the loop holds tasks weakly
            task.add_done_callback(self._tasks.discard)
        waiter: asyncio.Future[list[tuple[Any, ...]]] = asyncio.get_running_loop().create_future()
        waiting.append(waiter)  # a caller cancelled (its client gone) cancels its own waiter only
        return await waiter

    async def _after(
        self, running: asyncio.Future[None], key: Hashable, text: str, args: tuple[Any, ...], waiting: list[Any]
    ) -> None:
        """The next run of a running statement, for the callers `waiting`, once the running one has ended."""
        await running
        del self._next[key]  # from now on, a newcomer waits for this run to end
        try:
            rows = await self._run(key, text, args)
        except asyncio.CancelledError:  # the loop is stopping
            for waiter in waiting:
                waiter.cancel()
            raise
        except Exception as err:  # each waiter gets what its own run would have raised
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_exception(err)
            return
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(rows)

    async def _run(self, key: Hashable, text: str, args: tuple[Any, ...]) -> Any:
        ended = self._running[key] = asyncio.get_running_loop().create_future()
        try:
            return await self._fetch(text, args)
        finally:
            del self._running[key]
            ended.set_result(None)

    async def _fetch(self, text: str, args: tuple[Any, ...]) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._size)
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                rows = await conn.fetch(text, *args)
            except BaseException:  # broken, or cancelled mid-statement: its state is unknown
                _finish(conn)
                raise
            self._idle.append(conn)
            return rows

    def close(self) -> None:
        """Close the idle connections (the server is stopping; no read is in flight)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            _finish(conn)


_MARK = re.compile(r"%\(([^)]+)\)s|%s|%%")


def numbered(sql: str) -> tuple[str, tuple[str, ...] | None]:
    """psycopg's SQL as asyncpg takes it: `$1, $2, ...` for the marks (and `%` for `%%`), with the parameter
    names in `$` order, or None for positional `%s` marks (their sequence is already in order)."""
    names: list[str] = []
    positional = False

    def mark(m: re.Match[str]) -> str:
        nonlocal positional
        if m.group(0) == "%%":
            return "%"
        if m.group(1) is None:
            positional = True
            names.append("")
            return f"${len(names)}"
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    text = _MARK.sub(mark, sql)
    if positional and any(names):
        raise ValueError("a statement mixes named and positional marks")
    return text, None if positional else tuple(names)


def _finish(conn: Any) -> None:
    """Close an asyncpg connection from synchronous code: no round trip."""
    with contextlib.suppress(Exception):
        conn.terminate()
