"""A burst of one-pod tasks submitted at once to a two-node Ray cluster: how long until all have run (issue 10).

`python -m bench.ray_burst [--tasks 100] [--cpus 8] [--command "sleep 1"]` starts a Ray cluster on this machine
(tests/raycluster.py: a head and one worker node, each offering `--cpus` logical cores and 8 GiB of logical
memory) unless `--ray-address` names one, and `tione-server serve --executor ray` on a fresh SQLite database with a
catalogue of one small instance type (1 core, 1 GiB: so each node takes `--cpus` pods at a time, and the rest wait
PENDING for room) and `max_active_tasks` above `--tasks` (its default, 100, would refuse a larger burst). It sends
every CreateTrainingTask at once from a thread pool, then lists the tasks every 0.25 s until all have ended, and
prints one markdown table: time to submit the burst, to see the first RUNNING, and until all have run (SUCCEED),
the most seen RUNNING at once, and the spread of each task's create-to-SUCCEED time.

Pods are real processes on the Ray nodes (a detached actor and the pod's supervisor each), so on a machine with
few cores the figure measures how fast those processes start; the table says how many cores there were.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from bench.measure import percentile
from bench.processes import tione_server
from tests.raycluster import RayCluster
from tione_server.store import Store

INSTANCE_TYPE = "TI.S.SMALL1.POST"
CATALOGUE = f"""
[[instance_types]]
name = "{INSTANCE_TYPE}"
cpu = 1000
memory = 1024
price = 35

[limits]
max_active_tasks = {{limit}}
"""
UIN = "100000000001"
ENDED = ("FAILED", "SUBMIT_FAILED", "STOPPED", "SUCCEED")
POLL = 0.25
PAGE = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--cpus", type=int, default=8, help="logical cores of each of the two nodes started here")
    parser.add_argument("--command", default="sleep 1", help="each pod's StartCmd")
    parser.add_argument("--senders", type=int, default=16, help="threads sending CreateTrainingTask")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--ray-address", default="", help="an existing cluster instead of one started here")
    args = parser.parse_args()
    with TemporaryDirectory(prefix="tione-ray-burst-") as tmp, _cluster(args) as (address, described):
        print(_measure(Path(tmp), address, described, args))


@contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    if args.ray_address:
        yield args.ray_address, f"the Ray cluster at {args.ray_address}"
        return
    cluster = RayCluster()
    try:
        cluster.start_head(args.cpus)
        cluster.wait_nodes(1)
        cluster.add_worker(args.cpus)
        cluster.wait_nodes(2)
        yield cluster.address, f"2 Ray nodes (head and worker) of {args.cpus} logical cores and 8 GiB each"
    finally:
        cluster.stop()


def _client(port: int, secret_id: str, secret_key: str) -> CommonClient:
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{port}", protocol="http", reqTimeout=120))
    return CommonClient("tione", "2021-11-11", credential.Credential(secret_id, secret_key), "ap-guangzhou", profile)


def _measure(work: Path, address: str, described: str, args: argparse.Namespace) -> str:
    url = f"sqlite:///{work / 'tione.db'}"
    catalogue = work / "catalogue.toml"
    catalogue.write_text(CATALOGUE.format(limit=max(100, args.tasks + 1)))
    store = Store(url)
    try:
        key = store.keys.create(uin=UIN, app_id="1250000000", sub_uin=UIN)
    finally:
        store.close()
    extra = ["--executor", "ray", "--ray-address", address, "--catalogue", str(catalogue)]
    extra += ["--data-dir", str(work / "data")]
    with tione_server(url, work / "server", extra=extra) as server:
        clients = [_client(server.port, key.secret_id, key.secret_key) for _ in range(args.senders)]
        params = {
            "ChargeType": "POSTPAID_BY_HOUR",
            "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": INSTANCE_TYPE, "InstanceNum": 1}],
            "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "local"},
            "StartCmdInfo": {"StartCmd": args.command},
        }

        def create(i: int) -> tuple[str, float]:
            reply = clients[i % len(clients)].call_json("CreateTrainingTask", params | {"Name": f"burst-{i}"})
            return str(reply["Response"]["Id"]), time.perf_counter()

        start = time.perf_counter()
        with ThreadPoolExecutor(args.senders) as pool:
            created = dict(pool.map(create, range(args.tasks)))
        submitted = time.perf_counter() - start
        seen = _watch(clients[0], set(created), start, args.timeout)
        reasons = _reasons(clients[0], [t for t, (status, _) in seen.ended.items() if status != "SUCCEED"])
    ended = seen.ended
    succeeded = [t for t, (status, _) in ended.items() if status == "SUCCEED"]
    turnaround = sorted(at - start for _, at in ended.values())
    per_task = sorted(ended[t][1] - created[t] for t in succeeded)
    lines = [
        f"### {args.tasks} one-pod tasks at once on the Ray executor: {described}; pods of 1 core and 1 GiB "
        f"running `{args.command}`; {os.cpu_count()} physical cores",
        "",
        "| submitted (all answered) | first RUNNING | all run (ended) | SUCCEED | most RUNNING at once "
        "| per task create-to-SUCCEED p50 / p90 / max |",
        "|---|---|---|---|---|---|",
        f"| {submitted:.1f} s | {_secs(seen.first_running)} | {_secs(turnaround[-1] if turnaround else None)} | "
        f"{len(succeeded)} of {args.tasks} | {seen.most_running} | "
        + (
            f"{statistics.median(per_task):.1f} / {percentile(per_task, 0.9):.1f} / {per_task[-1]:.1f} s |"
            if per_task
            else "- |"
        ),
    ]
    if len(ended) < args.tasks:
        lines.append(f"\n{args.tasks - len(ended)} tasks had not ended after {args.timeout:g} s.")
    for reason, count in sorted(reasons.items()):
        lines.append(f"\n{count} ended otherwise: {reason}")
    return "\n".join(lines)


def _reasons(client: CommonClient, tasks: list[str]) -> dict[str, int]:
    """How many of `tasks` ended with each status and FailureReason."""
    out: dict[str, int] = {}
    for task in tasks:
        detail = client.call_json("DescribeTrainingTask", {"Id": task})["Response"]["TrainingTaskDetail"]
        reason = f"{detail['Status']}: {detail.get('FailureReason') or '-'}"
        out[reason] = out.get(reason, 0) + 1
    return out


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


class Seen:
    """What the watcher saw: each task's end (status, when), the first RUNNING (seconds after the burst began),
    and the most tasks RUNNING at once."""

    def __init__(self) -> None:
        self.ended: dict[str, tuple[str, float]] = {}
        self.first_running: float | None = None
        self.most_running = 0


def _watch(client: CommonClient, tasks: set[str], start: float, timeout: float) -> Seen:
    """Lists every task each POLL seconds until all have ended, or `timeout` seconds after `start`."""
    seen = Seen()
    while len(seen.ended) < len(tasks) and time.perf_counter() < start + timeout:
        statuses = _statuses(client)
        now = time.perf_counter()
        running = sum(1 for t in tasks if statuses.get(t) == "RUNNING")
        if running and seen.first_running is None:
            seen.first_running = now - start
        seen.most_running = max(seen.most_running, running)
        for task in tasks - seen.ended.keys():
            if statuses.get(task) in ENDED:
                seen.ended[task] = (statuses[task], now)
        time.sleep(POLL)
    return seen


def _statuses(client: CommonClient) -> dict[str, str]:
    out: dict[str, str] = {}
    offset = 0
    while True:
        reply = client.call_json("DescribeTrainingTasks", {"Offset": offset, "Limit": PAGE})["Response"]
        out |= {str(t["Id"]): str(t["Status"]) for t in reply["TrainingTaskSet"]}
        offset += PAGE
        if offset >= int(reply["TotalCount"]):
            return out


if __name__ == "__main__":
    main()
