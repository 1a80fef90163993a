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

    @property
    def num(self) -> int:
        """The integer part of the id: creation order, and the tie-breaker of every sort (spec §5.6)."""
        return int(self.id[6:])


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
