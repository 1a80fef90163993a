"""Servers the benchmark runs as subprocesses: `tione-server serve`, the constant-reply floor, moto's server,
and the first two under granian instead of uvicorn.

Each runs on a free loopback port, with its output in a log file. Peak memory (VmHWM) and CPU time are read
from /proc over the process and its children (the workers of `--workers N`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIONE_SERVER = Path(sys.executable).parent / "tione-server"
GRANIAN = Path(sys.executable).parent / "granian"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    """A started server process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def peak_rss_kib(self) -> int:
        """The largest VmHWM (peak resident set) of the process and its descendants, in KiB."""
        return max((_vm_hwm(pid) for pid in [self.process.pid, *_descendants(self.process.pid)]), default=0)

    def cpu_seconds(self) -> float:
        """User and system CPU time so far of the process and its descendants (live ones: workers stay up)."""
        return sum(_cpu_seconds(pid) for pid in [self.process.pid, *_descendants(self.process.pid)])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class CpuUse:
    """CPU over a load's measurement window: the server's (all its processes) and the whole machine's."""

    server_cores: float
    """Server CPU seconds per wall second (1.0 = one core all the time)."""
    machine_busy: float
    """Share of all the machine's cores that were busy (server, load generator, kernel, anything else)."""


class CpuWindow:
    """Reads a server's and the machine's CPU `start` seconds from now and again `seconds` later, on a thread,
    matching the window a load process times from its own start (bench/load.py: warmup, then the window)."""

    def __init__(self, server: Running, start: float, seconds: float) -> None:
        self._server = server
        self._start, self._seconds = start, seconds
        self._result: CpuUse | None = None
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def result(self) -> CpuUse | None:
        """The reading, once the window has passed (None if the server was gone before it ended)."""
        self._thread.join()
        return self._result

    def _watch(self) -> None:
        time.sleep(self._start)
        begin, server0, machine0 = time.monotonic(), self._server.cpu_seconds(), _machine_ticks()
        time.sleep(self._seconds)
        wall, server1, machine1 = time.monotonic() - begin, self._server.cpu_seconds(), _machine_ticks()
        if self._server.process.poll() is not None or wall <= 0:
            return
        busy, total = machine1[0] - machine0[0], machine1[1] - machine0[1]
        self._result = CpuUse(server_cores=(server1 - server0) / wall, machine_busy=busy / total if total else 0.0)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat's first line (idle and iowait are not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return total - values[3] - values[4], total


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [p for p, ppid in parents.items() if ppid == current]
        found += children
        frontier += children
    return found


def _wait_for_port(run: Running, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            raise RuntimeError(f"{run.name} exited early:\n{run.log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", run.port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    run.stop()
    raise RuntimeError(f"{run.name} did not start:\n{run.log_path.read_text()}")


@contextmanager
def _running(
    name: str, args: list[str], port: int, workdir: Path, env_extra: dict[str, str] | None = None
) -> Iterator[Running]:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}-{port}.log"
    # This tree's sources first: a venv shared by several checkouts would otherwise serve another tree's code.
    paths = [str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    env.update(env_extra or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    run = Running(name=name, port=port, process=process, log_path=log_path)
    try:
        _wait_for_port(run)
        yield run
    finally:
        run.stop()


def tione_server(
    database_url: str, workdir: Path, workers: int = 1, extra: Sequence[str] = ()
) -> AbstractContextManager[Running]:
    """`tione-server serve` on a free port, rate limit off (the benchmark measures capacity); `extra` options."""
    port = free_port()
    args = [str(TIONE_SERVER), "serve", "--port", str(port), "--database", database_url, "--rate-limit", "0"]
    if workers > 1:
        args += ["--workers", str(workers)]
    args += extra
    return _running("tione-server", args, port, workdir)


def floor_server(body_path: Path, workdir: Path, workers: int = 1) -> AbstractContextManager[Running]:
    """bench/floor.py: the same uvicorn stack answering a constant reply."""
    port = free_port()
    args = [sys.executable, "-m", "bench.floor", "--port", str(port), "--body", str(body_path)]
    args += ["--workers", str(workers)]
    return _running("floor", args, port, workdir)


def moto_server(workdir: Path) -> AbstractContextManager[Running]:
    """moto's own server (werkzeug, threaded), its access log off as ours is (bench/moto.py `serve`)."""
    port = free_port()
    return _running("moto", [sys.executable, "-m", "bench.moto", "serve", "--port", str(port)], port, workdir)


def _granian(name: str, target: str, port: int, workdir: Path, env: dict[str, str]) -> AbstractContextManager[Running]:
    """granian serving an ASGI app factory: one worker, HTTP/1.1 on uvloop, as uvicorn runs it."""
    args = [str(GRANIAN), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    args += ["--http", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning", "--no-access-log"]
    return _running(name, [*args, "--factory", target], port, workdir, env)


def granian_tione_server(database_url: str, workdir: Path) -> AbstractContextManager[Running]:
    """The app `tione-server serve` builds, under granian: the Settings serve would make from these options
    (data directory in the working directory, as serve's default), handed to tione_server.app.app_from_env
    as serve hands them to its `--workers N` workers."""
    from tione_server.app import SETTINGS_ENV
    from tione_server.config import Settings

    port = free_port()
    settings = Settings.from_env(
        database_url=database_url, host="127.0.0.1", port=port, rate_limit=0, data_dir=str(workdir / "tione-data")
    )
    env = {SETTINGS_ENV: json.dumps(dataclasses.asdict(settings))}
    return _granian("granian-tione-server", "tione_server.app:app_from_env", port, workdir, env)


def granian_floor_server(body_path: Path, workdir: Path) -> AbstractContextManager[Running]:
    """bench/floor.py's constant reply under granian."""
    from bench.floor import BODY_ENV

    port = free_port()
    return _granian("granian-floor", "bench.floor:app_from_env", port, workdir, {BODY_ENV: str(body_path.resolve())})
