"""Leases: named leadership records in `meta`, so runners of several server processes agree on one leader."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tione_server.store.database import Database
from tione_server.store.schema import meta


class Leases:
    """A lease is the `meta` row `name` holding "<owner> <expiry>"; taking it is a compare-and-set on that row."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def hold(self, name: str, owner: str, now: float, ttl: float) -> bool:
        """Take or renew the lease `name` for `owner` until now + ttl; False while another owner holds it."""
        value = f"{owner} {now + ttl:.3f}"
        try:
            with self._db.tx() as conn:
                current = conn.execute(select(meta.c.value).where(meta.c.key == name)).scalar()
                if current is None:
                    conn.execute(insert(meta).values(key=name, value=value))
                    return True
                holder, _, expiry = current.partition(" ")
                if holder != owner and float(expiry or 0) > now:
                    return False
                res = conn.execute(update(meta).where(meta.c.key == name, meta.c.value == current).values(value=value))
                return res.rowcount == 1
        except IntegrityError:  # another runner inserted it first
            return False

    def holder(self, name: str) -> tuple[str, float] | None:
        """Who holds the lease `name` and until when (it may have expired); None when nobody ever took it or the
        last holder released it. Read by /readyz and /metrics (issue 10 item 10)."""
        with self._db.engine.connect() as conn:
            current = conn.execute(select(meta.c.value).where(meta.c.key == name)).scalar()
        if current is None:
            return None
        holder, _, expiry = current.partition(" ")
        return holder, float(expiry or 0)

    def release(self, name: str, owner: str) -> None:
        """Give the lease up (on shutdown), so another runner takes over at once."""
        with self._db.tx() as conn:
            conn.execute(delete(meta).where(meta.c.key == name, meta.c.value.like(f"{owner} %")))
