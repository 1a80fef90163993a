"""The Executor protocol shared by the local, simulate (and later Ray) executors, and what they exchange.

An executor turns a run's plan into pods and reports what it observes; it never decides task states (the
runner does, spec §6). Every method returns quickly: nothing here waits for a process to finish. What an
executor needs to find its pods again after a server restart lives in the database (pids, process start
times) and in the run's directory, never only in memory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from tione_server.models import Pod, Run

STREAMS = ("stdout", "stderr")
"""DescribeLogs `LogStream` values (spec §4.8); one log file per pod per stream."""
END = 2**63 - 1
"""A time after every log line (Unix nanoseconds)."""


@dataclass(frozen=True, slots=True)
class PodSpec:
    """What one pod runs: a shell command in the run's code directory, with its environment."""

    name: str
    role: str
    index: int
    command: str
    """Run with `/bin/sh -c`; "" = an idle pod (MPI/HOROVOD workers wait for the launcher)."""
    env: Mapping[str, str]
    """Platform variables (TI_TASK_ID, RANK, WORLD_SIZE, ...) merged with the task's Envs."""


@dataclass(frozen=True, slots=True)
class Mount:
    """A request path made available to the run: `target` (relative to the run's mount root) -> `source`."""

    target: str
    source: str
    """For COS, `bucket/path` under the account's COS tree (see docs/executors.md); else the path as given."""
    kind: str
    """DataSourceType, `CODE` or `OUTPUT`."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything an executor needs to run one run, derived from the stored task (see executors/plan.py)."""

    run_id: str
    task_id: str
    mode: str
    """TrainingMode ("" when unset): decides which pod's exit decides the run (spec §6.5)."""
    pods: tuple[PodSpec, ...]
    code: Mount | None = None
    mounts: tuple[Mount, ...] = ()
    output: Mount | None = None
    requested_at: float = 0.0
    unsupported: str = ""
    """Why this run cannot be submitted here (e.g. a CFS data source); "" when it can."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The task's own Envs (also merged into every pod's env)."""
    account: str = ""
    """The task's account (UIN): its COS paths lie in that account's tree only (issue 7 A1)."""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One captured output line: when it was read, where it is stored (its identity), and its text."""

    ns: int
    offset: int
    text: str


@dataclass(frozen=True, slots=True)
class Submission:
    """The outcome of preparing a run: not yet (`ready` False, no error), failed, or done."""

    ready: bool
    error: str = ""
    retry: bool = False
    """The error is the machine's (a full disk), not the request's: try again later (issue 7 A3)."""


PodPhase = Literal["PENDING", "RUNNING", "EXITED", "LOST"]


@dataclass(frozen=True, slots=True)
class Observation:
    """What an executor sees of one pod right now."""

    phase: PodPhase
    """PENDING: launched, not yet running; RUNNING; EXITED with `exit_code`; LOST: gone without a trace."""
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    pid: int | None = None
    pgid: int | None = None
    proc_start: int | None = None


class LaunchError(Exception):
    """Pods could not be created; the run fails from STARTING (spec §6.2)."""


class Executor(Protocol):
    """How runs become pods. Implementations: LocalExecutor, SimulateExecutor."""

    name: str

    def submit(self, spec: RunSpec, now: float) -> Submission:
        """Prepare the run (code, data); idempotent, so a restart may call it again."""
        ...

    def launch(self, spec: RunSpec, pods: Sequence[Pod], now: float) -> None:
        """Start every pod; fill in pid/pgid/proc_start/launched_at on `pods`. Raises LaunchError."""
        ...

    def observe(self, spec: RunSpec, run: Run, now: float) -> dict[str, Observation]:
        """The current state of every launched pod of `run`, by pod name; works after a restart too."""
        ...

    def signal(self, spec: RunSpec, run: Run, pods: Sequence[Pod], *, kill: bool, now: float) -> None:
        """SIGTERM (or, with `kill`, SIGKILL) every process of the pods (issue 7 E11); never waits."""
        ...

    def remove(self, run_id: str) -> None:
        """Delete the run's files (working directory and logs)."""
        ...

    def read_log(
        self, run_id: str, pod: str, stream: str, *, start_ns: int = 0, end_ns: int = END, descending: bool = False
    ) -> Iterator[LogLine]:
        """One pod's stream within [start_ns, end_ns], oldest (or newest) first; nothing when there is no log."""
        ...


class FileBackedRuns:
    """What executors that keep runs under RunFiles share: removing a run, reading a pod's log."""

    files: RunFiles

    def remove(self, run_id: str) -> None:
        """Delete the run's files (working directory and logs)."""
        self.files.remove(run_id)

    def read_log(
        self, run_id: str, pod: str, stream: str, *, start_ns: int = 0, end_ns: int = END, descending: bool = False
    ) -> Iterator[LogLine]:
        """One pod's stream within [start_ns, end_ns], oldest (or newest) first; nothing when there is no log."""
        if stream in STREAMS:
            yield from self.files.read_log(run_id, pod, stream, start_ns=start_ns, end_ns=end_ns, descending=descending)


class RunFiles:
    """The on-disk layout of runs under the data directory: `runs/<run id>/{code,mnt,pods,logs}`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def root(self, run_id: str) -> Path:
        return self.data_dir / "runs" / run_id

    def code(self, run_id: str) -> Path:
        return self.root(run_id) / "code"

    def mounts(self, run_id: str) -> Path:
        return self.root(run_id) / "mnt"

    def pod_dir(self, run_id: str, pod: str) -> Path:
        return self.root(run_id) / "pods" / pod

    def log(self, run_id: str, pod: str, stream: str) -> Path:
        return self.root(run_id) / "logs" / f"{pod}.{stream}.log"

    def remove(self, run_id: str) -> None:
        shutil.rmtree(self.root(run_id), ignore_errors=True)

    def read_log(
        self, run_id: str, pod: str, stream: str, *, start_ns: int = 0, end_ns: int = END, descending: bool = False
    ) -> Iterator[LogLine]:
        """Lines stamped within [start_ns, end_ns], oldest (or newest) first, read lazily.

        Lines are `<unix ns> <text>` (written by the pod supervisor or the simulator) in time order, so the window
        is found by binary search and only the lines a page needs are read: a huge log never stalls a request.
        """
        try:
            fh = self.log(run_id, pod, stream).open("rb")
        except OSError:
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if descending:
                yield from _backward(fh, _lower_bound(fh, size, end_ns + 1), start_ns)
            else:
                yield from _forward(fh, _lower_bound(fh, size, start_ns), end_ns)


_CHUNK = 64 * 1024


def _parse(raw: bytes) -> tuple[int, str] | None:
    """(ns, text) of a complete stored line (with its newline); None for a torn or foreign one."""
    if not raw.endswith(b"\n"):
        return None
    stamp, _, rest = raw[:-1].partition(b" ")
    return (int(stamp), rest.decode("utf-8", "replace")) if stamp.isdigit() else None


def _line_at(fh: BinaryIO, pos: int) -> tuple[int, int]:
    """(start, ns) of the first line starting at or after byte `pos`; ns END when there is none."""
    if pos == 0:
        fh.seek(0)
    else:
        fh.seek(pos - 1)
        fh.readline()
    start = fh.tell()
    parsed = _parse(fh.readline())
    return start, parsed[0] if parsed else END


def _lower_bound(fh: BinaryIO, size: int, ns: int) -> int:
    """Offset of the first line stamped at or after `ns` (or `size`)."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if _line_at(fh, mid)[1] >= ns:
            hi = mid
        else:
            lo = mid + 1
    return min(_line_at(fh, lo)[0], size)


def _forward(fh: BinaryIO, start: int, end_ns: int) -> Iterator[LogLine]:
    fh.seek(start)
    offset = start
    for raw in iter(fh.readline, b""):
        parsed = _parse(raw)
        if parsed is None:
            if not raw.endswith(b"\n"):
                return  # a line still being written
        elif parsed[0] > end_ns:
            return
        else:
            yield LogLine(parsed[0], offset, parsed[1])
        offset += len(raw)


def _backward(fh: BinaryIO, end: int, start_ns: int) -> Iterator[LogLine]:
    """Lines before byte `end` (a line start), newest first, down to `start_ns`."""
    pos, buf = end, b""
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        fh.seek(pos)
        buf = fh.read(step) + buf  # spans [pos, end) and ends with a newline (or is empty)
        parts = buf.split(b"\n")[:-1]
        offsets = [pos]
        for part in parts[:-1]:
            offsets.append(offsets[-1] + len(part) + 1)
        whole = range(len(parts)) if pos == 0 else range(1, len(parts))  # parts[0] may be cut short
        for i in reversed(whole):
            parsed = _parse(parts[i] + b"\n")
            if parsed is None:
                continue
            if parsed[0] < start_ns:
                return
            yield LogLine(parsed[0], offsets[i], parsed[1])
        buf = parts[0] + b"\n" if parts and pos > 0 else b""
        end = pos + len(buf)


def write_log_line(path: Path, ns: int, text: str) -> None:
    """Append one stamped line (the format RunFiles.read_log reads)."""
    write_log_lines(path, [(ns, text)])


def write_log_lines(path: Path, lines: Iterable[tuple[int, str]]) -> None:
    """Append stamped lines, opening the file once (a pod's whole simulated log at launch, issue 7 B4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        for ns, text in lines:
            for line in text.splitlines() or [""]:
                fh.write(b"%d %s\n" % (ns, line.encode("utf-8", "replace")))
