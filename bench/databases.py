"""Benchmark databases: one per backend and dataset size, filled through tione_server.importer.import_file.

Databases are cached (SQLite files under the work directory; PostgreSQL databases named tione_bench_*),
keyed by size, seed and a fingerprint of the task tables' DDL, so a change to their layout rebuilds them. The import
of the measured account's file is timed; noise files are imported after it, untimed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from bench.dataset import MAIN, Dataset, DatasetFile
from bench.signer import Credentials
from tione_server.config import Settings
from tione_server.importer import import_file
from tione_server.store import Store
from tione_server.store import schema as store_schema

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Database:
    """A filled database and how long its import took when it was built."""

    backend: str
    size: int
    url: str
    import_seconds: float
    """Wall time of import_file for the measured account's `size` tasks."""
    noise_tasks: int
    built_at: str
    cached: bool


def fingerprint() -> str:
    """Changes whenever the tables an import fills change (on either dialect), so a cached database of an
    older layout is never reused: the DDL of `scopes` and of every `task*` table with its indexes.
    Code-only changes (queries, the import's speed) keep the cache; `--rebuild` re-imports anyway."""
    ddl: list[str] = []
    dialects: list[Dialect] = [sqlite.dialect(), postgresql.dialect()]  # type: ignore[no-untyped-call]
    for dialect in dialects:
        for table in store_schema.metadata.sorted_tables:
            if table.name == "scopes" or table.name.startswith("task"):
                ddl.append(str(CreateTable(table).compile(dialect=dialect)))
                ddl += sorted(str(CreateIndex(ix).compile(dialect=dialect)) for ix in table.indexes)
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:8]


class Progress:
    """A one-line progress bar on stderr (a line per quarter when stderr is not a terminal)."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self._last_draw = 0.0
        self._last_quarter = 0

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if self.tty and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            sys.stderr.write("\r" + self._line(now))
            sys.stderr.flush()
        elif not self.tty and self.done * 4 // self.total > self._last_quarter:
            self._last_quarter = self.done * 4 // self.total
            sys.stderr.write(self._line(now) + "\n")

    def _line(self, now: float) -> str:
        share = min(self.done / self.total, 1.0)
        bar = "#" * int(share * 30)
        rate = self.done / max(now - self.started, 1e-9)
        return f"{self.label} [{bar:<30}] {self.done:>9,}/{self.total:,} {rate:>8,.0f} tasks/s"

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _import(store: Store, file: DatasetFile, settings: Settings, label: str) -> float:
    progress = Progress(label, file.count)
    started = time.perf_counter()
    count = import_file(
        store,
        file.path,
        uin=file.tenant.uin,
        app_id=file.tenant.app_id,
        region=file.tenant.region,
        project=None,
        settings=settings,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    progress.close()
    if count != file.count:
        raise RuntimeError(f"{file.path.name}: imported {count} tasks, expected {file.count}")
    return seconds


def prepare(
    backend: str,
    dataset: Dataset,
    root: Path,
    *,
    postgres_url: str,
    rebuild: bool,
    log: Callable[[str], None],
) -> Database:
    """The database of `backend` holding `dataset`, built unless a complete one is cached."""
    root.mkdir(parents=True, exist_ok=True)
    key = f"{dataset.size}-s{dataset.seed}-{fingerprint()}"
    sidecar = root / f"{backend}-{key}.json"
    if backend == "sqlite":
        path = root / f"sqlite-{key}.db"
        url = f"sqlite:///{path}"
        exists = path.exists()
    else:
        name = f"tione_bench_{key.replace('-', '_')}"
        url = f"{postgres_url.rpartition('/')[0]}/{name}"
        exists = _pg_exists(postgres_url, name)
    if exists and sidecar.exists() and not rebuild:
        record = json.loads(sidecar.read_text())
        record.update(cached=True, url=url)
        return Database(**record)

    log(f"building {backend} database for {dataset.size:,} tasks ({url})")
    _drop_stale(backend, root, postgres_url, f"{dataset.size}-s{dataset.seed}-")
    if backend == "postgres":
        _pg_recreate(postgres_url, name)
    settings = Settings(database_url=url)
    store = Store(url)
    try:
        seconds = _import(store, dataset.main, settings, f"import {backend} {dataset.size:>9,}")
        log(f"imported {dataset.size:,} tasks into {backend} in {seconds:.1f} s ({dataset.size / seconds:,.0f}/s)")
        for i, noise in enumerate(dataset.noise, 1):
            _import(store, noise, settings, f"noise  {backend} {i}/{len(dataset.noise)}  ")
    finally:
        store.close()
    if backend == "postgres":
        # The state autovacuum reaches a minute after a bulk import: statistics and a visibility map.
        _pg_run(url, "VACUUM (ANALYZE)")
    database = Database(
        backend=backend,
        size=dataset.size,
        url=url,
        import_seconds=seconds,
        noise_tasks=sum(f.count for f in dataset.noise),
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        cached=False,
    )
    sidecar.write_text(json.dumps(asdict(database), indent=1))
    return database


def new_key(db: Database) -> Credentials:
    """A fresh API key of the measured account (bench/dataset.py MAIN) in this database."""
    store = Store(db.url)
    try:
        key = store.keys.create(uin=MAIN.uin, app_id=MAIN.app_id, sub_uin=MAIN.uin)
    finally:
        store.close()
    return Credentials(key.secret_id, key.secret_key)


def _drop_stale(backend: str, root: Path, postgres_url: str, prefix: str) -> None:
    """Remove this size and seed's databases of every schema fingerprint (the current one included)."""
    for sidecar in root.glob(f"{backend}-{prefix}*.json"):
        sidecar.unlink()
    if backend == "sqlite":
        for path in root.glob(f"sqlite-{prefix}*.db*"):
            path.unlink()
        return
    import psycopg

    like = f"tione_bench_{prefix.replace('-', '_')}".replace("_", "\\_") + "%"
    with psycopg.connect(_admin(postgres_url), autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,))]
        for stale in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')


def _admin(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _pg_run(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(_admin(url), autocommit=True) as conn:
        conn.execute(sql)


def _pg_exists(postgres_url: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(_admin(postgres_url), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _pg_recreate(postgres_url: str, name: str) -> None:
    if not name.startswith("tione_bench_"):
        raise ValueError(f"refusing to drop {name!r}: benchmark databases are named tione_bench_*")
    _pg_run(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_run(postgres_url, f'CREATE DATABASE "{name}"')


def postgres_available(postgres_url: str) -> str | None:
    """None when the PostgreSQL server answers; otherwise why not."""
    try:
        _pg_run(postgres_url, "SELECT 1")
    except Exception as err:
        return str(err).strip().splitlines()[0]
    return None


def postgres_version(postgres_url: str) -> str:
    """The server's `server_version`, for the machine line of the report."""
    import psycopg

    with psycopg.connect(_admin(postgres_url), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"
