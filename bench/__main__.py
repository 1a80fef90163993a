"""`python -m bench`: run the benchmark and print its markdown table.

`--quick` (default: 1k and 100k tasks) for everyday runs, `--full` (1k, 100k, 1M) for the closing note;
throughput is loaded at the largest size, with one worker and two, and compared with moto at 2,000 tasks.
Datasets and databases are cached under `var/bench/` (gitignored); the raw results of each run are kept
there as JSON next to the tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from bench.databases import DEFAULT_POSTGRES_URL
from bench.measure import Budget
from bench.processes import REPO
from bench.report import parse_size, render, size_label, update_readme
from bench.run import Config, log, run

QUICK = [1_000, 100_000]
FULL = [1_000, 100_000, 1_000_000]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1k and 100k tasks (the default).")
    mode.add_argument("--full", action="store_true", help="1k, 100k and 1M tasks.")
    p.add_argument("--sizes", help="Comma-separated sizes instead, e.g. 1k,10k (smallest first).")
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--output", type=Path, help="Also write the table to this file.")
    p.add_argument("--readme", type=Path, help="Replace the README's bench section (between its markers).")
    p.add_argument("--seed", type=int, default=1, help="Dataset seed (default 1).")
    p.add_argument("--workdir", type=Path, default=REPO / "var" / "bench", help="Cache and logs.")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("TIONE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="A PostgreSQL server to create tione_bench_* databases on (TIONE_BENCH_POSTGRES_URL).",
    )
    p.add_argument("--rebuild", action="store_true", help="Rebuild databases even when cached.")
    p.add_argument("--seconds", type=float, default=4.0, help="Sampling time per shape and measure.")
    p.add_argument("--min-samples", type=int, default=15)
    p.add_argument("--max-samples", type=int, default=300)
    p.add_argument("--connections", type=int, default=16, help="Concurrent connections of the load test.")
    p.add_argument("--load-seconds", type=float, default=10.0, help="Measured seconds of each load test.")
    p.add_argument(
        "--load-rounds", type=int, default=3, help="Interleaved floor/server rounds per throughput figure (median)."
    )
    p.add_argument("--workers", default="1,2", help="Comma-separated worker counts to load (default 1,2).")
    p.add_argument("--load-size", help="Size to load (default: the largest size measured).")
    p.add_argument("--no-load", action="store_true", help="Skip the throughput measurements (moto's too).")
    p.add_argument("--no-moto", action="store_true", help="Skip the comparison with moto.")
    p.add_argument("--no-runner", action="store_true", help="Skip the runner at scale (bench/runner_scale.py).")
    return p


def _load_size(args: argparse.Namespace, sizes: list[int]) -> int | None:
    if args.no_load:
        return None
    if args.load_size:
        wanted = parse_size(args.load_size)
        if wanted not in sizes:
            raise SystemExit(f"--load-size {args.load_size} is not among the sizes measured")
        return wanted
    return max(sizes)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.sizes:
        sizes = sorted(parse_size(s) for s in args.sizes.split(","))
        mode = "custom"
    else:
        sizes = FULL if args.full else QUICK
        mode = "full" if args.full else "quick"
    config = Config(
        mode=mode,
        sizes=sizes,
        backends=["sqlite", "postgres"] if args.backend == "both" else [args.backend],
        seed=args.seed,
        workdir=args.workdir.resolve(),
        postgres_url=args.postgres_url,
        rebuild=args.rebuild,
        budget=Budget(seconds=args.seconds, min_n=args.min_samples, max_n=args.max_samples),
        connections=args.connections,
        load_seconds=args.load_seconds,
        load_warmup=1.0,
        load_rounds=max(1, args.load_rounds),
        workers=[int(w) for w in args.workers.split(",")],
        load_size=_load_size(args, sizes),
        moto=not args.no_moto,
        runner=not args.no_runner,
    )
    log(f"benchmark {mode}: sizes {', '.join(size_label(s) for s in sizes)}; backends {', '.join(config.backends)}")
    result = run(config)
    table = render(result)
    sys.stdout.write(table)
    results_dir = config.workdir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results_dir / f"{stamp}-{mode}.md").write_text(table)
    (results_dir / f"{stamp}-{mode}.json").write_text(json.dumps(dataclasses.asdict(result), indent=1))
    if args.output:
        args.output.write_text(table)
    if args.readme and not update_readme(args.readme, table):
        log(f"{args.readme}: no bench markers found; README left unchanged")
    log(f"results in {results_dir}/{stamp}-{mode}.{{md,json}}")


if __name__ == "__main__":
    main()
