"""Issue 12 target 2: a signed page of 50 over 2,000 tasks, at least 30x moto's ListTrainingJobs (MaxResults 50).

moto's own server runs as a separate process (werkzeug, threaded; its access log off, as `tione-server serve`
runs with its own off), seeded with 2,000 SageMaker training jobs through boto3. tione-server serves a benchmark
database holding 2,000 tasks of the measured account (bench/dataset.py, cached under var/bench/ like every
size). The same load generator (bench/load.py), with the same connections and seconds, then loads each back to
back: SigV4-signed raw ListTrainingJobs requests (JSON protocol, signed with botocore's signer) against moto,
TC3-signed DescribeTrainingTasks Limit=50 against `tione-server serve`. Each reply is checked once to carry 50
items, so both do the same work per request; p50 is measured by the same generator at one connection.

moto's werkzeug server closes each connection after its reply, so its figure includes a connect per request,
as any client of it pays. `python -m bench.moto` runs this comparison alone and prints its target rows;
`python -m bench.moto serve --port P` is how bench/processes.py starts moto.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import dataset, load
from bench.databases import DEFAULT_POSTGRES_URL, new_key, prepare
from bench.load import LoadResult
from bench.measure import HttpClient
from bench.processes import REPO, moto_server, tione_server
from bench.signer import Credentials
from bench.targets import TargetRow

TASKS = 2_000
PAGE = 50
TARGET = 30.0
REGION = "us-east-1"
FAKE = Credentials("testing", "testing")
"""moto accepts any key; the requests are signed all the same, as a real client signs them."""


@dataclass(frozen=True)
class Plan:
    """How to load each side, taken from the run's options."""

    connections: int
    seconds: float
    warmup: float


@dataclass(frozen=True)
class Side:
    """One server's figures: replies under load, and at one connection for the p50."""

    server: str
    """`moto`, or the backend of tione-server's database."""
    items: int
    """Items in one reply, counted once before the load."""
    under_load: LoadResult
    single: LoadResult


@dataclass
class Comparison:
    """The whole comparison, kept in the run's JSON next to its rows."""

    tasks: int
    connections: int
    seed_seconds: float
    """How long seeding moto took (boto3, 8 threads)."""
    moto: Side
    ours: list[Side] = field(default_factory=list)


def serve(port: int) -> None:
    """moto's server on loopback, access log off (werkzeug keeps a level set before it starts)."""
    from moto.server import main as moto_main

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto_main(["-H", "127.0.0.1", "-p", str(port)])


def seed(port: int, count: int) -> float:
    """Create `count` training jobs in moto through boto3; the seconds it took."""
    import boto3

    client = boto3.client(
        "sagemaker",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id=FAKE.secret_id,
        aws_secret_access_key=FAKE.secret_key,
    )

    def create(i: int) -> None:
        client.create_training_job(
            TrainingJobName=f"bench-{i:05d}",
            AlgorithmSpecification={
                "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:1",
                "TrainingInputMode": "File",
            },
            RoleArn="arn:aws:iam::123456789012:role/bench",
            OutputDataConfig={"S3OutputPath": "s3://bench/output"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))
    return time.perf_counter() - started


def list_request(port: int, max_results: int) -> bytes:
    """A raw SigV4-signed ListTrainingJobs request (JSON protocol), ready to write to a socket."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as AwsCredentials

    host = f"127.0.0.1:{port}"
    body = json.dumps({"MaxResults": max_results}).encode()
    request = AWSRequest(
        method="POST",
        url=f"http://{host}/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.ListTrainingJobs"},
    )
    SigV4Auth(AwsCredentials(FAKE.secret_id, FAKE.secret_key), "sagemaker", REGION).add_auth(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST / HTTP/1.1\r\nHost: {host}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _reply(port: int, request: bytes) -> dict[str, Any]:
    client = HttpClient(port, FAKE)
    try:
        reply: dict[str, Any] = json.loads(client.send(request))
    finally:
        client.close()
    return reply


def _side(name: str, port: int, request: bytes, items: int, plan: Plan) -> Side:
    if items != PAGE:
        raise RuntimeError(f"{name}: a page carries {items} items, not {PAGE}; the comparison would not be fair")
    loaded = [
        load.run("127.0.0.1", port, [request], connections=n, duration=plan.seconds, warmup=plan.warmup)
        for n in (plan.connections, 1)
    ]
    return Side(server=name, items=items, under_load=loaded[0], single=loaded[1])


def compare(
    workdir: Path,
    backends: list[str],
    *,
    postgres_url: str,
    seed_value: int,
    plan: Plan,
    log: Callable[[str], None],
) -> Comparison:
    """moto, then tione-server on each backend's 2,000-task database, loaded alike."""
    data = dataset.ensure(workdir / "data", TASKS, seed_value, log=log)
    with moto_server(workdir / "run") as moto:
        seconds = seed(moto.port, TASKS)
        log(f"moto: seeded {TASKS:,} training jobs in {seconds:.1f} s")
        request = list_request(moto.port, PAGE)
        items = len(_reply(moto.port, request)["TrainingJobSummaries"])
        side = _side("moto", moto.port, request, items, plan)
        log(_line(side))
    result = Comparison(tasks=TASKS, connections=plan.connections, seed_seconds=seconds, moto=side)
    for backend in backends:
        db = prepare(backend, data, workdir / "db", postgres_url=postgres_url, rebuild=False, log=log)
        creds = new_key(db)
        with tione_server(db.url, workdir / "run") as server:
            client = HttpClient(server.port, creds)
            try:
                reply = client.call({"Limit": PAGE})
            finally:
                client.close()
            if reply["TotalCount"] != TASKS:
                raise RuntimeError(f"{backend}: TotalCount {reply['TotalCount']}, expected {TASKS}")
            ours = HttpClient.presign(server.host, creds, {"Limit": PAGE})
            side = _side(backend, server.port, ours, len(reply["TrainingTaskSet"]), plan)
        log(_line(side))
        result.ours.append(side)
    return result


def _line(side: Side) -> str:
    return (
        f"{side.server} page of {side.items}: {side.under_load.rps:,.0f} req/s, {side.under_load.errors} errors, "
        f"p50 {side.single.p50_ms:.2f} ms at 1 connection (load generator CPU {side.under_load.cpu_share:.0%})"
    )


def target_rows(result: Comparison) -> list[TargetRow]:
    """One row per backend: its req/s over moto's, p50s beside."""
    rows: list[TargetRow] = []
    moto = result.moto
    for ours in result.ours:
        ratio = ours.under_load.rps / moto.under_load.rps if moto.under_load.rps else 0.0
        errors = ours.under_load.errors + moto.under_load.errors + ours.single.errors + moto.single.errors
        value = (
            f"{ours.under_load.rps:,.0f} vs {moto.under_load.rps:,.0f} req/s; "
            f"p50 {ours.single.p50_ms:.2f} vs {moto.single.p50_ms:.2f} ms"
        )
        if errors:
            value += f"; {errors} errors"
        rows.append(
            TargetRow(
                backend=ours.server,
                measure=(
                    f"Limit {PAGE} over {result.tasks:,} tasks vs moto ListTrainingJobs MaxResults {PAGE}, "
                    f"{result.connections} conns"
                ),
                value=value,
                ratio=f"{ratio:.1f}× moto",
                target=f"≥{TARGET:.0f}×",
                ok=ratio >= TARGET and errors == 0,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.moto", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve", help="Run moto's server (how the benchmark starts it).")
    serve_cmd.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("TIONE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, default=REPO / "var" / "bench")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port)
        return
    from bench.run import log

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    plan = Plan(connections=args.connections, seconds=args.seconds, warmup=1.0)
    result = compare(args.workdir.resolve(), backends, postgres_url=args.postgres_url, seed_value=1, plan=plan, log=log)
    for row in target_rows(result):
        print("| " + " | ".join(row.cells()) + " |")


if __name__ == "__main__":
    main()
