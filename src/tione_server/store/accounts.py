"""Account uids: the unprivileged uid (and gid) each account's pods run as when the server is root (issue 9 item 2)."""

from __future__ import annotations

from sqlalchemy import func, literal, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tione_server.store.database import Database
from tione_server.store.schema import FIRST_ACCOUNT_UID, account_uids
from tione_server.store.urls import DatabaseError

UID_ATTEMPTS = 100
"""How often `uid` tries again when other accounts keep taking the next uid first."""


class Accounts:
    """One uid per account, allocated on first use and kept; cached once read (a uid never changes)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._uids: dict[str, int] = {}

    def uid(self, uin: str) -> int:
        """The account's uid: one past the highest so far on first use.

        Race-safe on every backend: the insert does nothing when the account has one (another server just made
        it) or the uid was just taken by another account (then it is tried again with the next).
        """
        if (found := self._uids.get(uin)) is not None:
            return found
        upsert = pg_insert if self._db.dialect == "postgresql" else sqlite_insert
        c = account_uids.c
        # WHERE true: SQLite needs it to tell an INSERT ... SELECT's upsert clause from a join (its docs).
        following = select(literal(uin), func.coalesce(func.max(c.uid) + 1, FIRST_ACCOUNT_UID)).where(true())
        for _ in range(UID_ATTEMPTS):
            with self._db.tx() as conn:
                conn.execute(upsert(account_uids).from_select(["uin", "uid"], following).on_conflict_do_nothing())
                uid = conn.execute(select(c.uid).where(c.uin == uin)).scalar()
            if uid is not None:
                self._uids[uin] = int(uid)
                return int(uid)
        raise DatabaseError(f"no uid could be allocated for account {uin} in {UID_ATTEMPTS} attempts")
