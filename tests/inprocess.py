"""The service and the runner in this process, on a fake clock: timelines and state-machine tests without sleeps.

Requests go through the same codec as the gateway (types, unknown and required members), then straight to the
TioneService method; the runner is driven with `tick()` at the clock's time.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec

from tione_server.api import codec
from tione_server.api._generated import ACTIONS
from tione_server.app import create_app
from tione_server.config import Settings
from tione_server.context import Caller, RequestContext
from tione_server.errors import ApiError
from tione_server.executors.base import Executor

T0 = 1_750_000_000.0
"""2025-06-15T23:06:40+08: the fake clock's start."""


class Clock:
    """A settable time source."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Recorder:
    """Stands in for the CallbackSender: keeps what would have been POSTed."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, object]]] = []

    def send(self, url: str, body: dict[str, object]) -> None:
        self.sent.append((url, body))


class ApiFailure(Exception):
    """An ApiError seen through the wire codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class Harness:
    """A store, a service and a runner sharing one fake clock, built by the server's own composition root
    (create_app) with a Recorder for callbacks and, when given, an executor object."""

    def __init__(
        self,
        workdir: Path,
        *,
        executor: str | Executor = "simulate",
        catalogue: str | None = None,
        simulate_seconds: tuple[float, float, float] = (1.0, 2.0, 10.0),
        grace: float = 10.0,
        database_url: str | None = None,
    ) -> None:
        catalogue_path = None
        if catalogue is not None:
            catalogue_path = workdir / "catalogue.toml"
            catalogue_path.write_text(catalogue, encoding="utf-8")
        self.settings = Settings(
            database_url=database_url or f"sqlite:///{workdir / 'harness.db'}",
            executor=executor if isinstance(executor, str) else "simulate",
            data_dir=str(workdir / "data"),
            cos_root=str(workdir / "cos"),
            catalogue_path=str(catalogue_path) if catalogue_path else None,
            simulate_seconds=simulate_seconds,
            stop_grace_seconds=grace,
        )
        self.clock = Clock()
        self.callbacks = Recorder()
        self.app = create_app(
            self.settings,
            executor=None if isinstance(executor, str) else executor,
            callbacks=self.callbacks,
            clock=self.clock,
        )
        self.store = self.app.store
        self.service = self.app.gateway.service
        self.runner = self.app.runner
        self.caller = Caller(uin="100000000001", app_id="1250000000", sub_uin="100000000002")
        self._loop = asyncio.new_event_loop()
        """The loop the list runs on where the store reads asynchronously (PostgreSQL), as the server's does."""

    def close(self) -> None:
        self.app.close()
        self._loop.close()

    def call(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One action at the clock's time; raises ApiFailure with the wire code."""
        spec = ACTIONS[action]
        ctx = RequestContext(caller=self.caller, region="ap-guangzhou", request_id="r", language="", now=self.clock())
        try:
            req = codec.decode_json(spec, json.dumps(params or {}).encode())
            list_async = self.app.gateway.list_async
            if action == "DescribeTrainingTasks" and list_async is not None:  # PostgreSQL: as the server lists
                resp = self._loop.run_until_complete(list_async(ctx, req))  # type: ignore[arg-type]
            else:
                resp = getattr(self.service, spec.method)(ctx, req)
        except ApiError as err:
            raise ApiFailure(err.code, err.message) from None
        out: dict[str, Any] = msgspec.json.decode(codec.encode_response(resp, "r"))["Response"]
        return out

    def code(self, action: str, params: dict[str, Any] | None = None) -> str:
        """The error code of a call that must fail ("" when it succeeds)."""
        try:
            self.call(action, params)
        except ApiFailure as err:
            return err.code
        return ""

    def detail(self, task_id: str, instance_id: str = "") -> dict[str, Any]:
        params = {"Id": task_id} | ({"InstanceId": instance_id} if instance_id else {})
        return dict(self.call("DescribeTrainingTask", params)["TrainingTaskDetail"])

    def item(self, task_id: str) -> dict[str, Any]:
        found = self.call("DescribeTrainingTasks", {"Filters": [{"Name": "Id", "Values": [task_id]}]})
        return dict(found["TrainingTaskSet"][0])

    def tick(self, at: float | None = None) -> None:
        """Set the clock (absolute, when given) and run one runner pass."""
        if at is not None:
            self.clock.now = at
        self.runner.tick()


def params(name: str, **overrides: Any) -> dict[str, Any]:
    """A minimal valid CreateTrainingTask request (postpaid TI.S.MEDIUM.POST, custom image)."""
    base: dict[str, Any] = {
        "Name": name,
        "ChargeType": "POSTPAID_BY_HOUR",
        "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 1}],
        "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "ccr.ccs.tencentyun.com/test/train:1"},
        "StartCmdInfo": {"StartCmd": "python train.py"},
    }
    return base | overrides
