"""Issue 12: the list's asynchronous reads on PostgreSQL (store/readers.py AsyncReaders), on a real server.

Identical statements that arrive while one runs share the next run, never the running one: each caller still
sees every commit made before it asked. These tests use a sequence (each run of the statement takes a new
value, so equal values mean a shared run) and `pg_sleep` to hold a run open while others arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import make_database
from tione_server.store.database import Database
from tione_server.store.readers import AsyncReaders, numbered

pytestmark = pytest.mark.postgres

RUN = "SELECT nextval('runs_seen'), (SELECT v FROM box), pg_sleep(%(hold)s)"
"""One run of the statement: a new sequence value, the box's value when the run started, held `hold` seconds."""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    for url in make_database("postgres", tmp_path):
        database = Database(url)
        _admin(database, "CREATE SEQUENCE runs_seen", "CREATE TABLE box (v int)", "INSERT INTO box VALUES (1)")
        try:
            yield database
        finally:
            database.close()


def _admin(db: Database, *statements: str) -> None:
    """Statements committed on a connection of their own (another client, as far as the readers know)."""
    with psycopg.connect(db.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def _readers(db: Database) -> AsyncReaders:
    assert db.async_readers is not None
    return db.async_readers


def test_numbered_marks() -> None:
    assert numbered("SELECT %(a)s, %(b)s, %(a)s LIKE 'x%%'") == ("SELECT $1, $2, $1 LIKE 'x%'", ("a", "b"))
    assert numbered("SELECT * FROM t WHERE num IN (%s, %s)") == ("SELECT * FROM t WHERE num IN ($1, $2)", None)
    with pytest.raises(ValueError, match="mixes"):
        numbered("SELECT %(a)s, %s")


def test_callers_that_arrive_during_a_run_share_the_next_one(db: Database) -> None:
    readers = _readers(db)

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(readers.fetch(RUN, {"hold": 0.3}))
        await asyncio.sleep(0.1)  # the first run is on the server now
        later = [asyncio.ensure_future(readers.fetch(RUN, {"hold": 0.3})) for _ in range(8)]
        return [rows[0][0] for rows in await asyncio.gather(first, *later)]

    seen = asyncio.run(scenario())
    assert seen[0] == 1
    assert seen[1:] == [2] * 8  # one more run for all eight, not eight runs, nor a share of the first
    readers.close()


def test_a_caller_sees_what_was_committed_before_it_asked(db: Database) -> None:
    readers = _readers(db)

    async def scenario() -> tuple[int, int]:
        first = asyncio.ensure_future(readers.fetch(RUN, {"hold": 0.4}))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(_admin, db, "UPDATE box SET v = 2")  # committed while the first run is held
        second = await readers.fetch(RUN, {"hold": 0})
        return (await first)[0][1], second[0][1]

    assert asyncio.run(scenario()) == (1, 2)
    readers.close()


def test_different_parameters_do_not_share(db: Database) -> None:
    readers = _readers(db)

    async def scenario() -> list[int]:
        runs = [readers.fetch(RUN, {"hold": 0.1 + i / 1000}) for i in range(4)]
        return [rows[0][0] for rows in await asyncio.gather(*runs)]

    assert sorted(asyncio.run(scenario())) == [1, 2, 3, 4]
    readers.close()


def test_a_cancelled_caller_leaves_the_shared_run_to_the_others(db: Database) -> None:
    readers = _readers(db)

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(readers.fetch(RUN, {"hold": 0.2}))
        await asyncio.sleep(0.05)
        gone, *stay = [asyncio.ensure_future(readers.fetch(RUN, {"hold": 0.2})) for _ in range(3)]
        await asyncio.sleep(0.05)
        gone.cancel()  # its client went away while it waited for the running one
        values = [rows[0][0] for rows in await asyncio.gather(first, *stay)]
        assert gone.cancelled()
        return values

    assert asyncio.run(scenario()) == [1, 2, 2]
    readers.close()


def test_a_failing_statement_fails_each_caller_and_the_readers_go_on(db: Database) -> None:
    readers = _readers(db)
    bad = "SELECT 1 / (v - 1), pg_sleep(0.1) FROM box"  # box holds 1: division by zero

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(readers.fetch(bad, {}))
        await asyncio.sleep(0.03)
        later = [asyncio.ensure_future(readers.fetch(bad, {})) for _ in range(3)]
        failures = await asyncio.gather(first, *later, return_exceptions=True)
        assert all("division by zero" in str(f) for f in failures), failures
        return [rows[0][0] for rows in await asyncio.gather(*(readers.fetch(RUN, {"hold": 0}) for _ in range(2)))]

    assert asyncio.run(scenario()) == [1, 2]  # the second arrived while the first ran: it waited for it
    readers.close()
