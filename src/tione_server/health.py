"""Plain-HTTP endpoints for probes and load balancers, beside the API (issue 8 item 2): `/healthz` says the
process answers HTTP. Readiness (`/readyz`, the database reachable) is for a later issue."""

from __future__ import annotations

from tione_server.bodies import Receive
from tione_server.gateway import Scope, Send


async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
    """200 `ok` to GET and HEAD, whatever the database or the runner are doing; 405 to anything else."""
    if scope["method"] in ("GET", "HEAD"):
        status, body, extra = 200, b"ok", []
    else:
        status, body, extra = 405, b"method not allowed", [(b"allow", b"GET, HEAD")]
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
