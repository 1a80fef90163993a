"""List throughput of one replica against two on one PostgreSQL database (issue 10 item 8), in one run.

`python -m bench.replicas` makes a fresh database, imports a generated dataset (bench/dataset.py) through
`tione-server import`, starts two `tione-server serve` replicas on it, and loads DescribeTrainingTasks (the
default page) from a separate load process (bench/load.py): first every connection to replica A, then the same
connections dealt round-robin to A and B, as a load balancer would. Prints one markdown table.

Two replicas help only where cores are free: on a machine with fewer cores than replicas plus the load generator,
the figure measures the machine, and the table says how many cores there were.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

from bench import dataset, load
from bench.measure import HttpClient
from bench.processes import TIONE_SERVER, tione_server
from bench.shapes import THROUGHPUT_SHAPE
from bench.signer import Credentials
from tione_server.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("TIONE_TEST_POSTGRES_URL", ""))
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks of the measured account")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    if not args.postgres:
        sys.exit("set --postgres URL or TIONE_TEST_POSTGRES_URL (replicas share one PostgreSQL database)")
    import psycopg

    admin = args.postgres.replace("postgresql+psycopg://", "postgresql://")
    name = f"tione_bench_replicas_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with TemporaryDirectory(prefix="tione-replicas-") as tmp:
            print(_measure(f"{args.postgres.rpartition('/')[0]}/{name}", Path(tmp), args))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _measure(url: str, workdir: Path, args: argparse.Namespace) -> str:
    data = dataset.ensure(workdir / "data", args.tasks, seed=1, log=lambda _: None)
    for file in data.files:
        t = file.tenant
        command = ["import", str(file.path), "--uin", t.uin, "--region", t.region, "--app-id", t.app_id]
        subprocess.run([str(TIONE_SERVER), *command, "--database", url], check=True, capture_output=True)
    store = Store(url)
    try:
        key = store.keys.create(uin=dataset.MAIN.uin, app_id=dataset.MAIN.app_id, sub_uin=dataset.MAIN.uin)
    finally:
        store.close()
    creds = Credentials(key.secret_id, key.secret_key)
    rows = []
    with tione_server(url, workdir / "a") as a, tione_server(url, workdir / "b") as b:
        request = HttpClient.presign(a.host, creds, THROUGHPUT_SHAPE.params)  # the Host signed is A's; B accepts it
        for label, more in (("1 replica", ()), ("2 replicas, round-robin", (b.port,))):
            result = load.run(
                "127.0.0.1", a.port, [request], connections=args.connections, duration=args.seconds,
                warmup=args.warmup, more_ports=more,
            )  # fmt: skip
            rows.append((label, result))
    lines = [
        f"### DescribeTrainingTasks over replicas: {args.tasks:,} tasks, PostgreSQL, {args.connections} connections, "
        f"{args.seconds:g} s, {os.cpu_count()} cores",
        "",
        "| replicas | req/s | p50 ms | p99 ms | errors | load generator CPU |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        lines.append(f"| {label} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {r.cpu_share:.0%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
