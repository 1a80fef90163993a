"""Rate limits and v1 nonces shared through Redis (issue 10 item 9).

The limiter and nonce-store contracts run over every implementation (in-process or database, and Redis); over
HTTP, `serve --workers 2 --redis-url` counts both workers into one window, and a server whose Redis (one this
test starts on its own port) goes away keeps serving: limits fail open, nonces fall back to the database, the
outage is logged once and shown in /metrics. Redis tests use the machine's Redis at 127.0.0.1:6379 with a
random key prefix each, and are skipped, saying so, where no Redis or redis-server is found.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live import Server, free_port, running_server
from tests.rawhttp import V1, Creds, RawClient, tc3_request, v1_request
from tione_server.ratelimit import LocalRateLimiter, RateLimiter
from tione_server.replay import NonceStore
from tione_server.store import Store
from tione_server.store.nonces import Nonces

redis = pytest.importorskip("redis", reason="the redis package is not installed: Redis tests skipped")

from tione_server.redisstate import RedisLink, RedisNonceStore, RedisRateLimiter  # noqa: E402

MACHINE_REDIS = "redis://127.0.0.1:6379/0"
LIMITED = "RequestLimitExceeded"
REPLAYED = "AuthFailure.SignatureExpire"


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis, skipped (visibly) where none answers."""
    try:
        redis.Redis.from_url(MACHINE_REDIS, socket_connect_timeout=0.5).ping()
    except redis.RedisError as err:
        pytest.skip(f"no Redis at {MACHINE_REDIS} ({err}): Redis tests skipped")
    return MACHINE_REDIS


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test alone; its keys are removed afterwards."""
    name = f"tione-test-{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}*"))
    if keys:
        client.delete(*keys)


@dataclass
class OwnRedis:
    """A redis-server this test started (and may stop and start again) on its own port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: the Redis outage test is skipped")
    server = OwnRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the limiter contract ----------------------------------------------------------------------------------------


@pytest.fixture(params=["local", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> Callable[[int], RateLimiter]:
    if request.param == "local":
        return LocalRateLimiter
    prefix = request.getfixturevalue("prefix")
    link = RedisLink(request.getfixturevalue("redis_url"), prefix)
    return lambda limit: RedisRateLimiter(link, limit)


def test_ratelimit_refuses_past_the_limit_within_one_second(make_limiter: Callable[[int], RateLimiter]) -> None:
    limiter = make_limiter(3)
    assert [limiter.hit("100000000001", "DescribeTrainingTasks", 1000.1 + i / 10) for i in range(5)] == [
        None, None, None, 4, 5,
    ]  # fmt: skip
    assert limiter.hit("100000000002", "DescribeTrainingTasks", 1000.6) is None  # another account
    assert limiter.hit("100000000001", "CreateTrainingTask", 1000.6) is None  # another action


def test_ratelimit_a_new_second_opens_a_new_window(make_limiter: Callable[[int], RateLimiter]) -> None:
    limiter = make_limiter(2)
    assert [limiter.hit("100000000001", "DescribeTrainingTasks", 2000.9) for _ in range(3)] == [None, None, 3]
    assert limiter.hit("100000000001", "DescribeTrainingTasks", 2001.0) is None


def test_ratelimit_zero_turns_it_off(make_limiter: Callable[[int], RateLimiter]) -> None:
    limiter = make_limiter(0)
    assert {limiter.hit("100000000001", "DescribeTrainingTasks", 3000.5) for _ in range(50)} == {None}


# -- the nonce-store contract ------------------------------------------------------------------------------------


@pytest.fixture(params=["database", "redis"])
def make_nonces(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Callable[[], NonceStore]]:
    """New stores over one shared memory, as each worker of one server builds its own."""
    store = Store(sqlite_url)
    try:
        if request.param == "database":
            yield lambda: Nonces(store.db)
        else:
            url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("prefix")
            yield lambda: RedisNonceStore(RedisLink(url, prefix), Nonces(store.db))
    finally:
        store.close()


def test_nonce_store_accepts_a_pair_once(make_nonces: Callable[[], NonceStore]) -> None:
    nonces = make_nonces()
    now = time.time()
    assert nonces.accept("AKID1", "42", int(now) + 300, now)
    assert not nonces.accept("AKID1", "42", int(now) + 300, now)
    assert not make_nonces().accept("AKID1", "42", int(now) + 300, now)  # another worker
    assert nonces.accept("AKID2", "42", int(now) + 300, now)  # another key's nonce
    assert nonces.accept("AKID1", "9" * 5000, int(now) + 300, now)  # any length (kept as its hash)
    assert not nonces.accept("AKID1", "9" * 5000, int(now) + 300, now)


def test_nonce_store_forgets_a_pair_after_its_second(make_nonces: Callable[[], NonceStore]) -> None:
    nonces = make_nonces()
    now = time.time()
    assert nonces.accept("AKID1", "43", int(now) + 1, now)
    assert not nonces.accept("AKID1", "43", int(now) + 300, now)
    time.sleep(int(now) + 1.05 - time.time())  # Redis expires keys by its own clock
    later = time.time()
    assert nonces.accept("AKID1", "43", int(later) + 300, later)


def test_nonce_store_redis_race_has_one_winner(redis_url: str, prefix: str, sqlite_url: str) -> None:
    """Two workers offered each of 30 nonces at once: SET NX lets exactly one accept each."""
    store = Store(sqlite_url)
    workers = [RedisNonceStore(RedisLink(redis_url, prefix), Nonces(store.db)) for _ in range(2)]
    wins = [0, 0]
    barrier = threading.Barrier(2)
    now = time.time()

    def offer(i: int) -> None:
        for k in range(30):
            barrier.wait()
            wins[i] += workers[i].accept("AKID1", str(k), int(now) + 300, now)

    threads = [threading.Thread(target=offer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert sum(wins) == 30


# -- Redis away ----------------------------------------------------------------------------------------------------


def test_ratelimit_redis_unreachable_fails_open_and_logs_once_a_minute(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [100.0]
    with caplog.at_level(logging.WARNING, logger="tione_server.redis"):
        link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", "p:", clock=lambda: clock[0])  # nobody listens
        limiter = RedisRateLimiter(link, 1)
        store = Store(sqlite_url)
        nonces = RedisNonceStore(link, Nonces(store.db))
        for step in range(40):  # 40 s of requests while Redis is away
            clock[0] += 1.0
            assert [limiter.hit("100000000001", "DescribeTrainingTasks", 5000.0) for _ in range(3)] == [None] * 3
            assert nonces.accept("AKID1", str(step), 6000, 5000.0)  # the database remembers it...
            assert not nonces.accept("AKID1", str(step), 6000, 5000.0)  # ...so a replay is still refused
        clock[0] += 30.0
        limiter.hit("100000000001", "DescribeTrainingTasks", 5000.0)
        store.close()
    outages = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(outages) == 2  # at the first failure, and again once a minute had passed


def _burst(servers: list[Server], count: int, *, connections: int = 1) -> list[str | None]:
    """`count` signed TC3 requests of the first server's key sent at once over `connections` keep-alive
    connections (dealt round-robin to `servers`), all inside one second of the clock (the limiter's window);
    the reply codes."""
    key = servers[0].key
    creds = Creds(key.secret_id, key.secret_key)
    lock = threading.Lock()

    def send(server: Server, n: int, codes: list[str | None]) -> None:
        with RawClient(server.port) as raw:
            for _ in range(n):
                code = raw.send(tc3_request(creds, server.endpoint, {"Limit": 1})).code
                with lock:
                    codes.append(code)

    share = [count // connections + (i < count % connections) for i in range(connections)]
    for _ in range(5):
        time.sleep(1.01 - time.time() % 1)  # start a fresh second: a window of its own, ended inside it
        second = int(time.time())
        codes: list[str | None] = []
        threads = [
            threading.Thread(target=send, args=(servers[i % len(servers)], n, codes)) for i, n in enumerate(share)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if int(time.time()) == second:
            return codes
    raise AssertionError("no burst fitted in one second")


def test_serve_redis_workers_share_one_rate_limit(sqlite_url: str, tmp_path: Path, redis_url: str, prefix: str) -> None:
    """20/s per account and action with `--workers 2`: 40 requests in one second over 8 connections get 20 answers,
    whichever worker accepted each connection (the kernel decides; the replica test below fixes who gets what)."""
    args = ("--workers", "2", "--rate-limit", "20", "--redis-url", redis_url)
    with running_server(sqlite_url, tmp_path, extra_args=args, env={"TIONE_REDIS_PREFIX": prefix}) as srv:
        codes = _burst([srv], 40, connections=8)
    assert codes.count(None) == 20
    assert codes.count(LIMITED) == 20


def test_serve_redis_replicas_share_one_rate_limit(
    database_url: str, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """Two replicas on one database and one Redis: 20 requests to each in the same second get 20 answers in all."""
    args = ("--rate-limit", "20", "--redis-url", redis_url)
    env = {"TIONE_REDIS_PREFIX": prefix}
    with (
        running_server(database_url, tmp_path, extra_args=args, env=env) as a,
        running_server(database_url, tmp_path, extra_args=args, env=env) as b,
    ):
        b.key = a.key  # one account: B's own key is another SecretId of the same UIN; use A's on both
        codes = _burst([a, b], 40, connections=8)
    assert codes.count(None) == 20
    assert codes.count(LIMITED) == 20


def _assert_limited(codes: list[str | None]) -> None:
    """A burst of 10 under a limit of 3 per second: it spans one or two one-second windows, so 3 to 6 get through
    and the rest are refused."""
    assert 3 <= codes.count(None) <= 6, codes
    assert codes.count(LIMITED) == len(codes) - codes.count(None), codes


def _metric(server: Server, name: str) -> str | None:
    """A sample of /metrics (plain HTTP, no signature: issue 10 item 10)."""
    with urllib.request.urlopen(f"http://{server.endpoint}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return next((line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")), None)


def test_serve_redis_outage_fails_open_and_keeps_refusing_replays(
    sqlite_url: str, tmp_path: Path, own_redis: OwnRedis
) -> None:
    args = ("--rate-limit", "3", "--redis-url", own_redis.url)
    with running_server(sqlite_url, tmp_path, extra_args=args) as srv:
        _assert_limited(_burst([srv], 10))
        assert _metric(srv, "tione_redis_up") == "1.0"
        own_redis.stop()
        assert _burst([srv], 5) == [None] * 5  # limits fail open
        creds = Creds(srv.key.secret_id, srv.key.secret_key)
        with RawClient(srv.port) as raw:
            signed = v1_request(creds, srv.endpoint, {"Limit": 1}, common=V1(nonce="123456789"))
            assert raw.send(signed).code is None
            assert raw.send(signed).code == REPLAYED  # the database remembered the nonce
        assert _metric(srv, "tione_redis_up") == "0.0"
        own_redis.start()  # the server tries Redis again a second after its last failure
        deadline = time.monotonic() + 10
        while LIMITED not in (codes := _burst([srv], 10)) and time.monotonic() < deadline:
            time.sleep(0.5)
        _assert_limited(codes)
        assert _metric(srv, "tione_redis_up") == "1.0"
    log = srv.log_path.read_text()
    assert log.count("Redis unreachable") == 1
    assert log.count("Redis reachable again") == 1
