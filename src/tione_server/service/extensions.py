"""The extension actions (api/extensions.py): what the web console reads that TI-ONE 2021-11-11 cannot answer
(issue 11 items 3-4). Each reads only the caller's own scope, as every action does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tione_server.api._generated import DataPoint, MetricData
from tione_server.api.extensions import (
    DescribeCallerIdentityRequest,
    DescribeCallerIdentityResponse,
    DescribeTrainingMetricsRequest,
    DescribeTrainingMetricsResponse,
    DescribeTrainingPodUsageRequest,
    DescribeTrainingPodUsageResponse,
    DescribeTrainingTaskRunsRequest,
    DescribeTrainingTaskRunsResponse,
    PodUsage,
    TrainingTaskRun,
)
from tione_server.context import RequestContext
from tione_server.errors import MissingParameter, ResourceNotFound
from tione_server.models import Run, Task
from tione_server.service.scope import scope_of
from tione_server.timefmt import render

if TYPE_CHECKING:
    from tione_server.config import Settings
    from tione_server.store import Store


def _time(ts: float | None, offset_hours: int) -> str:
    return render(int(ts), offset_hours) if ts is not None else ""


def _run(run: Run, offset_hours: int) -> TrainingTaskRun:
    return TrainingTaskRun(
        InstanceId=run.id,
        Operation=run.operation,
        Status=run.status,
        FailureReason=run.failure_reason,
        Message=run.message,
        RequestTime=_time(run.requested_at, offset_hours),
        StartTime=_time(run.start_time, offset_hours),
        EndTime=_time(run.end_time, offset_hours),
        StopRequestTime=_time(run.stop_requested_at, offset_hours),
        PodNames=[p.name for p in run.pods],
    )


class ExtensionActions:
    """DescribeCallerIdentity, DescribeTrainingMetrics, DescribeTrainingTaskRuns, DescribeTrainingPodUsage."""

    settings: Settings
    store: Store

    def _own_task(self, ctx: RequestContext, ti_project_id: str | None, task_id: str | None, name: str) -> Task:
        if not task_id:
            raise MissingParameter(name)
        task = self.store.get_task(scope_of(ctx, ti_project_id), task_id)
        if task is None:
            raise ResourceNotFound(f"The training task `{task_id}` named in `{name}` does not exist.")
        return task

    def describe_caller_identity(
        self, ctx: RequestContext, req: DescribeCallerIdentityRequest
    ) -> DescribeCallerIdentityResponse:
        """Who the key belongs to: the console's sign-in check and its "Mine" filter (Creator = the sub-user)."""
        return DescribeCallerIdentityResponse(
            Uin=ctx.caller.uin, SubAccountUin=ctx.caller.sub_uin, AppId=ctx.caller.app_id
        )

    def describe_training_metrics(
        self, ctx: RequestContext, req: DescribeTrainingMetricsRequest
    ) -> DescribeTrainingMetricsResponse:
        """Every point PushTrainingMetrics stored for the task, oldest first, as it was pushed (issue 11 item 4)."""
        task = self._own_task(ctx, req.TiProjectId, req.TaskId, "TaskId")
        data = [
            MetricData(
                TaskId=task.id, Timestamp=m["timestamp"], Uin=m["uin"], Epoch=m["epoch"], Step=m["step"],
                TotalSteps=m["total_steps"], Points=[DataPoint(Name=p["Name"], Value=p["Value"]) for p in m["points"]],
            )
            for m in self.store.metrics_of(task.num)
        ]  # fmt: skip
        return DescribeTrainingMetricsResponse(TaskId=task.id, Data=data)

    def describe_training_task_runs(
        self, ctx: RequestContext, req: DescribeTrainingTaskRunsRequest
    ) -> DescribeTrainingTaskRunsResponse:
        """Every run of the task, oldest first: the console's timeline and its choice of an earlier run's logs."""
        task = self._own_task(ctx, req.TiProjectId, req.Id, "Id")
        offset = self.settings.time_offset_hours
        found = [_run(r, offset) for r in self.store.runs_of(task.num)]
        return DescribeTrainingTaskRunsResponse(Runs=found, TotalCount=len(found))

    def describe_training_pod_usage(
        self, ctx: RequestContext, req: DescribeTrainingPodUsageRequest
    ) -> DescribeTrainingPodUsageResponse:
        """Each pod's CPU and memory over time, as far as it is measured. Nothing samples pods yet (the sandbox
        of issue 9 will), so every pod answers `Measured: false` with no samples: never invented numbers."""
        task = self._own_task(ctx, req.TiProjectId, req.Id, "Id")
        runs = self.store.runs_of(task.num)
        run = (
            next((r for r in runs if r.id == req.InstanceId), None) if req.InstanceId else (runs[-1] if runs else None)
        )
        if req.InstanceId and run is None:
            raise ResourceNotFound(f"The run `{req.InstanceId}` named in `InstanceId` is not a run of `{task.id}`.")
        pods = [PodUsage(PodName=p.name, Measured=False, Samples=[]) for p in (run.pods if run else [])]
        return DescribeTrainingPodUsageResponse(InstanceId=run.id if run else "", Pods=pods)
