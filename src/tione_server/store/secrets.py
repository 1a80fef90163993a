"""Server secrets: random keys made once per database and shared by every worker and replica on it."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from tione_server.store.database import Database
from tione_server.store.schema import meta


class Secrets:
    """Named 32-byte keys kept in `meta` rows `secret.<name>`, cached in memory once read."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._known: dict[str, bytes] = {}

    def get(self, name: str) -> bytes:
        """The server's random 32-byte key `name` (e.g. for signing log Contexts, issue 7 C9).

        Made on first use and kept in `meta`, so every worker and replica on this database uses the same key;
        the first writer wins when several make it at once.
        """
        if (found := self._known.get(name)) is not None:
            return found
        row_key = f"secret.{name}"
        with self._db.tx() as conn:
            made = self._db.upsert(meta).values(key=row_key, value=secrets.token_hex(32)).on_conflict_do_nothing()
            conn.execute(made)
            value = bytes.fromhex(conn.execute(select(meta.c.value).where(meta.c.key == row_key)).scalar_one())
        self._known[name] = value
        return value
