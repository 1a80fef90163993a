"""How uvicorn serves the app (issue 7 B5, C8): an HTTP protocol that closes connections whose headers do not
arrive in time, TLS when a certificate is given, and the warning for plain HTTP beyond loopback.

uvicorn bounds what it buffers per connection (it stops reading past 64 KB of unread body) and closes idle
keep-alive connections, but it waits for a request's headers forever; the body deadline is the gateway's.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tione_server.config import Settings


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers are not complete within
    `header_timeout` seconds of the connection opening or of the request's first byte (slowloris)."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

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
