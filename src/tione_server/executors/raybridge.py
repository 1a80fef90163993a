"""The Ray side of the Ray executor (issue 10 items 2-6): a child process of the server that is Ray's driver, and
the actor that supervises one pod on its node.

Why a child process: a Ray driver whose head goes away blocks in every call and, once a new head answers at the
address, aborts its whole process (`WrongClusterID`, measured with Ray 2.60). The server must outlive both, so
only this process imports ray: executors/rayexec.py talks to it over a socket pair, kills it when it does not
answer in time and starts a new one when the cluster is back. It serves one request at a time:
`(op, args)` -> `("ok", result)` or `("err", text)`; its first message is `hello` (or why it cannot connect).

The pod actor (`PodActor`, named after the pod, detached, in namespace `tione`) runs on its placement bundle's
node, holding the bundle's resources, and starts the pod's supervisor (executors/podwrap.py), which writes the
pod's logs and exit code to the run's directory (a filesystem every node and the server share, docs/executors.md),
so they outlive the node, the actor and the head. If the actor dies, the supervisor is told to kill the pod
(parent-death signal); every process of the pod is below the supervisor (a subreaper), and with the sandbox below
its PID namespace, so nothing escapes the way killpg misses `setsid()` children (ray#42861).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import get_placement_group, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from tione_server.executors import podwrap

NAMESPACE = "tione"
STRATEGY = "SPREAD"
"""Issue 10 item 2: pods of a task go to different nodes where the cluster has them (as TI-ONE gives each pod a
machine), and share a node only when it lacks nodes; STRICT_SPREAD would leave a task PENDING instead."""
GROUP_PREFIX = "tione-"
SUPERVISOR = Path(podwrap.__file__).resolve()
PR_SET_PDEATHSIG = 1
HIDDEN_ENV = ("RAY_", "TIONE_", "PYTHONBREAKPOINT")
"""What a pod never inherits from the Ray worker that starts it: the service's Ray (item 5) and settings."""


def group_name(run_id: str) -> str:
    """The placement group of a run."""
    return GROUP_PREFIX + run_id


def run_of(pod: str) -> str:
    """The run id in a pod's name (`train-<digits>-<random>-<suffix>`)."""
    return "-".join(pod.split("-")[:3])


# --- on the pod's node ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the supervisor before exec: the actor's death asks it to kill the pod (podwrap.KILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(podwrap.KILL), 0, 0, 0)


class PodActor:
    """Supervises one pod on its bundle's node: starts podwrap once, signals it, names its node and a port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def endpoint(self) -> tuple[str, str, int]:
        """(node id, node IP, a port free on the node): MASTER_ADDR/MASTER_PORT when this is pod 0."""
        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(), self.port

    def start(self, pod_dir: str, spec: dict[str, Any]) -> int:
        """Start the pod's supervisor (once; a repeated launch gets the same one); returns its pid."""
        if self.proc is not None:
            return self.proc.pid
        base = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_ENV)}
        directory = Path(pod_dir)
        directory.mkdir(parents=True, exist_ok=True)
        spec = spec | {"env": base | spec["env"]}
        path = directory / "spec.json"
        path.write_text(json.dumps(spec))
        path.chmod(0o600)  # it holds private env values
        with (directory / "supervisor.log").open("ab") as errlog:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(SUPERVISOR), str(directory)],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errlog,
                cwd=directory,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl, no locks taken
            )
        threading.Thread(target=self.proc.wait, daemon=True).start()
        return self.proc.pid

    def signal(self, kill: bool) -> None:
        """SIGTERM every process of the pod, or kill them all (through the supervisor, podwrap.STOP/KILL)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, podwrap.KILL if kill else podwrap.STOP)


# --- the driver: requests from the server -----------------------------------------------------------------------


def _head() -> str:
    """The head node's id: a restarted head (a new cluster, without GCS fault tolerance) has another."""
    for node in ray.nodes():
        if node["Alive"] and "node:__internal_head__" in node["Resources"]:
            return str(node["NodeID"])
    return ""


def hello() -> dict[str, str]:
    return {"head": _head()}


def snapshot() -> dict[str, Any]:
    """Nodes (id -> alive, IP), the live tione actors and the head: what observing pods needs, in two calls."""
    nodes = {str(n["NodeID"]): [bool(n["Alive"]), str(n["NodeManagerAddress"])] for n in ray.nodes()}
    heads = [n for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"]]
    return {
        "nodes": nodes,
        "actors": sorted(ray.util.list_named_actors()),
        "head": str(heads[0]["NodeID"]) if heads else "",
    }


def _group(run_id: str, bundles: list[dict[str, float]]) -> Any:
    try:
        return get_placement_group(group_name(run_id))
    except ValueError:
        return placement_group(bundles, strategy=STRATEGY, name=group_name(run_id), lifetime="detached")


def _lacks(bundles: list[dict[str, float]]) -> tuple[str, bool]:
    """What the cluster lacks for `bundles`, and whether no node could ever take one of them."""
    alive = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    for b in bundles:
        if not any(all(res.get(k, 0.0) >= v for k, v in b.items()) for res in alive):
            wants = ", ".join(f"{_show(k, v)} {k}" for k, v in b.items())
            return f"no node of the Ray cluster is large enough for one pod ({wants})", True
    free = ray.available_resources()
    need: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            need[k] = need.get(k, 0.0) + v
    short = [
        f"{k} (needs {_show(k, v)}, {_show(k, free.get(k, 0.0))} free)" for k, v in need.items() if v > free.get(k, 0)
    ]
    if short:
        return "the Ray cluster lacks " + ", ".join(short), False
    return "no node of the Ray cluster has room for one of its pods now", False


def _show(key: str, value: float) -> str:
    if key == "memory":
        return f"{value / 2**30:.1f} GiB"
    return f"{value:g}"


def place(run_id: str, bundles: list[dict[str, float]], wait: float) -> tuple[bool, str, bool]:
    """Make the run's placement group (once) and say whether it is ready: (ready, what it lacks, never fits)."""
    group = _group(run_id, bundles)
    if group.wait(wait):
        return True, "", False
    message, never = _lacks(bundles)
    return False, message, never


def actors(run_id: str, pods: list[tuple[str, int, dict[str, float]]], wait: float) -> dict[str, Any]:
    """The run's group ready and an actor per pod `(name, bundle index, resources)` in its bundle (made once);
    returns each pod's (node id, IP, port). Raises TimeoutError when the group is not ready within `wait`."""
    group = _group(run_id, [r for _, _, r in pods])
    if not group.wait(wait):
        raise TimeoutError(f"the placement group of {run_id} is not ready: {_lacks([r for _, _, r in pods])[0]}")
    handles = []
    cls = ray.remote(PodActor)
    for name, index, res in pods:
        options: dict[str, Any] = {
            "name": name,
            "namespace": NAMESPACE,
            "lifetime": "detached",
            "get_if_exists": True,
            "max_restarts": 0,
            "num_cpus": res.get("CPU", 0.0),
            "scheduling_strategy": PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index),
        }
        if res.get("GPU"):
            options["num_gpus"] = res["GPU"]
        if res.get("memory"):
            options["memory"] = res["memory"]
        handles.append(cls.options(**options).remote())
    ends = ray.get([h.endpoint.remote() for h in handles], timeout=max(wait, 30.0))
    return {name: list(end) for (name, _, _), end in zip(pods, ends, strict=True)}


def start(pods: list[tuple[str, str, dict[str, Any]]]) -> dict[str, int]:
    """Start each pod `(name, pod dir, podwrap spec)` through its actor; their supervisors' pids."""
    refs = [ray.get_actor(name, namespace=NAMESPACE).start.remote(d, spec) for name, d, spec in pods]
    pids = ray.get(refs, timeout=60)
    return {name: int(pid) for (name, _, _), pid in zip(pods, pids, strict=True)}


def send(names: list[str], kill: bool) -> None:
    """Signal the pods' actors (fire and forget: never waits for the pods)."""
    for name in names:
        with contextlib.suppress(ValueError):
            ray.get_actor(name, namespace=NAMESPACE).signal.remote(kill)


def release(run_id: str, names: list[str]) -> None:
    """Kill the run's actors (their supervisors kill what is left of the pods) and remove its group."""
    for name in names:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
    with contextlib.suppress(ValueError):
        remove_placement_group(get_placement_group(group_name(run_id)))


def sweep(live: list[str]) -> list[str]:
    """Issue 10 item 5: remove every tione actor and placement group of a run the store no longer has live."""
    keep = set(live)
    removed: list[str] = []
    for name in ray.util.list_named_actors():
        if run_of(name) not in keep:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                removed.append(name)
    for info in ray.util.placement_group_table().values():
        name = str(info.get("name") or "")
        if name.startswith(GROUP_PREFIX) and info.get("state") != "REMOVED" and name[len(GROUP_PREFIX) :] not in keep:
            with contextlib.suppress(ValueError):
                remove_placement_group(get_placement_group(name))
                removed.append(name)
    return removed


OPS: dict[str, Callable[..., Any]] = {
    "snapshot": snapshot,
    "place": place,
    "actors": actors,
    "start": start,
    "send": send,
    "release": release,
    "sweep": sweep,
}


def main(address: str, fd: int) -> int:
    conn = Connection(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is the server's; it closes the pipe
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False)
        conn.send(("ok", hello()))
    except Exception as err:
        conn.send(("err", f"cannot connect to the Ray cluster at {address}: {err}"))
        return 1
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return 0
        try:
            conn.send(("ok", OPS[op](*args)))
        except Exception as err:
            conn.send(("err", f"{type(err).__name__}: {err}"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
