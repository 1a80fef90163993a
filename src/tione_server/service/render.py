"""Stored tasks as wire objects: TrainingTaskSetItem for the list (spec §7), with every member filled."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import msgspec

from tione_server import timefmt
from tione_server.api._generated import TrainingTaskSetItem
from tione_server.api.complete import complete, complete_member
from tione_server.catalogue import Catalogue
from tione_server.models import Task
from tione_server.service.detail import is_live, live_list_fields, task_runtime

PRIVATE_VALUE = "******"


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
