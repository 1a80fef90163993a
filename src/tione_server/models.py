"""Internal records: tasks, keys, scopes and list queries. Never on the wire; see api/ for wire types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TaskStatus(StrEnum):
    """The nine task states of spec §6.1 (note the spelling SUCCEED)."""

    SUBMITTING = "SUBMITTING"
    PENDING = "PENDING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    SUCCEED = "SUCCEED"
    SUBMIT_FAILED = "SUBMIT_FAILED"


ACTIVE_STATUSES = frozenset(
    {TaskStatus.SUBMITTING, TaskStatus.PENDING, TaskStatus.STARTING, TaskStatus.RUNNING, TaskStatus.STOPPING}
)
"""Non-terminal states: Start and Delete are refused in them (spec §6.3)."""
TERMINAL_STATUSES = frozenset({TaskStatus.STOPPED, TaskStatus.SUCCEED, TaskStatus.FAILED, TaskStatus.SUBMIT_FAILED})
"""States a run only leaves through StartTrainingTask (spec §6.2)."""
HOLDING_STATUSES = frozenset({TaskStatus.STARTING, TaskStatus.RUNNING, TaskStatus.STOPPING})
"""States in which a run holds resources and, postpaid, is BILLING (spec §6.1, §6.6)."""
RUNTIME_STATUSES = frozenset({TaskStatus.RUNNING, TaskStatus.STOPPING})
"""States in which a run's RuntimeInSeconds counts on (spec §6.4)."""


def runtime_seconds(status: str, start: int | None, end: int | None, now: float) -> int:
    """RuntimeInSeconds of a run in `status` (spec §6.4): whole seconds from StartTime to now while RUNNING or
    STOPPING, to EndTime once it is over, 0 if it never started. The one rule for the runner, the list and the
    detail (issue 8 item 7)."""
    until = now if status in RUNTIME_STATUSES else end
    return 0 if start is None or until is None else max(0, int(until) - start)


class PodStatus(StrEnum):
    """Pod states of spec §2 (note SUCCEEDED, unlike the task's SUCCEED)."""

    SUBMITTING = "SUBMITTING"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"


LIVE_POD_STATUSES = frozenset({PodStatus.PENDING, PodStatus.RUNNING, PodStatus.TERMINATING})
"""Pod states whose process may still exist (launched or about to be)."""


class ChargeType(StrEnum):
    PREPAID = "PREPAID"
    POSTPAID_BY_HOUR = "POSTPAID_BY_HOUR"


class ChargeStatus(StrEnum):
    NOT_BILLING = "NOT_BILLING"
    BILLING = "BILLING"
    ARREARS_STOP = "ARREARS_STOP"


@dataclass(frozen=True, slots=True)
class Scope:
    """The (account, region, workspace) triple a task belongs to; workspace "" is the default one."""

    uin: str
    region: str
    project: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A signing key and the account (and optional sub-user) it acts for."""

    secret_id: str
    secret_key: str
    uin: str
    app_id: str
    sub_uin: str
    created_at: int
    revoked: bool = False


@dataclass(slots=True)
class Task:
    """One training task as stored. Times are Unix seconds; None means unset ("" on the wire).

    `doc` holds every other wire field of the task (definition and current run), kept as given.
    """

    id: str
    scope: Scope
    app_id: str
    name: str
    creator: str
    charge_type: str
    charge_status: str
    status: str
    resource_group_id: str
    create_time: int
    update_time: int
    start_time: int | None = None
    end_time: int | None = None
    tags: list[tuple[str, str]] = field(default_factory=list)
    doc: dict[str, Any] = field(default_factory=dict)
    doc_json: str = field(default="", compare=False, repr=False)
    """The stored text of `doc` and tags when read from the store: identifies their content (render cache)."""

    @property
    def num(self) -> int:
        """The integer part of the id: creation order, and the tie-breaker of every sort (spec §5.6)."""
        return int(self.id[6:])


@dataclass(slots=True)
class Pod:
    """One pod of a run (spec §4.7): a process tree on the local executor. Times are Unix seconds."""

    name: str
    role: str
    index: int
    """Position of the pod within its run (launch order)."""
    cpu: int = 0
    memory: int = 0
    gpu: int = 0
    status: str = PodStatus.PENDING
    node: str = ""
    """Prepaid resource-group node the pod is placed on; "" in the postpaid pool."""
    handle: str = ""
    """What the executor returned when it launched the pod, handed back to it on every call (a pid and its start
    time, an actor name, ...); opaque here (executors/base.py)."""
    launched_at: float | None = None
    """When the runner launched the pod; None: not launched yet."""
    start_time: float | None = None
    end_time: float | None = None
    exit_code: int | None = None
    ip: str = ""
    reason: str = ""
    """Why the executor lost the pod (its node is gone, issue 10 item 6) or why it exited (the memory limit killed
    it, issue 9 item 3), for the FailureReason of the same runner pass; not stored."""

    @property
    def suffix(self) -> str:
        """`worker-0`, `master-0`, `launcher`: the name without the run id (spec §6.5 FailureReason)."""
        return "-".join(self.name.split("-")[3:])  # train-<digits>-<random>-<suffix>


@dataclass(slots=True)
class Run:
    """One execution of a task (spec §1.4 instance `<task id>-xxxxxxxxxxxx`); the task row mirrors the latest."""

    num: int
    """Snowflake number: submission order (spec §6: capacity is granted in this order)."""
    id: str
    task_num: int
    task_id: str
    status: str
    charge_status: str
    operation: str
    """CREATE or START: the request that began the run."""
    requested_at: float
    """When that request arrived (callback `totalTime` is measured from here, spec §8)."""
    pool: str = ""
    """"" = the postpaid pool (this machine); else the prepaid resource group id."""
    cpu: int = 0
    memory: int = 0
    gpu: int = 0
    failure_reason: str = ""
    message: str = ""
    start_time: int | None = None
    end_time: int | None = None
    stop_requested_at: float | None = None
    stop_reason: str = ""
    term_sent_at: float | None = None
    kill_sent: bool = False
    callback: str = ""
    """A §8 callback waiting to be sent: JSON `{"task_name", "code", "message", "total_time", "at"}`; "" none."""
    pods: list[Pod] = field(default_factory=list)
    live: bool = True
    """The runner still has work on it: not terminal, pods to clean up, or a callback to send."""
    seq: int = 0
    """The row's stamp when this copy was read or written (store/feed.py): the runner's own writes come back
    through the change feed with the stamp it already holds, and are not read again."""


@dataclass(frozen=True, slots=True)
class FieldFilter:
    """One `Filter` resolved to a task column (spec §5.3)."""

    column: str
    values: tuple[str, ...]
    fuzzy: bool
    negative: bool


@dataclass(frozen=True, slots=True)
class TagCondition:
    """One `TagFilter`: the task has tag `key`, with one of `values` when any are given (spec §5.4)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """A validated DescribeTrainingTasks query in store terms."""

    filters: tuple[FieldFilter, ...] = ()
    tags: tuple[TagCondition, ...] = ()
    order_by: str = "update_time"
    descending: bool = True
    offset: int = 0
    limit: int = 10
