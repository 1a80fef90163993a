"""store/batch.py: statements sent together (one round trip on PostgreSQL, in turn on SQLite) behave as if sent
one at a time: results in order, the first broken constraint named by its index with nothing after it run, and
the transaction still the caller's to commit or roll back. Real databases: a SQLite file and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, func, insert, select

from tione_server.store import Store, batch
from tione_server.store.batch import Refused
from tione_server.store.schema import meta

_PUT = insert(meta).values(key=bindparam("key"), value=bindparam("value"))
_COUNT = select(func.count()).select_from(meta).where(meta.c.key.like(bindparam("prefix")))
_IN = select(meta.c.value).where(meta.c.key.in_(["b-1", "b-3"])).order_by(meta.c.key)
"""An IN list of constants: expanded into parameters of its own when the statement is prepared."""


def _count(store: Store, prefix: str = "b-%") -> int:
    with store.db.engine.connect() as conn:
        return int(conn.execute(_COUNT, {"prefix": prefix}).scalar_one())


def test_results_come_back_in_order(store: Store) -> None:
    p = store.db.prepared
    with store.db.tx() as conn:
        done = batch.run(
            conn,
            [
                (p(_PUT), {"key": "b-1", "value": "one"}),
                (p(_PUT), [{"key": "b-2", "value": "two"}, {"key": "b-3", "value": "three"}]),  # executemany
                (p(_COUNT), {"prefix": "b-%"}),  # sees the writes before it, in the same transaction
                (p(_IN), {}),
            ],
        )
    assert done[0].rowcount == 1
    assert done[0].rows == []
    assert done[2].rows == [(3,)]
    assert done[3].rows == [("one",), ("three",)]
    assert _count(store) == 3  # committed with the transaction


def test_a_broken_constraint_stops_the_batch_and_the_transaction_rolls_back(store: Store) -> None:
    p = store.db.prepared
    with store.db.tx() as conn:
        batch.run(conn, [(p(_PUT), {"key": "b-taken", "value": "first"})])
    with pytest.raises(Refused) as refused, store.db.tx() as conn:
        batch.run(
            conn,
            [
                (p(_PUT), {"key": "b-new", "value": "x"}),
                (p(_COUNT), {"prefix": "b-%"}),
                (p(_PUT), {"key": "b-taken", "value": "again"}),  # the primary key refuses it
                (p(_PUT), {"key": "b-after", "value": "y"}),
            ],
        )
    assert isinstance(refused.value.cause, store.db.engine.dialect.loaded_dbapi.IntegrityError)
    assert _count(store) == 1  # leaving the transaction with the error rolled back the statements before it
    with store.db.engine.connect() as conn:
        assert conn.execute(select(meta.c.value).where(meta.c.key == "b-taken")).scalar_one() == "first"


def test_the_connection_serves_the_next_transaction_after_a_refusal(store: Store) -> None:
    p = store.db.prepared
    for _ in range(3):  # the pool hands the same connection back: it must not be left mid-pipeline
        with pytest.raises(Refused), store.db.tx() as conn:
            batch.run(conn, [(p(_PUT), {"key": "b-dup", "value": "1"}), (p(_PUT), {"key": "b-dup", "value": "2"})])
    with store.db.tx() as conn:
        assert batch.run(conn, [(p(_PUT), {"key": "b-dup", "value": "3"}), (p(_COUNT), {"prefix": "b-dup"})])[
            1
        ].rows == [(1,)]


def test_a_statement_is_prepared_once(store: Store) -> None:
    assert store.db.prepared(_PUT) is store.db.prepared(_PUT)


_HOSTILE = [
    "it's",
    "back\\slash\\",
    "50% off %s %(key)s",
    "'); DROP TABLE meta; --",
    "line\nbreak\ttab",
    "ünïcødé 训练 🚀",
    "$$dollar$$",
    "E'\\x00'",
]


def test_values_reach_the_database_exactly_as_given(store: Store) -> None:
    """On PostgreSQL the batch binds parameters on this side (quoted literals in one query string): quotes,
    backslashes, percent signs, placeholders and statement separators in a value stay data."""
    p = store.db.prepared
    rows = [{"key": f"b-h{i}", "value": v} for i, v in enumerate(_HOSTILE)]
    with store.db.tx() as conn:
        done = batch.run(conn, [(p(_PUT), rows), (p(_COUNT), {"prefix": "b-h%"})])
    assert done[0].rowcount == len(_HOSTILE)  # an executemany step counts every row it wrote
    assert done[1].rows == [(len(_HOSTILE),)]
    with store.db.engine.connect() as conn:
        stored = dict(conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.like("b-h%"))).all())
    assert stored == {r["key"]: r["value"] for r in rows}


def test_the_commit_can_go_with_the_batch(store: Store) -> None:
    p = store.db.prepared
    with store.db.tx() as conn:
        batch.run(conn, [(p(_PUT), {"key": "b-last", "value": "1"})], last=True)
    assert _count(store, "b-last") == 1
    with store.db.tx() as conn:  # the connection goes back to the pool clean: the next transaction works
        assert batch.run(conn, [(p(_COUNT), {"prefix": "b-last"})])[0].rows == [(1,)]
