"""`tione-server import`: tasks saved from the real service (TI-ONE wire JSON) into the store.

Accepts a DescribeTrainingTasks response, a JSON list of TrainingTaskSetItem, or JSON lines of them.
Items are decoded with the generated wire type; every field is kept as given. All or nothing: a bad
item aborts the one transaction, with a message naming the item and the field. Nothing is hidden or lost
(issue 7 E13): the region must be one this server serves, and an Id another account, region or workspace holds,
or a task created here holds, is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from msgspec import inspect as mi

from tione_server import timefmt
from tione_server.api._generated import TrainingTaskSetItem
from tione_server.config import KNOWN_REGIONS, Settings
from tione_server.models import ChargeStatus, ChargeType, Scope, Task, TaskStatus
from tione_server.service.listing import ascii_upper
from tione_server.service.scope import workspace
from tione_server.store import IdElsewhere, Store

TASK_ID = re.compile(r"^train-(0|[1-9][0-9]{0,18})$")
"""Canonical digits only: `train-01` and `train-1` would be the same task number (the primary key)."""
COLUMN_FIELDS = frozenset(
    {"Id", "Name", "SubUin", "AppId", "ChargeType", "ChargeStatus", "Status", "ResourceGroupId",
     "CreateTime", "UpdateTime", "StartTime", "EndTime", "Tags"}
)  # fmt: skip
_ENUMS: dict[str, frozenset[str]] = {
    "Status": frozenset(TaskStatus),
    "ChargeType": frozenset(ChargeType),
    "ChargeStatus": frozenset(ChargeStatus),
}
_BOM = b"\xef\xbb\xbf"
_encode = msgspec.json.Encoder().encode
LAST_RENDERABLE = 253402300799
"""9999-12-31T23:59:59 as Unix seconds: the last wall-clock time a task time string can show."""
_ITEM_TYPE = mi.type_info(TrainingTaskSetItem)


class ImportError_(ValueError):  # noqa: N801 - ImportError is a builtin
    """A file that cannot be imported; the message names the item and the field."""


def read_items(path: Path) -> Iterator[tuple[str, Any]]:
    """(label, raw item) for each task in the file, in file order."""
    with path.open("rb") as fh:
        head = fh.read(4096).removeprefix(_BOM).lstrip()
    if head.startswith(b"["):
        items = _decode(path.read_bytes().removeprefix(_BOM), "the file")
        if not isinstance(items, list):
            raise ImportError_("the file is not a JSON list of tasks")
        yield from ((f"item {i}", item) for i, item in enumerate(items))
        return
    if head.startswith(b"{") and not _is_json_lines(path):
        try:
            doc = msgspec.json.decode(path.read_bytes().removeprefix(_BOM))
        except msgspec.DecodeError:
            doc = None  # not one document after all: read it as JSON lines, which names the bad line
        if isinstance(doc, dict):
            yield from _document_items(doc)
            return
    with path.open("rb") as fh:
        for lineno, raw_line in enumerate(fh, 1):
            line = raw_line.removeprefix(_BOM) if lineno == 1 else raw_line
            if line.strip():
                yield f"line {lineno}", _decode(line, f"line {lineno}")


def _is_json_lines(path: Path) -> bool:
    """Whether the file is JSON lines: its first line is a whole JSON value and more follows. Decided from
    the first line alone, so a large JSON-lines file is streamed, never read whole."""
    with path.open("rb") as fh:
        first = fh.readline().removeprefix(_BOM)
        rest = fh.read(4096).strip()
    try:
        msgspec.json.decode(first)
    except msgspec.DecodeError:
        return False  # a document spread over several lines
    return bool(rest)


def _decode(data: bytes, where: str) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as err:
        raise ImportError_(f"{where} is not valid JSON: {err}") from None


def _document_items(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """A DescribeTrainingTasks response (with or without the `Response` wrapper), or one lone item."""
    if "Response" not in doc and "TrainingTaskSet" not in doc:
        yield "line 1", doc  # a JSON-lines file of a single line
        return
    body = doc.get("Response", doc)
    if not isinstance(body, dict):
        raise ImportError_("`Response` in the file is not an object")
    if isinstance(body.get("Error"), dict):
        raise ImportError_(f"the file is an error response ({body['Error'].get('Code')}), not a list of tasks")
    items = body.get("TrainingTaskSet")
    if not isinstance(items, list):
        raise ImportError_("the file is a JSON object without a `Response.TrainingTaskSet` list")
    yield from ((f"item {i}", item) for i, item in enumerate(items))


def _known_members(value: Any, t: mi.Type) -> Any:
    """`value` without the object members the wire type does not define, at any depth.

    Tencent's own list items can carry members outside the public spec (spec §7: TaskType, Warnings,
    ...); this server never emits them, so an export that has them still imports.
    """
    if isinstance(t, mi.UnionType):
        t = next((x for x in t.types if not isinstance(x, mi.NoneType)), t)
    if isinstance(t, mi.StructType) and isinstance(value, dict):
        types = {f.name: f.type for f in t.fields}
        return {k: _known_members(v, types[k]) for k, v in value.items() if k in types}
    if isinstance(t, mi.ListType) and isinstance(value, list):
        return [_known_members(v, t.item_type) for v in value]
    return value


def _nul_path(value: Any, path: str) -> str | None:
    """The path of the first text holding U+0000 (PostgreSQL cannot store it; SQLite could), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        children: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        return None
    for key, child in children:
        if found := _nul_path(child, f"{path}.{key}" if path else str(key)):
            return found
    return None


def to_task(label: str, raw: Any, *, uin: str, app_id: str, scope: Scope, offset_hours: int) -> Task:
    """One wire item as a stored task; ImportError_ names what is wrong."""
    try:
        item = msgspec.convert(raw, TrainingTaskSetItem, strict=True)
    except msgspec.ValidationError:
        # Rarely taken: only an item with members outside the public spec (or a bad one) pays for this.
        try:
            item = msgspec.convert(_known_members(raw, _ITEM_TYPE), TrainingTaskSetItem, strict=True)
        except msgspec.ValidationError as err:
            raise ImportError_(f"{label}: {err}") from None
    if not item.Id or not TASK_ID.match(item.Id) or int(item.Id[6:]) >= 2**63:
        raise ImportError_(f"{label}: field `Id` must look like train-1329791605108055040, got {item.Id!r}")
    where = f"{label} ({item.Id})"
    if b"\\u0000" in _encode(item) and (nul := _nul_path(msgspec.to_builtins(item), "")):
        raise ImportError_(f"{where}: field `{nul}` contains a NUL character")
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
        raise ImportError_(f"{where}: field `{name}` is {value!r}, not one of {', '.join(sorted(_ENUMS[name]))}")
    return canonical


def _time(where: str, name: str, value: str | None, offset_hours: int) -> int | None:
    try:
        ts = timefmt.parse(value or "", offset_hours)
    except ValueError as err:
        raise ImportError_(f"{where}: field `{name}`: {err}") from None
    if ts is not None and ts < 0:
        # Stored times are Unix seconds with -1 meaning "unset" (store/schema.py): nothing before 1970.
        raise ImportError_(f"{where}: field `{name}` is {value!r}, before 1970")
    if ts is not None and ts + offset_hours * 3600 > LAST_RENDERABLE:
        # e.g. 9999-12-31T23:59:59-08:00 is year 10000 in Beijing: every list showing it would fail.
        raise ImportError_(f"{where}: field `{name}` is {value!r}, beyond year 9999 on the wire")
    return ts


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
    check_region(region, settings)
    scope = Scope(uin=uin, region=region, project=workspace(project))
    try:
        tasks = (
            to_task(label, raw, uin=uin, app_id=app_id, scope=scope, offset_hours=settings.time_offset_hours)
            for label, raw in read_items(path)
        )
        return store.tasks.put(tasks, progress=progress)
    except msgspec.DecodeError as err:
        raise ImportError_(f"the file is not valid JSON: {err}") from None
    except IdElsewhere as err:
        raise ImportError_(_elsewhere(err)) from None


def check_region(region: str, settings: Settings) -> None:
    """Tasks go only where the API can reach them: a region this server serves (TIONE_REGIONS), which is a
    region code the API knows (the gateway's own two checks, api3-protocol §8)."""
    if region not in KNOWN_REGIONS:
        raise ImportError_(f"`--region` {region!r} is not a region code; use one like ap-guangzhou")
    if region not in settings.regions:
        raise ImportError_(
            f"`--region` {region} is not served by this server ({', '.join(settings.regions)}; set TIONE_REGIONS "
            "to serve more)"
        )


def account_app_id(store: Store, uin: str, given: str | None) -> str:
    """The AppId that items without one show: the account's, from its keys (issue 7 E13: never the UIN).
    `given` (`--app-id`) names it for an account without keys, and must agree with the keys of one that has."""
    known = sorted({k.app_id for k in store.keys.list() if k.uin == uin})
    if given is not None and known and given not in known:
        raise ImportError_(f"`--app-id` {given} is not the AppId of account {uin} ({', '.join(known)}, from its keys)")
    if given is not None:
        return given
    if len(known) == 1:
        return known[0]
    if known:
        raise ImportError_(f"account {uin} has keys with AppIds {', '.join(known)}: name one with `--app-id`")
    raise ImportError_(
        f"account {uin} has no keys, so its AppId is unknown: pass `--app-id`, or create a key first "
        f"(tione-server keys create --uin {uin} --app-id ...)"
    )


def _elsewhere(err: IdElsewhere) -> str:
    if err.owner is None:
        return f"field `Id`: {err.task_id} belongs to a task created on this server, which import never replaces"
    owner = err.owner
    where = f"account {owner.uin}, region {owner.region}, workspace {owner.project or '(default)'}"
    return f"field `Id`: {err.task_id} already belongs to {where}; an Id stays with its owner"
