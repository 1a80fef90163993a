"""DescribeLogs for training pods (spec §4.8) and PushTrainingMetrics (spec §4.9).

Log lines come from the executor (one stamped file per pod per stream). A page is computed over every
matching line, sorted by timestamp; the `Context` cursor is the query itself plus the position of the next
page, sealed with a server key (sealed.py), so paging needs no server state, survives restarts, and a cursor
cannot be forged or altered (issue 7 C9).
"""

from __future__ import annotations

import heapq
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import msgspec

from tione_server.api._generated import (
    DescribeLogsRequest,
    DescribeLogsResponse,
    LogIdentity,
    PushTrainingMetricsRequest,
    PushTrainingMetricsResponse,
)
from tione_server.context import RequestContext
from tione_server.errors import ContextLimitError, InvalidParameter, InvalidParameterValue, MissingParameter
from tione_server.executors.base import STREAMS
from tione_server.models import Pod, Scope
from tione_server.sealed import BadToken, seal, unseal
from tione_server.service.scope import scope_of

if TYPE_CHECKING:
    from tione_server.config import Settings
    from tione_server.executors.base import Executor
    from tione_server.store import Store

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_LINES = 10_000
"""Spec §4.8: paging past this many lines is FailedOperation.ContextLimitError."""
MAX_POINTS = 10
CONTEXT_KEY = "log_context"
"""Name of the store secret that seals Contexts (Store.secrets)."""
_ID_NAMESPACE = uuid.UUID("6f1c8e2a-3a57-4a59-9c52-0d9f3f0b7a11")
_Row = tuple[int, str, int, int, str]
"""(ns, pod name, stream index, byte offset, text): sorts by time, then a stable tie-break."""


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A validated DescribeLogs query; it travels inside the Context cursor."""

    uin: str
    region: str
    project: str
    service_id: str
    pod_name: str
    start_ns: int
    end_ns: int
    limit: int
    descending: bool
    keywords: tuple[str, ...]
    stream: str
    position: int


def _parse_time(value: str, name: str, offset_hours: int) -> int:
    """RFC 3339 -> Unix nanoseconds (a string without offset is read in the server's offset)."""
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidParameterValue.for_param(name, "Use RFC 3339, e.g. 2021-11-30T16:22:09+08:00.") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone(timedelta(hours=offset_hours)))
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def rfc3339_ns(ns: int) -> str:
    """`2022-01-11T04:14:36.348499491Z` (spec §4.8 LogIdentity.Timestamp)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def _encode_context(query: LogQuery, key: bytes) -> str:
    return seal(msgspec.json.encode(query), key)


def _decode_context(text: str, key: bytes, scope: Scope, req: DescribeLogsRequest) -> LogQuery:
    """The query a Context carries; InvalidParameterValue naming `Context` for anything but an unchanged one.

    The Context is bound to the caller's account, region and workspace, and to the request's `ServiceId` and
    `PodName` when those are given: a cursor of one task cannot be replayed against another (issue 7 C9).
    The other fields of the request are ignored (spec §4.8).
    """
    try:
        query = msgspec.json.decode(unseal(text, key), type=LogQuery)
    except (BadToken, msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidParameterValue.for_param("Context", "Pass the Context of the previous page unchanged.") from None
    # A sealed Context was made by this server from a validated query; these checks are a second line of
    # defence should the key ever leak, so that no Context lifts the page size or reaches a bad state.
    if not (1 <= query.limit <= MAX_LIMIT and query.position >= 0 and query.start_ns <= query.end_ns) or (
        query.stream not in ("", *STREAMS)
    ):
        raise InvalidParameterValue.for_param("Context", "Pass the Context of the previous page unchanged.")
    if (query.uin, query.region, query.project) != (scope.uin, scope.region, scope.project):
        raise InvalidParameterValue.for_param("Context", "It belongs to another workspace or region.")
    if (req.ServiceId and req.ServiceId != query.service_id) or (req.PodName and req.PodName != query.pod_name):
        raise InvalidParameterValue.for_param("Context", "It was made for another `ServiceId` or `PodName`.")
    return query


class LogActions:
    """DescribeLogs and PushTrainingMetrics."""

    settings: Settings
    store: Store
    executor: Executor

    def _log_query(self, ctx: RequestContext, req: DescribeLogsRequest, scope: Scope) -> LogQuery:
        if req.Service != "TRAIN":
            raise InvalidParameterValue.for_param("Service", "This server keeps training logs only: use TRAIN.")
        if not req.ServiceId and not req.PodName:
            raise MissingParameter("ServiceId")
        limit = req.Limit or DEFAULT_LIMIT
        if limit > MAX_LIMIT:
            raise InvalidParameterValue.for_param("Limit", f"Use at most {MAX_LIMIT}.")
        order = (req.Order or "DESC").upper()
        if order not in ("ASC", "DESC"):
            raise InvalidParameterValue.for_param("Order", "Use ASC or DESC.")
        if (req.OrderField or "Timestamp") != "Timestamp":
            raise InvalidParameterValue.for_param("OrderField", "Only Timestamp is supported.")
        stream = req.LogStream or ""
        if stream not in ("", *STREAMS):
            raise InvalidParameterValue.for_param("LogStream", "Use stdout, stderr or an empty string.")
        offset = self.settings.time_offset_hours
        now_ns = int(ctx.now * 1_000_000_000)
        end = _parse_time(req.EndTime, "EndTime", offset) if req.EndTime else now_ns
        start = _parse_time(req.StartTime, "StartTime", offset) if req.StartTime else end - 3600 * 1_000_000_000
        if start > end:
            raise InvalidParameterValue.for_param("StartTime", "`StartTime` must not be after `EndTime`.")
        keywords: list[str] = []
        for i, f in enumerate(req.Filters or []):
            if f.Name != "Key":
                raise InvalidParameterValue.for_param(f"Filters.{i}.Name", "The only log filter is Key.")
            keywords += [v for v in f.Values or [] if v]
        return LogQuery(
            uin=scope.uin, region=scope.region, project=scope.project, service_id=req.ServiceId or "",
            pod_name=req.PodName or "", start_ns=start, end_ns=end, limit=limit, descending=order == "DESC",
            keywords=tuple(keywords), stream=stream, position=req.Offset or 0,
        )  # fmt: skip

    def _pods(self, scope: Scope, query: LogQuery) -> list[tuple[str, Pod]]:
        name = query.pod_name
        prefix = name.endswith("*")
        name = name.rstrip("*") if prefix else name
        if query.service_id:
            run = self.store.runs.in_scope(scope, query.service_id)
            if run is None:
                return []
            pods = [(run.id, p) for p in run.pods]
            if query.pod_name:
                pods = [(r, p) for r, p in pods if (p.name.startswith(name) if prefix else p.name == name)]
            return pods
        return self.store.runs.pods_named(scope, name, prefix=prefix)

    def _lines(self, run_id: str, pod: str, si: int, stream: str, query: LogQuery) -> Iterator[_Row]:
        for line in self.executor.read_log(
            run_id, pod, stream, start_ns=query.start_ns, end_ns=query.end_ns, descending=query.descending
        ):
            if all(k in line.text for k in query.keywords):
                yield (line.ns, pod, si, line.offset, line.text)

    def describe_logs(self, ctx: RequestContext, req: DescribeLogsRequest) -> DescribeLogsResponse:
        """One page of the pods' log lines in time order (spec §4.8)."""
        scope = scope_of(ctx, req.TiProjectId)
        key = self.store.secrets.get(CONTEXT_KEY)
        query = _decode_context(req.Context, key, scope, req) if req.Context else self._log_query(ctx, req, scope)
        if query.position >= MAX_LINES:
            raise ContextLimitError(f"Logs can be paged through the first {MAX_LINES} lines only; narrow the query.")
        streams = [query.stream] if query.stream else list(STREAMS)
        sources = [
            self._lines(run_id, pod.name, si, stream, query)
            for run_id, pod in self._pods(scope, query)
            for si, stream in enumerate(streams)
        ]
        # Every source is in time order already: merge lazily and stop after the page (plus one, to know if
        # another page follows), so the work depends on the page, not on the size of the logs.
        merged = heapq.merge(*sources, reverse=query.descending)
        end = query.position + query.limit
        page = list(itertools.islice(merged, query.position, end + 1))
        more = len(page) > query.limit
        content = [
            LogIdentity(
                Id=str(uuid.uuid5(_ID_NAMESPACE, f"{pod}/{streams[si]}/{offset}")),
                Message=text,
                PodName=pod,
                Timestamp=rfc3339_ns(ns),
                PkgId="",
                PkgLogId="",
            )
            for ns, pod, si, offset, text in page[: query.limit]
        ]
        next_context = _encode_context(replace(query, position=end), key) if more else ""
        return DescribeLogsResponse(Context=next_context, Content=content)

    def push_training_metrics(
        self, ctx: RequestContext, req: PushTrainingMetricsRequest
    ) -> PushTrainingMetricsResponse:
        """Store metric points of the caller's tasks (spec §4.9); tasks themselves do not change."""
        scope = scope_of(ctx, req.TiProjectId)
        data = req.Data or []
        if not data:
            raise MissingParameter("Data")
        rows: list[dict[str, Any]] = []
        for i, m in enumerate(data):
            points = m.Points or []
            if len(points) > MAX_POINTS:
                raise InvalidParameter(f"Parameter `Data.{i}.Points` holds at most {MAX_POINTS} points.")
            for j, p in enumerate(points):
                if not p.Name or p.Value is None:
                    raise InvalidParameter(f"Parameter `Data.{i}.Points.{j}` needs `Name` and `Value`.")
            task = self.store.tasks.get(scope, m.TaskId or "")
            if task is None:
                raise InvalidParameter(f"Parameter `Data.{i}.TaskId`: no training task `{m.TaskId}`.")
            rows.append(
                {
                    "task_num": task.num,
                    "timestamp": m.Timestamp if m.Timestamp is not None else int(ctx.now),
                    "uin": m.Uin or "",
                    "epoch": m.Epoch or 0,
                    "step": m.Step or 0,
                    "total_steps": m.TotalSteps or 0,
                    "points": json.dumps([{"Name": p.Name, "Value": p.Value} for p in points]),
                }
            )
        self.store.runs.add_metrics(rows)
        return PushTrainingMetricsResponse()
