"""`tione-server import`: tasks saved from the real service (TI-ONE wire JSON) into the store.

Accepts a DescribeTrainingTasks response, a JSON list of TrainingTaskSetItem, or JSON lines of them.
Items are decoded with the generated wire type; every field is kept as given. All or nothing: a bad
item aborts the one transaction, with a message naming the item and the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from tione_server import timefmt
from tione_server.api._generated import TrainingTaskSetItem
from tione_server.config import Settings
from tione_server.models import ChargeStatus, ChargeType, Scope, Task, TaskStatus
from tione_server.service.listing import ascii_upper
from tione_server.service.scope import workspace
from tione_server.store import Store

TASK_ID = re.compile(r"^train-\d{1,19}$")
COLUMN_FIELDS = frozenset(
    {"Id", "Name", "SubUin", "AppId", "ChargeType", "ChargeStatus", "Status", "ResourceGroupId",
     "CreateTime", "UpdateTime", "StartTime", "EndTime", "Tags"}
)  # fmt: skip
_ENUMS: dict[str, frozenset[str]] = {
    "Status": frozenset(TaskStatus),
    "ChargeType": frozenset(ChargeType),
    "ChargeStatus": frozenset(ChargeStatus),
}


class ImportError_(ValueError):  # noqa: N801 - ImportError is a builtin
    """A file that cannot be imported; the message names the item and the field."""


def read_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(label, raw item) for each task in the file, in file order."""
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip()
    if head.startswith(b"{") and _is_single_document(path):
        doc = msgspec.json.decode(path.read_bytes())
        items = doc.get("Response", doc).get("TrainingTaskSet") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ImportError_("the file is a JSON object without `Response.TrainingTaskSet`")
        yield from ((f"item {i}", item) for i, item in enumerate(items))
    elif head.startswith(b"["):
        try:
            items = msgspec.json.decode(path.read_bytes())
        except msgspec.DecodeError as err:
            raise ImportError_(f"the file is not valid JSON: {err}") from None
        yield from ((f"item {i}", item) for i, item in enumerate(items))
    else:
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield f"line {lineno}", msgspec.json.decode(line)
                    except msgspec.DecodeError as err:
                        raise ImportError_(f"line {lineno}: not valid JSON: {err}") from None


def _is_single_document(path: Path) -> bool:
    try:
        msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError:
        return False
    return True


def to_task(label: str, raw: Any, *, uin: str, app_id: str, scope: Scope, offset_hours: int) -> Task:
    """One wire item as a stored task; ImportError_ names what is wrong."""
    try:
        item = msgspec.convert(raw, TrainingTaskSetItem, strict=True)
    except msgspec.ValidationError as err:
        raise ImportError_(f"{label}: {err}") from None
    if not item.Id or not TASK_ID.match(item.Id) or int(item.Id[6:]) >= 2**63:
        raise ImportError_(f"{label}: field `Id` must look like train-1329791605108055040, got {item.Id!r}")
    where = f"{label} ({item.Id})"
    if not item.Name:
        raise ImportError_(f"{where}: field `Name` is missing")
    enums = {name: _enum(where, name, getattr(item, name)) for name in _ENUMS}
    times = {
        name: _time(where, name, getattr(item, name), offset_hours)
        for name in ("CreateTime", "UpdateTime", "StartTime", "EndTime")
    }
    if times["CreateTime"] is None:
        raise ImportError_(f"{where}: field `CreateTime` is missing")
    tags: list[tuple[str, str]] = []
    for i, tag in enumerate(item.Tags or []):
        if tag.TagKey is None or any(k == tag.TagKey for k, _ in tags):
            raise ImportError_(f"{where}: field `Tags.{i}.TagKey` is missing or repeated")
        tags.append((tag.TagKey, tag.TagValue or ""))
    doc = {k: v for k, v in msgspec.to_builtins(item).items() if k not in COLUMN_FIELDS}
    return Task(
        id=item.Id,
        scope=scope,
        app_id=item.AppId or app_id,
        name=item.Name,
        creator=item.SubUin or uin,
        charge_type=enums["ChargeType"] or ChargeType.POSTPAID_BY_HOUR,
        charge_status=enums["ChargeStatus"] or ChargeStatus.NOT_BILLING,
        status=enums["Status"] or "",
        resource_group_id=item.ResourceGroupId or "",
        create_time=times["CreateTime"],
        update_time=times["UpdateTime"] if times["UpdateTime"] is not None else times["CreateTime"],
        start_time=times["StartTime"],
        end_time=times["EndTime"],
        tags=tags,
        doc=doc,
    )


def _enum(where: str, name: str, value: str | None) -> str | None:
    if value is None or value == "":
        if name == "Status":
            raise ImportError_(f"{where}: field `Status` is missing")
        return None
    canonical = ascii_upper(value)
    if canonical not in _ENUMS[name]:
        raise ImportError_(
            f"{where}: field `{name}` is {value!r}, not one of {', '.join(sorted(_ENUMS[name]))}"
        )
    return canonical


def _time(where: str, name: str, value: str | None, offset_hours: int) -> int | None:
    try:
        return timefmt.parse(value or "", offset_hours)
    except ValueError as err:
        raise ImportError_(f"{where}: field `{name}`: {err}") from None


def import_file(
    store: Store,
    path: Path,
    *,
    uin: str,
    app_id: str,
    region: str,
    project: str | None,
    settings: Settings,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Import every task of the file in one transaction; returns how many."""
    scope = Scope(uin=uin, region=region, project=workspace(project))
    try:
        tasks = (
            to_task(label, raw, uin=uin, app_id=app_id, scope=scope, offset_hours=settings.time_offset_hours)
            for label, raw in read_items(path)
        )
        return store.put_tasks(tasks, progress=progress)
    except msgspec.DecodeError as err:
        raise ImportError_(f"the file is not valid JSON: {err}") from None
