"""Extension actions: what the web console needs and TI-ONE 2021-11-11 does not have (issue 11 items 2-4).

They are declared here by hand, exactly as scripts/gen_api.py declares the spec's actions (msgspec wire types, an
`Action` row, a base method answering UnsupportedOperation), and merged into SERVED_ACTIONS, the one table the
gateway dispatches from. So an extension is signed, rate-limited, decoded and answered like every other action,
under the same Version (2021-11-11); the official SDKs reach it through their CommonClient. docs/actions.md
documents each under "Extensions of this server". The generated module is never edited.
"""

from __future__ import annotations

from msgspec import Struct

from tione_server.api._generated import ACTIONS, Action, MetricData, TioneApi, UInt
from tione_server.context import RequestContext
from tione_server.errors import UnsupportedOperation


class DescribeCallerIdentityRequest(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class DescribeCallerIdentityResponse(Struct, forbid_unknown_fields=True, omit_defaults=True):
    Uin: str | None = None
    SubAccountUin: str | None = None
    AppId: str | None = None
    RequestId: str | None = None


class DescribeTrainingMetricsRequest(Struct, forbid_unknown_fields=True, omit_defaults=True):
    TaskId: str | None = None
    TiProjectId: str | None = None


class DescribeTrainingMetricsResponse(Struct, forbid_unknown_fields=True, omit_defaults=True):
    TaskId: str | None = None
    Data: list[MetricData] | None = None
    RequestId: str | None = None


class DescribeTrainingTaskRunsRequest(Struct, forbid_unknown_fields=True, omit_defaults=True):
    Id: str | None = None
    TiProjectId: str | None = None


class TrainingTaskRun(Struct, forbid_unknown_fields=True, omit_defaults=True):
    InstanceId: str | None = None
    Operation: str | None = None
    Status: str | None = None
    FailureReason: str | None = None
    Message: str | None = None
    RequestTime: str | None = None
    StartTime: str | None = None
    EndTime: str | None = None
    StopRequestTime: str | None = None
    PodNames: list[str] | None = None


class DescribeTrainingTaskRunsResponse(Struct, forbid_unknown_fields=True, omit_defaults=True):
    Runs: list[TrainingTaskRun] | None = None
    TotalCount: UInt | None = None
    RequestId: str | None = None


class DescribeTrainingPodUsageRequest(Struct, forbid_unknown_fields=True, omit_defaults=True):
    Id: str | None = None
    InstanceId: str | None = None
    TiProjectId: str | None = None


class PodUsageSample(Struct, forbid_unknown_fields=True, omit_defaults=True):
    Timestamp: str | None = None
    CpuSeconds: float | None = None
    MemoryBytes: UInt | None = None


class PodUsage(Struct, forbid_unknown_fields=True, omit_defaults=True):
    PodName: str | None = None
    Measured: bool | None = None
    Samples: list[PodUsageSample] | None = None


class DescribeTrainingPodUsageResponse(Struct, forbid_unknown_fields=True, omit_defaults=True):
    InstanceId: str | None = None
    Pods: list[PodUsage] | None = None
    RequestId: str | None = None


class ExtensionApi:
    """One method per extension action; a service that does not override one answers UnsupportedOperation."""

    def describe_caller_identity(
        self, ctx: RequestContext, req: DescribeCallerIdentityRequest
    ) -> DescribeCallerIdentityResponse:
        raise UnsupportedOperation("DescribeCallerIdentity")

    def describe_training_metrics(
        self, ctx: RequestContext, req: DescribeTrainingMetricsRequest
    ) -> DescribeTrainingMetricsResponse:
        raise UnsupportedOperation("DescribeTrainingMetrics")

    def describe_training_task_runs(
        self, ctx: RequestContext, req: DescribeTrainingTaskRunsRequest
    ) -> DescribeTrainingTaskRunsResponse:
        raise UnsupportedOperation("DescribeTrainingTaskRuns")

    def describe_training_pod_usage(
        self, ctx: RequestContext, req: DescribeTrainingPodUsageRequest
    ) -> DescribeTrainingPodUsageResponse:
        raise UnsupportedOperation("DescribeTrainingPodUsage")


class ServedApi(TioneApi, ExtensionApi):
    """Every action the gateway can dispatch: the spec's and the extensions'."""


EXTENSION_ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "DescribeCallerIdentity", DescribeCallerIdentityRequest, DescribeCallerIdentityResponse,
            "describe_caller_identity", False,
        ),
        Action(
            "DescribeTrainingMetrics", DescribeTrainingMetricsRequest, DescribeTrainingMetricsResponse,
            "describe_training_metrics", False,
        ),
        Action(
            "DescribeTrainingTaskRuns", DescribeTrainingTaskRunsRequest, DescribeTrainingTaskRunsResponse,
            "describe_training_task_runs", False,
        ),
        Action(
            "DescribeTrainingPodUsage", DescribeTrainingPodUsageRequest, DescribeTrainingPodUsageResponse,
            "describe_training_pod_usage", False,
        ),
    )
}  # fmt: skip

assert not EXTENSION_ACTIONS.keys() & ACTIONS.keys(), "an extension must not shadow a TI-ONE action"

SERVED_ACTIONS: dict[str, Action] = {**ACTIONS, **EXTENSION_ACTIONS}
"""The table the gateway dispatches from."""


def implemented(service: type, action: Action) -> bool:
    """Whether `service` (a ServedApi subclass) overrides the action's base method, i.e. really serves it."""
    return getattr(service, action.method) is not getattr(ServedApi, action.method)
