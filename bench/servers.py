"""uvicorn against granian (Rust), in one run: the constant-reply floor and the real app under each, one worker.

`python -m bench.servers` builds (or reuses) a benchmark database (bench/databases.py), captures one real
default-page reply as the floor's body, then loads four servers with the same generator (bench/load.py), same
connections and seconds, interleaved: floor under uvicorn, floor under granian, app under uvicorn (`tione-server
serve` itself), app under granian (tione_server.app.app_from_env with the Settings serve would build; see
bench/processes.py). The four are loaded in rounds (default 3) and each figure is the median of its rounds, as
other work on a shared machine moves single figures by a third. Prints one markdown table; every request must
succeed for a figure to count.
granian is not in the dev extra (`make bench` does not use it): `pip install granian` first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from bench import dataset, load
from bench.databases import DEFAULT_POSTGRES_URL, new_key, prepare
from bench.load import LoadResult
from bench.measure import HttpClient
from bench.processes import (
    GRANIAN,
    REPO,
    Running,
    floor_server,
    granian_floor_server,
    granian_tione_server,
    tione_server,
)
from bench.report import parse_size, size_label
from bench.run import log
from bench.shapes import THROUGHPUT_SHAPE
from bench.signer import Credentials

HTTP_SERVERS = ("uvicorn", "granian")
Starter = Callable[[], AbstractContextManager[Running]]


@dataclass(frozen=True)
class Figure:
    """One server stack serving one app."""

    server: str
    app: str
    """`floor` or `tione-server`."""
    round: int
    result: LoadResult


def _load(server: Running, creds: Credentials, connections: int, seconds: float) -> LoadResult:
    request = HttpClient.presign(server.host, creds, THROUGHPUT_SHAPE.params)
    return load.run("127.0.0.1", server.port, [request], connections=connections, duration=seconds, warmup=1.0)


def _starters(database_url: str, body: Path, run_dir: Path) -> list[tuple[str, str, Starter]]:
    return [
        ("uvicorn", "floor", lambda: floor_server(body, run_dir)),
        ("granian", "floor", lambda: granian_floor_server(body, run_dir)),
        ("uvicorn", "tione-server", lambda: tione_server(database_url, run_dir)),
        ("granian", "tione-server", lambda: granian_tione_server(database_url, run_dir)),
    ]


def measure(
    database_url: str,
    creds: Credentials,
    run_dir: Path,
    *,
    connections: int,
    seconds: float,
    rounds: int,
    log: Callable[[str], None],
) -> list[Figure]:
    """The four figures of each round, floors first; each server's reply checked to be the real page first."""
    with tione_server(database_url, run_dir) as server:
        client = HttpClient(server.port, creds)
        try:
            body = client.send(client.request_bytes(THROUGHPUT_SHAPE.params))
        finally:
            client.close()
    body_path = run_dir / "servers-floor-body.json"
    body_path.write_bytes(body)
    figures: list[Figure] = []
    starters = _starters(database_url, body_path, run_dir)
    for number in range(1, rounds + 1):
        for server_name, app, start in starters:
            with start() as server:
                result = _checked_load(server, creds, body, connections, seconds)
            figures.append(Figure(server=server_name, app=app, round=number, result=result))
            log(f"round {number}: {app} under {server_name}: {result.rps:,.0f} req/s, {result.errors} errors")
    return figures


def _checked_load(server: Running, creds: Credentials, body: bytes, connections: int, seconds: float) -> LoadResult:
    """Load a server whose reply carries the floor body's page (the same number of items)."""
    client = HttpClient(server.port, creds)
    try:
        check = client.call(THROUGHPUT_SHAPE.params)
    finally:
        client.close()
    if len(check["TrainingTaskSet"]) != len(json.loads(body)["Response"]["TrainingTaskSet"]):
        raise RuntimeError(f"{server.name}: a different page than the floor's")
    return _load(server, creds, connections, seconds)


def render(figures: list[Figure], size: int, backend: str, connections: int) -> str:
    """One row per HTTP server: median floor and app req/s over the rounds, the app's share of its own floor,
    the app against uvicorn's, and errors over every round."""
    rounds = max(f.round for f in figures)
    rps = {key: statistics.median(f.result.rps for f in figures if (f.server, f.app) == key) for key in _keys(figures)}
    errs = {key: sum(f.result.errors for f in figures if (f.server, f.app) == key) for key in _keys(figures)}
    lines = [
        f"### HTTP server: uvicorn vs granian — DescribeTrainingTasks default page, {backend}, "
        f"{size_label(size)} tasks, 1 worker, {connections} conns, median of {rounds} interleaved rounds",
        "",
        "| Server | Floor req/s | tione-server req/s | Share of own floor | vs uvicorn (app) | Errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = rps[("uvicorn", "tione-server")]
    for server in HTTP_SERVERS:
        floor, app = rps[(server, "floor")], rps[(server, "tione-server")]
        share = app / floor if floor else 0.0
        gain = app / base if base else 0.0
        failed = errs[(server, "floor")], errs[(server, "tione-server")]
        errors = f"{failed[0]} / {failed[1]}" + ("" if sum(failed) else " (all ok)")
        lines.append(f"| {server} | {floor:,.0f} | {app:,.0f} | {share:.1%} | {gain:.2f}× | {errors} |")
    return "\n".join(lines) + "\n"


def _keys(figures: list[Figure]) -> set[tuple[str, str]]:
    return {(f.server, f.app) for f in figures}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="100k", help="Tasks of the measured account (default 100k).")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("TIONE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="Measured seconds of each load test.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; figures are medians.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=REPO / "var" / "bench")
    args = parser.parse_args()
    if not GRANIAN.exists():
        raise SystemExit(f"{GRANIAN} not found: pip install granian")
    workdir = args.workdir.resolve()
    size = parse_size(args.size)
    data = dataset.ensure(workdir / "data", size, args.seed, log=log)
    db = prepare(args.backend, data, workdir / "db", postgres_url=args.postgres_url, rebuild=False, log=log)
    figures = measure(
        db.url,
        new_key(db),
        workdir / "run",
        connections=args.connections,
        seconds=args.seconds,
        rounds=args.rounds,
        log=log,
    )
    table = render(figures, size, args.backend, args.connections)
    print(table)
    results = workdir / "results"
    results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results / f"{stamp}-servers.md").write_text(table)
    (results / f"{stamp}-servers.json").write_text(json.dumps([dataclasses.asdict(f) for f in figures], indent=1))
    log(f"results in {results}/{stamp}-servers.{{md,json}}")


if __name__ == "__main__":
    main()
