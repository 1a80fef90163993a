"""Prometheus metrics (issue 10 item 10): the counters the request path and the background threads feed, the
gauges read from the store at scrape time, and the text a scrape of /metrics returns.

A request costs one counter increment and one histogram observation. Numbers that live in the database
(tasks by status, pods, the runner's lease and lag) are read by StoreCollector when /metrics is scraped, and
cached for CACHE_SECONDS. Labels never carry account data: no UIN, task id or name, only action names of the
API, reply codes, statuses and the lease holder's host and process id.

With `serve --workers N` each worker is its own process; prometheus_client's multiprocess mode (its files in
PROMETHEUS_MULTIPROC_DIR, which `serve` sets up) lets a scrape answered by any worker add up all of them.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tione_server.api._generated import ACTIONS
from tione_server.errors import RequestLimitExceeded
from tione_server.store import Store
from tione_server.store.gauges import live_pods_by_status, oldest_submitting, tasks_by_status

log = logging.getLogger("tione_server.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's switch to multiprocess mode; read when it is first imported, so set before that."""
CACHE_SECONDS = 5.0
"""How long StoreCollector's database reads are reused: scrapes every second cost one read per 5 s."""
LEASE = "runner_lease"
"""The meta row of runner.Lease."""

disable_created_metrics()  # type: ignore[no-untyped-call]  # `*_created` series double the output and say only when this process started

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Request latency buckets: most replies take 1-5 ms (README, Performance)."""

REQUESTS = Counter(
    "tione_requests", "API requests answered, by action and reply code (OK, or the error code).", ["action", "code"]
)
LATENCY = Histogram(
    "tione_request_duration_seconds", "Seconds from a request's headers to its reply, by action.", ["action"],
    buckets=BUCKETS,
)  # fmt: skip
RATE_LIMITED = Counter(
    "tione_rate_limit_refusals", "Requests refused with RequestLimitExceeded, by action.", ["action"]
)
CALLBACKS = Counter(
    "tione_callback_deliveries",
    "Task callbacks by outcome: delivered, or failed (given up after retries, refused by --callback-allow, dropped).",
    ["outcome"],
)
RUNNER_LAST_PASS = Gauge(
    "tione_runner_last_pass_timestamp_seconds",
    "Unix time at which a runner of this replica, holding the lease, last began a pass (absent: none leads here).",
    multiprocess_mode="max",
)


class _Lazy:
    """Metrics that exist only when their feature is configured (an absent series is not a misleading 0)."""

    @functools.cached_property
    def redis_up(self) -> Gauge:
        return Gauge(
            "tione_redis_up",
            "1 while Redis answers; 0 after a failure, while rate limits fail open and nonces use the database.",
            multiprocess_mode="mostrecent",
        )

    @functools.cached_property
    def redis_errors(self) -> Counter:
        return Counter("tione_redis_errors", "Redis calls that failed or timed out.")


LAZY = _Lazy()


def record_request(action: str, code: str, seconds: float) -> None:
    """One answered request. Actions outside the API are `other`, so a client cannot invent label values."""
    name = action if action in ACTIONS else "other"
    counter = _REQUEST_CHILDREN.get((name, code))
    if counter is None:  # labels() costs a lock and a tuple per call: its children are kept (bounded by ACTIONS)
        counter = _REQUEST_CHILDREN[(name, code)] = REQUESTS.labels(name, code)
    counter.inc()
    latency = _LATENCY_CHILDREN.get(name)
    if latency is None:
        latency = _LATENCY_CHILDREN[name] = LATENCY.labels(name)
    latency.observe(seconds)
    if code == RequestLimitExceeded.code:
        RATE_LIMITED.labels(name).inc()


_REQUEST_CHILDREN: dict[tuple[str, str], Counter] = {}
_LATENCY_CHILDREN: dict[str, Histogram] = {}


class StoreCollector(Collector):
    """Gauges read from the database when scraped: tasks by status, pods of live runs by executor and status,
    runner lag and lease holder, and whether the database answered at all."""

    def __init__(self, store: Store, executor: str, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.executor = executor
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._at: float | None = None

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering this collector must not read the database (prometheus_client would collect)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The gauges, read again when the cached ones are older than CACHE_SECONDS."""
        with self._lock:
            now = self.clock()
            if self._at is None or now - self._at >= CACHE_SECONDS:
                self._cached, self._at = self._read(now), now
            return list(self._cached)

    def _read(self, now: float) -> list[Metric]:
        up = GaugeMetricFamily("tione_database_up", "1 when the last scrape could read the database, else 0.")
        try:
            found = self._gauges(now)
        except Exception:  # a scrape reports the outage; it must not fail
            log.exception("metrics: reading the database failed")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *found]

    def _gauges(self, now: float) -> list[Metric]:
        engine = self.store.db.engine
        tasks = GaugeMetricFamily("tione_tasks", "Tasks by status, every account together.", labels=["status"])
        for status, n in sorted(tasks_by_status(engine).items()):
            tasks.add_metric([status], n)
        pods = GaugeMetricFamily(
            "tione_pods", "Pods of runs still in progress, by executor and pod status.", labels=["executor", "status"]
        )
        for status, n in sorted(live_pods_by_status(engine).items()):
            pods.add_metric([self.executor, status], n)
        waiting = oldest_submitting(engine)
        lag = GaugeMetricFamily(
            "tione_runner_lag_seconds",
            "Age of the oldest run still SUBMITTING, which the leading runner prepares on its next pass (0: none).",
        )
        lag.add_metric([], 0.0 if waiting is None else max(0.0, now - waiting))
        holder = GaugeMetricFamily(
            "tione_runner_lease_holder",
            "1 for the runner (host:pid:id) holding the lease; no series while none holds it.",
            labels=["holder"],
        )
        expires = GaugeMetricFamily(
            "tione_runner_lease_expires_in_seconds",
            "Seconds until the runner lease expires unless renewed (<= 0: free).",
        )
        lease = self.store.leases.holder(LEASE)
        if lease is not None and lease[1] > now:
            holder.add_metric([lease[0]], 1)
        expires.add_metric([], 0.0 if lease is None else lease[1] - now)
        return [tasks, pods, lag, holder, expires]


def exposition(store_gauges: CollectorRegistry) -> bytes:
    """The Prometheus text of this process (or, in multiprocess mode, of every worker) and the store's gauges."""
    if os.environ.get(MULTIPROC_ENV):
        base = CollectorRegistry()
        multiprocess.MultiProcessCollector(base)  # type: ignore[no-untyped-call]
    else:
        base = REGISTRY
    return generate_latest(base) + generate_latest(store_gauges)


def prepare_multiprocess_dir() -> Path | None:
    """Before `serve --workers N` starts its workers: the PROMETHEUS_MULTIPROC_DIR they will write to, emptied of a
    previous run's files (prometheus_client requires it); a fresh temporary one when unset, returned so that `serve`
    removes it on exit (None: the operator's own directory, kept)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="tione-metrics-"))
    os.environ[MULTIPROC_ENV] = str(made)
    return made
