"""The throughput floor: the server stack of `tione-server serve` (uvicorn, same loop and HTTP parser, same
worker count) answering every request with one constant JSON reply, as fast as that stack can go.

The reply is a real DescribeTrainingTasks response captured from the measured server, so both send the
same bytes; the request body is read like the gateway reads it. Run: `python -m bench.floor --port P
--body FILE [--workers N]`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BODY_ENV = "BENCH_FLOOR_BODY"


class ConstantReply:
    """An ASGI app whose every HTTP answer is `body`."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            while True:
                message = await receive()
                if message["type"] == "http.disconnect" or not message.get("more_body", False):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            await send({"type": "http.response.body", "body": self.body})
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return


def app_from_env() -> ConstantReply:
    """The app each worker builds under `--workers N` (uvicorn imports it by name)."""
    return ConstantReply(Path(os.environ[BODY_ENV]).read_bytes())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="File holding the reply body.")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    import uvicorn

    from tione_server.config import Settings
    from tione_server.serving import serve_workers, uvicorn_options

    # Exactly as tione_server.cli runs the real app, for one worker and for several: the same HTTP protocol
    # (serving.HeaderDeadlineProtocol), and under --workers one socket per worker (serving.serve_workers).
    options: dict[str, Any] = {"log_level": "warning", "access_log": False, **uvicorn_options(Settings())}
    if args.workers <= 1:
        uvicorn.run(ConstantReply(args.body.read_bytes()), host=args.host, port=args.port, **options)
    else:
        os.environ[BODY_ENV] = str(args.body.resolve())
        serve_workers("bench.floor:app_from_env", workers=args.workers, host=args.host, port=args.port, options=options)


if __name__ == "__main__":
    main()
