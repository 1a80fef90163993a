"""API keys: made by `tione-server keys create`, read by the gateway on every request (so revoking is immediate)."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import RowMapping, bindparam, func, insert, select, update

from tione_server.models import ApiKey
from tione_server.store.database import Database, fetch
from tione_server.store.schema import api_keys

_ALNUM = string.ascii_letters + string.digits
KEY_COLUMNS = tuple(c.name for c in api_keys.c)


def key_of(row: Mapping[str, Any] | RowMapping) -> ApiKey:
    """The ApiKey of an `api_keys` row."""
    return ApiKey(**{**row, "revoked": bool(row["revoked"])})  # raw SQLite gives 0/1


class Keys:
    """The `api_keys` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
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
        """The key with this SecretId, revoked or not; None when unknown."""
        with self._db.reader.connect() as conn:
            rows = fetch(conn, self._by_id_sql, self._by_id_params(secret_id))
        return key_of(dict(zip(KEY_COLUMNS, rows[0], strict=True))) if rows else None

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
