"""A plain-Python model of DescribeTrainingTasks (spec §5.3-§5.8), written from the spec alone.

It deliberately shares no code with `tione_server`: the property test compares the live server's
answers with this model, so a bug would have to be made twice, the same way, to go unnoticed.
Requests are wire-shaped dicts that are already well typed (type errors are the codec's business).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
MAX_FILTERS = 10
MAX_VALUES = 100

FIELDS = {
    "Name": "name",
    "Id": "id",
    "Status": "status",
    "TaskStatus": "status",
    "ResourceGroupId": "resource_group_id",
    "Creator": "creator",
    "ChargeType": "charge_type",
    "CHARGE_STATUS": "charge_status",
    "ChargeStatus": "charge_status",
}
"""Filter name (spec §5.2, with the aliases of the issue) -> RefTask attribute."""

ENUM_FILTERS = frozenset({"Status", "TaskStatus", "ChargeType", "CHARGE_STATUS", "ChargeStatus"})
"""Filters whose exact matching ignores ASCII case (spec §5.2 notes)."""

SORT_FIELDS = {"CreateTime": "create_time", "UpdateTime": "update_time", "StartTime": "start_time"}


@dataclass(frozen=True)
class RefTask:
    """What the list needs to know about one task. Times are Unix seconds; start None = never started."""

    id: str
    name: str
    status: str
    charge_type: str
    charge_status: str
    resource_group_id: str
    creator: str
    create_time: int
    update_time: int
    start_time: int | None = None
    tags: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class RefError(Exception):
    """The request is refused with this wire code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def fold(text: str) -> str:
    """Lower-case A-Z only; every other character (É, é, 中, ß, ſ ...) stays as it is."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _filter_ok(flt: Mapping[str, Any], task: RefTask) -> bool:
    values: Sequence[str] = flt.get("Values") or []
    if not values:
        return True  # §5.3 rule 1: no values, no constraint
    name = flt["Name"]
    value: str = getattr(task, FIELDS[name])
    if flt.get("Fuzzy"):
        hit = any(fold(v) in fold(value) for v in values)
    elif name in ENUM_FILTERS:
        hit = any(fold(v) == fold(value) for v in values)
    else:
        hit = any(v == value for v in values)
    return not hit if flt.get("Negative") else hit


def _tag_ok(tag_filter: Mapping[str, Any], task: RefTask) -> bool:
    wanted: Sequence[str] = tag_filter.get("TagValues") or []
    return any(k == tag_filter["TagKey"] and (not wanted or v in wanted) for k, v in task.tags)


def validate(request: Mapping[str, Any]) -> tuple[int, int, bool, str]:
    """(offset, limit, descending, sort attribute) or RefError, checked in the order of spec §5.7."""
    limit = request.get("Limit") or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise RefError("InvalidParameterValue.PageLimitExceeded")
    order = request.get("Order") or "DESC"
    if fold(order) not in ("asc", "desc"):
        raise RefError("InvalidParameterValue")
    order_field = request.get("OrderField") or "UpdateTime"
    if order_field not in SORT_FIELDS:
        raise RefError("InvalidParameterValue")
    filters: list[Mapping[str, Any]] = request.get("Filters") or []
    tag_filters: list[Mapping[str, Any]] = request.get("TagFilters") or []
    for flt in filters:
        if flt.get("Name") is None:
            raise RefError("MissingParameter")
        if flt["Name"] not in FIELDS:
            raise RefError("InvalidParameterValue")
    for tag_filter in tag_filters:
        if not tag_filter.get("TagKey"):
            raise RefError("InvalidParameter")
    too_many = len(filters) > MAX_FILTERS or len(tag_filters) > MAX_FILTERS
    too_many = too_many or any(len(f.get("Values") or []) > MAX_VALUES for f in filters)
    too_many = too_many or any(len(t.get("TagValues") or []) > MAX_VALUES for t in tag_filters)
    if too_many:
        raise RefError("InvalidParameterValue.LimitExceeded")
    return request.get("Offset") or 0, limit, fold(order) == "desc", SORT_FIELDS[order_field]


def describe(tasks: Iterable[RefTask], request: Mapping[str, Any]) -> tuple[list[str], int]:
    """The page of task ids and TotalCount the server must answer (spec §5.8), or RefError."""
    offset, limit, descending, attribute = validate(request)
    filters = request.get("Filters") or []
    tag_filters = request.get("TagFilters") or []
    matched = [t for t in tasks if all(_filter_ok(f, t) for f in filters) and all(_tag_ok(g, t) for g in tag_filters)]

    def key(t: RefTask) -> tuple[float, int]:
        value: int | None = getattr(t, attribute)
        return (float("-inf") if value is None else value, int(t.id.removeprefix("train-")))

    matched.sort(key=key, reverse=descending)
    return [t.id for t in matched[offset : offset + limit]], len(matched)
