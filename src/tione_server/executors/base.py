"""The executor contract: what the runner asks of every executor (local, simulate; a sandbox and Ray next).

An executor turns a run's plan into pods and reports what it observes; it never decides task states (the
runner does, spec §6). Every method returns quickly: nothing here waits for a process to finish.

Each launched pod has a **handle**: a short text the executor returns from `launch` (a pid and its start time,
an actor name, ...), which the runner stores with the pod (`pods.handle`) and hands back on every later call,
and which nothing else reads (issue 8 item 3). Everything an executor needs to find a pod again after a server
restart, from a new executor instance, lives in that handle, in the pod's record (name, `launched_at`) and run
(`term_sent_at`, `kill_sent`), or in the executor's own storage; never only in memory. A new executor is one
module, one entry in executors/registry.py, and tests/test_executor_contract.py passing over it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

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
    image: str = ""
    """ImageInfo.ImageUrl: the root filesystem a sandboxed pod sees (issue 9 item 4)."""
    image_preset: bool = False
    """A framework task's preset image (ImageType PRE_SET): the host's own unless the image table names it."""


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
    handle: str = ""
    """A handle for the runner to store from now on (e.g. one recovered for a pod whose launch was not recorded
    before a crash); "" keeps the stored one."""
    reason: str = ""
    """Why a LOST pod is gone, when the executor knows (its node was lost, issue 10 item 6), or why an EXITED one
    ended (the memory limit killed it, issue 9 item 3): the FailureReason after the pod's short name."""


class LaunchError(Exception):
    """Pods could not be created; the run fails from STARTING (spec §6.2).

    `handles` are those of the pods this launch had started before it failed (and has since ended), by name, so
    the runner records them and watches them go.
    """

    def __init__(self, message: str, handles: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.handles: dict[str, str] = dict(handles or {})


class Executor(Protocol):
    """How runs become pods. Implementations: executors/registry.py; the contract: tests/test_executor_contract.py.

    The runner calls `submit` until it is ready, then `launch` (perhaps in several batches of pods), then
    `observe` on every pass, `signal` to stop (SIGTERM first, SIGKILL once the grace period is over) and `remove`
    when the task is deleted. A new executor instance over the same settings must carry on where an old one
    stopped: observe and signal the same pods from their stored handles (re-attach after a restart).
    """

    name: str

    def submit(self, spec: RunSpec, now: float) -> Submission:
        """Prepare the run (code, data); idempotent, so a restart may call it again."""
        ...

    def launch(self, spec: RunSpec, pods: Sequence[Pod], now: float) -> dict[str, str]:
        """Start the given pods (not started before); the handle of each, by pod name ("" when the executor needs
        nothing beyond the pod's record). Raises LaunchError."""
        ...

    def observe(self, spec: RunSpec, run: Run, now: float) -> dict[str, Observation]:
        """The current state of every launched pod of `run` (`launched_at` set), by pod name; phases only move
        forward (PENDING, RUNNING, then EXITED or LOST), and an ended pod keeps its exit code and end time."""
        ...

    def signal(self, spec: RunSpec, run: Run, pods: Sequence[Pod], *, kill: bool, now: float) -> None:
        """SIGTERM (or, with `kill`, SIGKILL) every process of the pods (issue 7 E11); never waits. After `kill`
        the pods are EXITED or LOST within seconds; after SIGTERM, unless their program ignores it."""
        ...

    def remove(self, run_id: str) -> None:
        """Delete the run's files (working directory and logs)."""
        ...

    def read_log(
        self, run_id: str, pod: str, stream: str, *, start_ns: int = 0, end_ns: int = END, descending: bool = False
    ) -> Iterator[LogLine]:
        """One pod's stream within [start_ns, end_ns], oldest (or newest) first; nothing when there is no log."""
        ...


@dataclass(frozen=True, slots=True)
class Placement:
    """A cluster's answer for a waiting run (issue 10 item 2): its pods are placed (`ready`), or why they wait."""

    ready: bool
    message: str = ""
    """The PENDING Message: what the cluster lacks."""
    blocks: bool = True
    """Later runs of its pool wait behind it (spec §6.2 submission order); False for one that can never fit."""


@runtime_checkable
class Placer(Protocol):
    """An executor whose cluster decides when a run's pods have room (Ray), instead of the catalogue's capacity
    (scheduling.py). The runner asks it for PENDING runs in submission order and tells it when runs are over."""

    def place(self, spec: RunSpec, run: Run, now: float) -> Placement:
        """Reserve room for every pod of the run (once; idempotent) and say whether it is there."""
        ...

    def release(self, run_id: str, pods: Sequence[str]) -> None:
        """Give back what a run held (it ended, or was stopped while PENDING)."""
        ...

    def sweep(self, live: Collection[str]) -> None:
        """Remove whatever the executor holds for runs not in `live` (the store's live runs)."""
        ...


@runtime_checkable
class Foresight(Protocol):
    """An executor that knows when a run may next look different (issue 12 target 5), so the runner looks at a run
    only then, or when the run changes in the store, instead of on every pass. Executors without it are asked
    about every live run on every pass, the default."""

    def next_change(self, spec: RunSpec, run: Run, now: float) -> float | None:
        """The earliest time after which `submit` (for a SUBMITTING run) or `observe` of `run` may answer
        differently from `now`, if nothing else happens to the run (a launch, a signal: the runner looks again
        after those anyway); `math.inf` for never, None when it cannot tell (then: every pass)."""
        ...
