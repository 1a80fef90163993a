"""A real Ray cluster on this machine for the Ray executor's tests (issue 10 item 7): `ray start --block` processes,
a head and worker nodes, each in a session of its own so a test can kill one node (or the head) with its group.

Nodes are small: 2 logical cores, 8 GiB of logical memory and an 80 MB object store each, no dashboard. Nothing in
the test process imports ray: the server (or the executor's driver process) is the only client.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.live import free_port

RAY = Path(sys.executable).parent / "ray"
NODE_MEMORY = 8 * 2**30
FAST_HEALTH = {
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}
"""A killed node is declared dead within ~2 s instead of ~15 s (Ray's defaults)."""


def available() -> str:
    """Why the Ray tests cannot run here, or "" when they can."""
    try:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            return "ray is not installed (pip install 'tione-server[ray]')"
    except ValueError:
        return "ray is not importable"
    return "" if RAY.exists() else f"the ray command is missing next to {sys.executable}"


class RayCluster:
    """A head and worker nodes started with `ray start`; `address` is the head's GCS `host:port`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.temp = Path(tempfile.mkdtemp(prefix="tray-", dir="/tmp"))  # short: Ray's socket paths are in it
        self.head: subprocess.Popen[bytes] | None = None
        self.head_cpus = 2
        self.workers: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, args: list[str], log: str, cpus: int = 2, memory: int = NODE_MEMORY) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | FAST_HEALTH
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        env["TEST_RAY_NODE"] = log.removesuffix(".log")  # pods inherit it: which node a pod ran on
        common = ["--block", f"--num-cpus={cpus}", f"--memory={memory}", "--object-store-memory=80000000",
                  "--node-ip-address=127.0.0.1", "--disable-usage-stats"]  # fmt: skip
        with (self.temp / log).open("ab") as out:
            return subprocess.Popen(
                [str(RAY), "start", *args, *common], stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip

    def start_head(self, cpus: int = 2) -> None:
        self.head_cpus = cpus
        self.head = self._start(
            ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp}",
             f"--dashboard-agent-listen-port={free_port()}"],
            "head.log", cpus,
        )  # fmt: skip

    def add_worker(self, cpus: int = 2, memory: int = NODE_MEMORY) -> subprocess.Popen[bytes]:
        args = [f"--address={self.address}", f"--dashboard-agent-listen-port={free_port()}"]
        proc = self._start(args, f"worker{len(self.workers)}.log", cpus, memory)
        self.workers.append(proc)
        return proc

    def script(self, code: str) -> str:
        """Run `code` in a Ray driver of its own (after `import ray; ray.init(ADDRESS)`); its stdout."""
        full = f"import ray, json\nray.init(address={self.address!r}, logging_level='ERROR')\n{code}"
        return subprocess.run(
            [sys.executable, "-c", full], capture_output=True, text=True, check=True, timeout=120
        ).stdout

    def wait_nodes(self, count: int, timeout: float = 90.0) -> None:
        """Until `count` nodes are alive (asked through `ray status`, which is a client of its own)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                [str(RAY), "status", f"--address={self.address}"], capture_output=True, text=True, check=False
            ).stdout
            active = out.partition("Active:")[2].partition("Pending:")[0]
            if active.count("node_") >= count:
                return
            time.sleep(1.0)
        raise RuntimeError(f"Ray cluster at {self.address} did not reach {count} nodes:\n{self.logs()}")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """Kill a node at once (SIGKILL to its whole process group: raylet, workers, and the head's GCS)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart_head(self) -> None:
        """A new head at the same address after the old one was killed, and as many new worker nodes as before.

        Without GCS fault tolerance a new head is a new cluster: the old workers cannot join it. Their raylets
        give up on the lost GCS after Ray's `gcs_rpc_server_reconnect_timeout_s` (60 s) and, while they wait,
        `ray start --head` refuses the port (it finds the address in their command lines). Here they are killed
        and started again at once, as a deployment's supervisor (systemd) would after they exit.
        """
        count = len(self.workers)
        for proc in self.workers:
            self.kill(proc)
        self.workers.clear()
        self.start_head(self.head_cpus)
        self.wait_nodes(1)
        for _ in range(count):
            self.add_worker()
        self.wait_nodes(1 + count)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in self.temp.glob("*.log"))

    def stop(self) -> None:
        for proc in [*self.workers, *([self.head] if self.head else [])]:
            if proc.poll() is None:
                self.kill(proc)
        # Workers a node started in sessions of their own (and pods' supervisors) outlive its group: end them too.
        _kill_below(self.temp)
        shutil.rmtree(self.temp, ignore_errors=True)


def _kill_below(temp: Path) -> None:
    """SIGKILL every process whose command line names this cluster's temp directory (its Ray processes only)."""
    needle = str(temp).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            continue


def start(workers: int = 1, head_cpus: int = 2) -> RayCluster:
    """A head and `workers` worker nodes, all alive."""
    cluster = RayCluster()
    cluster.start_head(head_cpus)
    cluster.wait_nodes(1)
    for _ in range(workers):
        cluster.add_worker()
    cluster.wait_nodes(1 + workers)
    return cluster
