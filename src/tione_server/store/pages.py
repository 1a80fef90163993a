"""The list's hot read (issue 12): one page of a scope's tasks, its exact TotalCount, and the signing key's check,
in as few statements as the database allows.

- The scope's version (counts.py) and the key check are one statement; TotalCount is remembered per version
  (counts.CountCache), so only a scope that changed since is counted again.
- On PostgreSQL, when the page is known to lie inside the matches (an earlier count of the same query says so), the
  page is read in that same statement: one round trip per request. A deep Offset past the last match is never
  scanned for.
- On SQLite, a page's count and stamps are remembered until any connection commits anything
  (`PRAGMA data_version`): a dashboard polling an unchanged database costs one pragma per request. On
  PostgreSQL the round trip is always made, but when it answers what it answered last time (the same version,
  key state and every row's rev), the page made then is the page now.
- Each page row comes as its number and `rev` (store/revisions.py), which changes whenever the row does. The caller
  says which (number, rev) it already keeps rendered; only the other rows are read whole, by number: reading
  whole rows was most of a page's cost (50 rows: 100 us of SQLite's 115).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, null, select, true

from tione_server.models import Scope, Task, TaskQuery
from tione_server.store import query as q
from tione_server.store.counts import CountCache
from tione_server.store.database import Database
from tione_server.store.keys import judge, key_check
from tione_server.store.schema import count_deltas, scopes, tasks
from tione_server.store.scopes import Scopes
from tione_server.store.tasks import TASK_COLUMNS, task_of

Row = tuple[Any, ...]
MEMO_SIZE = 1024
"""SQLite pages remembered until the database changes; when full, the memory starts again empty."""
_NUM = TASK_COLUMNS.index("num")
_REV = TASK_COLUMNS.index("rev")
_SCOPE = TASK_COLUMNS.index("scope_id")
_ROWS = f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE num IN ({{nums}})"
"""Whole rows by number (the primary key: with a scope condition beside it, SQLite would walk the scope's index
instead, a million rows for a large account), one placeholder per number (`{nums}`)."""


Entry = tuple[int, Hashable, Row | None, Any]
"""One task of a page: its number; its `rev`; its `tasks` row (TASK_COLUMNS order), or None when the caller keeps
what it needs of this (number, rev); and what the caller keeps (`Have`'s answer), or None. Plain tuples: a page
makes up to 50 of them per request."""

Have = Callable[[int, Hashable], Any]
"""What the caller keeps for this version (number, rev) of a row, or None: the row is then read whole."""

Statement = tuple[str, Any]
"""SQL in the driver's paramstyle, and its parameters."""

T = TypeVar("T")
Reading = Generator[Statement, list[Row], T]
"""Part of a read as the statements it runs: each yielded statement is sent back its rows (`read`, `read_async`)."""
Plan = Reading[tuple[list[Entry], int]]


class Pages:
    """Reads pages on this thread's reader connection (Database.read), or on PostgreSQL without blocking the
    event loop (`read_async`): the same plan, run by either."""

    def __init__(self, db: Database, scopes: Scopes) -> None:
        self._db = db
        self._scopes = scopes
        self._counts = CountCache()
        self._pg = db.dialect == "postgresql"
        self._mark = "%s" if self._pg else "?"
        self._pg_memo: dict[Hashable, tuple[list[Row], Have, list[Entry], int]] = {}
        """PostgreSQL: each page's last round-trip answer, with the `have` asked then and what came of it."""

    def tasks(self, scope: Scope, query: TaskQuery) -> tuple[list[Task], int]:
        """One page of the scope's tasks matching the query, and the number of all matches."""
        entries, total = self.read(scope, query)
        return [task_of(dict(zip(TASK_COLUMNS, row, strict=True)), scope) for _, _, row, _ in entries if row], total

    def read(
        self, scope: Scope, query: TaskQuery, *, key: str | None = None, have: Have | None = None
    ) -> tuple[list[Entry], int]:
        """The page's entries in order and the number of all matches.

        `key`: a SecretId taken from a cache; the same statement checks it is still valid and raises KeyWithdrawn
        when not. `have(num, rev)`: what the caller keeps of that version of a row, if anything.
        """
        if not self._pg and have is not None and (remembered := self._remembered(scope, query, key, have)):
            return remembered
        plan = self._plan(scope, query, key, have)
        fetch = self._db.readers.fetch
        rows: list[Row] | None = None
        try:
            while True:
                rows = fetch(*plan.send(rows))  # type: ignore[arg-type]
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def read_async(
        self, scope: Scope, query: TaskQuery, *, key: str | None = None, have: Have | None = None
    ) -> tuple[list[Entry], int]:
        """`read` on PostgreSQL's asynchronous reader connections (store/readers.py AsyncReaders): the event
        loop serves other requests while the database answers."""
        readers = self._db.async_readers
        if readers is None:
            raise RuntimeError("asynchronous reads are PostgreSQL's")
        plan = self._plan(scope, query, key, have)
        fetch = readers.fetch
        rows: list[Row] | None = None
        try:
            while True:
                rows = await fetch(*plan.send(rows))  # type: ignore[arg-type]
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _plan(self, scope: Scope, query: TaskQuery, key: str | None, have: Have | None) -> Plan:
        sid = self._scopes.known(scope)
        if sid is None:
            found = yield self._db.compiled(("scope", scope), lambda: self._scopes.lookup(scope))
            sid = self._scopes.found(scope, found)
        if sid is None:  # no task was ever stored for the scope
            if key is not None:
                judge((yield self._db.compiled(("key", key), lambda: select(key_check(key))))[0][0])
            return [], 0
        if self._pg:
            return (yield from self._pg_read(sid, query, key, have))
        record = yield from self._sqlite_page(sid, query, key)
        total, stamped = record[1], record[2]
        entries = yield from self._entries(sid, stamped, have)
        if have is not None and all(e[3] is not None for e in entries):
            record[3:] = [have, entries]  # what `have` answered, for `_remembered`
        return entries, total

    def _remembered(
        self, scope: Scope, query: TaskQuery, key: str | None, have: Have
    ) -> tuple[list[Entry], int] | None:
        """SQLite: the page as read last on this thread, with what `have` answered then, when nothing has been
        committed since and the same `have` asks: an unchanged database costs one pragma per request."""
        sid = self._scopes.known(scope)
        if sid is None:
            return None
        memo, token = self._db.readers.sqlite_memo()
        found = memo.get((sid, query, key))
        if found is None or found[0] != token or found[3] != have:
            return None
        return found[4], found[1]

    def _pg_read(self, sid: int, query: TaskQuery, key: str | None, have: Have | None) -> Plan:
        """PostgreSQL: version, key check and the page's (rev, num) in one round trip when an earlier count says
        the page lies inside the matches; else the version first, and the page only if it does. When that
        round trip answers exactly what it answered last time for the same page and `have`, the entries made
        then are the entries now (the answer holds every row's rev): no count, no `have`, no list to build."""
        known = self._counts.latest(sid, (query.filters, query.tags))
        together = known is not None and query.offset < known
        if together:
            found = yield self._db.compiled(("page+", sid, query, key), lambda: self._with_page(sid, query, key))
        else:
            found = yield self._db.compiled(("version", sid, None, key), lambda: _version(sid, key))
        if key is not None:
            judge(found[0][1])
        memo_key = (sid, query, key)
        last = self._pg_memo.get(memo_key)
        if together and last is not None and last[1] == have and (last[0] is found or last[0] == found):
            return last[2], last[3]
        total = yield from self._total(sid, query, int(found[0][0]))
        if query.offset >= total:
            stamped: list[Row] = []
        elif together:
            stamped = [r[2:] for r in found if r[2] is not None]
        else:
            stamped = yield self._db.compiled(("stamps", sid, query), lambda: self._stamps(sid, query))
        entries = yield from self._entries(sid, stamped, have)
        if together and have is not None and all(e[3] is not None for e in entries):
            if len(self._pg_memo) >= MEMO_SIZE:
                self._pg_memo.clear()
            self._pg_memo[memo_key] = (found, have, entries, total)
        return entries, total

    def _sqlite_page(self, sid: int, query: TaskQuery, key: str | None) -> Reading[list[Any]]:
        """SQLite: this thread's record of the page, [change token, TotalCount, the page's (rev, num), `have`,
        entries], from memory when no connection has committed anything since it was read
        (Readers.sqlite_memo), else read: version and key check, then the page (two statements run faster here
        than their join)."""
        memo, token = self._db.readers.sqlite_memo()
        found = memo.get((sid, query, key))
        if found is not None and found[0] == token:
            return found  # type: ignore[no-any-return]
        version, state = (yield self._db.compiled(("version", sid, None, key), lambda: _version(sid, key)))[0]
        if key is not None:
            judge(state)
        total = yield from self._total(sid, query, int(version))
        stamped: list[Row] = []
        if query.offset < total:
            stamped = yield self._db.compiled(("stamps", sid, query), lambda: self._stamps(sid, query))
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        record = memo[(sid, query, key)] = [token, total, stamped, None, None]
        return record

    def _total(self, sid: int, query: TaskQuery, version: int) -> Reading[int]:
        """Exact TotalCount at `version`: remembered, else counted (from task_counts when it can, else by
        scanning) and remembered. The version was read first, so a count is never served for a later one."""
        ckey = (query.filters, query.tags)
        total = self._counts.get(sid, ckey, version)
        if total is None:
            dialect = self._db.dialect
            how, count = ("counted", q.count_from_counts) if q.countable(query) else ("scanned", q.count_by_scan)
            total = int((yield self._db.compiled((how, sid, query), lambda: count(sid, query, dialect)))[0][0])
            self._counts.put(sid, ckey, version, total)
        return total

    def _stamps(self, sid: int, query: TaskQuery) -> Select[Any]:
        """The page's (rev, num) in page order, with the sort key."""
        return (
            select(tasks.c.rev.label("stamp"), tasks.c.num, tasks.c[query.order_by].label("sort_key"))
            .where(q.where(sid, query, self._db.dialect))
            .order_by(*q.order(query))
            .limit(query.limit)
            .offset(min(query.offset, q.MAX_OFFSET))
        )

    def _with_page(self, sid: int, query: TaskQuery, key: str | None) -> Select[Any]:
        """PostgreSQL: the version (and key check) with the page's (rev, num) beside it, one row per task, in page
        order; a page with no task gives one row whose task columns are NULL."""
        v = _version(sid, key).subquery("v")
        p = self._stamps(sid, query).subquery("p")
        keys = [p.c.sort_key.desc(), p.c.num.desc()] if query.descending else [p.c.sort_key.asc(), p.c.num.asc()]
        return select(v.c.version, v.c.state, p.c.stamp, p.c.num).select_from(v.outerjoin(p, true())).order_by(*keys)

    def _entries(self, sid: int, stamped: Sequence[Row], have: Have | None) -> Reading[list[Entry]]:
        kept = [None if have is None else have(r[1], r[0]) for r in stamped]
        entries: list[Entry] = [(r[1], r[0], None, k) for r, k in zip(stamped, kept, strict=True)]
        wanted = {e[0] for e in entries if e[3] is None}
        if not wanted:
            return entries
        # Read after the stamps: a row may have changed since (it is then shown as it is now, under its new rev) or
        # gone (it is left out, as a list read a moment later would).
        sql = _ROWS.format(nums=", ".join([self._mark] * len(wanted)))
        rows = {r[_NUM]: r for r in (yield sql, tuple(wanted)) if r[_SCOPE] == sid}
        out = []
        for entry in entries:
            num = entry[0]
            if num not in wanted:
                out.append(entry)
            elif (r := rows.get(num)) is not None:
                out.append((num, r[_REV], r, None))
        return out


def _version(sid: int, key: str | None) -> Select[Any]:
    """The scope's version (the number of changes ever recorded for it, folded or not: counts.py) and, when
    `key` is given, its `key_check`, in one statement."""
    deltas = select(func.count()).select_from(count_deltas).where(count_deltas.c.scope_id == sid).scalar_subquery()
    check: ColumnElement[Any] = key_check(key) if key is not None else null()
    return select((scopes.c.gen + deltas).label("version"), check.label("state")).where(scopes.c.id == sid)
