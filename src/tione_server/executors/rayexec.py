"""The Ray executor (issue 10 items 1-6): a task's pods run on a Ray cluster, one placement group per run.

A run is one placement group (a bundle per pod: its cores, memory and GPUs, strategy SPREAD) made when the run
waits PENDING; the runner grants it only once the group is ready (`place`), with a Message naming what the
cluster lacks until then. Each pod is a named, detached actor in namespace `tione` on its bundle's node, which
starts the pod's supervisor (executors/podwrap.py, the same one as the local executor). The run's directory
(code, mounts, output, logs, exit codes) is prepared here as the local executor prepares it and must be on a
filesystem every Ray node mounts at the same path (docs/executors.md), so logs and exit codes outlive the node,
the actor and the head, and DescribeLogs reads them as it does for local runs.

Ray's job table is never consulted: the store is the truth (ray#44218/#44561). Ray is reached only through a
child process (executors/raybridge.py) with a deadline on every call, so a lost or restarted head never blocks
or kills the server: running pods end LOST, with a reason, once the cluster has been unreachable for
`lost_after` seconds, or at once when a restarted head no longer knows their actors.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tione_server.executors.base import LaunchError, Observation, Placement, RunSpec
from tione_server.executors.local import LocalExecutor, read_json, tf_configs
from tione_server.models import Pod, Run

CALL_SECONDS = 10.0
"""Longest wait for one answer of the Ray driver before it is deemed hung, killed and started again."""
CONNECT_SECONDS = 60.0
"""Longest a new driver may take to connect (importing ray alone takes seconds on a busy machine)."""
RETRY_SECONDS = 2.0
"""Pause before starting a driver again after one failed."""
SNAPSHOT_SECONDS = 0.2
"""How long one look at the cluster (nodes, actors) serves every run's observe."""
PLACE_WAIT = 0.05
"""Seconds `place` waits for a new group to be ready, so a free cluster grants it in the same runner pass."""
LAUNCH_WAIT = 30.0
"""Seconds launch waits for the group (made by `place` before: normally ready at once)."""
MIN_CPU = 0.001
"""A bundle holds something: a pod that needs nothing (the MPI launcher) holds a thousandth of a core."""


class RayUnavailable(Exception):
    """The Ray cluster did not answer (down, restarting, or the driver is still connecting)."""


class Driver:
    """The Ray driver child process (executors/raybridge.py): one request at a time, each with a deadline."""

    def __init__(self, address: str, python: str) -> None:
        self.address = address
        self.python = python
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._started = 0.0
        self._retry_at = 0.0
        self.hello: dict[str, str] | None = None
        self.error = ""

    def call(self, op: str, *args: Any, timeout: float = CALL_SECONDS, connect: float = 0.0) -> Any:
        """Run `op` in the driver; RayUnavailable when it cannot. `connect`: seconds to wait for a new driver."""
        with self._lock:
            conn = self._connected(connect)
            try:
                conn.send((op, args))
                if not conn.poll(timeout):
                    raise RayUnavailable(f"the Ray cluster at {self.address} did not answer within {timeout:g} s")
                status, value = conn.recv()
            except (OSError, EOFError, RayUnavailable) as err:
                self._drop(str(err))
                raise RayUnavailable(self.error) from None
            if status != "ok":
                raise RayUnavailable(str(value))
            return value

    def _connected(self, wait: float) -> Connection:
        if self._conn is not None and self.hello is not None:
            return self._conn
        now = time.monotonic()
        if self._proc is None:
            if now < self._retry_at:
                raise RayUnavailable(self.error)
            self._spawn()
        assert self._conn is not None
        try:
            ready = self._conn.poll(wait)
            if ready:
                status, value = self._conn.recv()
                if status == "ok":
                    self.hello, self.error = value, ""
                    return self._conn
                self._drop(str(value))
            elif time.monotonic() - self._started > CONNECT_SECONDS:
                self._drop(f"the Ray cluster at {self.address} did not accept a connection in {CONNECT_SECONDS:g} s")
            else:
                self.error = self.error or f"connecting to the Ray cluster at {self.address}"
        except (OSError, EOFError):
            self._drop(f"the Ray driver for {self.address} ended")
        raise RayUnavailable(self.error)

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the address is given explicitly
        self._proc = subprocess.Popen(
            [self.python, "-m", "tione_server.executors.raybridge", self.address, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C is the server's to handle
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._started = time.monotonic()
        self.hello = None

    def _drop(self, error: str) -> None:
        """Forget the driver (killed if still there); the next call after RETRY_SECONDS starts another."""
        self.error = error
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            threading.Thread(target=self._proc.wait, daemon=True).start()
        self._proc, self._conn, self.hello = None, None, None
        self._retry_at = time.monotonic() + RETRY_SECONDS

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._drop("closed")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One look at the cluster: nodes by id (alive, IP), live tione actors, the head node's id."""

    nodes: dict[str, tuple[bool, str]]
    actors: frozenset[str]
    head: str


def handle(actor: str, node: str, ip: str, head: str) -> str:
    """A pod's handle: its actor's name, its node (id and IP) and the head it was started under."""
    return json.dumps({"actor": actor, "node": node, "ip": ip, "head": head})


def _parse(text: str) -> dict[str, str]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def bundle(pod: Pod) -> dict[str, float]:
    """A pod's placement bundle from its instance type (wire units: milli-cores, MB, 1/100 cards)."""
    res = {"CPU": max(pod.cpu / 1000, MIN_CPU)}
    if pod.memory:
        res["memory"] = float(pod.memory * 2**20)
    if pod.gpu:
        res["GPU"] = pod.gpu / 100
    return res


class RayExecutor(LocalExecutor):
    """Runs pods on a Ray cluster; see the module docstring. Submission (the run directory) is the local one's."""

    name = "ray"

    def __init__(
        self, *, address: str, data_dir: Path, cos_root: Path, lost_after: float = 30.0, python: str = sys.executable
    ) -> None:
        super().__init__(data_dir=data_dir, cos_root=cos_root, python=python, sandboxed=False)  # not yet on Ray nodes
        self.address = address
        self.lost_after = lost_after
        self.driver = Driver(address, python)
        self._snapshot: tuple[float, Snapshot | None] = (0.0, None)
        self._down_since: float | None = None
        self._unsent: dict[str, bool] = {}
        """Signals not delivered yet (the cluster was away), by actor name: kill or not; sent again on observe."""

    # -- the cluster -----------------------------------------------------------------------------

    def _look(self, now: float) -> Snapshot | None:
        """The cluster now (cached for SNAPSHOT_SECONDS), or None while it is unreachable."""
        at, snap = self._snapshot
        if snap is not None and 0 <= now - at < SNAPSHOT_SECONDS:
            return snap
        try:
            raw = self.driver.call("snapshot")
        except RayUnavailable:
            if self._down_since is None:
                self._down_since = now
            self._snapshot = (now, None)
            return None
        self._down_since = None
        snap = Snapshot({k: (bool(v[0]), str(v[1])) for k, v in raw["nodes"].items()}, frozenset(raw["actors"]),
                        str(raw["head"]))  # fmt: skip
        self._snapshot = (now, snap)
        if self._unsent:
            unsent, self._unsent = self._unsent, {}
            for kill in (False, True):
                self._send([n for n, k in unsent.items() if k == kill], kill=kill)
        return snap

    def place(self, spec: RunSpec, run: Run, now: float) -> Placement:
        """Issue 10 item 2: the run's placement group, made once; ready or what the cluster lacks."""
        try:
            ready, lacks, never = self.driver.call("place", run.id, [bundle(p) for p in run.pods], PLACE_WAIT)
        except RayUnavailable as err:
            return Placement(False, f"Waiting for the Ray cluster: {err}")
        if ready:
            return Placement(True)
        return Placement(False, f"Waiting for resources: {lacks}", blocks=not never)

    def release(self, run_id: str, pods: Sequence[str]) -> None:
        """Kill the run's actors and remove its placement group (a run ended, stopped while PENDING, deleted)."""
        self.driver.call("release", run_id, list(pods), connect=1.0)

    def sweep(self, live: Collection[str]) -> None:
        """Remove tione actors and placement groups of runs the store no longer has live (issue 10 item 5)."""
        self.driver.call("sweep", sorted(live), timeout=30.0)

    # -- launch ----------------------------------------------------------------------------------

    def launch(self, spec: RunSpec, pods: Sequence[Pod], now: float) -> dict[str, str]:
        by_name = {p.name: p for p in pods}
        # Bundles of pods not given here (a caller that never placed the run) hold only MIN_CPU.
        wanted = [
            (p.name, i, bundle(by_name.get(p.name) or Pod(p.name, p.role, p.index))) for i, p in enumerate(spec.pods)
        ]
        try:
            ends = self.driver.call("actors", spec.run_id, wanted, LAUNCH_WAIT, timeout=LAUNCH_WAIT + 40, connect=60.0)
            head = (self.driver.hello or {}).get("head", "")
        except RayUnavailable as err:
            if self._down_since is not None and now - self._down_since >= self.lost_after:
                raise LaunchError(f"cannot start the pods: {err}") from None
            raise  # the runner launches again after a backoff
        self._snapshot = (0.0, None)  # a look taken before these actors existed would call their pods lost
        platform = self._platform_env(spec)
        first = ends[spec.pods[0].name]
        hosts = {p.name: f"{ends[p.name][1]}:{ends[p.name][2]}" for p in spec.pods}
        tf = tf_configs(spec, hosts) if spec.mode == "PS_WORKER" else {}
        starts = []
        for pod in pods:
            ps = next(p for p in spec.pods if p.name == pod.name)
            # DDP (issue 10 item 3): pod 0's node and a port free there, unless the task's own Envs set them.
            master = {"MASTER_ADDR": str(first[1]), "MASTER_PORT": str(first[2])}
            env = platform[pod.name] | dict(ps.env) | {k: v for k, v in master.items() if k not in spec.env}
            if pod.name in tf:
                env["TF_CONFIG"] = tf[pod.name]
            pod_spec = {
                "command": ps.command,
                "cwd": str(self.files.code(spec.run_id)),
                "env": env,
                "stdout": str(self.files.log(spec.run_id, pod.name, "stdout")),
                "stderr": str(self.files.log(spec.run_id, pod.name, "stderr")),
            }
            starts.append((pod.name, str(self.files.pod_dir(spec.run_id, pod.name)), pod_spec))
        try:
            self.driver.call("start", starts, timeout=70.0, connect=60.0)
        except RayUnavailable as err:
            raise LaunchError(f"cannot start the pods: {err}") from None
        return {p.name: handle(p.name, str(ends[p.name][0]), str(ends[p.name][1]), head) for p in pods}

    # -- observation -----------------------------------------------------------------------------

    def observe(self, spec: RunSpec, run: Run, now: float) -> dict[str, Observation]:
        launched = [p for p in run.pods if p.launched_at is not None]
        if not launched:
            return {}
        snap = self._look(now)
        return {p.name: self._observe_pod(run.id, p, snap, now) for p in launched}

    def _observe_pod(self, run_id: str, pod: Pod, snap: Snapshot | None, now: float) -> Observation:
        pod_dir = self.files.pod_dir(run_id, pod.name)
        info = read_json(pod_dir / "pid")
        started = float(info["time"]) if info else None
        lost = self._lost(pod, snap, now)
        done = read_json(pod_dir / "exit")  # read after the look: an exit written meanwhile is not taken for lost
        if done is not None:
            return Observation("EXITED", started_at=started, ended_at=float(done["time"]), exit_code=int(done["code"]))
        if lost:
            return Observation("LOST", started_at=started, ended_at=now, reason=lost)
        return Observation("RUNNING" if info else "PENDING", started_at=started)

    def _lost(self, pod: Pod, snap: Snapshot | None, now: float) -> str:
        """Why the pod is gone without an exit code (issue 10 item 6), or "" while it may still run."""
        h = _parse(pod.handle)
        if snap is None:
            if self._down_since is not None and now - self._down_since >= self.lost_after:
                return f"the Ray cluster at {self.address} has been unreachable for {now - self._down_since:.0f} s"
            return ""
        if h.get("head") and snap.head and h["head"] != snap.head:
            return f"the Ray head was restarted (head node {h['head'][:12]} is gone, and the pod's actor with it)"
        alive, _ = snap.nodes.get(h.get("node", ""), (False, ""))
        if not alive:
            return f"its Ray node {h.get('node', '')[:12]} ({h.get('ip', '?')}) was lost"
        if h.get("actor", pod.name) not in snap.actors:
            return f"its supervising Ray actor {h.get('actor', pod.name)} is gone"
        return ""

    # -- stopping and cleanup --------------------------------------------------------------------

    def signal(self, spec: RunSpec, run: Run, pods: Sequence[Pod], *, kill: bool, now: float) -> None:
        self._send([p.name for p in pods], kill=kill)

    def _send(self, names: list[str], *, kill: bool) -> None:
        if not names:
            return
        try:
            self.driver.call("send", names, kill, connect=5.0)
        except RayUnavailable:
            self._unsent |= dict.fromkeys(names, kill)  # sent once the cluster answers again

    def remove(self, run_id: str) -> None:
        """Delete the run's files, its actors and its placement group (the sweep retries what fails here)."""
        names = [d.name for d in (self.files.root(run_id) / "pods").glob("*")]
        with contextlib.suppress(RayUnavailable):
            self.release(run_id, names)
        super().remove(run_id)
