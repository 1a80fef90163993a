"""One benchmark run, top to bottom: for each backend and size, build (or reuse) the database, time every
shape in-process, start `tione-server serve` and time every shape over signed HTTP, load it against the
floor at the throughput size with each worker count, read its peak memory; then the moto comparison
(bench/moto.py). Issue 12's target rows are gathered on the result. Progress goes to stderr; the result is a
RunResult.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import dataset, load, machine, moto, runner_scale, throughput
from bench.databases import Database, new_key, postgres_available, postgres_version, prepare
from bench.measure import Budget, Commits, HttpClient, InProcess
from bench.processes import CpuUse, CpuWindow, Running, floor_server, tione_server
from bench.report import BackendResult, RunResult, SizeResult, Throughput, size_label
from bench.shapes import SHAPES, THROUGHPUT_SHAPE
from bench.signer import Credentials


@dataclass(frozen=True)
class Config:
    """Everything a run needs, from the command line."""

    mode: str
    sizes: list[int]
    backends: list[str]
    seed: int
    workdir: Path
    postgres_url: str
    rebuild: bool
    budget: Budget
    connections: int
    load_seconds: float
    load_warmup: float
    load_rounds: int
    """Throughput: the floor and the server are loaded in this many interleaved rounds; each figure is the median."""
    workers: list[int]
    load_size: int | None
    """The size throughput is measured at; None skips the load tests (and moto)."""
    moto: bool
    """Compare with moto (bench/moto.py) after the backends."""
    runner: bool = True
    """Measure the runner at scale (bench/runner_scale.py) last."""


def log(message: str) -> None:
    """Progress, timestamped, on stderr (stdout carries only the report)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def run(config: Config) -> RunResult:
    """Measure everything the config asks for."""
    pg_version: str | None = None
    pg_problem: str | None = None
    if "postgres" in config.backends:
        pg_problem = postgres_available(config.postgres_url)
        pg_version = None if pg_problem else postgres_version(config.postgres_url)
    result = RunResult(
        mode=config.mode,
        seed=config.seed,
        sizes=config.sizes,
        machine=machine.describe(pg_version),
        started_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        load_average=machine.load_average(),
    )
    for backend in config.backends:
        outcome = BackendResult(backend=backend)
        result.backends.append(outcome)
        if backend == "postgres" and pg_problem:
            outcome.skipped = f"PostgreSQL unavailable ({pg_problem})"
            log(outcome.skipped)
            continue
        for size in config.sizes:
            outcome.sizes.append(_one_size(config, backend, size, outcome))
    for b in result.backends:
        result.targets += throughput.floor_rows(b)
    measured = [b.backend for b in result.backends if not b.skipped]
    if config.moto and config.load_size is not None and measured:
        plan = moto.Plan(connections=config.connections, seconds=config.load_seconds, warmup=config.load_warmup)
        result.moto = moto.compare(
            config.workdir, measured, postgres_url=config.postgres_url, seed_value=config.seed, plan=plan, log=log
        )
        result.targets += moto.target_rows(result.moto)
    for b in result.backends:
        result.targets += throughput.workers_rows(b)
    if config.runner and measured:
        log("runner at scale (simulate executor): 100, 1k, 10k active tasks")
        result.targets += runner_scale.target_rows(tuple(measured), postgres_url=config.postgres_url)
    return result


def _one_size(config: Config, backend: str, size: int, outcome: BackendResult) -> SizeResult:
    data = dataset.ensure(config.workdir / "data", size, config.seed, log=log)
    db = prepare(
        backend, data, config.workdir / "db", postgres_url=config.postgres_url, rebuild=config.rebuild, log=log
    )
    result = SizeResult(size=size, import_seconds=db.import_seconds, import_cached=db.cached)
    tag = f"{backend} {size_label(size)}"

    commits = Commits(db.url) if backend == "sqlite" else None  # each sample runs its query (measure.Commits)
    service = InProcess(db.url)
    try:
        for shape in SHAPES:
            lat = service.measure(shape.params, config.budget, commits)
            result.server[shape.key] = lat
            log(
                f"{tag} server {shape.label}: p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms "
                f"(n={lat.n}, total {lat.total_count:,})"
            )
    finally:
        service.close()

    creds = new_key(db)
    with tione_server(db.url, config.workdir / "run") as server:
        client = HttpClient(server.port, creds)
        try:
            for shape in SHAPES:
                lat = client.measure(shape.params, config.budget, commits)
                result.e2e[shape.key] = lat
                log(f"{tag} e2e    {shape.label}: p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms (n={lat.n})")
                if lat.total_count != result.server[shape.key].total_count:
                    raise RuntimeError(f"{tag} {shape.key}: TotalCount differs between in-process and HTTP")
            if size == config.load_size:
                reply = client.send(client.request_bytes(THROUGHPUT_SHAPE.params))
                body_path = config.workdir / "run" / f"floor-body-{backend}-{size}.json"
                body_path.write_bytes(reply)
                for workers in config.workers:
                    outcome.throughput.append(_throughput(config, db, creds, server, workers, body_path))
        finally:
            client.close()
            if commits is not None:
                commits.close()
        result.peak_rss_kib = server.peak_rss_kib()
    log(f"{tag} peak server RSS {result.peak_rss_kib / 1024:.0f} MB")
    return result


Measured = tuple[load.LoadResult, CpuUse | None]
"""One load run's result and the CPU read over its window."""


def _throughput(
    config: Config, db: Database, creds: Credentials, server: Running, workers: int, body_path: Path
) -> Throughput:
    """The floor, then the real server, back to back with the same workers and connections, in interleaved rounds:
    each figure is its median round (on these shared machines one run's figure moves by a tenth either way)."""
    floors: list[Measured] = []
    reals: list[Measured] = []
    for number in range(1, config.load_rounds + 1):
        with floor_server(body_path, config.workdir / "run", workers) as floor:
            floors.append(_load(config, floor, creds))
        if workers == 1:
            reals.append(_load(config, server, creds))
        else:
            with tione_server(db.url, config.workdir / "run", workers) as multi:
                reals.append(_load(config, multi, creds))
        (f, _), (r, _) = floors[-1], reals[-1]
        log(
            f"round {number}: floor {workers} worker(s) {f.rps:,.0f} req/s (load generator CPU {f.cpu_share:.0%}); "
            f"{db.backend} {size_label(db.size)} {r.rps:,.0f} req/s, {r.errors} errors "
            f"(load generator CPU {r.cpu_share:.0%})"
        )
    floor_result, floor_cpu = median_round(floors)
    real, real_cpu = median_round(reals)
    return Throughput(
        size=db.size,
        workers=workers,
        connections=config.connections,
        real=real,
        floor=floor_result,
        real_cpu=real_cpu,
        floor_cpu=floor_cpu,
        rounds=config.load_rounds,
    )


def median_round(rounds: Sequence[Measured]) -> Measured:
    """The round of median req/s (the lower of the middle two for an even count), carrying every round's errors."""
    ordered = sorted(rounds, key=lambda m: m[0].rps)
    result, cpu = ordered[(len(ordered) - 1) // 2]
    return dataclasses.replace(result, errors=sum(m[0].errors for m in rounds)), cpu


def _load(config: Config, server: Running, creds: Credentials) -> Measured:
    """One load run, with the server's and the machine's CPU over its measurement window."""
    request = HttpClient.presign(server.host, creds, THROUGHPUT_SHAPE.params)
    # The load process times its window from when it has started and connected: about its interpreter's start
    # later than this (~0.1 s); the reading's window is shortened by as much at each end to stay inside it.
    margin = LOAD_START_SECONDS
    window = CpuWindow(server, start=config.load_warmup + margin, seconds=max(1.0, config.load_seconds - 2 * margin))
    result = load.run(
        "127.0.0.1",
        server.port,
        [request],
        connections=config.connections,
        duration=config.load_seconds,
        warmup=config.load_warmup,
    )
    return result, window.result()


LOAD_START_SECONDS = 0.3
"""A generous bound on how long the load process takes to start before its warmup begins."""
