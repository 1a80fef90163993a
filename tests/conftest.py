"""Shared fixtures: databases (a SQLite file; PostgreSQL when TIONE_TEST_POSTGRES_URL is set) and live servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import raycluster
from tests.live import Server, drop_postgres_database, fresh_postgres_database, running_server
from tests.raycluster import RayCluster
from tione_server.store import Store

POSTGRES_URL = os.environ.get("TIONE_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip PostgreSQL tests, visibly, where no server is configured."""
    if POSTGRES_URL:
        return
    skip = pytest.mark.skip(reason="TIONE_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL server of TIONE_TEST_POSTGRES_URL")


def make_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL of the given kind, removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'tione.db'}"
        return
    url, name = fresh_postgres_database(POSTGRES_URL)
    try:
        yield url
    finally:
        drop_postgres_database(POSTGRES_URL, name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on each backend (SQLite file; PostgreSQL)."""
    yield from make_database(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'tione.db'}"


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    """A live server on a fresh SQLite file, rate limit off, with one key."""
    with running_server(sqlite_url, tmp_path) as srv:
        yield srv


@pytest.fixture
def any_server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A live server on each backend."""
    with running_server(database_url, tmp_path) as srv:
        yield srv


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A Store on each backend's fresh database, closed afterwards."""
    s = Store(database_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One real two-node Ray cluster for the session's Ray tests (issue 10 item 7); skipped, saying why, only where
    ray is not installed."""
    why = raycluster.available()
    if why:
        pytest.skip(why)
    cluster = raycluster.start(workers=1)
    try:
        yield cluster
    finally:
        cluster.stop()
