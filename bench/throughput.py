"""Issue 12 targets 1 and 3 as rows, from the load tests of one backend: the default page at one worker as a
share of the floor (the same uvicorn stack sending the same reply bytes at once), and two workers over one.

The two-worker row carries the floor's own two-over-one ratio beside it: what the HTTP stack itself gains
from a second worker on this machine, with the load generator sharing its cores. It also carries the server's CPU
per reply at one worker and at two (equal figures: the second worker adds no cost of its own) and how busy the
machine's cores were with two: where they are all busy, what the server did not get went to the load generator
and the kernel, and the gain is the machine's to give, not the server's. Last, the most any number of workers
could gain here: how many times what one worker's run kept busy (the server, the load generator, the kernel,
PostgreSQL) fits in the machine's cores, were a reply to cost no more with more workers and every core busy to the
last cycle.
"""

from __future__ import annotations

import os

from bench.load import LoadResult
from bench.processes import CpuUse
from bench.report import BackendResult, Throughput, size_label
from bench.targets import TargetRow

FLOOR_SHARE = {"sqlite": 0.25, "postgres": 0.15}
"""Target 1: one worker's share of the floor, by backend."""
WORKERS = 2
WORKERS_GAIN = 1.7
"""Target 3: `--workers 2` over one worker."""
BUSY_GENERATOR = 0.9


def _errors(*results: LoadResult) -> str:
    count = sum(r.errors for r in results)
    return f"; {count} errors" if count else ""


def _generator_note(*results: LoadResult) -> str:
    busiest = max(r.cpu_share for r in results)
    return f", load generator at {busiest:.0%} CPU" if busiest > BUSY_GENERATOR else ""


def _floor_row(backend: str, t: Throughput) -> TargetRow:
    share = t.real.rps / t.floor.rps if t.floor.rps else 0.0
    target = FLOOR_SHARE[backend]
    return TargetRow(
        backend=backend,
        measure=f"throughput · default page, {size_label(t.size)} tasks, 1 worker, {t.connections} conns",
        value=f"{t.real.rps:,.0f} req/s{_errors(t.real, t.floor)}",
        ratio=f"{share:.1%} of floor {t.floor.rps:,.0f}{_generator_note(t.real, t.floor)}",
        target=f"≥{target:.0%}",
        ok=share >= target and not t.real.errors,
    )


def _cpu_note(one: Throughput, many: Throughput) -> str:
    """`; server CPU/reply 150 → 152 µs, cores 99% busy`, where both readings were taken."""
    if one.real_cpu is None or many.real_cpu is None or not one.real.rps or not many.real.rps:
        return ""
    return (
        f"; server CPU/reply {_per_reply_us(one.real_cpu, one.real):.0f} → "
        f"{_per_reply_us(many.real_cpu, many.real):.0f} µs, cores {many.real_cpu.machine_busy:.0%} busy"
    )


def _ceiling_note(one: Throughput, cores: int) -> str:
    """`; at most 1.67× on 2 cores`: the machine's cores over the cores one worker's run kept busy, where the
    machine's CPU was read."""
    if one.real_cpu is None or one.real_cpu.machine_busy <= 0:
        return ""
    return f"; at most {1 / one.real_cpu.machine_busy:.2f}× on {cores} cores"


def _per_reply_us(cpu: CpuUse, result: LoadResult) -> float:
    return cpu.server_cores / result.rps * 1e6


def _workers_row(backend: str, one: Throughput, many: Throughput) -> TargetRow:
    gain = many.real.rps / one.real.rps if one.real.rps else 0.0
    floor_gain = many.floor.rps / one.floor.rps if one.floor.rps else 0.0
    notes = _generator_note(many.real, many.floor) + _cpu_note(one, many) + _ceiling_note(one, os.cpu_count() or 1)
    return TargetRow(
        backend=backend,
        measure=f"throughput · {many.workers} workers vs 1, default page, {size_label(many.size)} tasks",
        value=f"{many.real.rps:,.0f} vs {one.real.rps:,.0f} req/s{_errors(many.real, many.floor)}",
        ratio=f"{gain:.2f}× 1 worker (floor {floor_gain:.2f}×){notes}",
        target=f"≥{WORKERS_GAIN}×",
        ok=gain >= WORKERS_GAIN and not many.real.errors,
    )


def floor_rows(b: BackendResult) -> list[TargetRow]:
    """Target 1: the one-worker load against its floor, where it was measured."""
    return [_floor_row(b.backend, t) for t in b.throughput if t.workers == 1]


def workers_rows(b: BackendResult) -> list[TargetRow]:
    """Target 3: two workers over one, where both were loaded."""
    by_workers = {t.workers: t for t in b.throughput}
    if 1 in by_workers and WORKERS in by_workers:
        return [_workers_row(b.backend, by_workers[1], by_workers[WORKERS])]
    return []
