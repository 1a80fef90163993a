"""Scopes: the (account, region, workspace) rows every task belongs to, and their ids cached in memory.

Tasks and runs find a scope's id here; only writers of tasks (import, create) make new scope rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, select

from tione_server.models import Scope
from tione_server.store.database import Database
from tione_server.store.schema import scopes


class Scopes:
    """Scope ids by (uin, region, project). Ids are cached only once their row is committed (Database.on_commit):
    a rolled-back id may be reused for another scope, and must never be served for this one."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._ids: dict[Scope, int] = {}

    def id(self, conn: Connection, scope: Scope) -> int | None:
        """The scope's row id; None while it has no row (it holds no tasks)."""
        sid = self._ids.get(scope)
        if sid is None:
            sid = conn.execute(select(scopes.c.id).where(*self._where(scope))).scalar()
            if sid is not None:
                self._cache(scope, int(sid))
        return None if sid is None else int(sid)

    def known(self, scope: Scope) -> int | None:
        """The scope's id when it is in memory (store/pages.py reads it otherwise: `lookup`, then `found`)."""
        return self._ids.get(scope)

    def lookup(self, scope: Scope) -> Select[tuple[int]]:
        """The statement reading the scope's id (no row: no id)."""
        return select(scopes.c.id).where(*self._where(scope))

    def found(self, scope: Scope, rows: Sequence[tuple[Any, ...]]) -> int | None:
        """The id `lookup`'s rows give, kept in memory."""
        if not rows:
            return None
        sid = int(rows[0][0])
        self._cache(scope, sid)
        return sid

    def creating(self, conn: Connection) -> Callable[[Scope], int]:
        """Inside the write transaction `conn`: a function giving each scope's id, making its row when missing.
        One per transaction; the rows it made are served within it from memory, and cached once it commits."""
        made: dict[Scope, int] = {}

        def scope_id(scope: Scope) -> int:
            sid = self._ids.get(scope) or made.get(scope)
            if sid is None:
                sid = made[scope] = self._create(conn, scope)
            return sid

        return scope_id

    def _create(self, conn: Connection, scope: Scope) -> int:
        found = self.id(conn, scope)
        if found is not None:
            return found
        # Another transaction may be creating the same scope right now: on conflict, wait for it and use its row.
        values = {"uin": scope.uin, "region": scope.region, "project": scope.project}
        stmt = self._db.upsert(scopes).values(**values).on_conflict_do_nothing().returning(scopes.c.id)
        sid = conn.execute(stmt).scalar()
        if sid is None:  # the other transaction committed it
            sid = conn.execute(select(scopes.c.id).where(*self._where(scope))).scalar_one()
        self._cache(scope, int(sid))
        return int(sid)

    def _cache(self, scope: Scope, sid: int) -> None:
        self._db.on_commit(partial(self._ids.__setitem__, scope, sid))

    @staticmethod
    def _where(scope: Scope) -> tuple[ColumnElement[bool], ...]:
        return (scopes.c.uin == scope.uin, scopes.c.region == scope.region, scopes.c.project == scope.project)
