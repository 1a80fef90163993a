"""The benchmark's CPU readings (bench/processes.py CpuWindow) against real processes, and how a throughput figure
is picked from its rounds (bench/run.py): the workers row's CPU columns are only as good as these."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench.load import LoadResult
from bench.processes import CpuUse, CpuWindow, Running
from bench.report import Throughput
from bench.run import median_round
from bench.throughput import _ceiling_note, _workers_row

BURN = "import time\nend = time.monotonic() + 4\nwhile time.monotonic() < end: pass\n"
"""A process that keeps one core busy for 4 s."""
SPAWN_BURNER = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {BURN!r}])\ntime.sleep(5)\n"
"""A process that sleeps while a child of its burns a core: CPU is read over the process and its children."""


@contextmanager
def _running(code: str, tmp_path: Path) -> Iterator[Running]:
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield Running(name="probe", port=0, process=process, log_path=tmp_path / "probe.log")
    finally:
        process.kill()
        process.wait()


def test_a_busy_child_reads_as_one_core(tmp_path: Path) -> None:
    with _running(SPAWN_BURNER, tmp_path) as run:
        cpu = CpuWindow(run, start=0.5, seconds=2.0).result()
    assert cpu is not None
    assert 0.5 <= cpu.server_cores <= 1.1, cpu  # one core, counted once (not zero, not twice), give or take sharing
    one_core = 1 / (os.cpu_count() or 1)
    assert 0.5 * one_core <= cpu.machine_busy <= 1.0, cpu


def test_an_idle_process_reads_near_zero(tmp_path: Path) -> None:
    with _running("import time\ntime.sleep(4)\n", tmp_path) as run:
        cpu = CpuWindow(run, start=0.3, seconds=1.5).result()
    assert cpu is not None
    assert cpu.server_cores < 0.1, cpu


def test_a_server_gone_before_the_window_ends_gives_no_reading(tmp_path: Path) -> None:
    with _running("pass", tmp_path) as run:
        run.process.wait()
        assert CpuWindow(run, start=0.0, seconds=0.3).result() is None


def _result(replies: int, errors: int) -> LoadResult:
    return LoadResult(replies=replies, errors=errors, seconds=1.0, cpu_share=0.1, p50_ms=1.0, p99_ms=2.0)


def test_the_median_round_is_kept_with_every_rounds_errors() -> None:
    rounds = [(_result(300, 0), None), (_result(100, 2), None), (_result(200, 1), None)]
    result, _ = median_round(rounds)
    assert result.replies == 200
    assert result.errors == 3
    even, _ = median_round(rounds[:2])
    assert even.replies == 100  # the lower middle: a figure is never flattered by an even count


def test_the_workers_row_says_how_much_the_machine_could_give() -> None:
    """Issue 12 target 3: one worker's run kept 60% of the machine busy, so no number of workers could gain more
    than 1/0.6 = 1.67× there; that ceiling stands beside the measured gain, so a MISS the machine decides reads as
    such."""
    one = Throughput(size=1000, workers=1, connections=16, real=_load(9000, 0.17), floor=_load(30000, 0.5),
                     real_cpu=CpuUse(server_cores=1.0, machine_busy=0.6))  # fmt: skip
    two = Throughput(size=1000, workers=2, connections=16, real=_load(13000, 0.27), floor=_load(33000, 0.5),
                     real_cpu=CpuUse(server_cores=1.66, machine_busy=0.97))  # fmt: skip
    assert _ceiling_note(one, 2) == "; at most 1.67× on 2 cores"
    row = _workers_row("sqlite", one, two)
    cores = os.cpu_count() or 1  # the row speaks of this machine
    assert row.ratio == (
        f"1.44× 1 worker (floor 1.10×); server CPU/reply 111 → 128 µs, cores 97% busy; at most 1.67× on {cores} cores"
    )
    assert not row.ok
    assert _ceiling_note(replace(one, real_cpu=None), 2) == ""  # no CPU reading, no ceiling


def _load(rps: int, generator: float) -> LoadResult:
    return LoadResult(replies=rps, errors=0, seconds=1.0, cpu_share=generator, p50_ms=1.0, p99_ms=2.0)
