"""The Ray executor against a real Ray cluster on this machine (issue 10 item 7): `serve --executor ray` driven
through the official SDK. DDP across two nodes, PENDING while the cluster lacks room and Stop removing the group,
a killed node failing its task with the node named, and a lost head failing running tasks within a bounded time
while new ones wait PENDING, then run once a head is back at the address.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import raycluster
from tests.live import Server
from tests.raycluster import RayCluster
from tests.test_lifecycle import DDP_SCRIPT
from tests.training import PYTHON, TERMINAL, cos_tree, create, pods, task_params, training_server, wait_for, wait_status

NODE_SCRIPT = (
    DDP_SCRIPT
    + """
ray_vars = sorted(k for k in os.environ if k.startswith("RAY_"))
print(f"rank {rank} node {os.environ.get('TEST_RAY_NODE')} ray-vars {ray_vars}")
"""
)


@pytest.fixture
def ray_server(ray_cluster: RayCluster, database_url: str, tmp_path: Path) -> Iterator[Server]:
    extra = ("--executor", "ray", "--ray-address", ray_cluster.address)
    with training_server(database_url, tmp_path, extra=extra) as srv:
        yield srv


def _logs(server: Server, pod: str, stream: str = "stdout") -> list[str]:
    out = server.call("DescribeLogs", {"Service": "TRAIN", "PodName": pod, "LogStream": stream})
    return [line["Message"] for line in out["Content"]]


def _groups(cluster: RayCluster) -> dict[str, str]:
    """Placement groups of the cluster by name -> state, asked by a driver of its own."""
    out = cluster.script(
        "print(json.dumps({v['name']: v['state'] for v in ray.util.placement_group_table().values()}))"
    )
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_ray_ddp_task_spreads_over_two_nodes_and_rendezvous(ray_server: Server) -> None:
    cos = cos_tree(ray_server)
    (cos / "b-1250000000" / "code").mkdir(parents=True)
    (cos / "b-1250000000" / "code" / "train.py").write_text(NODE_SCRIPT)
    (cos / "b-1250000000" / "data").mkdir(parents=True)
    (cos / "b-1250000000" / "data" / "words.txt").write_text("hello-data\n")
    params = task_params(
        "ddp-ray", f"{PYTHON} train.py",
        ResourceConfigInfos=[{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 2}],
        TrainingMode="DDP",
        CodePackagePath={"Bucket": "b-1250000000", "Region": "ap-guangzhou", "Paths": ["code"]},
        DataConfigs=[{"MappingPath": "/opt/ml/input/data/train", "DataSourceType": "COS",
                      "COSSource": {"Bucket": "b-1250000000", "Region": "ap-guangzhou", "Paths": ["data"]}}],
    )  # fmt: skip
    task_id = str(ray_server.call("CreateTrainingTask", params)["Id"])
    done = wait_status(ray_server, task_id, *TERMINAL, timeout=90)
    assert done["Status"] == "SUCCEED", done["FailureReason"]
    names = pods(ray_server, task_id)["PodNames"]
    nodes = set()
    for rank, name in enumerate(names):
        lines = _logs(ray_server, name)
        assert f"rank {rank} of 2 sees peer {1 - rank}; task {task_id}; data hello-data" in lines
        where = next(line for line in lines if line.startswith(f"rank {rank} node "))
        node, _, ray_vars = where.removeprefix(f"rank {rank} node ").partition(" ray-vars ")
        assert ray_vars == "[]"  # issue 10 item 5: the pods never see the service's Ray
        nodes.add(node)
    assert len(nodes) == 2  # one pod per node: each node has room for one 2-core pod only (SPREAD)


def test_ray_pending_names_what_the_cluster_lacks_and_stop_removes_the_group(
    ray_server: Server, ray_cluster: RayCluster
) -> None:
    two = [{"Role": "WORKER", "InstanceType": "TI.S.MEDIUM.POST", "InstanceNum": 2}]
    busy = create(ray_server, "busy", "sleep 120", ResourceConfigInfos=two)
    wait_status(ray_server, busy, "RUNNING", timeout=60)
    waiting = create(ray_server, "waiting", "true")
    pending = wait_for(ray_server, waiting, lambda d: d["Status"] == "PENDING" and bool(d["Message"]), timeout=30)
    assert "CPU (needs 2, 0 free)" in pending["Message"]
    run = pending["LatestInstanceId"]
    assert _groups(ray_cluster).get(f"tione-{run}") == "PENDING"
    ray_server.call("StopTrainingTask", {"Id": waiting})
    assert wait_status(ray_server, waiting, *TERMINAL, timeout=30)["Status"] == "STOPPED"
    assert _groups(ray_cluster).get(f"tione-{run}", "REMOVED") == "REMOVED"  # Stop while PENDING removes the group
    ray_server.call("StopTrainingTask", {"Id": busy})
    assert wait_status(ray_server, busy, *TERMINAL, timeout=40)["Status"] == "STOPPED"


def test_ray_killed_node_fails_its_task_naming_the_node(ray_server: Server, ray_cluster: RayCluster) -> None:
    big = ray_cluster.add_worker(cpus=8, memory=32 * 2**30)  # the only node a 8-core, 16 GB pod fits
    ray_cluster.wait_nodes(3)
    one = [{"Role": "WORKER", "InstanceType": "TI.S.2XLARGE16.POST", "InstanceNum": 1}]
    task_id = create(ray_server, "doomed", "echo on-the-big-node; sleep 300", ResourceConfigInfos=one)
    wait_for(ray_server, task_id, lambda d: d["Status"] == "RUNNING", timeout=60)
    pod = pods(ray_server, task_id)["PodNames"][0]
    wait_for(ray_server, task_id, lambda d: bool(_logs(ray_server, pod)), timeout=30)
    ray_cluster.kill(big)
    ray_cluster.workers.remove(big)
    done = wait_status(ray_server, task_id, *TERMINAL, timeout=40)
    assert done["Status"] == "FAILED"
    assert re.fullmatch(r"worker-0 lost: its Ray node [0-9a-f]{12} \(.+\) was lost", done["FailureReason"])
    assert _logs(ray_server, pod) == ["on-the-big-node"]  # the log outlives the node


@pytest.fixture
def own_cluster() -> Iterator[RayCluster]:
    """A cluster of its own (a head without cores and one worker) whose head a test may kill and restart."""
    why = raycluster.available()
    if why:
        pytest.skip(why)
    cluster = raycluster.start(workers=1, head_cpus=0)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_ray_head_lost_fails_running_tasks_and_runs_waiting_ones_once_back(
    own_cluster: RayCluster, sqlite_url: str, tmp_path: Path
) -> None:
    extra = ("--executor", "ray", "--ray-address", own_cluster.address)
    with training_server(sqlite_url, tmp_path, extra=extra, env={"TIONE_RAY_LOST_SECONDS": "5"}) as srv:
        running = create(srv, "running", "echo up; sleep 300")
        wait_status(srv, running, "RUNNING", timeout=60)
        assert own_cluster.head is not None
        own_cluster.kill(own_cluster.head)
        lost_at = time.monotonic()
        later = create(srv, "later", "echo later")
        done = wait_status(srv, running, *TERMINAL, timeout=40)
        assert done["Status"] == "FAILED"
        assert "unreachable" in done["FailureReason"]
        assert time.monotonic() - lost_at < 30  # 5 s of silence, a driver call's deadline, a runner pass
        waiting = wait_for(srv, later, lambda d: d["Status"] == "PENDING" and bool(d["Message"]), timeout=20)
        assert "Ray cluster" in waiting["Message"]  # new tasks wait while the head is away
        back_at = time.monotonic()
        own_cluster.restart_head()  # a new head at the same address, with a worker node
        finished = wait_status(srv, later, *TERMINAL, timeout=60)
        assert finished["Status"] == "SUCCEED", finished["FailureReason"]
        assert time.monotonic() - back_at < 50  # a driver waiting in ray.init connects seconds after the head is back
        assert _logs(srv, pods(srv, later)["PodNames"][0]) == ["later"]
