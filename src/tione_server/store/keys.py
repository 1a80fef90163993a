"""API keys: made by `tione-server keys create`, read by the gateway on every request (so revoking is immediate)."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, RowMapping, ScalarSelect, bindparam, func, insert, select, update

from tione_server.models import ApiKey
from tione_server.store.database import Database
from tione_server.store.schema import api_keys

_ALNUM = string.ascii_letters + string.digits
KEY_COLUMNS = tuple(c.name for c in api_keys.c)
CACHE_SIZE = 10_000
"""Keys kept in memory; when full, the cache starts again empty (keys are re-read once each)."""


class KeyWithdrawn(Exception):
    """A cached key was revoked or deleted since it was cached: the request is refused as if it had been read."""


def key_check(secret_id: str | BindParameter[str]) -> ScalarSelect[bool]:
    """A column saying whether the key may still sign: NULL when there is no such key, true when revoked.
    Added to the statements that serve a request signed with a cached key (a list page, a create), so the check
    costs no statement of its own; `judge` reads its value."""
    return select(api_keys.c.revoked).where(api_keys.c.secret_id == secret_id).scalar_subquery()


def judge(state: Any) -> None:
    """`key_check`'s value: NULL (no such key) or true (revoked) withdraw the key."""
    if state is None or state:
        raise KeyWithdrawn()


def key_of(row: Mapping[str, Any] | RowMapping) -> ApiKey:
    """The ApiKey of an `api_keys` row."""
    return ApiKey(**{**row, "revoked": bool(row["revoked"])})  # raw SQLite gives 0/1


class Keys:
    """The `api_keys` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[str, ApiKey] = {}
        # Read on every request: compiled once, run on the driver's cursor.
        by_id = select(*api_keys.c).where(api_keys.c.secret_id == bindparam("sid")).compile(dialect=db.engine.dialect)
        self._by_id_sql = by_id.string
        self._by_id_params: Callable[[str], Any] = (lambda v: (v,)) if by_id.positional else (lambda v: {"sid": v})

    def create(self, uin: str, app_id: str, sub_uin: str) -> ApiKey:
        """A new random key pair for the account; the secret is only ever shown from this return value."""
        key = ApiKey(
            secret_id="AKID" + "".join(secrets.choice(_ALNUM) for _ in range(32)),
            secret_key="".join(secrets.choice(_ALNUM) for _ in range(32)),
            uin=uin,
            app_id=app_id,
            sub_uin=sub_uin,
            created_at=int(time.time()),
        )
        with self._db.tx() as conn:
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

    def get(self, secret_id: str) -> ApiKey | None:
        """The key with this SecretId, revoked or not; None when unknown. Read from the database every time;
        an active key is remembered for `cached`."""
        rows = self._db.readers.fetch(self._by_id_sql, self._by_id_params(secret_id))
        key = key_of(dict(zip(KEY_COLUMNS, rows[0], strict=True))) if rows else None
        if key is None or key.revoked:
            self._cache.pop(secret_id, None)
        else:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[secret_id] = key
        return key

    def cached(self, secret_id: str) -> tuple[ApiKey | None, bool]:
        """The key as `get` last read it, and True; else `get` now, and False. A cached key may have been
        revoked since: whoever serves a request with it must check it in the same reads (`key_check`), or
        call `get`. Only keys that could sign are kept; an unknown SecretId is read every time."""
        key = self._cache.get(secret_id)
        if key is not None:
            return key, True
        return self.get(secret_id), False

    def forget(self, secret_id: str) -> None:
        """Drop a cached key that was found withdrawn."""
        self._cache.pop(secret_id, None)

    def list(self) -> Sequence[ApiKey]:
        """Every key, oldest first."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(select(*api_keys.c).order_by(api_keys.c.created_at, api_keys.c.secret_id))
            return [key_of(r._mapping) for r in rows]

    def revoke(self, secret_id: str) -> bool:
        """Mark a key revoked; False when there is no such active key."""
        with self._db.tx() as conn:
            res = conn.execute(
                update(api_keys)
                .where(api_keys.c.secret_id == secret_id, api_keys.c.revoked.is_(False))
                .values(revoked=True)
            )
            return res.rowcount == 1

    def count_active(self) -> int:
        """How many keys can sign requests."""
        with self._db.engine.connect() as conn:
            stmt = select(func.count()).select_from(api_keys).where(api_keys.c.revoked.is_(False))
            return int(conn.execute(stmt).scalar_one())
