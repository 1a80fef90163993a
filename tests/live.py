"""A live tione-server for tests: a real subprocess on a free port, a real database, a real key.

Tests talk to it only over HTTP, through the official SDK, tccli, or raw signed requests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.tione.v20211111 import tione_client

BIN = Path(sys.executable).parent / "tione-server"
REGION = "ap-guangzhou"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, database_url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `tione-server ARGS --database URL` and return its result."""
    return subprocess.run(
        [str(BIN), *args, "--database", database_url],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


@dataclass
class Key:
    """A key created with `tione-server keys create --json`."""

    secret_id: str
    secret_key: str
    uin: str
    app_id: str
    sub_uin: str


def create_key(database_url: str, uin: str, sub_uin: str | None = None) -> Key:
    """A fresh key for `uin` (and sub-user) through the CLI."""
    args = ["keys", "create", "--uin", uin, "--json"] + (["--sub-uin", sub_uin] if sub_uin else [])
    out = json.loads(cli(*args, database_url=database_url).stdout)
    return Key(out["SecretId"], out["SecretKey"], out["Uin"], out["AppId"], out["SubUin"])


@dataclass
class Server:
    """A running server and what a test needs to reach it."""

    port: int
    database_url: str
    key: Key
    process: subprocess.Popen[bytes]
    log_path: Path
    extra_keys: list[Key] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(
        self,
        key: Key | None = None,
        *,
        sign_method: str = "TC3-HMAC-SHA256",
        req_method: str = "POST",
        region: str = REGION,
        language: str = "en-US",
    ) -> tione_client.TioneClient:
        """The official SDK client, pointed at this server."""
        k = key or self.key
        hp = HttpProfile(endpoint=self.endpoint, protocol="http", reqMethod=req_method)
        cp = ClientProfile(httpProfile=hp, signMethod=sign_method, language=language)
        return tione_client.TioneClient(credential.Credential(k.secret_id, k.secret_key), region, cp)

    def common(
        self,
        key: Key | None = None,
        *,
        sign_method: str = "TC3-HMAC-SHA256",
        req_method: str = "POST",
        region: str = REGION,
    ) -> CommonClient:
        """The SDK's CommonClient (sends any JSON, including unknown parameters)."""
        k = key or self.key
        hp = HttpProfile(endpoint=self.endpoint, protocol="http", reqMethod=req_method)
        cp = ClientProfile(httpProfile=hp, signMethod=sign_method, language="en-US")
        return CommonClient("tione", "2021-11-11", credential.Credential(k.secret_id, k.secret_key), region, cp)

    def call(self, action: str, params: dict[str, Any], key: Key | None = None, **kw: Any) -> dict[str, Any]:
        """call_json through CommonClient; returns the `Response` object (raises on an error reply)."""
        return self.common(key, **kw).call_json(action, params)["Response"]  # type: ignore[no-any-return]

    def import_tasks(self, items: list[dict[str, Any]], workdir: Path, region: str = REGION) -> None:
        """Import TrainingTaskSetItem objects for this server's key account through `tione-server import`."""
        path = workdir / f"import-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
        cli("import", str(path), "--uin", self.key.uin, "--region", region, database_url=self.database_url)

    def stop(self) -> None:
        """Terminate the server process."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30.0) -> None:
    """Block until the server accepts connections (or fail with its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


@contextmanager
def running_server(
    database_url: str,
    workdir: Path,
    *,
    uin: str = "100000000001",
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Start `tione-server serve` with a fresh key; stop it afterwards."""
    key = create_key(database_url, uin)
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    args = [str(BIN), "serve", "--port", str(port), "--database", database_url, *extra_args]
    if "--rate-limit" not in extra_args:
        args += ["--rate-limit", "0"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env={**os.environ, **(env or {})}
        )
    server = Server(port=port, database_url=database_url, key=key, process=process, log_path=log_path)
    try:
        wait_for_port(port, process, log_path)
        yield server
    finally:
        server.stop()


def fresh_postgres_database(base_url: str) -> tuple[str, str]:
    """Create an empty database next to `base_url`'s; returns (url, name)."""
    import psycopg

    name = f"tione_test_{uuid.uuid4().hex[:12]}"
    admin = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    prefix, _, _ = base_url.rpartition("/")
    return f"{prefix}/{name}", name


def drop_postgres_database(base_url: str, name: str) -> None:
    """Drop a database made by fresh_postgres_database."""
    import psycopg

    admin = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
