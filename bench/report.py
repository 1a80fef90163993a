"""What a run measured, and the markdown it prints: one table of every shape's server-side and end-to-end
p50/p99 by size with the ratio the latency targets are stated in, import time and peak server memory per backend;
then one table of issue 12's targets (throughput against the floor, moto, workers), a row each with its ratio
and ok/MISS. Targets apply at 1M tasks, so a quick run shows the trend at its largest size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import LoadResult
from bench.measure import Latency
from bench.moto import Comparison
from bench.processes import CpuUse
from bench.shapes import SHAPES
from bench.targets import TargetRow

FLAT_TARGET = 2.0
DEEP_TARGET = 20.0
IMPORT_TARGET_S = 120.0
IMPORT_TARGET_SIZE = 1_000_000
RSS_TARGET_MB = 200.0
README_BEGIN = "<!-- bench:begin -->"
README_END = "<!-- bench:end -->"


@dataclass
class SizeResult:
    """One backend at one dataset size."""

    size: int
    server: dict[str, Latency] = field(default_factory=dict)
    e2e: dict[str, Latency] = field(default_factory=dict)
    import_seconds: float = 0.0
    import_cached: bool = False
    peak_rss_kib: int = 0


@dataclass
class Throughput:
    """Signed default-shape requests per second against the floor, same workers, same run."""

    size: int
    workers: int
    connections: int
    real: LoadResult
    floor: LoadResult
    real_cpu: CpuUse | None = None
    """The server's and the machine's CPU while `real` was measured (None where it could not be read)."""
    floor_cpu: CpuUse | None = None
    rounds: int = 1
    """Interleaved floor/server rounds; `real` and `floor` are each the median round."""


@dataclass
class BackendResult:
    backend: str
    sizes: list[SizeResult] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class RunResult:
    mode: str
    seed: int
    sizes: list[int]
    machine: str
    started_at: str
    load_average: float
    backends: list[BackendResult] = field(default_factory=list)
    targets: list[TargetRow] = field(default_factory=list)
    """Issue 12's targets, in the order the targets table prints them."""
    moto: Comparison | None = None
    """The figures behind the moto rows, for the JSON results."""


def size_label(n: int) -> str:
    """1000 -> 1k, 100000 -> 100k, 1000000 -> 1M."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def parse_size(text: str) -> int:
    """The inverse of size_label: 1k, 100k, 1M or a plain integer."""
    m = re.fullmatch(r"(\d+)([kKmM]?)", text.strip())
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 1k, 100k, 1M)")
    return int(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]


def _ms(value: float) -> str:
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _cell(lat: Latency | None) -> str:
    return "—" if lat is None else f"{_ms(lat.p50_ms)} / {_ms(lat.p99_ms)}"


def _verdict(ok: bool, target: str) -> str:
    return f"{target} {'ok' if ok else 'MISS'}"


def _latency_rows(b: BackendResult, kind: str) -> list[list[str]]:
    rows: list[list[str]] = []
    first, last = b.sizes[0], b.sizes[-1]
    for shape in SHAPES:
        cells = [_cell(getattr(s, kind).get(shape.key)) for s in b.sizes]
        ratio, verdict = "", ""
        here = getattr(last, kind).get(shape.key)
        if shape.flat and len(b.sizes) > 1:
            base = getattr(first, kind).get(shape.key)
            if here and base:
                r = here.p50_ms / base.p50_ms
                ratio, verdict = f"{r:.1f}× vs {size_label(first.size)}", _verdict(r <= FLAT_TARGET, "≤2×")
        elif not shape.flat:
            default = getattr(last, kind).get(SHAPES[0].key)
            if here and default:
                r = here.p50_ms / default.p50_ms
                ratio, verdict = f"{r:.1f}× vs default", _verdict(r <= DEEP_TARGET, "≤20×")
        rows.append([b.backend, f"{shape.label} · {kind}", *cells, ratio, verdict])
    return rows


def _other_rows(b: BackendResult, sizes: list[int]) -> list[list[str]]:
    rows: list[list[str]] = []
    by_size = {s.size: s for s in b.sizes}
    imports = [by_size[s] for s in sizes if s in by_size]
    cells = [
        f"{by_size[s].import_seconds:,.1f}{'*' if by_size[s].import_cached else ''}" if s in by_size else "—"
        for s in sizes
    ]
    largest = imports[-1]
    estimate = largest.import_seconds * IMPORT_TARGET_SIZE / largest.size
    if largest.size == IMPORT_TARGET_SIZE:
        ratio = f"{largest.size / largest.import_seconds:,.0f} tasks/s"
    else:
        ratio = f"1M ≈ {estimate:,.0f} s (linear)"
    rows.append([b.backend, "import s · import_file", *cells, ratio, _verdict(estimate < IMPORT_TARGET_S, "<120 s")])

    cells = [f"{by_size[s].peak_rss_kib / 1024:,.0f}" if s in by_size else "—" for s in sizes]
    peak = largest.peak_rss_kib / 1024
    rows.append([b.backend, "peak server RSS MB · VmHWM", *cells, "", _verdict(peak < RSS_TARGET_MB, "<200 MB")])
    return rows


def render(result: RunResult) -> str:
    """The report: a heading, the machine line, a legend and the one table."""
    labels = [size_label(s) for s in result.sizes]
    largest = labels[-1]
    lines = [
        f"### DescribeTrainingTasks benchmark — {result.mode} ({', '.join(labels)} tasks, seed {result.seed})",
        "",
        f"Run {result.started_at} on {result.machine}; load average {result.load_average:.1f} at start.",
        "",
        "Latencies in ms as p50 / p99 (sample counts are in the JSON results; under 100 samples p99 is the "
        "slowest). *server*: the action called in-process (validation, SQL, rendering); "
        "*e2e*: a signed HTTP request to `tione-server serve` over one keep-alive connection. On SQLite each "
        "sample follows a commit, so the page is read again rather than remembered (bench/measure.py Commits). "
        "Ratio: p50 at "
        f"{largest} over p50 at {labels[0]} (target ≤2×); for 2-character fuzzy and Offset=10000, p50 over the "
        f"default shape's p50 at {largest} (target ≤20×). Targets are stated at 1M tasks. Import: seconds of "
        "`import_file` for the measured account's tasks; * = measured when the cached database was built "
        "(`--rebuild` imports again).",
        "",
        f"| Backend | Measure | {' | '.join(labels)} | Ratio | Target |",
        f"|---|---|{'---:|' * len(labels)}---:|---|",
    ]
    for b in result.backends:
        if b.skipped:
            lines.append(f"| {b.backend} | skipped: {b.skipped} |{' |' * len(labels)} | |")
            continue
        for row in _latency_rows(b, "server") + _latency_rows(b, "e2e") + _other_rows(b, result.sizes):
            lines.append("| " + " | ".join(row) + " |")
    if result.targets:
        lines += ["", *_targets_table(result.targets)]
    return "\n".join(lines) + "\n"


def _targets_table(rows: list[TargetRow]) -> list[str]:
    lines = [
        "Issue 12's targets. Throughput: signed DescribeTrainingTasks, default page, from a separate load process "
        "over keep-alive connections, against the floor: the same uvicorn stack, same workers, sending the same "
        "reply bytes at once (stated at 1M tasks; the row names the size loaded); floor and server are loaded in "
        "interleaved rounds and each figure is its median round (`--load-rounds`, default 3). moto: req/s of a "
        "signed page of 50 over 2,000 tasks over those of moto's ListTrainingJobs (MaxResults 50, 2,000 jobs), "
        "same load generator and connections, back to back; p50s at one connection. Workers: `--workers 2` over "
        "one worker, the floor's own gain beside it, then the server's CPU per reply at one worker and at two and "
        "how busy the machine's cores were with two (all busy: the rest went to the load generator and the kernel), "
        "and the most any number of workers could gain on this machine: its cores over what one worker's run kept "
        "busy (server, load generator, kernel, PostgreSQL), were a reply to cost no more and every core busy.",
        "",
        "| Backend | Measure | Value | Ratio | Target |",
        "|---|---|---:|---:|---|",
    ]
    return lines + ["| " + " | ".join(row.cells()) + " |" for row in rows]


def update_readme(path: Path, report: str) -> bool:
    """Replace the text between the bench markers of a README; False when the markers are missing."""
    text = path.read_text()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        return False
    path.write_text(text[: begin + len(README_BEGIN)] + "\n" + report + text[end:])
    return True
