"""The memory of v1 nonces (issue 7 C7), on a real SQLite file and a real PostgreSQL database: a (SecretId,
Nonce) is accepted once until it expires, two workers racing on one nonce cannot both win, and the table stays
bounded. The gateway's use of it is tested over HTTP in test_protocol.py."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from tione_server.store import Store
from tione_server.store.nonces import NONCE_CHARS, PRUNE_EVERY
from tione_server.store.schema import nonces


def _rows(store: Store) -> list[tuple[str, str, int]]:
    with store.db.engine.connect() as conn:
        return [(r.secret_id, r.nonce, r.expires_at) for r in conn.execute(select(nonces))]


def test_nonce_store_accepts_a_pair_once_until_it_expires(store: Store) -> None:
    n = store.nonces
    assert n.accept("AKID1", "42", expires_at=1300, now=1000)
    assert not n.accept("AKID1", "42", expires_at=1300, now=1000)
    assert not n.accept("AKID1", "42", expires_at=1600, now=1300)  # still remembered at its expiry second
    assert n.accept("AKID2", "42", expires_at=1300, now=1000)  # another key's nonce
    assert n.accept("AKID1", "42", expires_at=1700, now=1301)  # expired: taken over
    assert not n.accept("AKID1", "42", expires_at=1700, now=1302)


def test_nonce_store_keeps_long_nonces_small(store: Store) -> None:
    """v1 allows a Nonce of any length; PostgreSQL refuses index entries over ~2.7 KB, so long ones are hashed."""
    n = store.nonces
    long = "9" * 5000
    assert n.accept("AKID1", long, expires_at=1300, now=1000)
    assert not n.accept("AKID1", long, expires_at=1300, now=1000)
    assert n.accept("AKID1", long + "1", expires_at=1300, now=1000)
    assert all(len(nonce) <= 2 * NONCE_CHARS for _, nonce, _ in _rows(store))


def test_nonce_store_is_shared_by_workers(store: Store) -> None:
    """Two stores on one database (two workers) accept each of 30 nonces offered to both at once exactly once."""
    other = Store(store.db.url)
    workers = [store.nonces, other.nonces]
    wins = [0, 0]
    barrier = threading.Barrier(2)

    def offer(i: int) -> None:
        for k in range(30):
            barrier.wait()
            wins[i] += workers[i].accept("AKID1", str(k), expires_at=1300, now=1000)

    threads = [threading.Thread(target=offer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert sum(wins) == 30


def test_nonce_store_prunes_expired_rows(store: Store) -> None:
    """Rows past their expiry are deleted as new nonces arrive, so the table holds about one window's worth."""
    n = store.nonces
    for k in range(PRUNE_EVERY):
        assert n.accept("AKID1", f"old{k}", expires_at=1300, now=1000)
    for k in range(PRUNE_EVERY + 1):
        assert n.accept("AKID1", f"new{k}", expires_at=2000, now=1700)
    with store.db.engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(nonces).where(nonces.c.expires_at < 1700)).scalar()
    assert left == 0
