"""Training-task lifecycle actions (spec §4.1-§4.7): Create, Describe, Start, Stop, Delete, Pods.

A mixin of TioneService. Handlers validate, write and return; the runner (runner.py) is woken after every change
and moves the run through its states (spec §6). Delete alone reaches the executor: it kills a run's leftover pods
and removes the run's files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tione_server import ids
from tione_server.api._generated import (
    CreateTrainingTaskRequest,
    CreateTrainingTaskResponse,
    DeleteTrainingTaskRequest,
    DeleteTrainingTaskResponse,
    DescribeTrainingTaskPodsRequest,
    DescribeTrainingTaskPodsResponse,
    DescribeTrainingTaskRequest,
    DescribeTrainingTaskResponse,
    StartTrainingTaskRequest,
    StartTrainingTaskResponse,
    StopTrainingTaskRequest,
    StopTrainingTaskResponse,
)
from tione_server.context import RequestContext
from tione_server.errors import (
    DuplicateName,
    DuplicateNameTaskIsCreating,
    InternalError,
    LimitExceeded,
    NotAllow,
    ResourceGroupInsufficient,
    ResourceGroupNotFound,
    ResourceNotFound,
    UnSubmittedStatusNotAllowStop,
)
from tione_server.events import state_changed
from tione_server.executors.plan import run_spec
from tione_server.models import (
    ACTIVE_STATUSES,
    LIVE_POD_STATUSES,
    ChargeStatus,
    ChargeType,
    Run,
    Scope,
    Task,
    TaskStatus,
)
from tione_server.netpolicy import address_policy
from tione_server.scheduling import task_demand
from tione_server.service.detail import detail, is_live, pod_info
from tione_server.service.scope import scope_of
from tione_server.service.validation import Definition, check_capacity, stored_configs, validate_create
from tione_server.store.lifecycle import IdTaken, NameTaken, QuotaExceeded

if TYPE_CHECKING:
    from tione_server.catalogue import Catalogue
    from tione_server.config import Settings
    from tione_server.executors.base import Executor
    from tione_server.scheduling import Scheduler
    from tione_server.store import Store

_creating: set[tuple[Scope, str]] = set()
_creating_lock = threading.Lock()
"""Names being created right now (spec §4.1 rule 14: FailedOperation.DuplicateNameTaskIsCreating)."""


def _operator(ctx: RequestContext, operation: str) -> dict[str, Any]:
    """OperatorInfo of the last user operation (spec §4.1, §2 OperationType)."""
    return {"SubUin": ctx.caller.sub_uin, "SubUinName": "", "IsPlatformOperator": False, "OperationType": operation}


def _not_found(task_id: str | None) -> ResourceNotFound:
    return ResourceNotFound(f"The training task `{task_id}` named in `Id` does not exist.")


def _over_quota(err: QuotaExceeded) -> LimitExceeded:
    """Issue 7 B4: the catalogue's `[limits] max_active_tasks`."""
    return LimitExceeded(
        f"The account already has {err.limit} tasks that are not finished (SUBMITTING, PENDING, STARTING, RUNNING "
        "or STOPPING), the most this server allows; stop or wait for one first."
    )


class LifecycleActions:
    """CreateTrainingTask, DescribeTrainingTask, Start/Stop/DeleteTrainingTask, DescribeTrainingTaskPods."""

    settings: Settings
    store: Store
    catalogue: Catalogue
    executor: Executor
    scheduler: Scheduler
    wake: Callable[[], None]

    # -- create ---------------------------------------------------------------------------------

    def create_training_task(self, ctx: RequestContext, req: CreateTrainingTaskRequest) -> CreateTrainingTaskResponse:
        """Validate (spec §4.1), store the task and its first run in SUBMITTING; the runner starts it."""
        scope = scope_of(ctx, req.TiProjectId)
        d = validate_create(req, self.catalogue, self.scheduler, address_policy(self.settings.callback_allow))
        key = (scope, d.name)
        with _creating_lock:
            if key in _creating:
                raise DuplicateNameTaskIsCreating(f"A task named `{d.name}` (`Name`) is being created.")
            _creating.add(key)
        try:
            task = self._store_new(ctx, scope, d)
        finally:
            with _creating_lock:
                _creating.discard(key)
        state_changed(task.id, task.doc["LatestInstanceId"], scope.uin, "", TaskStatus.SUBMITTING, "CreateTrainingTask")
        self.wake()
        return CreateTrainingTaskResponse(Id=task.id)

    def _store_new(self, ctx: RequestContext, scope: Scope, d: Definition) -> Task:
        now = int(ctx.now)
        name, charge_type, group = d.name, d.charge_type, d.resource_group_id
        for _ in range(5):  # a number clash (another process, an imported id) just takes the next number
            num = ids.next_num()
            task_id = ids.task_id(num)
            run = self._new_run(task_id, num, "CREATE", ctx.now, group if charge_type == ChargeType.PREPAID else "")
            run.cpu, run.memory, run.gpu = d.cpu, d.memory, d.gpu
            doc = d.doc | {
                "Uin": scope.uin,
                "Region": scope.region,
                "SubUinName": "",
                "LatestInstanceId": run.id,
                "FailureReason": "",
                "Message": "",
                "RuntimeInSeconds": 0,
                "LatestOperatorInfo": _operator(ctx, "CREATE"),
            }
            task = Task(
                id=task_id, scope=scope, app_id=ctx.caller.app_id, name=name, creator=ctx.caller.sub_uin,
                charge_type=charge_type, charge_status=ChargeStatus.NOT_BILLING, status=TaskStatus.SUBMITTING,
                resource_group_id=group, create_time=now, update_time=now, tags=d.tags, doc=doc,
            )  # fmt: skip
            try:
                self.store.lifecycle.create(task, run, self.catalogue.limits.max_active_tasks, key=ctx.cached_key)
            except NameTaken:
                raise DuplicateName(f"A task named `{name}` (`Name`) already exists in this workspace.") from None
            except QuotaExceeded as err:
                raise _over_quota(err) from None
            except IdTaken:
                continue
            return task
        raise InternalError()

    @staticmethod
    def _new_run(task_id: str, task_num: int, operation: str, now: float, pool: str) -> Run:
        return Run(
            num=ids.next_num(), id=ids.run_id(task_id), task_num=task_num, task_id=task_id,
            status=TaskStatus.SUBMITTING, charge_status=ChargeStatus.NOT_BILLING, operation=operation,
            requested_at=now, pool=pool,
        )  # fmt: skip

    # -- describe -------------------------------------------------------------------------------

    def _task(self, ctx: RequestContext, ti_project_id: str | None, task_id: str | None) -> Task:
        task = self.store.tasks.get(scope_of(ctx, ti_project_id), task_id or "")
        if task is None:
            raise _not_found(task_id)
        return task

    def describe_training_task(
        self, ctx: RequestContext, req: DescribeTrainingTaskRequest
    ) -> DescribeTrainingTaskResponse:
        """The detail (spec §4.2, §7); with InstanceId, the run-level fields of that run."""
        task = self._task(ctx, req.TiProjectId, req.Id)
        run = None
        if req.InstanceId:
            run = self.store.runs.get(req.InstanceId)
            if run is None or run.task_num != task.num:
                raise ResourceNotFound(
                    f"The instance `{req.InstanceId}` named in `InstanceId` is not a run of `{task.id}`."
                )
        offset = self.settings.time_offset_hours
        return DescribeTrainingTaskResponse(TrainingTaskDetail=detail(task, run, self.catalogue, ctx.now, offset))

    def describe_training_task_pods(
        self, ctx: RequestContext, req: DescribeTrainingTaskPodsRequest
    ) -> DescribeTrainingTaskPodsResponse:
        """The latest run's pods (spec §4.7); none while SUBMITTING or after SUBMIT_FAILED."""
        task = self._task(ctx, req.TiProjectId, req.Id)
        run = self.store.runs.latest(task.num) if is_live(task) else None
        pods = run.pods if run is not None and run.status != TaskStatus.SUBMIT_FAILED else []
        offset = self.settings.time_offset_hours
        infos = [pod_info(task, p, self.catalogue, offset) for p in pods]
        return DescribeTrainingTaskPodsResponse(
            PodNames=[p.name for p in pods], TotalCount=len(pods), PodInfoList=infos
        )

    # -- start / stop / delete (spec §6.3) ------------------------------------------------------

    def start_training_task(self, ctx: RequestContext, req: StartTrainingTaskRequest) -> StartTrainingTaskResponse:
        """A new run of a terminal task (spec §4.4)."""
        scope = scope_of(ctx, req.TiProjectId)
        task = self._task(ctx, req.TiProjectId, req.Id)
        if task.status in ACTIVE_STATUSES:
            raise NotAllow(f"The task `{task.id}` is {task.status}; only a finished task can be started.")
        if not is_live(task):
            raise NotAllow(f"The task `{task.id}` was imported as history and has no definition to run.")
        configs = stored_configs(task.doc)
        try:
            check_capacity(self.catalogue, self.scheduler, task.charge_type, task.resource_group_id, configs)
        except ResourceGroupNotFound as err:  # the group left the catalogue: Start declares only this code
            raise ResourceGroupInsufficient(err.message) from None
        pool = task.resource_group_id if task.charge_type == ChargeType.PREPAID else ""
        run = self._new_run(task.id, task.num, "START", ctx.now, pool)
        need = task_demand(configs)
        run.cpu, run.memory, run.gpu = need.cpu, need.memory, need.gpu
        patch = {
            "LatestInstanceId": run.id,
            "FailureReason": "",
            "Message": "",
            "RuntimeInSeconds": 0,
            "LatestOperatorInfo": _operator(ctx, "START"),
        }
        try:
            outcome = self.store.lifecycle.start(
                scope, task.id, run, int(ctx.now), patch, self.catalogue.limits.max_active_tasks
            )
        except QuotaExceeded as err:
            raise _over_quota(err) from None
        if not outcome.ok:
            if not outcome.status:
                raise _not_found(req.Id)
            raise NotAllow(f"The task `{task.id}` is {outcome.status}; only a finished task can be started.")
        state_changed(task.id, run.id, scope.uin, task.status, TaskStatus.SUBMITTING, "StartTrainingTask")
        self.wake()
        return StartTrainingTaskResponse()

    def stop_training_task(self, ctx: RequestContext, req: StopTrainingTaskRequest) -> StopTrainingTaskResponse:
        """PENDING/STARTING/RUNNING -> STOPPING; the runner ends the pods (spec §4.5)."""
        scope = scope_of(ctx, req.TiProjectId)
        patch = {"LatestOperatorInfo": _operator(ctx, "STOP")}
        outcome = self.store.lifecycle.request_stop(scope, req.Id or "", ctx.now, patch)
        if outcome.ok:
            if outcome.task is not None:
                state_changed(
                    outcome.task.id, str(outcome.task.doc.get("LatestInstanceId") or "-"), scope.uin,
                    outcome.task.status, TaskStatus.STOPPING, "StopTrainingTask",
                )  # fmt: skip
            self.wake()
            return StopTrainingTaskResponse()
        if not outcome.status:
            raise _not_found(req.Id)
        if outcome.status == TaskStatus.SUBMITTING:
            raise UnSubmittedStatusNotAllowStop(f"The task `{req.Id}` is still SUBMITTING and cannot be stopped yet.")
        if outcome.status == TaskStatus.STOPPING and outcome.task is not None and is_live(outcome.task):
            self.store.lifecycle.touch_stop(scope, req.Id or "", int(ctx.now), patch)  # spec §4.5: a no-op success
            return StopTrainingTaskResponse()
        if outcome.task is not None and not is_live(outcome.task) and outcome.status in ACTIVE_STATUSES:
            raise NotAllow(f"The task `{req.Id}` was imported as history; there is nothing here to stop.")
        raise NotAllow(f"The task `{req.Id}` is {outcome.status}; only PENDING, STARTING or RUNNING tasks stop.")

    def delete_training_task(self, ctx: RequestContext, req: DeleteTrainingTaskRequest) -> DeleteTrainingTaskResponse:
        """Remove a finished task, its runs and their files (spec §4.6)."""
        outcome = self.store.lifecycle.delete(scope_of(ctx, req.TiProjectId), req.Id or "")
        if not outcome.ok:
            if not outcome.status:
                raise _not_found(req.Id)
            raise NotAllow(f"The task `{req.Id}` is {outcome.status}; stop it before deleting it.")
        task = outcome.task
        for run in outcome.runs:
            leftovers = [p for p in run.pods if p.status in LIVE_POD_STATUSES and p.launched_at is not None]
            if leftovers and task is not None:  # a process still being cleaned up: end it now
                self.executor.signal(run_spec(run, task), run, leftovers, kill=True, now=ctx.now)
            self.executor.remove(run.id)
        return DeleteTrainingTaskResponse()
