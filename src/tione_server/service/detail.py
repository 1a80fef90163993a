"""Rendering executed tasks: TrainingTaskDetail (spec §7), PodInfo (spec §4.7), and the run-level fields the
list shares with the detail (spec §6.4-§6.7), resolved at read time from the catalogue (spec §4.3).

Imported tasks are history: their stored wire fields are shown as given. A task is "live" (executed here)
when it has a LatestInstanceId.
"""

from __future__ import annotations

from typing import Any

from tione_server import timefmt
from tione_server.api._generated import PodInfo, TrainingTaskDetail
from tione_server.api.complete import complete
from tione_server.catalogue import Catalogue
from tione_server.executors.plan import pod_config
from tione_server.models import ChargeStatus, ChargeType, Pod, Run, Task, TaskStatus, runtime_seconds


def is_live(task: Task) -> bool:
    """Whether the task was created here (and so has runs), as opposed to imported history."""
    return bool(task.doc.get("LatestInstanceId"))


def task_runtime(task: Task, now: float) -> int:
    """RuntimeInSeconds of the task's current run, as the list and the detail show it.

    A task run here follows `runtime_seconds`. An imported task is history that nothing runs here: it keeps the
    figure it was imported with (issue 7 E13: a RUNNING one counted on would report months); without one,
    EndTime - StartTime as of an ended run, else 0.
    """
    if is_live(task):
        return runtime_seconds(task.status, task.start_time, task.end_time, now)
    stored = task.doc.get("RuntimeInSeconds")
    if isinstance(stored, int):
        return stored
    return runtime_seconds(TaskStatus.STOPPED, task.start_time, task.end_time, now)


def resource_configs(task: Task, catalogue: Catalogue) -> list[dict[str, Any]]:
    """ResourceConfigInfos with postpaid sizes and aliases from the current catalogue (spec §3.1, §4.3)."""
    out = []
    for stored in task.doc.get("ResourceConfigInfos") or []:
        spec = catalogue.instance_types.get(stored.get("InstanceType") or "")
        cfg = dict(stored)
        if task.charge_type == ChargeType.POSTPAID_BY_HOUR and spec is not None:
            cfg.update(
                Cpu=spec.cpu, Memory=spec.memory, GpuType=spec.gpu_type, Gpu=spec.gpu, InstanceTypeAlias=spec.alias
            )
        out.append(cfg)
    return out


def billing_info(task: Task, charge_status: str, catalogue: Catalogue) -> str:
    """Spec §6.7: `41.40元/小时` while a postpaid run is BILLING, else ""."""
    if task.charge_type != ChargeType.POSTPAID_BY_HOUR or charge_status != ChargeStatus.BILLING:
        return ""
    fen = 0
    for cfg in task.doc.get("ResourceConfigInfos") or []:
        spec = catalogue.instance_types.get(cfg.get("InstanceType") or "")
        if spec is not None:
            fen += catalogue.real_price(spec, int(cfg.get("InstanceNum") or 1))
    return f"{fen // 100}.{fen % 100:02d}元/小时"


def group_name(task: Task, catalogue: Catalogue) -> str:
    """The live name of a prepaid task's resource group (spec §4.3); "" for postpaid."""
    group = catalogue.resource_groups.get(task.resource_group_id) if task.resource_group_id else None
    return group.name if group is not None else ""


def live_list_fields(task: Task, catalogue: Catalogue) -> dict[str, Any]:
    """List fields of an executed task that are resolved at read time (the rest come from the row)."""
    return {
        "BillingInfo": billing_info(task, task.charge_status, catalogue),
        "ResourceGroupName": group_name(task, catalogue),
        "ResourceConfigInfos": resource_configs(task, catalogue),
    }


def detail(task: Task, run: Run | None, catalogue: Catalogue, now: float, offset_hours: int) -> TrainingTaskDetail:
    """DescribeTrainingTask: the task, with run-level fields of `run` when a specific instance was asked for."""
    data: dict[str, Any] = {k: v for k, v in task.doc.items() if not k.startswith("_")}
    status, charge = task.status, task.charge_status
    start, end = task.start_time, task.end_time
    if run is not None:
        status, charge, start, end = run.status, run.charge_status, run.start_time, run.end_time
        data.update(FailureReason=run.failure_reason, Message=run.message)
    live = is_live(task)
    if live or run is not None:
        data["RuntimeInSeconds"] = runtime_seconds(status, start, end, now)
        data["BillingInfo"] = billing_info(task, charge, catalogue)
        data["ResourceGroupName"] = group_name(task, catalogue)
        data["ResourceConfigInfos"] = resource_configs(task, catalogue)
        data["OperatorInfo"] = task.doc.get("LatestOperatorInfo")
    else:
        data["RuntimeInSeconds"] = task_runtime(task, now)
    data.update(
        Id=task.id,
        Name=task.name,
        Uin=task.scope.uin,
        Region=task.scope.region,
        SubUin=task.creator,
        ChargeType=task.charge_type,
        ResourceGroupId=task.resource_group_id,
        Status=status,
        ChargeStatus=charge,
        CreateTime=timefmt.render(task.create_time, offset_hours),
        UpdateTime=timefmt.render(task.update_time, offset_hours),
        StartTime=timefmt.render(start, offset_hours),
        EndTime=timefmt.render(end, offset_hours),
        Tags=[{"TagKey": k, "TagValue": v} for k, v in task.tags],
    )
    if not data.get("OperatorInfo") and data.get("LatestOperatorInfo"):
        data["OperatorInfo"] = data["LatestOperatorInfo"]
    return complete(TrainingTaskDetail, data)


def pod_info(task: Task, pod: Pod, catalogue: Catalogue, offset_hours: int) -> PodInfo:
    """One PodInfo (spec §4.7): IP once running, times as set, the role's config with InstanceNum 1."""
    cfg = pod_config({"ResourceConfigInfos": resource_configs(task, catalogue)}, pod)
    return complete(
        PodInfo,
        {
            "Name": pod.name,
            "IP": pod.ip,
            "Status": pod.status,
            "StartTime": timefmt.render(None if pod.start_time is None else int(pod.start_time), offset_hours),
            "EndTime": timefmt.render(None if pod.end_time is None else int(pod.end_time), offset_hours),
            "ResourceConfigInfo": cfg,
            "SubUin": task.creator,
        },
    )
