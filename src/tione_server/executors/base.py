"""The Executor protocol shared by the local, simulate (and later Ray) executors, and what they exchange.

An executor turns a run's plan into pods and reports what it observes; it never decides task states (the
runner does, spec §6). Every method returns quickly: nothing here waits for a process to finish. What an
executor needs to find its pods again after a server restart lives in the database (pids, process start
times) and in the run's directory, never only in memory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from tione_server.models import Pod, Run

STREAMS = ("stdout", "stderr")
"""DescribeLogs `LogStream` values (spec §4.8); one log file per pod per stream."""


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
    """A local path; for COS, the path under the COS root (see docs/executors.md)."""
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


@dataclass(frozen=True, slots=True)
class Submission:
    """The outcome of preparing a run: not yet (`ready` False, no error), failed, or done."""

    ready: bool
    error: str = ""


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
        """SIGTERM (or, with `kill`, SIGKILL) the pods' process groups; never waits."""
        ...

    def remove(self, run_id: str) -> None:
        """Delete the run's files (working directory and logs)."""
        ...

    def read_log(self, run_id: str, pod: str, stream: str) -> Iterator[tuple[int, str]]:
        """(Unix nanoseconds, line) of one pod's stream, oldest first; nothing when there is no log."""
        ...


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

    def read_log(self, run_id: str, pod: str, stream: str) -> Iterator[tuple[int, str]]:
        """Lines are `<unix ns> <text>` (written by the pod supervisor or the simulator)."""
        path = self.log(run_id, pod, stream)
        try:
            fh = path.open("rb")
        except OSError:
            return
        with fh:
            for raw in fh:
                stamp, _, rest = raw.rstrip(b"\n").partition(b" ")
                if stamp.isdigit():
                    yield int(stamp), rest.decode("utf-8", "replace")


def write_log_line(path: Path, ns: int, text: str) -> None:
    """Append one stamped line (the format RunFiles.read_log reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        for line in text.splitlines() or [""]:
            fh.write(b"%d %s\n" % (ns, line.encode("utf-8", "replace")))
