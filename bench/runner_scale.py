"""The runner at scale (issue 12 target 5), simulate executor: tick cost by active tasks, creates/s, list latency
while the runner is busy, and how fast queued PENDING tasks start once capacity is freed.

`python -m bench.runner_scale [--backend sqlite|postgres|both] [--sizes 100,1000,10000]` prints one markdown table.

- **Tick p50/p99** (in process, a fake clock moving 0.25 s a tick): the server's own service creates tasks for 100
  accounts, mostly long-running ones that sit idle in RUNNING; at each size, every measured tick also sees two
  fresh short tasks go through their states (a few changes), and only `Runner.tick` is timed.
- **Creates/s**: signed CreateTrainingTask requests (built beforehand, one name each, 100 accounts) over 16
  keep-alive connections to a real `tione-server serve` whose runner moves every task through its timeline.
- **List busy vs idle**: p50 of a signed DescribeTrainingTasks on the same server, first idle, then while tasks
  are created at `BUSY_RATE`/s and started and finished by its runner (same server, same run).
- **PENDING drain/s** (in process): tasks queued behind one task that holds all capacity; once it is stopped,
  tasks started per second of runner time (tick time plus the loop's pause between busy ticks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from bench.databases import DEFAULT_POSTGRES_URL, _pg_recreate
from bench.measure import percentile
from bench.processes import tione_server
from bench.signer import Credentials, raw_request
from bench.targets import TargetRow
from tione_server.api._generated import CreateTrainingTaskRequest, StopTrainingTaskRequest
from tione_server.app import create_app
from tione_server.config import Settings
from tione_server.context import Caller, RequestContext
from tione_server.runner import FAST_INTERVAL, TICK_BUDGET
from tione_server.store import Store

ACCOUNTS = 100
REGION = "ap-guangzhou"
SMALL = "BENCH.S.POST"
BIG = "BENCH.L.POST"
CATALOGUE = f"""
[limits]
max_active_tasks = 100000

[capacity]
cpu = {{cpu}}
memory = {{memory}}
gpu = 0

[[instance_types]]
name = "{SMALL}"
cpu = 100
memory = 64
price = 1

[[instance_types]]
name = "{BIG}"
cpu = {{cpu}}
memory = {{memory}}
price = 1
"""
IDLE_SECONDS = "300"
"""TI_SIMULATE_RUN_SECONDS of the idle tasks: RUNNING for the whole benchmark (its fake clock moves under a minute),
and no longer: the simulate executor writes a log line per second of a pod's run when it launches it."""
TICK_STEP = 0.25
CHANGING = 2
"""Short tasks created before every measured tick: the changes a tick has to handle."""
CONNECTIONS = 16
CREATES = 3000
BUSY_RATE = 100.0
"""Creates per second while list latency is measured busy."""
DRAIN = 2000
SIMULATE = "0.2,0.2,1"
"""The server's simulate timeline (submit, start, run seconds): every created task runs through it within 2 s."""


@dataclass(frozen=True)
class Tick:
    size: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Result:
    """Everything measured on one backend."""

    backend: str
    ticks: list[Tick]
    creates_per_s: float
    create_errors: int
    list_idle_ms: float
    list_busy_ms: float
    drain_per_s: float


def _uin(i: int) -> str:
    return f"2000000{i:05d}"


def _params(name: str, instance_type: str = SMALL, run_seconds: str = "") -> dict[str, Any]:
    envs = [{"Name": "TI_SIMULATE_RUN_SECONDS", "Value": run_seconds}] if run_seconds else []
    return {
        "Name": name,
        "ChargeType": "POSTPAID_BY_HOUR",
        "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": instance_type, "InstanceNum": 1}],
        "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "ccr.ccs.tencentyun.com/bench/train:1"},
        "StartCmdInfo": {"StartCmd": "python train.py"},
        "Envs": envs,
    }


# --- in process: the runner driven by hand on a fake clock -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class InProcess:
    """create_app over a fresh database, the simulate executor, a fake clock; the runner ticked by hand."""

    def __init__(self, url: str, work: Path, cpu: int, memory: int) -> None:
        work.mkdir(parents=True, exist_ok=True)
        catalogue = work / "catalogue.toml"
        catalogue.write_text(CATALOGUE.format(cpu=cpu, memory=memory), encoding="utf-8")
        settings = Settings(
            database_url=url, executor="simulate", data_dir=str(work / "data"), cos_root=str(work / "cos"),
            catalogue_path=str(catalogue), simulate_seconds=(0.5, 0.5, 1.0), rate_limit=0,
        )  # fmt: skip
        self.clock = Clock()
        self.app = create_app(settings, clock=self.clock)
        self.service = self.app.gateway.service
        self.runner = self.app.runner
        self.created = 0

    def close(self) -> None:
        self.app.close()

    def create(self, params: dict[str, Any], account: int) -> str:
        uin = _uin(account)
        ctx = RequestContext(
            caller=Caller(uin=uin, app_id="1250000000", sub_uin=uin), region=REGION, request_id="b", language="",
            now=self.clock.now,
        )  # fmt: skip
        req = msgspec.convert(params, CreateTrainingTaskRequest)
        self.created += 1
        return str(self.service.create_training_task(ctx, req).Id)

    def tick(self, step: float = TICK_STEP) -> float:
        """One runner pass `step` seconds after the last; its wall time."""
        self.clock.now += step
        started = time.perf_counter()
        self.runner.tick(budget=TICK_BUDGET)  # as the server's loop ticks
        return time.perf_counter() - started

    def settle(self, seconds: float) -> None:
        """Tick through at least `seconds` of fake time, quick ticks, until a tick changes nothing."""
        end = self.clock.now + seconds
        quiet = 0
        while self.clock.now < end or quiet < 20:  # 2 s of fake time: longer than any step of the timeline
            self.clock.now += FAST_INTERVAL * 5
            quiet = 0 if self.runner.tick() else quiet + 1


def _ticks(url: str, work: Path, sizes: list[int]) -> list[Tick]:
    h = InProcess(url, work, cpu=100 * (max(sizes) + 10_000), memory=64 * (max(sizes) + 10_000))
    out: list[Tick] = []
    try:
        idle = 0
        for size in sorted(sizes):
            while idle < size:
                h.create(_params(f"idle-{idle}", run_seconds=IDLE_SECONDS), idle % ACCOUNTS)
                idle += 1
                if idle % 500 == 0:
                    h.tick(0.0)
            h.settle(3.0)  # every idle task RUNNING
            samples: list[float] = []
            count = 60 if size <= 1000 else 30
            for i in range(count):
                for j in range(CHANGING):
                    h.create(_params(f"busy-{size}-{i}-{j}", run_seconds="1"), (i + j) % ACCOUNTS)
                samples.append(h.tick())
            samples.sort()
            out.append(Tick(size, statistics.median(samples) * 1e3, percentile(samples, 0.99) * 1e3))
    finally:
        h.close()
    return out


def _drain(url: str, work: Path) -> float:
    h = InProcess(url, work, cpu=100 * DRAIN, memory=64 * DRAIN)
    try:
        blocker = h.create(_params("blocker", BIG, IDLE_SECONDS), 0)
        h.settle(3.0)
        for i in range(DRAIN):
            h.create(_params(f"queued-{i}"), i % ACCOUNTS)
        h.settle(2.0)  # all SUBMITTING -> PENDING, waiting for the blocker's capacity
        uin = _uin(0)
        ctx = RequestContext(
            caller=Caller(uin=uin, app_id="1250000000", sub_uin=uin), region=REGION, request_id="b", language="",
            now=h.clock.now,
        )  # fmt: skip
        h.service.stop_training_task(ctx, StopTrainingTaskRequest(Id=blocker))
        spent, ticks = 0.0, 0
        deadline = time.perf_counter() + 120
        while _pending(h) and time.perf_counter() < deadline:
            spent += h.tick(FAST_INTERVAL)
            ticks += 1
        left = _pending(h)
        started = DRAIN - left
        return started / (spent + ticks * FAST_INTERVAL) if started else 0.0
    finally:
        h.close()


def _pending(h: InProcess) -> int:
    """Runs not started yet."""
    with h.app.store.db.engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT count(*) FROM runs WHERE status IN ('PENDING', 'SUBMITTING')")
        return int(found.scalar_one())


# --- a real server: creates/s and list latency ------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive connection sending its requests one after another."""

    def __init__(self, requests: list[bytes], done: asyncio.Future[None], stats: dict[str, int], pace: float) -> None:
        self.requests = requests
        self.done = done
        self.stats = stats
        self.pace = pace
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.next_at = time.perf_counter()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        if not self.requests:
            if not self.done.done():
                self.done.set_result(None)
            assert self.transport is not None
            self.transport.close()
            return
        if self.pace:
            delay = self.next_at - time.perf_counter()
            self.next_at = max(self.next_at, time.perf_counter()) + self.pace
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._write)
                return
        self._write()

    def _write(self) -> None:
        assert self.transport is not None
        self.transport.write(self.requests.pop())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.index(b"content-length:") + len(b"content-length:")
        stop = head.find(b"\r\n", at)
        total = end + 4 + int(head[at : stop if stop >= 0 else len(head)])
        if len(self.buf) < total:
            return
        body = bytes(self.buf[end + 4 : total])
        del self.buf[:total]
        self.stats["errors" if b'"Error"' in body else "ok"] += 1
        self._send()


async def _send_all(port: int, requests: list[bytes], connections: int, rate: float = 0.0) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    stats = {"ok": 0, "errors": 0}
    futures: list[asyncio.Future[None]] = []
    pace = connections / rate if rate else 0.0
    for i in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        futures.append(done)
        share = requests[i::connections]
        share.reverse()

        def protocol(share: list[bytes] = share, done: asyncio.Future[None] = done) -> _Conn:
            return _Conn(share, done, stats, pace)

        await loop.create_connection(protocol, "127.0.0.1", port)
    await asyncio.gather(*futures)
    return stats


def _list_p50(port: int, creds: Credentials, seconds: float) -> float:
    from bench.measure import HttpClient

    client = HttpClient(port, creds)
    try:
        request = raw_request(creds, client.host, "DescribeTrainingTasks", REGION, {"Limit": 10})
        reply = client.send(request)
        if b'"Error"' in reply or b'"TotalCount"' not in reply:
            raise RuntimeError(f"DescribeTrainingTasks failed: {reply[:300]!r}")
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            client.send(request)
            samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1e3
    finally:
        client.close()


def _server(url: str, work: Path) -> tuple[float, int, float, float]:
    """(creates/s, errors, list p50 idle ms, list p50 busy ms) against a real server."""
    work.mkdir(parents=True, exist_ok=True)
    catalogue = work / "catalogue.toml"
    catalogue.write_text(CATALOGUE.format(cpu=100 * 100_000, memory=64 * 100_000), encoding="utf-8")
    store = Store(url)
    try:
        keys = [store.keys.create(uin=_uin(i), app_id="1250000000", sub_uin=_uin(i)) for i in range(ACCOUNTS)]
    finally:
        store.close()
    creds = [Credentials(k.secret_id, k.secret_key) for k in keys]
    os.environ["TIONE_SIMULATE_SECONDS"] = SIMULATE
    extra = ["--executor", "simulate", "--catalogue", str(catalogue), "--data-dir", str(work / "data")]
    with tione_server(url, work / "server", extra=extra) as server:
        host = server.host

        def creates(prefix: str, n: int) -> list[bytes]:
            return [
                raw_request(creds[i % ACCOUNTS], host, "CreateTrainingTask", REGION, _params(f"{prefix}-{i}"))
                for i in range(n)
            ]

        burst = creates("burst", CREATES)
        started = time.perf_counter()
        stats = asyncio.run(_send_all(server.port, burst, CONNECTIONS))
        rate = stats["ok"] / (time.perf_counter() - started)
        time.sleep(4.0)  # the burst's tasks have run and ended: the runner is idle again
        idle = _list_p50(server.port, creds[0], 4.0)
        paced = creates("busy", int(BUSY_RATE * 8))
        busy: list[float] = []

        async def both() -> None:
            sender = asyncio.create_task(_send_all(server.port, paced, 4, BUSY_RATE))
            await asyncio.sleep(1.5)  # tasks are moving through every state by now
            busy.append(await asyncio.to_thread(_list_p50, server.port, creds[0], 4.0))
            await sender

        asyncio.run(both())
    return rate, stats["errors"], idle, busy[0]


# --- the table ----------------------------------------------------------------------------------------------------


@contextmanager
def _database(backend: str, work: Path, name: str, postgres_url: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{work / (name + '.db')}"
        return
    db = f"tione_bench_runner_{name}"
    _pg_recreate(postgres_url, db)
    yield postgres_url.rsplit("/", 1)[0] + "/" + db


def measure(backend: str, sizes: list[int], postgres_url: str = DEFAULT_POSTGRES_URL) -> Result:
    """Every figure on one backend, each part on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="tione-runner-scale-") as tmp:
        work = Path(tmp)
        with _database(backend, work, "ticks", postgres_url) as url:
            ticks = _ticks(url, work / "ticks", sizes)
        with _database(backend, work, "drain", postgres_url) as url:
            drain = _drain(url, work / "drain")
        with _database(backend, work, "server", postgres_url) as url:
            creates, errors, idle, busy = _server(url, work / "server")
    return Result(backend, ticks, creates, errors, idle, busy, drain)


def rows(result: Result) -> list[TargetRow]:
    """The target rows of one backend's result."""
    b = result.backend
    base = next((t for t in result.ticks if t.size == 100), result.ticks[0])
    out: list[TargetRow] = []
    for t in result.ticks:
        ratio = t.p50_ms / base.p50_ms if base.p50_ms else 0.0
        out.append(
            TargetRow(
                b,
                f"runner tick p50/p99 ms · {t.size:,} active",
                f"{t.p50_ms:.2f} / {t.p99_ms:.2f}",
                f"{ratio:.2f}× vs {base.size:,} active",
                "≤2×",
                ratio <= 2.0,
            )
        )
    errors = f" ({result.create_errors} errors)" if result.create_errors else ""
    out.append(
        TargetRow(
            b,
            "CreateTrainingTask/s, runner running",
            f"{result.creates_per_s:,.0f}{errors}",
            f"{result.creates_per_s / 500:.2f}× of 500/s",
            "≥500/s",
            result.creates_per_s >= 500 and not result.create_errors,
        )
    )
    ratio = result.list_busy_ms / result.list_idle_ms if result.list_idle_ms else 0.0
    out.append(
        TargetRow(
            b,
            f"list p50 ms busy ({BUSY_RATE:.0f} creates/s) vs idle",
            f"{result.list_busy_ms:.2f} / {result.list_idle_ms:.2f}",
            f"{ratio:.2f}× idle",
            "≤1.5×",
            ratio <= 1.5,
        )
    )
    out.append(
        TargetRow(
            b,
            f"PENDING drain/s ({DRAIN:,} queued)",
            f"{result.drain_per_s:,.0f}",
            f"{result.drain_per_s / 25:.1f}× of 25/s",
            "≫25/s",
            result.drain_per_s >= 250,
        )
    )
    return out


def target_rows(backends: tuple[str, ...] = ("sqlite", "postgres"), sizes: tuple[int, ...] = (100, 1000, 10_000),
                postgres_url: str = DEFAULT_POSTGRES_URL) -> list[TargetRow]:  # fmt: skip
    """Issue 12 target 5 as rows for `make bench` (report.py prints them)."""
    out: list[TargetRow] = []
    for backend in backends:
        out += rows(measure(backend, list(sizes), postgres_url))
    return out


def table(target: list[TargetRow]) -> str:
    """Markdown table of target rows."""
    lines = ["| backend | measure | value | ratio | target |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in target]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(table(target_rows(backends, sizes, args.postgres_url)))


if __name__ == "__main__":
    main()
