"""create_app(settings): the ASGI application, wiring store, service, rate limiter, gateway, executor and runner."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from tione_server.bodies import Receive
from tione_server.callbacks import CallbackSender
from tione_server.config import Settings
from tione_server.console.serve import ConsoleFiles, is_console_path
from tione_server.gateway import Gateway, Scope, Send
from tione_server.health import PATHS, LeaderWatch, Probes
from tione_server.metrics import StoreCollector
from tione_server.netpolicy import address_policy
from tione_server.ratelimit import LocalRateLimiter, RateLimiter
from tione_server.replay import NonceStore
from tione_server.runner import Lease, Runner
from tione_server.service import TioneService
from tione_server.store import Store


@dataclass
class App:
    """The ASGI callable: HTTP goes to the gateway; lifespan starts the runner, and stops it and closes the
    store on shutdown (running pods are left alone: a later server re-attaches them)."""

    gateway: Gateway
    store: Store
    runner: Runner | None = None
    lease: Lease | None = None
    callbacks: CallbackSender | None = field(default=None)
    console: ConsoleFiles = field(default_factory=ConsoleFiles)
    """The web console's files at /console/ (issue 11); everything else is the API."""
    probes: Probes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.probes is not None and scope["path"] in PATHS:  # issue 10 item 10: outside the API
                await self.probes(scope, send)
                return
            if is_console_path(scope["path"]):
                await self.console(scope, receive, send)
                return
            await self.gateway(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if self.runner is not None:
                        self.runner.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.runner is not None:
                        self.runner.stop()
                    if self.lease is not None:
                        self.lease.release()
                    if self.callbacks is not None:
                        self.callbacks.close()
                    self.store.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return


def create_app(settings: Settings) -> App:
    """Build the whole server from its settings."""
    store = Store(settings.database_url)
    service = TioneService(settings, store)
    limiter, nonces = _shared_state(settings, store)
    gateway = Gateway(settings, store, service, limiter, nonces)
    callbacks = CallbackSender(policy=address_policy(settings.callback_allow))
    lease = Lease(store)
    watch = LeaderWatch(lease)
    runner = Runner(
        store,
        service.executor,
        service.scheduler,
        callbacks=callbacks,
        stop_grace_seconds=settings.stop_grace_seconds,
        interval=settings.runner_interval,
        offset_hours=settings.time_offset_hours,
        is_leader=watch,
    )
    service.wake = runner.wake
    probes = Probes(store, service.executor, watch, StoreCollector(store, settings.executor))
    return App(gateway=gateway, store=store, runner=runner, lease=lease, callbacks=callbacks, probes=probes)


def _shared_state(settings: Settings, store: Store) -> tuple[RateLimiter, NonceStore]:
    """The rate limiter and nonce memory: in Redis when configured (issue 10 item 9), shared by every worker and
    replica; else windows in this process and nonces in the database."""
    database_nonces = store.nonces
    if settings.redis_url is None:
        return LocalRateLimiter(settings.rate_limit), database_nonces
    from tione_server.redisstate import RedisLink, RedisNonceStore, RedisRateLimiter  # the optional [redis] extra

    link = RedisLink(settings.redis_url, settings.redis_prefix)
    return RedisRateLimiter(link, settings.rate_limit), RedisNonceStore(link, database_nonces)


SETTINGS_ENV = "TIONE_SERVE_SETTINGS"
"""`serve --workers N` hands the Settings it built to every worker process as JSON in this variable."""


def app_from_env() -> App:
    """The app of one `serve --workers N` worker; uvicorn imports it by name in each new process.

    Uses the Settings `serve` put in TIONE_SERVE_SETTINGS, so every option reaches every worker;
    without that variable, Settings.from_env().
    """
    raw = os.environ.get(SETTINGS_ENV)
    if raw is None:
        return create_app(Settings.from_env())
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(raw).items()}
    settings = Settings(**values)
    configure_logging(settings.log_level)
    return create_app(settings)


def configure_logging(level: str) -> None:
    """Log records at `level` and above to stderr, one timestamped line each, in this process: `serve` calls it,
    and so does every `--workers N` worker (issue 7 F16)."""
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
