"""The load generator: a separate process holding N keep-alive connections, each sending presigned
requests back to back for a fixed time, counting replies per second.

It must never be the bottleneck, so it is lean: raw HTTP/1.1 bytes built beforehand (bench/signer.py),
asyncio protocols on uvloop when available, one request in flight per connection, replies parsed only
far enough to find their end and whether they are errors. A server that closes every connection after its
reply (`Connection: close`, as moto's werkzeug server does) gets a new connection for the next request, its
connect time counted in that request's latency, as any client would pay it. It reports its own CPU share;
near 100% means the figure measures the generator, not the server. `run()` starts it as `python -m bench.load`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from bench.processes import REPO

ERROR_PREFIX = b'{"Response":{"Error"'


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured (replies counted inside the measurement window only)."""

    replies: int
    errors: int
    seconds: float
    cpu_share: float
    """CPU time of the load process over the window, as a share of one core."""
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.replies / self.seconds if self.seconds else 0.0


class _Connection(asyncio.Protocol):
    """One client slot: a request in flight at a time, over one connection or, where the server closes each
    one after its reply, over a new connection per request (the protocol object is reused for each)."""

    def __init__(
        self, address: tuple[str, int], requests: list[bytes], window: tuple[float, float], stats: dict[str, Any]
    ) -> None:
        self.address = address
        self.requests = requests
        self.start, self.stop = window
        self.stats = stats
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.index = 0
        self.sent_at = 0.0
        self.connect_at: float | None = None
        self.body_at = -1
        self.end_at = -1
        self.received = 0
        self.ok = True
        self.reopen = False
        self.reopening: asyncio.Task[None] | None = None
        """The task opening the next connection (held so that it is not collected while it runs)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reopen and time.perf_counter() < self.stop:
            self.reopen = False
            self.connect_at = time.perf_counter()
            self.reopening = asyncio.get_running_loop().create_task(self._connect_again())
        elif not self.closed.done():
            self.closed.set_result(None)

    async def _connect_again(self) -> None:
        try:
            await asyncio.get_running_loop().create_connection(lambda: self, *self.address)
        except OSError as err:
            if not self.closed.done():
                self.closed.set_exception(err)

    def _send(self) -> None:
        assert self.transport is not None
        now = time.perf_counter()
        if now >= self.stop:
            self.transport.close()
            return
        self.sent_at = now if self.connect_at is None else self.connect_at
        self.connect_at = None
        self.buf.clear()
        self.body_at = self.end_at = -1
        self.transport.write(self.requests[self.index % len(self.requests)])
        self.index += 1

    def data_received(self, data: bytes) -> None:
        # Only the head and the first bytes of the body are kept (to find the length and tell an error reply);
        # the rest is counted, not copied: a page of 50 is 70 KB, and copying it cost the generator more than
        # the server spends sending it.
        if self.body_at < 0:
            self.buf += data
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buf[:head_end]).lower()
            at = head.find(b"content-length:")
            if at < 0:
                raise RuntimeError(f"reply without Content-Length: {head[:200]!r}")
            line_end = head.find(b"\r\n", at)
            length = int(head[at + 15 : line_end if line_end >= 0 else len(head)])
            self.body_at = head_end + 4
            self.end_at = self.body_at + length
            self.received = len(self.buf)
            self.ok = head.startswith(b"http/1.1 200")
            self.reopen = b"\r\nconnection: close" in head
        else:
            if len(self.buf) < self.body_at + len(ERROR_PREFIX):
                self.buf += data[: len(ERROR_PREFIX)]
            self.received += len(data)
        if self.received < self.end_at:
            return
        done = time.perf_counter()
        if self.start <= done < self.stop:
            self.stats["replies"] += 1
            if not self.ok or self.buf.startswith(ERROR_PREFIX, self.body_at):
                self.stats["errors"] += 1
            self.stats["latencies"].append(done - self.sent_at)
        if self.reopen:
            assert self.transport is not None
            self.transport.close()  # connection_lost opens the next one
            return
        self._send()


async def _drive(
    host: str, ports: list[int], connections: int, requests: list[bytes], warmup: float, duration: float
) -> LoadResult:
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {"replies": 0, "errors": 0, "latencies": []}
    now = time.perf_counter()
    window = (now + warmup, now + warmup + duration)
    protocols: list[_Connection] = []
    for i in range(connections):  # round-robin over the ports: replicas behind one balancer (bench/replicas.py)
        address = (host, ports[i % len(ports)])
        _, protocol = await loop.create_connection(
            functools.partial(_Connection, address, requests, window, stats), *address
        )
        protocols.append(protocol)
    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    cpu0 = time.process_time()
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    cpu = time.process_time() - cpu0
    await asyncio.wait_for(asyncio.gather(*(p.closed for p in protocols)), timeout=30)
    latencies = sorted(stats["latencies"])
    n = len(latencies)
    return LoadResult(
        replies=stats["replies"],
        errors=stats["errors"],
        seconds=duration,
        cpu_share=cpu / duration,
        p50_ms=latencies[n // 2] * 1e3 if n else 0.0,
        p99_ms=latencies[min(n - 1, int(n * 0.99))] * 1e3 if n else 0.0,
    )


def main() -> None:
    """Read the job as JSON on stdin, print the LoadResult as JSON on stdout."""
    job = json.load(sys.stdin)
    requests = [base64.b64decode(r) for r in job["requests"]]
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
    result = runner(_drive(job["host"], job["ports"], job["connections"], requests, job["warmup"], job["duration"]))
    print(json.dumps(result.__dict__))


def run(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    connections: int,
    duration: float,
    warmup: float,
    more_ports: Sequence[int] = (),
) -> LoadResult:
    """Load `host:port` (and `more_ports`, connections dealt round-robin) from a separate process."""
    job = {
        "host": host,
        "ports": [port, *more_ports],
        "connections": connections,
        "duration": duration,
        "warmup": warmup,
        "requests": [base64.b64encode(r).decode() for r in requests],
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench.load"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=warmup + duration + 120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{out.stderr}")
    return LoadResult(**json.loads(out.stdout))


if __name__ == "__main__":
    main()
