"""Stored tasks as wire objects: TrainingTaskSetItem for the list (spec §7), with every member filled."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import msgspec

from tione_server import timefmt
from tione_server.api._generated import TrainingTaskSetItem
from tione_server.api.complete import complete, complete_member
from tione_server.catalogue import Catalogue
from tione_server.models import RUNTIME_STATUSES, Scope, Task
from tione_server.service.detail import is_live, live_list_fields, task_runtime
from tione_server.store.pages import Entry
from tione_server.store.tasks import TASK_COLUMNS, task_of

PRIVATE_VALUE = "******"
ITEM_CACHE_SIZE = 4096
"""Rendered items kept (a few pages for many dashboards; about 5 KB each with the row that keys it)."""
_SENTINEL = 987_654_321_987_654_321
"""A RuntimeInSeconds no task has: rendered in place of a running task's, then cut out of its bytes."""
_encode = msgspec.json.Encoder().encode
Row = tuple[Any, ...]
Rendered = msgspec.Raw | tuple[bytes, bytes, int]
"""An item's bytes, or for a running task the bytes around its RuntimeInSeconds and the StartTime it counts from."""


class RenderedItems:
    """List items as encoded JSON, kept per stored row and spliced into the reply (issue 12).

    Decoding a row's document and completing and encoding its item was most of a list request's cost, and all
    of it follows from the row, the catalogue and the time offset, which a service holds fixed. So the bytes are
    kept, keyed by the row's stamp (store/pages.py): any write to the task is a new stamp and misses. The one field
    that changes without a write, RuntimeInSeconds of a task running here, is computed per request between the two
    halves.
    """

    def __init__(self, catalogue: Catalogue, offset_hours: int, size: int = ITEM_CACHE_SIZE) -> None:
        self._catalogue = catalogue
        self._offset = offset_hours
        self._size = size
        self._kept: dict[int, tuple[Hashable, Rendered]] = {}
        """By task number, with the stamp of the row it was rendered from (store/pages.py): on SQLite the row
        itself, whose comparison is a few pointer checks and one memcmp of the document."""

    def kept(self, num: int, stamp: Hashable) -> Rendered | None:
        """The rendering kept for this version of the task's row, if any (store/pages.py `Have`: the store then
        does not read the row, and hands this back with the entry)."""
        found = self._kept.get(num)
        return found[1] if found is not None and found[0] == stamp else None

    def render(self, entries: list[Entry], scope: Scope, now: float) -> list[msgspec.Raw]:
        """The encoded TrainingTaskSetItem of each entry, as msgspec places it into the reply unchanged."""
        out = []
        for num, stamp, row, kept in entries:
            if kept is not None:
                item = kept
            else:
                assert row is not None, "the store reads the row of every entry whose rendering is not kept"
                item = self._keep(num, stamp, row, scope, now)[1]
            if isinstance(item, msgspec.Raw):
                out.append(item)
            else:
                head, tail, start = item
                out.append(msgspec.Raw(b"%b%d%b" % (head, max(0, int(now) - start), tail)))
        return out

    def _keep(self, num: int, stamp: Hashable, row: Row, scope: Scope, now: float) -> tuple[Hashable, Rendered]:
        task = task_of(dict(zip(TASK_COLUMNS, row, strict=True)), scope)
        item = list_item(task, now, self._offset, self._catalogue)
        rendered: Rendered
        if is_live(task) and task.status in RUNTIME_STATUSES and task.start_time is not None:
            # task_runtime counts on from StartTime for these alone (models.runtime_seconds)
            head, found, tail = _encode(msgspec.structs.replace(item, RuntimeInSeconds=_SENTINEL)).partition(
                b"%d" % _SENTINEL
            )
            assert found, "the sentinel runtime is in the item"
            rendered = (head, tail, task.start_time)
        else:
            rendered = msgspec.Raw(_encode(item))
        if len(self._kept) >= self._size:
            self._evict()
        entry = self._kept[num] = (stamp, rendered)
        return entry

    def _evict(self) -> None:
        """Drop the oldest entry (insertion order): no bookkeeping on a hit. Threads may race here; losing the
        race only means another entry goes."""
        with contextlib.suppress(StopIteration, RuntimeError):
            self._kept.pop(next(iter(self._kept)), None)


def list_item(task: Task, now: float, offset_hours: int, catalogue: Catalogue | None = None) -> TrainingTaskSetItem:
    """The task as DescribeTrainingTasks shows it.

    Executed tasks get BillingInfo, ResourceGroupName and postpaid sizes from the current catalogue (spec
    §4.3, §6.7); imported tasks are history and show what was imported.
    """
    dynamic: dict[str, Any] = {
        "Id": task.id,
        "Name": task.name,
        "ChargeType": task.charge_type,
        "ChargeStatus": task.charge_status,
        "ResourceGroupId": task.resource_group_id,
        "Status": task.status,
        "RuntimeInSeconds": task_runtime(task, now),
        "CreateTime": timefmt.render(task.create_time, offset_hours),
        "UpdateTime": timefmt.render(task.update_time, offset_hours),
        "StartTime": timefmt.render(task.start_time, offset_hours),
        "EndTime": timefmt.render(task.end_time, offset_hours),
        "SubUin": task.creator,
        "AppId": task.app_id,
    }
    if catalogue is not None and is_live(task):
        for name, value in live_list_fields(task, catalogue).items():
            dynamic[name] = complete_member(TrainingTaskSetItem, name, value)
    return msgspec.structs.replace(_static_item(task), **dynamic)


def _static_item(task: Task) -> TrainingTaskSetItem:
    """The item as far as it follows from the task's stored doc and tags, completed once per content.

    Completing a whole item is most of the cost of a list page; the stored text identifies the content, so
    the result is kept (bounded, least recently used first out) and shared: callers replace, never mutate.
    """
    key = task.doc_json
    if key:
        with _STATIC_LOCK:
            found = _STATIC.get(key)
            if found is not None:
                _STATIC.move_to_end(key)
                return found
    data: dict[str, Any] = dict(task.doc)
    # Spec §3.6/§7: a private variable's value is never shown. Created tasks store it masked already;
    # an imported item may carry it in clear.
    data["Envs"] = [
        env | {"Value": PRIVATE_VALUE} if isinstance(env, dict) and env.get("IsPrivate") else env
        for env in data.get("Envs") or []
    ]
    data["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in task.tags]
    item = complete(TrainingTaskSetItem, data)
    if key:
        with _STATIC_LOCK:
            _STATIC[key] = item
            while len(_STATIC) > STATIC_CACHE_SIZE:
                _STATIC.popitem(last=False)
    return item


STATIC_CACHE_SIZE = 4096
"""Items kept completed: a few pages for many dashboards, a few MB of memory."""
_STATIC: OrderedDict[str, TrainingTaskSetItem] = OrderedDict()
_STATIC_LOCK = threading.Lock()
