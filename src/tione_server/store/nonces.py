"""The memory of accepted v1 Nonces in the server's database (issue 7 C7), shared by every worker and replica.

The gateway sees it through `replay.NonceStore`; a shared backend (Redis) would implement the same protocol.
"""

from __future__ import annotations

import hashlib
import threading

from sqlalchemy import delete

from tione_server.store.database import Database
from tione_server.store.schema import nonces

NONCE_CHARS = 40
"""Longer Nonces (v1 allows any number of digits) are kept as their SHA-256: a row stays small, and a
PostgreSQL index entry has a size limit."""

PRUNE_EVERY = 500
"""Accepted nonces between two deletes of expired rows (per process): the table holds the nonces of one
window plus at most this many per process."""


def nonce_key(nonce: str) -> str:
    """The stored form of a Nonce: itself when short, else `#` + its SHA-256 (never a Nonce: not a digit)."""
    if len(nonce) <= NONCE_CHARS:
        return nonce
    return "#" + hashlib.sha256(nonce.encode()).hexdigest()


class Nonces:
    """Nonces in the `nonces` table (SQLite or PostgreSQL); a `replay.NonceStore`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._since_prune = PRUNE_EVERY  # prune on the first accept: rows left by a previous run

    def accept(self, secret_id: str, nonce: str, expires_at: int, now: float) -> bool:
        """Insert the row; a row for the same pair that has expired is taken over, an unexpired one refuses.

        One statement, so two workers accepting the same nonce at once cannot both succeed.
        """
        row = self._db.upsert(nonces).values(secret_id=secret_id, nonce=nonce_key(nonce), expires_at=expires_at)
        stmt = row.on_conflict_do_update(
            index_elements=[nonces.c.secret_id, nonces.c.nonce],
            set_={"expires_at": row.excluded.expires_at},
            where=nonces.c.expires_at < now,
        ).returning(nonces.c.expires_at)  # a row back: inserted or taken over (rowcount is -1 on psycopg)
        with self._lock:
            self._since_prune += 1
            prune = self._since_prune >= PRUNE_EVERY
            if prune:
                self._since_prune = 0
        with self._db.tx() as conn:
            accepted = conn.execute(stmt).first() is not None
            if prune:
                conn.execute(delete(nonces).where(nonces.c.expires_at < now))
        return accepted
