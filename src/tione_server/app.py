"""create_app(settings): the one composition root (issue 8 item 1). It builds the store, catalogue, executor,
runner, service, rate limiter, nonce store and gateway, each handed the parts it uses, and the ASGI App that
routes requests to them."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tione_server.bodies import Receive
from tione_server.callbacks import CallbackSender
from tione_server.catalogue import Catalogue
from tione_server.config import Settings
from tione_server.console import serve as console_files
from tione_server.executors import Executor, make_executor
from tione_server.executors.gpus import PROC_GPUS, discover
from tione_server.executors.registry import Host
from tione_server.gateway import Gateway, Scope, Send
from tione_server.health import PATHS, LeaderWatch, Probes
from tione_server.metrics import StoreCollector
from tione_server.netpolicy import address_policy
from tione_server.offload import Offload
from tione_server.ratelimit import LocalRateLimiter, RateLimiter
from tione_server.replay import NonceStore
from tione_server.requestlog import HANDLER_NAME
from tione_server.runner import Lease, Runner, Sender
from tione_server.scheduling import Scheduler, inventory_of
from tione_server.service import TioneService
from tione_server.store import Store

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI HTTP handler: the gateway, or a plain endpoint such as /healthz."""


@dataclass
class App:
    """The ASGI callable. HTTP goes by path: `routes` holds the plain endpoints, and every other path is the API
    (api3-protocol §1: clients send to `/`, and any path is accepted). Lifespan starts the runner; shutdown
    stops it, runs `closers` in order and closes the store (running pods are left alone: a later server
    re-attaches them)."""

    gateway: Gateway
    store: Store
    runner: Runner
    routes: dict[str, Handler] = field(default_factory=dict)
    """Paths answered beside the API (issue 8 item 2): an exact path (`/healthz`), or a key ending in `/` for
    everything below it (`/console/`). /readyz and /metrics join here."""
    closers: list[Callable[[], None]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handler(scope["path"])(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.runner.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def handler(self, path: str) -> Handler:
        """The exact path's handler, else the subtree of its first segment (`/console/` for `/console/app.js`),
        else the API: one or two dict lookups, whatever the table holds."""
        found = self.routes.get(path)
        if found is None and (cut := path.find("/", 1)) > 0:
            found = self.routes.get(path[: cut + 1])
        return found or self.gateway

    def close(self) -> None:
        """Stop the runner, then release what the parts hold, the store last."""
        self.runner.stop()
        for close in self.closers:
            close()
        self.store.close()


def create_app(
    settings: Settings,
    *,
    executor: Executor | None = None,
    callbacks: Sender | None = None,
    clock: Callable[[], float] = time.time,
) -> App:
    """Build the whole server from its settings. Tests hand in their own executor, callback sender and clock
    (tests/inprocess.py); the server builds them from the settings."""
    store = Store(settings.database_url)
    catalogue = Catalogue.load(Path(settings.catalogue_path)) if settings.catalogue_path else Catalogue.default()
    host = executor_host(settings, store, catalogue)
    sandboxed = settings.executor == "local" and settings.sandbox
    scheduler = Scheduler(inventory_of(catalogue, [g.index for g in host.gpus.gpus] if sandboxed else None))
    executor = make_executor(settings, host) if executor is None else executor
    offload = Offload()
    lease = Lease(store, clock=clock)
    watch = LeaderWatch(lease, clock=clock)
    closers = [lease.release, offload.close]
    if callbacks is None:
        sender = CallbackSender(policy=address_policy(settings.callback_allow))
        callbacks = sender
        closers.append(sender.close)
    runner = Runner(
        store,
        executor,
        scheduler,
        callbacks=callbacks,
        stop_grace_seconds=settings.stop_grace_seconds,
        interval=settings.runner_interval,
        offset_hours=settings.time_offset_hours,
        clock=clock,
        is_leader=watch,
    )
    service = TioneService(settings, store, catalogue, scheduler, executor, wake=runner.wake)
    limiter, nonces = _shared_state(settings, store)
    # PostgreSQL answers the list without blocking the loop on its round trip; SQLite reads in process, faster inline.
    list_async = service.describe_training_tasks_async if store.db.async_readers is not None else None
    gateway = Gateway(settings, store, service, limiter, nonces, offload, clock=clock, list_async=list_async)
    probes = Probes(store, executor, watch, StoreCollector(store, settings.executor), clock=clock)
    console = console_files.ConsoleFiles()
    prefix = console_files.PREFIX
    routes: dict[str, Handler] = dict.fromkeys(PATHS, probes)
    routes |= {prefix: console, prefix + "/": console}
    closers.append(gateway.request_log.flush)  # the request lines still gathered (requestlog.py)
    return App(gateway=gateway, store=store, runner=runner, routes=routes, closers=closers)


def _shared_state(settings: Settings, store: Store) -> tuple[RateLimiter, NonceStore]:
    """The rate limiter and nonce memory: in Redis when configured (issue 10 item 9), shared by every worker and
    replica; else windows in this process and nonces in the database."""
    database_nonces = store.nonces
    if settings.redis_url is None:
        return LocalRateLimiter(settings.rate_limit), database_nonces
    from tione_server.redisstate import RedisLink, RedisNonceStore, RedisRateLimiter  # the optional [redis] extra

    link = RedisLink(settings.redis_url, settings.redis_prefix)
    return RedisRateLimiter(link, settings.rate_limit), RedisNonceStore(link, database_nonces)


def executor_host(settings: Settings, store: Store, catalogue: Catalogue) -> Host:
    """What the executor gets beyond Settings (issue 9): the account uids, the image table, the GPUs found here
    (TIONE_GPU_PROC_DIR / TIONE_GPU_DEV_DIR point discovery elsewhere: a test or operator hook). The scheduler
    counts the same GPUs."""
    proc = Path(settings.gpu_proc_dir) if settings.gpu_proc_dir else PROC_GPUS
    dev = Path(settings.gpu_dev_dir) if settings.gpu_dev_dir else Path("/dev")
    return Host(account_uid=store.accounts.uid, image_roots=catalogue.image_roots, gpus=discover(proc, dev))


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
    logging.root.handlers[0].set_name(HANDLER_NAME)  # requestlog.py writes request lines to it directly
    # The format uses none of these, and gathering them is most of a record's cost, paid on every request at
    # `info` (the logging HOWTO's "Optimization": the caller's frame, thread, process and multiprocessing names).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
