"""The database every store concept shares: engines, write transactions, compiled statements and the schema.

One `Database` per Store. The concept classes (keys, tasks, runs, ...) hold it and never each other's
connections; SQL of a concept lives with that concept, not here (issue 8 item 5).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from tione_server.store import counts, feed, handles, revisions
from tione_server.store.batch import Statements
from tione_server.store.readers import AsyncReaders, Readers
from tione_server.store.schema import SCHEMA_VERSION, meta, metadata
from tione_server.store.urls import DatabaseError, connect_error, normalise_url

COMPILED_CACHE_SIZE = 1024


class SchemaTooNew(DatabaseError):
    """The database was written by a newer tione-server."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, *, autocommit: bool = False, pooled: bool = True) -> Engine:
    """An engine for any URL `normalise_url` accepts (`sqlite:///`, `postgres://`, ...), tuned for this service.
    Unpooled, each `raw_connection()` is a new connection that its holder keeps (store/readers.py)."""
    url = normalise_url(url)
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if not pooled:
        options["poolclass"] = NullPool
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A host that drops packets would otherwise hold the first connection for minutes (issue 7 F14).
    connect_args = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": 10}
    try:
        # No pre-ping: it costs a round trip per checkout on the hottest path; a connection the server dropped
        # fails one request and is replaced (SQLAlchemy invalidates it), and recycling retires idle ones first.
        sizes: dict[str, Any] = {"pool_size": 8, "max_overflow": 8, "pool_recycle": 1800} if pooled else {}
        return create_engine(url, connect_args=connect_args, **sizes, **options)
    except ImportError:
        raise DatabaseError("PostgreSQL needs the psycopg driver: pip install 'tione-server[postgres]'.") from None


SQLITE_MIN = (3, 35)
"""RETURNING (a create's name, a run's mirror) and json_each (store/batch.py among) need it."""


def _require_sqlite() -> None:
    """Say at start that the SQLite library Python links is too old, rather than fail every create."""
    import sqlite3

    if sqlite3.sqlite_version_info < SQLITE_MIN:
        need = ".".join(map(str, SQLITE_MIN))
        raise DatabaseError(f"SQLite {sqlite3.sqlite_version} is too old: tione-server needs {need} or newer.")


def _require_asyncpg() -> None:
    """The list's reads on PostgreSQL go through asyncpg (store/readers.py AsyncReaders): say so at start."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        raise DatabaseError("PostgreSQL needs the asyncpg driver: pip install 'tione-server[postgres]'.") from None


class Database:
    """Engines for one database URL, its schema brought up to date on open.

    `engine` serves write transactions (`tx`) and ordinary reads; `readers`, one autocommit connection per
    thread, serve the hot reads (a key check, a list page) with no pool round trip and no BEGIN/ROLLBACK, each
    statement still one consistent snapshot; `compiled` keeps their SQL.
    """

    def __init__(self, url: str) -> None:
        url = normalise_url(url)
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self.prepared = Statements(self.engine.dialect)
        """Statements compiled once for `batch.run` (store/batch.py)."""
        self.readers = Readers(make_engine(url, autocommit=True, pooled=False))
        if self.dialect == "postgresql":
            _require_asyncpg()
        else:
            _require_sqlite()
        self.async_readers = AsyncReaders(self._connect_async) if self.dialect == "postgresql" else None
        """PostgreSQL: the event loop's own reader connections (store/readers.py); None on SQLite."""
        self._local = threading.local()  # this thread's open transaction: callbacks to run when it commits
        self._compiled: OrderedDict[Hashable, tuple[str, Any]] = OrderedDict()
        self._compiled_lock = threading.Lock()
        try:
            self.migrate()
        except (OperationalError, InterfaceError) as err:  # the first connection: say why in one line
            self.close()
            raise connect_error(url, err) from err

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
        self.readers.close()
        if self.async_readers is not None:
            self.async_readers.close()

    async def _connect_async(self) -> Any:
        """A new asyncpg connection (autocommit: asyncpg opens no transaction unless asked) to the engine's own
        database; the URL's `connect_timeout`, which asyncpg's DSN does not take, becomes its timeout."""
        import asyncpg

        url = self.engine.url
        timeout = float(url.query.get("connect_timeout", 10))  # type: ignore[arg-type]
        dsn = url.set(drivername="postgresql").difference_update_query(["connect_timeout"])
        return await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=timeout)

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction; what `on_commit` is given inside it runs once it has committed, never after a
        rollback."""
        hooks: list[Callable[[], None]] = []
        self._local.hooks = hooks
        try:
            with self.engine.begin() as conn:
                yield conn
        finally:
            self._local.hooks = None
        for hook in hooks:
            hook()

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` when this thread's write transaction commits, or now when none is open: a cache of rows a
        transaction wrote must not serve them before they are committed, nor after they were rolled back."""
        hooks: list[Callable[[], None]] | None = getattr(self._local, "hooks", None)
        if hooks is None:
            hook()
        else:
            hooks.append(hook)

    def upsert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT that takes ON CONFLICT clauses, in this database's dialect."""
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def compiled(self, key: Hashable, build: Callable[[], ClauseElement]) -> tuple[str, Any]:
        """The SQL text and parameters of the statement `build` makes, compiled once per key: dashboards repeat
        the same few queries, and building and compiling a SQLAlchemy statement costs more than running it."""
        with self._compiled_lock:
            found = self._compiled.get(key)
            if found is not None:
                self._compiled.move_to_end(key)
        if found is None:
            c = build().compile(dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True})
            assert isinstance(c, SQLCompiler)
            params: Any = tuple(c.params[n] for n in c.positiontup or ()) if c.positional else dict(c.params)
            found = (c.string, params)
            with self._compiled_lock:
                self._compiled[key] = found
                while len(self._compiled) > COMPILED_CACHE_SIZE:
                    self._compiled.popitem(last=False)
        return found

    def migrate(self) -> None:
        """Create missing tables and bring an older schema up to this server's version; refuse a newer one."""
        with self.tx() as conn:
            metadata.create_all(conn)
            found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            if found is None:
                conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(found) > SCHEMA_VERSION:
                raise SchemaTooNew(f"database schema {found} is newer than this server's {SCHEMA_VERSION}")
            elif int(found) < SCHEMA_VERSION:
                # Version 2 only added tables, which create_all has just made; version 3 is done by
                # counts.install below (a column, the triggers and the counts of stored tasks), version 4 by
                # handles.install (pods.handle), version 5 by feed.install (runs.seq, runs.scope_id) and
                # revisions.install (tasks.rev).
                conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
            upgrading_from = None if found is None else int(found)
            counts.install(conn, self.dialect, upgrading_from=upgrading_from)
            handles.install(conn, upgrading_from=upgrading_from)
            feed.install(conn, self.dialect, upgrading_from=upgrading_from)
            revisions.install(conn, self.dialect, upgrading_from=upgrading_from)

    def schema_version(self) -> int:
        """The version recorded in the database."""
        with self.tx() as conn:
            return int(conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one())
