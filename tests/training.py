"""Helpers for tests that run training tasks on a live server: a roomy catalogue, request builders, polling.

Real processes take real time, so waiting is polling with a deadline (never a bare sleep-and-hope).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.live import Server, running_server

PYTHON = "python3"
"""The interpreter pods run: the image's own (the host's /usr/bin/python3 in the built-in `host` image, issue 9);
a sandboxed pod cannot see this test's virtual environment. Tasks' programs use the standard library only."""
TERMINAL = ("STOPPED", "SUCCEED", "FAILED", "SUBMIT_FAILED")
CATALOGUE = """
[capacity]
cpu = 64000
memory = 262144
gpu = 0
"""
"""A pay-as-you-go pool big enough for every test task at once (the test machine may have 2 cores)."""


def write_catalogue(workdir: Path, text: str = CATALOGUE) -> Path:
    path = workdir / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def training_server(
    database_url: str, workdir: Path, *, catalogue: str = CATALOGUE, extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Server]:  # fmt: skip
    """A live server with the local executor, its data and COS root under `workdir`."""
    args = (
        "--catalogue", str(write_catalogue(workdir, catalogue)),
        "--data-dir", str(workdir / "data"),
        "--cos-root", str(workdir / "cos"),
        *extra,
    )  # fmt: skip
    with running_server(database_url, workdir, extra_args=args, env=env) as srv:
        yield srv


def cos_tree(server: Server, uin: str = "") -> Path:
    """The COS tree of an account (default: the server key's) of a `training_server`: `<cos root>/<UIN>`."""
    return server.log_path.parent / "cos" / (uin or server.key.uin)


def python_cmd(code: str) -> str:
    """A shell command running `code` with the test interpreter (quoted for /bin/sh)."""
    return f"{PYTHON} -c '{code}'"


def task_params(name: str, command: str = "", **overrides: Any) -> dict[str, Any]:
    """A minimal postpaid custom-image CreateTrainingTask request."""
    params: dict[str, Any] = {
        "Name": name,
        "ChargeType": "POSTPAID_BY_HOUR",
        "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 1}],
        # The built-in image (issue 9 item 4): an image URL not in the server's [image_roots] is SUBMIT_FAILED.
        "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "host"},
        "StartCmdInfo": {"StartCmd": command},
    }
    params.update(overrides)
    return params


def create(server: Server, name: str, command: str = "", **overrides: Any) -> str:
    return str(server.call("CreateTrainingTask", task_params(name, command, **overrides))["Id"])


def detail(server: Server, task_id: str, instance_id: str = "") -> dict[str, Any]:
    params: dict[str, Any] = {"Id": task_id}
    if instance_id:
        params["InstanceId"] = instance_id
    return dict(server.call("DescribeTrainingTask", params)["TrainingTaskDetail"])


def pods(server: Server, task_id: str) -> dict[str, Any]:
    return dict(server.call("DescribeTrainingTaskPods", {"Id": task_id}))


def error_code(call: Callable[[], Any]) -> str:
    """The API error code `call` raises (fails the test when it succeeds)."""
    try:
        call()
    except TencentCloudSDKException as err:
        return str(err.code)
    raise AssertionError("the call succeeded")


def wait_for(
    server: Server, task_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    """Poll DescribeTrainingTask until `predicate(detail)` holds; returns that detail."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = detail(server, task_id)
        if predicate(last):
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting on {task_id}; last detail: {json.dumps(last)[:2000]}")


def wait_status(server: Server, task_id: str, *statuses: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_for(server, task_id, lambda d: d["Status"] in statuses, timeout)


def watch_statuses(server: Server, task_id: str, until: tuple[str, ...] = TERMINAL, timeout: float = 30.0) -> list[str]:
    """Every distinct Status seen by fast polling until one of `until`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = detail(server, task_id)["Status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in until:
            return seen
        time.sleep(0.01)
    raise AssertionError(f"timed out; statuses seen: {seen}")


@dataclass
class Receiver:
    """A local HTTP server recording callback POSTs and answering `{"code": 0, "message": "success"}`."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)

    def wait(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            self.event.wait(0.1)
            self.event.clear()
        assert len(self.bodies) >= count, f"callbacks received: {self.bodies}"
        return self.bodies


@contextmanager
def callback_receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            holder[0].bodies.append(json.loads(self.rfile.read(length)))
            holder[0].event.set()
            reply = b'{"code": 0, "message": "success"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(url=f"http://127.0.0.1:{httpd.server_address[1]}/hook"))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
