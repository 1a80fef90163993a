"""The list's hot read (issue 12): one page of a scope's tasks, its exact TotalCount, and the signing key's check,
in as few statements as the database allows.

- The scope's version (counts.py) and the key check are one statement; TotalCount is remembered per version
  (counts.CountCache), so only a scope that changed since is counted again.
- On PostgreSQL, when the page is known to lie inside the matches (an earlier count of the same query says so), the
  page is read in that same statement: one round trip per request. A deep Offset past the last match is never
  scanned for.
- On SQLite, a page's count and stamps are remembered until any connection commits anything
  (`PRAGMA data_version`): a dashboard polling an unchanged database costs one pragma per request.
- Each page row comes as its number and `rev` (store/revisions.py), which changes whenever the row does. The caller
  says which (number, rev) it already keeps rendered; only the other rows are read whole, by number: reading
  whole rows was most of a page's cost (50 rows: 100 us of SQLite's 115).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, null, select, true

from tione_server.models import Scope, Task, TaskQuery
from tione_server.store import query as q
from tione_server.store.counts import CountCache
from tione_server.store.database import Database
from tione_server.store.keys import KeyWithdrawn, key_check
from tione_server.store.schema import count_deltas, scopes, tasks
from tione_server.store.scopes import Scopes
from tione_server.store.tasks import TASK_COLUMNS, task_of

Row = tuple[Any, ...]
MEMO_SIZE = 1024
"""SQLite pages remembered until the database changes; when full, the memory starts again empty."""
_NUM = TASK_COLUMNS.index("num")
_REV = TASK_COLUMNS.index("rev")
_ROWS = f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE scope_id = {{p}} AND num IN ({{nums}})"
"""Whole rows by number, in the driver's paramstyle (`{p}`), one placeholder per number (`{nums}`)."""


Entry = tuple[int, Hashable, Row | None]
"""One task of a page: its number; its `rev`, to compare with `==` to know whether a kept rendering is still the
row's; and its `tasks` row (TASK_COLUMNS order), or None when the caller said it keeps this (number, rev). Plain
tuples: a page makes up to 50 of them per request."""


Have = Callable[[int, Hashable], bool]


class Pages:
    """Reads pages on this thread's reader connection (Database.read)."""

    def __init__(self, db: Database, scopes: Scopes) -> None:
        self._db = db
        self._scopes = scopes
        self._counts = CountCache()
        self._pg = db.dialect == "postgresql"
        self._mark = "%s" if self._pg else "?"
        self._memo: dict[tuple[int, TaskQuery, str | None], tuple[tuple[int, int], int, list[Row]]] = {}
        """SQLite: pages read, with the change token they were read at (`_sqlite_page`)."""

    def tasks(self, scope: Scope, query: TaskQuery) -> tuple[list[Task], int]:
        """One page of the scope's tasks matching the query, and the number of all matches."""
        entries, total = self.read(scope, query)
        return [task_of(dict(zip(TASK_COLUMNS, row, strict=True)), scope) for _, _, row in entries if row], total

    def read(
        self, scope: Scope, query: TaskQuery, *, key: str | None = None, have: Have | None = None
    ) -> tuple[list[Entry], int]:
        """The page's entries in order and the number of all matches.

        `key`: a SecretId taken from a cache; the same statement checks it is still valid and raises KeyWithdrawn
        when not. `have(num, stamp)`: whether the caller keeps what it needs of that version of a row.
        """
        sid = self._scopes.read_id(scope)
        if sid is None:  # no task was ever stored for the scope
            if key is not None:
                _judge(self._db.read(("key", key), lambda: select(key_check(key)))[0][0])
            return [], 0
        if not self._pg:
            total, stamped = self._sqlite_page(sid, query, key)
            return self._entries(sid, stamped, have), total
        known = self._counts.latest(sid, (query.filters, query.tags))
        together = known is not None and query.offset < known
        built = (lambda: self._with_page(sid, query, key)) if together else (lambda: _version(sid, key))
        found = self._db.read(("page+" if together else "version", sid, query if together else None, key), built)
        version, state = found[0][0], found[0][1]
        if key is not None:
            _judge(state)
        total = self._total(sid, query, int(version))
        if query.offset >= total:
            return [], total
        if together:
            stamped = [r[2:] for r in found if r[2] is not None]
        else:
            stamped = self._db.read(("stamps", sid, query), lambda: self._stamps(sid, query))
        return self._entries(sid, stamped, have), total

    def _sqlite_page(self, sid: int, query: TaskQuery, key: str | None) -> tuple[int, list[Row]]:
        """SQLite: TotalCount and the page's (rev, num), from memory when no connection has committed anything
        since they were read on this thread (Readers.sqlite_changes), else read: version and key check, then
        the page (two statements run faster here than their join)."""
        token = self._db.readers.sqlite_changes()
        memo = self._memo.get((sid, query, key))
        if memo is not None and memo[0] == token:
            return memo[1], memo[2]
        version, state = self._db.read(("version", sid, None, key), lambda: _version(sid, key))[0]
        if key is not None:
            _judge(state)
        total = self._total(sid, query, int(version))
        stamped = (
            [] if query.offset >= total else self._db.read(("stamps", sid, query), lambda: self._stamps(sid, query))
        )
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[(sid, query, key)] = (token, total, stamped)
        return total, stamped

    def _total(self, sid: int, query: TaskQuery, version: int) -> int:
        """Exact TotalCount at `version`: remembered, else counted (from task_counts when it can, else by
        scanning) and remembered. The version was read first, so a count is never served for a later one."""
        ckey = (query.filters, query.tags)
        total = self._counts.get(sid, ckey, version)
        if total is None:
            dialect = self._db.dialect
            if q.countable(query):
                total = int(
                    self._db.read(("counted", sid, query), lambda: q.count_from_counts(sid, query, dialect))[0][0]
                )
            else:
                total = int(self._db.read(("scanned", sid, query), lambda: q.count_by_scan(sid, query, dialect))[0][0])
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

    def _entries(self, sid: int, stamped: Sequence[Row], have: Have | None) -> list[Entry]:
        entries: list[Entry] = [(r[1], r[0], None) for r in stamped]
        wanted = {num for num, stamp, _ in entries if have is None or not have(num, stamp)}
        if not wanted:
            return entries
        # Read after the stamps: a row may have changed since (it is then shown as it is now, under its new rev) or
        # gone (it is left out, as a list read a moment later would).
        sql = _ROWS.format(p=self._mark, nums=", ".join([self._mark] * len(wanted)))
        rows = {r[_NUM]: r for r in self._db.readers.fetch(sql, (sid, *wanted))}
        out = []
        for entry in entries:
            num = entry[0]
            if num not in wanted:
                out.append(entry)
            elif (r := rows.get(num)) is not None:
                out.append((num, r[_REV], r))
        return out


def _version(sid: int, key: str | None) -> Select[Any]:
    """The scope's version (the number of changes ever recorded for it, folded or not: counts.py) and, when
    `key` is given, its `key_check`, in one statement."""
    deltas = select(func.count()).select_from(count_deltas).where(count_deltas.c.scope_id == sid).scalar_subquery()
    check: ColumnElement[Any] = key_check(key) if key is not None else null()
    return select((scopes.c.gen + deltas).label("version"), check.label("state")).where(scopes.c.id == sid)


def _judge(state: Any) -> None:
    """`key_check`'s value: NULL (no such key) or true (revoked) withdraw the key."""
    if state is None or state:
        raise KeyWithdrawn()
