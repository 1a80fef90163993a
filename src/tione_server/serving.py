"""How uvicorn serves the app (issue 7 B5, C8; issue 12): an HTTP protocol that closes connections whose headers
do not arrive in time, sends what a step of the event loop writes in one writev (WritesAtStepEnd) and, under
`--workers N`, hands connections back when its worker holds more than its share (Balance); the workers' supervisor
(serve_workers); TLS when a certificate is given, and the warning for plain HTTP beyond loopback.

uvicorn bounds what it buffers per connection (it stops reading past 64 KB of unread body) and closes idle
keep-alive connections, but it waits for a request's headers forever; the body deadline is the gateway's, which
sets no timer when the whole body has already arrived (body_arrived).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import multiprocessing
import signal
import socket
import threading
from collections.abc import Iterable
from typing import Any

from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tione_server.config import Settings


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers are not complete within
    `header_timeout` seconds of the connection opening or of the request's first byte (slowloris).

    The timer is armed only when a chunk of bytes leaves a request's headers incomplete: headers nearly always come
    whole in one chunk, and a timer armed and cancelled per request cost the hot path (issue 12). The protocol also
    wraps its transport in WritesAtStepEnd and, given a Balance (`serve --workers N`), counts its connection there
    and answers with `Connection: close` when its worker is crowded."""

    def __init__(self, *args: Any, header_timeout: float, balance: Balance | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.balance = balance
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._counted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(WritesAtStepEnd(transport, self.loop))  # type: ignore[arg-type]
        self._arm()  # nothing has come yet: the first request's headers are due
        if self.balance is not None:
            self.balance.opened()
            self._counted = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted and self.balance is not None:
            self.balance.closed()
            self._counted = False
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_headers:
            self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()
        if self._counted and self.balance is not None and self.balance.crowded():
            # This worker holds more than its share: the reply says `Connection: close` and the client's next
            # connection goes wherever the kernel sends it (uvicorn closes after the reply, as when it stops).
            self.cycle.keep_alive = False
            self.balance.closed()
            self._counted = False

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class Balance:
    """The connections each worker of `serve --workers N` holds, in memory the workers share, so that a worker
    holding more than its share hands connections back (issue 12).

    Each worker listens on a socket of its own and the kernel picks the socket for a new connection from a hash
    of its addresses: with few long-lived keep-alive clients one worker often gets most of them (16 connections
    split 12/4 or worse in two benchmark rounds of three, and two workers served what one does). A worker that
    holds more than the even share rounded up answers its next request on a connection with `Connection: close`,
    which every HTTP/1.1 client follows by opening a new connection for its next request; that one is hashed
    afresh, so the split settles at even within a few replies. Each worker writes only its own slot, from its
    event loop; the others' are read without a lock, as a hint."""

    def __init__(self, counts: Any, index: int) -> None:
        self._counts = counts
        self._index = index
        counts[index] = 0  # a restarted worker starts with none

    def opened(self) -> None:
        self._counts[self._index] += 1

    def closed(self) -> None:
        """A connection counted by `opened` closed, or was told to."""
        self._counts[self._index] -= 1

    def crowded(self) -> bool:
        """True when this worker holds more than the even share of all the workers' connections, rounded up."""
        counts = self._counts[:]
        return bool(counts[self._index] * len(counts) > sum(counts) + len(counts) - 1)


class WritesAtStepEnd:
    """The connection's transport as uvicorn sees it, holding what is written to it during one step of the event
    loop and sending it in one writev once the step's other ready work has run (issue 12).

    uvicorn writes a reply's status line and headers apart from its body, and each reply the moment it is made.
    Under load a worker then sends one reply, spends a tenth of a millisecond making the next, sends that, and so
    on, so each reply finds its client asleep and pays to wake it (on this project's virtual machines, a halted
    vCPU: most of the server's system time per request). Held to the end of the step, a reply's head and body
    leave together and the replies made in one step leave back to back: 6,400 -> 8,100 list requests/s on one
    worker, system CPU per request 32 -> 17 µs (README, Performance). The trade is Netty's
    FlushConsolidationHandler's: a reply waits for the rest of its step's work, nothing when a request is alone.
    Everything else is the transport's own; close and write_eof send what is held first, abort drops it.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = [bytes(data)]
            self._loop.call_soon(self._flush)
        else:
            held.append(bytes(data))  # a copy only for a bytearray or memoryview the caller may reuse

    def writelines(self, lines: Iterable[bytes]) -> None:
        for data in lines:
            self.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.writelines(held)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def body_arrived(receive: Any) -> bool:
    """Whether the request's whole body is already in uvicorn's hands, so that `receive()` cannot wait: its
    request cycle (the bound method's owner) has seen the message end. Anything not known to be so is False, and
    the gateway reads the body under its timer."""
    return getattr(getattr(receive, "__self__", None), "more_body", True) is False


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run: the protocol above (a partial, so `--workers` can pickle it) and TLS."""
    return {
        "http": functools.partial(HeaderDeadlineProtocol, header_timeout=settings.read_timeout),
        "ssl_certfile": settings.tls_cert,
        "ssl_keyfile": settings.tls_key,
    }


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1): traffic that never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


PLAINTEXT_WARNING = (
    "WARNING: serving plain HTTP on {host}, which is not a loopback address. TC3 signs only the Host and "
    "Content-Type headers and the body, so anyone who sees a request can replay it within 5 minutes, aimed at "
    "another action or region. Serve anything beyond loopback with --tls-cert and --tls-key."
)
"""Printed by `serve` when it binds beyond loopback without TLS (issue 7 C8)."""


def serve_workers(app: str, *, workers: int, host: str, port: int, options: dict[str, Any]) -> int:
    """Serve the ASGI app factory `app` (`module:function`) from `workers` processes, each with its own listening
    socket on host:port (SO_REUSEPORT), until SIGINT or SIGTERM; returns the exit status.

    uvicorn's `--workers` hands all of them one shared socket, and with uvloop the first worker to wake accepts
    every waiting connection: 16 keep-alive clients all landed on one worker and two workers served no more than
    one (issue 12). With a socket each, the kernel spreads connections over the workers, and the workers even out
    what it spreads unevenly (Balance). A worker that dies is started again; one that fails before it serves
    (uvicorn's STARTUP_FAILURE) stops them all. `options` are uvicorn_options', whose protocol takes `balance`.
    """
    _reuseport_socket(host, port).close()  # the address is free (or ours): say so now, not once per worker
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    counts = context.RawArray("i", workers)  # connections held, one slot per worker (Balance)
    procs = [context.Process(target=_worker, args=(app, host, port, options, counts, i)) for i in range(workers)]
    for proc in procs:
        proc.start()
    status = 0
    while not stopping.wait(0.5):
        for i, proc in enumerate(procs):
            if proc.is_alive():
                continue
            if proc.exitcode == STARTUP_FAILURE:
                status = STARTUP_FAILURE
                stopping.set()
                break
            procs[i] = context.Process(target=_worker, args=(app, host, port, options, counts, i))
            procs[i].start()
    for proc in procs:
        if proc.is_alive():
            proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
    for proc in procs:
        proc.join(WORKER_STOP_SECONDS)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return status


WORKER_STOP_SECONDS = 15.0
"""How long a worker may take to finish its requests and stop before it is killed."""


def _worker(app: str, host: str, port: int, options: dict[str, Any], counts: Any, index: int) -> None:
    """One worker process: its own socket, then uvicorn until SIGTERM, its connections counted in slot `index`."""
    import uvicorn

    sock = _reuseport_socket(host, port)
    options = {**options, "http": functools.partial(options["http"], balance=Balance(counts, index))}
    uvicorn.Server(uvicorn.Config(app, factory=True, host=host, port=port, **options)).run(sockets=[sock])


def _reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT (and SO_REUSEADDR, as uvicorn binds), not listening."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
