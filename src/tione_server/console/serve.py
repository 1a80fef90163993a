"""Serve the console's files at /console/ (issue 11 item 1), with the headers of item 2.

The files are read once, at startup, into a table keyed by their path under web/: a request is answered by a
lookup in that table and nothing else, so no request path (`..`, `%2e%2e`, a backslash, a NUL, a symlink) can
reach any other file. Each reply carries a strong ETag and `Cache-Control: no-cache` (a browser revalidates, and
gets 304 while a file is unchanged, so an upgraded server is never hidden behind a stale module), and the
security headers: a Content-Security-Policy that allows scripts, styles and connections to this origin only (no
inline script, no eval, no framing), `X-Frame-Options: DENY` and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEB = Path(__file__).resolve().parent / "web"
PREFIX = "/console"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}
"""The only kinds of file served; anything else under web/ is not part of the console."""
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class File:
    """One servable file: its bytes, media type and ETag."""

    body: bytes
    media_type: str
    etag: str


def load(root: Path = WEB) -> dict[str, File]:
    """Every servable file under `root`, keyed by its relative POSIX path (`index.html`, `js/api.js`)."""
    files: dict[str, File] = {}
    for path in sorted(root.rglob("*")):
        media_type = TYPES.get(path.suffix)
        if media_type is None or not path.is_file() or path.is_symlink():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.relative_to(root).as_posix()] = File(body, media_type, etag)
    return files


class ConsoleFiles:
    """The ASGI app of /console/: GET and HEAD of the loaded files; `/console` redirects to `/console/`."""

    def __init__(self, root: Path = WEB) -> None:
        self.files = load(root)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request below /console (the body of a request, if any, is not read)."""
        path: str = scope["path"]
        method: str = scope["method"]
        if method not in ("GET", "HEAD"):
            await _reply(send, 405, b"Method Not Allowed\n", [(b"allow", b"GET, HEAD")], head=False)
            return
        if path == PREFIX:
            await _reply(send, 308, b"", [(b"location", b"/console/")], head=method == "HEAD")
            return
        name = path[len(PREFIX) + 1 :] or "index.html"
        found = self.files.get(name)
        if found is None:
            await _reply(send, 404, b"Not Found\n", [], head=method == "HEAD")
            return
        headers = [(b"etag", found.etag.encode()), (b"cache-control", b"no-cache")]
        if _matches(scope, found.etag):
            await _reply(send, 304, b"", headers, head=True)
            return
        await _reply(send, 200, found.body, [(b"content-type", found.media_type.encode()), *headers],
                     head=method == "HEAD")  # fmt: skip


def _matches(scope: Scope, etag: str) -> bool:
    """Whether If-None-Match names this ETag (or `*`)."""
    for key, value in scope["headers"]:
        if key.lower() == b"if-none-match":
            tags = {t.strip() for t in value.decode("latin-1").split(",")}
            return etag in tags or "*" in tags
    return False


async def _reply(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], *, head: bool) -> None:
    if status != 304:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        if not any(k == b"content-type" for k, _ in headers):
            headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": b"" if head else body})
