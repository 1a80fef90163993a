"""What one signed DescribeTrainingTasks costs the server's own code: the whole ASGI app (gateway, service, store,
rendering), called in process with no HTTP server around it, in CPU time, best of six batches (CPU time, not
wall time: these machines are shared). `--profile` adds cProfile's top functions. Issue 12's profiles came from
this.

    python -m bench.asgi_cost [--backend sqlite|postgres] [--size 2000] [--limit 10] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import pstats
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import uvloop

from bench import dataset
from bench.databases import DEFAULT_POSTGRES_URL, new_key, prepare
from bench.processes import REPO
from bench.signer import signed_headers
from tione_server.app import configure_logging, create_app
from tione_server.config import Settings

BATCH = 600
BATCHES = 6


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.asgi_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--size", type=int, default=2000, help="Tasks of the measured account (default 2000).")
    p.add_argument("--limit", type=int, default=10, help="Page size (default 10, the API's default).")
    p.add_argument("--profile", action="store_true", help="Also print cProfile's top 30 functions by own time.")
    args = p.parse_args(argv)

    root = REPO / "var" / "bench"
    data = dataset.ensure(root / "data", args.size, 1, log=lambda _: None)
    db = prepare(args.backend, data, root / "db", postgres_url=DEFAULT_POSTGRES_URL, rebuild=False, log=print)
    creds = new_key(db)
    configure_logging("info")  # as `serve` runs: one INFO line per request, here into /dev/null
    devnull = Path("/dev/null").open("w")  # noqa: SIM115 - open for the whole run
    handler = logging.root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(devnull)
    app = create_app(Settings(database_url=db.url, executor="simulate", rate_limit=0))
    body = json.dumps({"Limit": args.limit}).encode()
    headers = signed_headers(creds, "127.0.0.1:8080", "DescribeTrainingTasks", dataset.MAIN.region, body)
    headers["Content-Length"] = str(len(body))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    last: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            last[:] = [message["body"]]

    async def requests(n: int) -> None:
        for _ in range(n):
            await app(scope, receive, send)

    async def run() -> None:
        await requests(300)  # warm: compiled statements, kept items, the key cache
        reply = json.loads(last[0])["Response"]
        assert "Error" not in reply, reply
        best = await _best(requests)
        items = len(reply["TrainingTaskSet"])
        print(f"{args.backend}, {args.size:,} tasks, Limit {args.limit} ({items} items, {len(last[0]):,} bytes): "
              f"{best / BATCH * 1e6:.0f} us CPU per request")  # fmt: skip
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await requests(BATCH * 4)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)

    try:
        uvloop.run(run())  # the loop `serve` runs on (uvicorn[standard])
    finally:
        app.close()
        devnull.close()


async def _best(requests: Any) -> float:
    """The least CPU time one batch took, of BATCHES."""
    best = float("inf")
    for _ in range(BATCHES):
        started = time.process_time()
        await requests(BATCH)
        best = min(best, time.process_time() - started)
    return best


if __name__ == "__main__":
    main()
