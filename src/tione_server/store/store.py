"""The Store: keys, scopes and tasks in one SQL database (SQLite file or PostgreSQL).

Every method is one short transaction. The schema is created on first use and versioned in `meta`.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from tione_server.models import ApiKey, Scope, Task, TaskQuery
from tione_server.store import counts, handles
from tione_server.store import query as q
from tione_server.store.runs import RunStore
from tione_server.store.schema import (
    FIRST_ACCOUNT_UID,
    SCHEMA_VERSION,
    UNSET_TIME,
    account_uids,
    api_keys,
    meta,
    metadata,
    runs,
    scopes,
    task_tags,
    tasks,
)
from tione_server.store.urls import DatabaseError, connect_error, normalise_url

_ALNUM = string.ascii_letters + string.digits
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder(dict[str, Any]).decode
BATCH = 2000
UID_ATTEMPTS = 100
"""How often account_uid tries again when other accounts keep taking the next uid first."""
COMPILED_CACHE_SIZE = 1024


TASK_COLUMNS = tuple(c.name for c in tasks.c)
KEY_COLUMNS = tuple(c.name for c in api_keys.c)


def _fetch(conn: Connection, sql: str, params: Any) -> list[tuple[Any, ...]]:
    """Run compiled SQL on the connection's DBAPI cursor and return plain tuples."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


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


def _positional_insert(engine: Engine, table: Table) -> str:
    """`INSERT INTO table (all columns) VALUES (...)` in the driver's own placeholder style, columns in table order."""
    style = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(c.name for c in table.c)
    return f"INSERT INTO {table.name} ({names}) VALUES ({', '.join([style] * len(table.c))})"


class SchemaTooNew(DatabaseError):
    """The database was written by a newer tione-server."""


class IdElsewhere(Exception):
    """A task Id being put is already another scope's, or a task's created here (issue 7 E13): replacing it
    would move a task out of its owner's sight, or turn a task with runs into history."""

    def __init__(self, task_id: str, owner: Scope | None) -> None:
        super().__init__(task_id)
        self.task_id = task_id
        self.owner = owner
        """The scope holding the Id; None when the holder is a task created on this server."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """An engine for any URL `normalise_url` accepts (`sqlite:///`, `postgres://`, ...), tuned for this service."""
    url = normalise_url(url)
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10}, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A host that drops packets would otherwise hold the first connection for minutes (issue 7 F14).
    connect_args = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": 10}
    try:
        # No pre-ping: it costs a round trip per checkout on the hottest path; a connection the server dropped
        # fails one request and is replaced (SQLAlchemy invalidates it), and recycling retires idle ones first.
        return create_engine(url, pool_size=8, max_overflow=8, pool_recycle=1800, connect_args=connect_args, **options)
    except ImportError:
        raise DatabaseError("PostgreSQL needs the psycopg driver: pip install 'tione-server[postgres]'.") from None


class Store(RunStore):
    """All persistent state of the service (runs, pods and metrics: see store/runs.py)."""

    def __init__(self, url: str) -> None:
        url = normalise_url(url)
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        # Hot reads use their own pool in autocommit: no BEGIN/ROLLBACK round trips around a key lookup or a
        # list page (each statement still sees one consistent snapshot).
        self._reader = make_engine(url, autocommit=True)
        self._scope_ids: dict[Scope, int] = {}
        self._pending = threading.local()  # scopes created by this thread's open transaction
        self._counts = counts.CountCache()
        self._secrets: dict[str, bytes] = {}
        self._uids: dict[str, int] = {}
        self._compiled: OrderedDict[Hashable, tuple[str, Any]] = OrderedDict()
        self._compiled_lock = threading.Lock()
        key_sql = (
            select(*api_keys.c).where(api_keys.c.secret_id == bindparam("sid")).compile(dialect=self.engine.dialect)
        )
        self._key_sql = key_sql.string
        self._insert_task_sql = _positional_insert(self.engine, tasks)
        self._insert_tag_sql = _positional_insert(self.engine, task_tags)
        self._key_params: Callable[[str], Any] = (lambda v: (v,)) if key_sql.positional else (lambda v: {"sid": v})
        try:
            self._migrate()
        except (OperationalError, InterfaceError) as err:  # the first connection: say why in one line
            self.close()
            raise connect_error(url, err) from err

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
        self._reader.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction; scope ids it creates are cached only once it has committed."""
        self._pending.scopes = {}
        try:
            with self.engine.begin() as conn:
                yield conn
            self._scope_ids.update(self._pending.scopes)
        finally:
            self._pending.scopes = {}

    def _migrate(self) -> None:
        with self._tx() as conn:
            metadata.create_all(conn)
            found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            if found is None:
                conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(found) > SCHEMA_VERSION:
                raise SchemaTooNew(f"database schema {found} is newer than this server's {SCHEMA_VERSION}")
            elif int(found) < SCHEMA_VERSION:
                # Version 2 only added tables, which create_all has just made; version 3 is done by
                # counts.install below (a column, the triggers and the counts of stored tasks), version 4 by
                # handles.install (pods.handle).
                conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
            upgrading_from = None if found is None else int(found)
            counts.install(conn, self.dialect, upgrading_from=upgrading_from)
            handles.install(conn, upgrading_from=upgrading_from)

    def schema_version(self) -> int:
        """The version recorded in the database."""
        with self._tx() as conn:
            return int(conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar_one())

    # -- keys -------------------------------------------------------------------------------------

    def create_key(self, uin: str, app_id: str, sub_uin: str) -> ApiKey:
        """A new random key pair for the account; the secret is only ever shown from this return value."""
        key = ApiKey(
            secret_id="AKID" + "".join(secrets.choice(_ALNUM) for _ in range(32)),
            secret_key="".join(secrets.choice(_ALNUM) for _ in range(32)),
            uin=uin,
            app_id=app_id,
            sub_uin=sub_uin,
            created_at=int(time.time()),
        )
        with self._tx() as conn:
            conn.execute(
                insert(api_keys).values(
                    secret_id=key.secret_id,
                    secret_key=key.secret_key,
                    uin=uin,
                    app_id=app_id,
                    sub_uin=sub_uin,
                    created_at=key.created_at,
                    revoked=False,
                )
            )
        return key

    def get_key(self, secret_id: str) -> ApiKey | None:
        """The key with this SecretId, revoked or not; None when unknown. Read on every request (revoking
        takes effect at once), so the statement is compiled once."""
        with self._reader.connect() as conn:
            rows = _fetch(conn, self._key_sql, self._key_params(secret_id))
        if not rows:
            return None
        found = dict(zip(KEY_COLUMNS, rows[0], strict=True))
        return ApiKey(**{**found, "revoked": bool(found["revoked"])})  # raw SQLite gives 0/1

    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*api_keys.c).order_by(api_keys.c.created_at, api_keys.c.secret_id))
            return [ApiKey(**r._mapping) for r in rows]

    def revoke_key(self, secret_id: str) -> bool:
        """Mark a key revoked; False when there is no such active key."""
        with self._tx() as conn:
            res = conn.execute(
                update(api_keys)
                .where(api_keys.c.secret_id == secret_id, api_keys.c.revoked.is_(False))
                .values(revoked=True)
            )
            return res.rowcount == 1

    def count_active_keys(self) -> int:
        """How many keys can sign requests."""
        with self.engine.connect() as conn:
            stmt = select(func.count()).select_from(api_keys).where(api_keys.c.revoked.is_(False))
            return int(conn.execute(stmt).scalar_one())

    def secret(self, name: str) -> bytes:
        """The server's random 32-byte key `name` (e.g. for signing log Contexts, issue 7 C9).

        Made on first use and kept in `meta`, so every worker and replica on this database uses the same key;
        the first writer wins when several make it at once.
        """
        if (found := self._secrets.get(name)) is not None:
            return found
        row_key = f"secret.{name}"
        upsert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        with self._tx() as conn:
            conn.execute(upsert(meta).values(key=row_key, value=secrets.token_hex(32)).on_conflict_do_nothing())
            value = bytes.fromhex(conn.execute(select(meta.c.value).where(meta.c.key == row_key)).scalar_one())
        self._secrets[name] = value
        return value

    def account_uid(self, uin: str) -> int:
        """The uid (and gid) the account's pods run as when the server is root (issue 9 item 2).

        Allocated on first use as one past the highest so far, and kept. Race-safe on every backend: the insert
        does nothing when the account has one (another server just made it) or the uid was just taken by another
        account (then it is tried again with the next).
        """
        if (found := self._uids.get(uin)) is not None:
            return found
        upsert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        c = account_uids.c
        # WHERE true: SQLite needs it to tell an INSERT ... SELECT's upsert clause from a join (its docs).
        following = select(literal(uin), func.coalesce(func.max(c.uid) + 1, FIRST_ACCOUNT_UID)).where(true())
        for _ in range(UID_ATTEMPTS):
            with self._tx() as conn:
                conn.execute(upsert(account_uids).from_select(["uin", "uid"], following).on_conflict_do_nothing())
                uid = conn.execute(select(c.uid).where(c.uin == uin)).scalar()
            if uid is not None:
                self._uids[uin] = int(uid)
                return int(uid)
        raise DatabaseError(f"no uid could be allocated for account {uin} in {UID_ATTEMPTS} attempts")

    # -- scopes -----------------------------------------------------------------------------------

    def _scope_id(self, conn: Connection, scope: Scope, *, create: bool) -> int | None:
        """The scope's row id, creating the row when asked. Ids are cached only once committed (see _tx):
        a rolled-back id may be reused for another scope, and must never be served for this one."""
        sid = self._scope_ids.get(scope)
        if sid is not None:
            return sid
        pending: dict[Scope, int] = getattr(self._pending, "scopes", {})
        if scope in pending:
            return pending[scope]
        cond = (scopes.c.uin == scope.uin, scopes.c.region == scope.region, scopes.c.project == scope.project)
        sid = conn.execute(select(scopes.c.id).where(*cond)).scalar()
        if sid is not None:
            self._scope_ids[scope] = int(sid)  # another transaction's row, visible: committed
            return int(sid)
        if not create:
            return None
        # Another transaction may be creating the same scope right now: on conflict, wait for it and use its row.
        upsert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        values = {"uin": scope.uin, "region": scope.region, "project": scope.project}
        stmt = upsert(scopes).values(**values).on_conflict_do_nothing().returning(scopes.c.id)
        sid = conn.execute(stmt).scalar()
        if sid is None:  # the other transaction committed it
            sid = conn.execute(select(scopes.c.id).where(*cond)).scalar_one()
            self._scope_ids[scope] = int(sid)
            return int(sid)
        pending[scope] = int(sid)
        self._pending.scopes = pending
        return int(sid)

    # -- tasks ------------------------------------------------------------------------------------

    def put_tasks(self, items: Iterable[Task], progress: Any = None) -> int:
        """Insert tasks, replacing any stored task with the same Id, all in one transaction.

        Raises IdElsewhere (and puts nothing) when an Id is held in another scope or by a task created here.
        """
        count = 0
        with self._tx() as conn, self._bulk_cache(conn):
            batch: list[Task] = []
            for task in items:
                batch.append(task)
                if len(batch) >= BATCH:
                    self._write_batch(conn, batch)
                    count += len(batch)
                    if progress is not None:
                        progress(len(batch))
                    batch = []
            if batch:
                self._write_batch(conn, batch)
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
        if self.dialect != "sqlite":
            yield
            return
        conn.exec_driver_sql("PRAGMA cache_size=-524288")
        try:
            yield
        finally:
            conn.exec_driver_sql("PRAGMA cache_size=-2000")

    def _write_batch(self, conn: Connection, items: Sequence[Task]) -> None:
        batch = list({t.num: t for t in items}.values())  # a repeated Id: the last one wins
        nums = [t.num for t in batch]
        self._refuse_taken(conn, batch)
        conn.execute(delete(task_tags).where(task_tags.c.num.in_(nums)))
        conn.execute(delete(tasks).where(tasks.c.num.in_(nums)))
        # Straight to the driver's executemany with tuples: SQLAlchemy's per-row parameter handling costs a
        # good share of a large import (issue: 1M tasks in under 2 minutes).
        rows = [tuple(r[c] for c in TASK_COLUMNS) for r in (self._task_row(conn, t) for t in batch)]
        tag_rows = [(t.num, k, v, i) for t in batch for i, (k, v) in enumerate(t.tags)]
        if self.dialect == "postgresql":
            _copy(conn, tasks, rows)  # COPY: several times faster than executemany, triggers still fire
            _copy(conn, task_tags, tag_rows)
            return
        conn.exec_driver_sql(self._insert_task_sql, rows)
        if tag_rows:
            conn.exec_driver_sql(self._insert_tag_sql, tag_rows)

    def _refuse_taken(self, conn: Connection, batch: Sequence[Task]) -> None:
        """Raise IdElsewhere for the first task of the batch whose Id another scope holds, or a task with runs.
        Two indexed lookups per batch: a fresh import pays almost nothing."""
        by_num = {t.num: t for t in batch}
        held = conn.execute(
            select(tasks.c.num, tasks.c.scope_id, scopes.c.uin, scopes.c.region, scopes.c.project)
            .join(scopes, scopes.c.id == tasks.c.scope_id)
            .where(tasks.c.num.in_(list(by_num)))
        ).all()
        for num, sid, uin, region, project in held:
            if sid != self._scope_id(conn, by_num[num].scope, create=True):
                raise IdElsewhere(by_num[num].id, Scope(uin=uin, region=region, project=project))
        if held:
            ran = conn.execute(select(runs.c.task_num).where(runs.c.task_num.in_([h[0] for h in held])).limit(1))
            found = ran.scalar()
            if found is not None:
                raise IdElsewhere(by_num[found].id, None)

    def _task_row(self, conn: Connection, t: Task) -> dict[str, Any]:
        doc = dict(t.doc)
        doc["Tags"] = [[k, v] for k, v in t.tags]
        return {
            "num": t.num,
            "id": t.id,
            "scope_id": self._scope_id(conn, t.scope, create=True),
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
        }

    @staticmethod
    def _task(row: Row[Any] | Mapping[str, Any], scope: Scope) -> Task:
        m = row._mapping if isinstance(row, Row) else row
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

    def list_tasks(self, scope: Scope, query: TaskQuery) -> tuple[list[Task], int]:
        """One page of the scope's tasks matching the query, and the number of all matches."""
        with self._reader.connect() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return [], 0
            total = self._count(conn, sid, query)
            if query.offset >= total:
                return [], total
            rows = self._run(conn, ("page", sid, query), lambda: q.page(sid, query, self.dialect))
        return [self._task(dict(zip(TASK_COLUMNS, r, strict=True)), scope) for r in rows], total

    def _count(self, conn: Connection, sid: int, query: TaskQuery) -> int:
        """Exact TotalCount: from task_counts when it can answer, else cached per scope version (counts.py)."""
        if q.countable(query):
            built = lambda: q.count_from_counts(sid, query, self.dialect)  # noqa: E731
            return int(self._run(conn, ("counted", sid, query), built)[0][0])
        version = int(conn.execute(text(counts.VERSION_SQL), {"sid": sid}).scalar_one())
        key = (query.filters, query.tags)
        total = self._counts.get(sid, key, version)
        if total is None:
            # The version was read first: the count is at least as new, so it is never served for a later one.
            built = lambda: q.count_by_scan(sid, query, self.dialect)  # noqa: E731
            total = int(self._run(conn, ("scanned", sid, query), built)[0][0])
            self._counts.put(sid, key, version, total)
        return total

    def _run(self, conn: Connection, key: Hashable, build: Callable[[], ClauseElement]) -> list[tuple[Any, ...]]:
        """The rows of a statement compiled once per key, fetched through the driver's own cursor:
        dashboards repeat the same few queries, and building, compiling and wrapping a SQLAlchemy statement
        and its result costs more than running it."""
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
        return _fetch(conn, *found)

    def fold_counts(self) -> None:
        """Fold recorded count changes (counts.fold); the runner calls it every tick, imports when done."""
        with self._tx() as conn:
            counts.fold(conn, self.dialect)

    def get_task(self, scope: Scope, task_id: str) -> Task | None:
        """The scope's task with this Id, or None."""
        with self.engine.connect() as conn:
            sid = self._scope_id(conn, scope, create=False)
            if sid is None:
                return None
            row = conn.execute(select(*tasks.c).where(tasks.c.id == task_id, tasks.c.scope_id == sid)).first()
        return None if row is None else self._task(row, scope)
