"""Server settings: one frozen object, read from the command line and environment once, passed explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tione_server.executors.registry import EXECUTORS
from tione_server.netpolicy import ALLOW_ALL, parse_networks
from tione_server.store.urls import normalise_url

DEFAULT_REGIONS = ("ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-nanjing")
"""Regions served by default (api3-protocol §8 #17); other known region codes answer UnsupportedRegion."""

KNOWN_REGIONS = frozenset(
    {
        "ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-nanjing", "ap-chengdu", "ap-chongqing",
        "ap-hongkong", "ap-singapore", "ap-bangkok", "ap-jakarta", "ap-seoul", "ap-tokyo", "ap-mumbai",
        "na-siliconvalley", "na-ashburn", "na-toronto", "eu-frankfurt", "sa-saopaulo",
        "ap-shanghai-fsi", "ap-shenzhen-fsi", "ap-beijing-fsi",
    }
)  # fmt: skip
"""Every API 3.0 region code (api3-protocol appendix A); anything else is InvalidParameterValue."""

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""The URL forms redis-py connects with."""


def default_database_url() -> str:
    """A SQLite file in the working directory."""
    return f"sqlite:///{Path.cwd() / 'tione.db'}"


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know; built once by the CLI (or a test) and passed down."""

    database_url: str = field(default_factory=default_database_url)
    """`sqlite:///path.db` or `postgresql://user@host/db` (also TIONE_DATABASE_URL); kept normalised
    (`store.urls.normalise_url`: an absolute SQLite path, the psycopg driver), so every process agrees."""
    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 8080
    """Port to bind."""
    rate_limit: int = 20
    """Requests per second per account and action; 0 turns the limit off."""
    regions: tuple[str, ...] = DEFAULT_REGIONS
    """Regions this server serves (TIONE_REGIONS, comma-separated)."""
    time_offset_hours: int = 8
    """Offset of task time strings on the wire (spec §1.3: `+08`)."""
    timestamp_window: int = 300
    """Seconds a signed request's timestamp may differ from server time (api3-protocol §4)."""
    max_body_bytes: int = 10 * 1024 * 1024
    """Largest TC3 POST body; v1 bodies are capped at 1 MB and GET queries at 32 KB (api3-protocol §1)."""
    read_timeout: float = 30.0
    """Seconds a client has to send a request's headers, and again its body; slower clients get their
    connection closed (TIONE_READ_TIMEOUT; issue 7 B5)."""
    body_bytes_in_flight: int = 64 * 1024 * 1024
    """Body bytes (beyond the first 64 KB of each) that one worker's requests may hold at once; a body that would
    pass it answers ServiceUnavailable (TIONE_BODY_BYTES_IN_FLIGHT; issue 7 B5)."""
    tls_cert: str | None = None
    """PEM certificate (chain) file; with tls_key the server speaks HTTPS only (serve --tls-cert; issue 7 C8)."""
    tls_key: str | None = None
    """PEM private key file of tls_cert (serve --tls-key)."""
    catalogue_path: str | None = None
    """TOML file of instance types, prices, resource groups and frameworks (TIONE_CATALOGUE); None: built-in."""
    executor: str = "local"
    """How runs execute (TIONE_EXECUTOR), one of executors.registry.EXECUTORS: `local` runs each pod as a process
    here; `simulate` runs nothing and moves tasks through the states on a timeline (docs/executors.md)."""
    data_dir: str = field(default_factory=lambda: str(Path.cwd() / "tione-data"))
    """Where runs keep their working directories and logs (TIONE_DATA_DIR)."""
    cos_root: str | None = None
    """Local directory standing in for COS (TIONE_COS_ROOT): `bucket/path` of account UIN is
    `<cos_root>/<UIN>/bucket/path`; None: `<data_dir>/cos`."""
    ray_address: str | None = None
    """The Ray cluster of `executor` `ray` (RAY_ADDRESS, `serve --ray-address`): `host:port` of its head, or
    `auto` (the one started on this machine); None: `auto` (issue 10 item 1)."""
    ray_lost_seconds: float = 30.0
    """Seconds the Ray cluster may be unreachable before its running tasks end FAILED (TIONE_RAY_LOST_SECONDS)."""
    stop_grace_seconds: float = 10.0
    """Seconds between SIGTERM and SIGKILL when a run is stopped (TIONE_STOP_GRACE_SECONDS)."""
    runner_interval: float = 0.25
    """Seconds between runner passes when nothing is about to change (TIONE_RUNNER_INTERVAL)."""
    simulate_seconds: tuple[float, float, float] = (1.0, 2.0, 10.0)
    """Simulate executor timeline (TIONE_SIMULATE_SECONDS, `submit,start,run`): seconds SUBMITTING, STARTING
    and RUNNING."""
    callback_allow: tuple[str, ...] = ALLOW_ALL
    """Networks callbacks may be delivered to (TIONE_CALLBACK_ALLOW, `CIDR[,CIDR...]`); loopback, link-local,
    unspecified and multicast addresses stay denied unless a listed network lies inside them (issue 7 D10)."""

    log_level: str = "info"
    """`debug`, `info`, `warning` or `error` (TIONE_LOG_LEVEL); `info` logs one line per request and per task
    state change (issue 7 F16)."""
    redis_url: str | None = None
    """`redis://host:6379/0` (TIONE_REDIS_URL): rate-limit windows and v1 nonces are kept there, shared by every
    worker and replica (issue 10 item 9); None: per-process windows and nonces in the database."""
    redis_prefix: str = "tione:"
    """Prefix of every Redis key this server writes (TIONE_REDIS_PREFIX): several servers can share one Redis."""
    sandbox: bool = True
    """Run each pod of the local executor in a sandbox (TIONE_SANDBOX `on`/`off`, `serve --sandbox`; issue 9): its
    own namespaces, uid, cgroup limits and image. Off: pods run as this server's user, which any key holder can
    then run commands as."""
    gpu_proc_dir: str | None = None
    """Where GPUs are discovered (TIONE_GPU_PROC_DIR): the driver's /proc/driver/nvidia/gpus, or a directory laid
    out the same way (a test or operator hook); None: the driver's."""
    gpu_dev_dir: str | None = None
    """The device nodes of the discovered GPUs (TIONE_GPU_DEV_DIR); None: /dev."""

    def __post_init__(self) -> None:
        # One normal form for every process (`serve --workers N` hands this object on); raises
        # store.DatabaseError with a one-line message for a URL no command can use (issue 7 F14).
        object.__setattr__(self, "database_url", normalise_url(self.database_url))
        if self.redis_url is not None and not self.redis_url.startswith(REDIS_SCHEMES):
            # The URL itself is not repeated: it may hold a password.
            raise ValueError(f"--redis-url (TIONE_REDIS_URL) must start with {', '.join(REDIS_SCHEMES)}.")
        if self.executor not in EXECUTORS:
            raise ValueError(f"TIONE_EXECUTOR must be one of {', '.join(EXECUTORS)}, not `{self.executor}`.")

    @property
    def cos_dir(self) -> Path:
        """The directory COS paths map to."""
        return Path(self.cos_root) if self.cos_root else Path(self.data_dir) / "cos"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from TIONE_* environment variables, with explicit overrides (CLI options) winning."""
        values: dict[str, object] = {}
        if url := os.environ.get("TIONE_DATABASE_URL"):
            values["database_url"] = url
        if regions := os.environ.get("TIONE_REGIONS"):
            values["regions"] = tuple(r.strip() for r in regions.split(",") if r.strip())
        if offset := os.environ.get("TIONE_TIME_OFFSET_HOURS"):
            values["time_offset_hours"] = int(offset)
        if catalogue := os.environ.get("TIONE_CATALOGUE"):
            values["catalogue_path"] = catalogue
        for name in ("executor", "data_dir", "cos_root", "log_level", "redis_url", "redis_prefix"):
            if value := os.environ.get(f"TIONE_{name.upper()}"):
                values[name] = value
        if ray_address := os.environ.get("RAY_ADDRESS"):
            values["ray_address"] = ray_address
        for name in ("stop_grace_seconds", "runner_interval", "read_timeout", "ray_lost_seconds"):
            if value := os.environ.get(f"TIONE_{name.upper()}"):
                values[name] = float(value)
        if in_flight := os.environ.get("TIONE_BODY_BYTES_IN_FLIGHT"):
            values["body_bytes_in_flight"] = int(in_flight)
        if timeline := os.environ.get("TIONE_SIMULATE_SECONDS"):
            values["simulate_seconds"] = tuple(float(x) for x in timeline.split(","))
        if allow := os.environ.get("TIONE_CALLBACK_ALLOW"):
            values["callback_allow"] = parse_networks(allow)
        if sandbox := os.environ.get("TIONE_SANDBOX"):
            if sandbox not in ("on", "off"):
                raise ValueError(f"TIONE_SANDBOX must be `on` or `off`, not `{sandbox}`.")
            values["sandbox"] = sandbox == "on"
        for name in ("gpu_proc_dir", "gpu_dev_dir"):
            if value := os.environ.get(f"TIONE_{name.upper()}"):
                values[name] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
