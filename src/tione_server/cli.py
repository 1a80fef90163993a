"""The `tione-server` command: serve, keys {create,list,revoke}, import.

What a user can get wrong (a database URL, a port in use) is one line on stderr and exit status 2, never a
traceback; every command that opens a database says which one (issue 7 F14, F15).
"""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from tione_server import __version__
from tione_server.config import Settings
from tione_server.executors.registry import EXECUTORS
from tione_server.netpolicy import parse_networks
from tione_server.store import DatabaseError, Store, display_url, sqlite_path

database_option = click.option(
    "--database",
    "database",
    envvar="TIONE_DATABASE_URL",
    default=None,
    help="sqlite:///path/to/tione.db or postgresql://user@host:5432/db; default: tione.db in the working directory.",
)


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2 (issue 7 F14)."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except (DatabaseError, ValueError) as err:  # a bad URL, or a TIONE_* value no setting takes
        _fail(str(err))


def _open_store(settings: Settings) -> Store:
    """The store, after saying on stderr which database it is, and whether it is a file made just now: a fresh
    `tione.db` in another folder is then visible at once (issue 7 F15)."""
    path = sqlite_path(settings.database_url)
    new = " (new file)" if path is not None and not path.exists() else ""
    click.echo(f"Database: {display_url(settings.database_url)}{new}", err=True)
    try:
        return Store(settings.database_url)
    except DatabaseError as err:
        _fail(str(err))


def _networks(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """`--callback-allow`: a bad CIDR is one clear usage error, not a traceback."""
    try:
        return parse_networks(value) if value else None
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@click.group()
@click.version_option(__version__, prog_name="tione-server")
def main() -> None:
    """A self-hosted TI-ONE (2021-11-11) training-task service."""


LOG_LEVELS = ("debug", "info", "warning", "error")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to bind.")
@database_option
@click.option(
    "--rate-limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests per second per account and action; 0 turns the limit off.",
)
@click.option(
    "--catalogue",
    default=None,
    metavar="PATH",
    help="TOML file of instance types, prices, resource groups, frameworks (also TIONE_CATALOGUE); default: built-in.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes sharing the port (about one per core); each counts the rate limit on its own.",
)
@click.option(
    "--executor",
    type=click.Choice(list(EXECUTORS)),
    default=None,
    help="How tasks run (also TIONE_EXECUTOR); default: local, each pod a process here. See docs/executors.md.",
)
@click.option(
    "--data-dir",
    default=None,
    metavar="DIR",
    help="Run directories and logs (also TIONE_DATA_DIR); default: ./tione-data.",
)
@click.option(
    "--cos-root",
    default=None,
    metavar="DIR",
    help="Local directory standing in for COS (also TIONE_COS_ROOT); default: DATA_DIR/cos.",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="HOST:PORT|auto",
    help="The Ray cluster of --executor ray (also RAY_ADDRESS); default: auto, the one started on this machine.",
)
@click.option(
    "--callback-allow",
    default=None,
    metavar="CIDR[,CIDR...]",
    envvar="TIONE_CALLBACK_ALLOW",
    callback=_networks,
    help="Networks callbacks may reach (also TIONE_CALLBACK_ALLOW); default: all but loopback, link-local, "
    "unspecified and multicast, which only a network listed inside them opens (e.g. 127.0.0.0/8).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default=None,
    help="debug, info (default: a line per request and per task state change), warning or error "
    "(also TIONE_LOG_LEVEL).",
)
@click.option(
    "--redis-url",
    default=None,
    metavar="URL",
    envvar="TIONE_REDIS_URL",
    help="redis://host:6379/0: rate limits and v1 nonces shared by every worker and replica (also TIONE_REDIS_URL); "
    "needs the [redis] extra. Limits fail open while Redis is unreachable.",
)
@click.option(
    "--sandbox",
    type=click.Choice(["on", "off"]),
    default=None,
    help="Run each pod of the local executor in a sandbox: own namespaces, uid, limits, image (also TIONE_SANDBOX; "
    "default: on). off: any key holder can run commands as this server's user.",
)
@click.option("--tls-cert", default=None, metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate: serve HTTPS (with --tls-key). Needed beyond loopback.")  # fmt: skip
@click.option("--tls-key", default=None, metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key of --tls-cert.")  # fmt: skip
def serve(
    host: str, port: int, database: str | None, rate_limit: int, catalogue: str | None, workers: int,
    executor: str | None, data_dir: str | None, cos_root: str | None, ray_address: str | None,
    callback_allow: tuple[str, ...] | None, log_level: str | None, tls_cert: str | None, tls_key: str | None,
    redis_url: str | None, sandbox: str | None,
) -> None:  # fmt: skip
    """Run the API server."""
    import uvicorn

    from tione_server.app import SETTINGS_ENV, configure_logging, create_app
    from tione_server.catalogue import Catalogue
    from tione_server.executors.cgroups import CgroupUnavailable
    from tione_server.executors.sandbox import SandboxUnavailable
    from tione_server.metrics import prepare_multiprocess_dir
    from tione_server.serving import PLAINTEXT_WARNING, is_loopback, serve_workers, uvicorn_options

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together.")
    settings = _settings(
        host=host, port=port, database_url=database, rate_limit=rate_limit, catalogue_path=catalogue,
        executor=executor, data_dir=str(Path(data_dir).resolve()) if data_dir else None, cos_root=cos_root,
        ray_address=ray_address, callback_allow=callback_allow, log_level=log_level, tls_cert=tls_cert, tls_key=tls_key,
        redis_url=redis_url, sandbox=None if sandbox is None else sandbox == "on",
    )  # fmt: skip
    if settings.catalogue_path:
        # Check the file before anything starts, so a bad catalogue is one clear line, not a traceback.
        try:
            Catalogue.load(Path(settings.catalogue_path))
        except ValueError as err:
            _fail(str(err))
    if settings.log_level not in LOG_LEVELS:
        _fail(f"TIONE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not `{settings.log_level}`.")
    if settings.redis_url is not None and importlib.util.find_spec("redis") is None:
        _fail("--redis-url needs the redis package: pip install 'tione-server[redis]'.")
    _check_port(host, port)
    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except (DatabaseError, SandboxUnavailable, CgroupUnavailable) as err:
        _fail(str(err))  # issue 9 item 6: no sandbox here and no --sandbox off: say how to fix it
    click.echo(_banner(settings, workers, has_keys=app.store.keys.count_active() > 0), err=True)
    if not tls_cert and not is_loopback(host):
        click.echo(PLAINTEXT_WARNING.format(host=host), err=True)  # issue 7 C8
    # uvicorn's own INFO lines repeat the banner; it speaks at warning unless asked for debug or error only.
    server_level = settings.log_level if settings.log_level in ("debug", "error") else "warning"
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=server_level, access_log=False, **uvicorn_options(settings))
        return
    # uvicorn starts each worker as a fresh process that imports its app by name; the app built above
    # has done its job (schema created once, keys checked) and the workers rebuild it from `settings`.
    app.store.close()
    os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
    # Workers are fresh processes: /metrics of any one adds up all of them (issue 10 item 10, docs/deploy.md).
    made = prepare_multiprocess_dir()
    options = {"log_level": server_level, "access_log": False, **uvicorn_options(settings)}
    try:
        status = serve_workers("tione_server.app:app_from_env", workers=workers, host=host, port=port, options=options)
    except OSError as err:  # the address is taken, or not one of this machine's
        _fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    if status:
        sys.exit(status)


def _check_port(host: str, port: int) -> None:
    """Bind once before anything starts, so a port in use is one clear line rather than a banner followed by a
    failure (issue 7 F15). SO_REUSEADDR as uvicorn sets it: only a listening socket makes this fail."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        _fail(f"cannot listen on --host {host} ({err.strerror}).")
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                _fail(f"port {port} on {host} is already in use (another tione-server?); choose one with --port.")
            _fail(f"cannot listen on {host}:{port} ({err.strerror}).")


def _endpoint(settings: Settings) -> str:
    """The URL clients use: a wildcard bind address is reached through loopback."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if settings.tls_cert else 'http'}://{host}:{settings.port}"


def _command(name: str) -> str:
    """How to run `name` from here: the copy next to this Python (a virtualenv's bin), relative to the working
    directory when it is below it, so a pasted line works without activating the virtualenv (issue 7 F16)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        return name
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


NO_SANDBOX_WARNING = (
    "  WARNING:   --sandbox off: pods run on this machine as this server's user; any API key holder can run "
    "commands as that user (issue 9; docs/executors.md)"
)


def _banner(settings: Settings, workers: int, *, has_keys: bool) -> str:
    """What is being served and how to reach it; with no keys yet, the command that makes one (issue 7 F15)."""
    endpoint = _endpoint(settings)
    executor = settings.executor
    if executor == "local":
        executor += f" (runs in {settings.data_dir}, COS at {settings.cos_dir})"
    elif executor == "ray":
        executor += (
            f" (cluster {settings.ray_address or 'auto'}; runs in {settings.data_dir}, COS at {settings.cos_dir})"
        )
    lines = [
        f"tione-server {__version__} serving {endpoint}/",
        f"  console:   {endpoint}/console/",
        f"  database:  {display_url(settings.database_url)}",
        f"  executor:  {executor}",
        f"  workers:   {workers}",
        f"  regions:   {', '.join(settings.regions)}",
        f"  log level: {settings.log_level}",
    ]
    if settings.redis_url:
        lines.append(f"  redis:     rate limits and v1 nonces shared (keys {settings.redis_prefix}*)")
    if executor.startswith("local") and not settings.sandbox:
        lines.append(NO_SANDBOX_WARNING)
    if not has_keys:
        database = display_url(settings.database_url)
        lines += [
            "No API keys yet. Create one with:",
            f"  {_command('tione-server')} keys create --uin 100000000001 --database {database}",
        ]
    lines += [
        "Then try:",
        f"  {_command('tccli')} tione DescribeTrainingTasks --endpoint {endpoint} --region {settings.regions[0]} "
        "--secretId AKID... --secretKey ...",
    ]
    return "\n".join(lines)


@main.group()
def keys() -> None:
    """Manage the keys that sign requests."""


@keys.command("create")
@click.option("--uin", required=True, help="Account (UIN) the key acts for.")
@click.option("--app-id", default=None, help="Account AppId (default: the UIN).")
@click.option("--sub-uin", default=None, help="Sub-user the key belongs to (default: the account itself).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@database_option
def keys_create(uin: str, app_id: str | None, sub_uin: str | None, as_json: bool, database: str | None) -> None:
    """Create a key; its SecretKey is shown only this once."""
    _require_digits(uin, "--uin")
    store = _open_store(_settings(database_url=database))
    key = store.keys.create(uin=uin, app_id=app_id or uin, sub_uin=sub_uin or uin)
    if as_json:
        record = {"SecretId": key.secret_id, "SecretKey": key.secret_key, "Uin": key.uin}
        record |= {"AppId": key.app_id, "SubUin": key.sub_uin}
        click.echo(json.dumps(record))
    else:
        click.echo(f"SecretId:  {key.secret_id}\nSecretKey: {key.secret_key}\nUin: {key.uin}")
        click.echo(f"AppId: {key.app_id}\nSubUin: {key.sub_uin}\n(The SecretKey is not shown again.)")


@keys.command("list")
@database_option
def keys_list(database: str | None) -> None:
    """List keys (never their secrets)."""
    store = _open_store(_settings(database_url=database))
    for k in store.keys.list():
        state = "revoked" if k.revoked else "active"
        click.echo(f"{k.secret_id}  uin={k.uin} app_id={k.app_id} sub_uin={k.sub_uin}  {state}")


@keys.command("revoke")
@click.argument("secret_id")
@database_option
def keys_revoke(secret_id: str, database: str | None) -> None:
    """Revoke a key: requests it signs are refused from now on."""
    store = _open_store(_settings(database_url=database))
    if not store.keys.revoke(secret_id):
        click.echo(f"No active key {secret_id}.", err=True)
        sys.exit(1)
    click.echo(f"Revoked {secret_id}.")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--uin", required=True, help="Account the tasks belong to.")
@click.option("--region", required=True, help="Region the tasks belong to, e.g. ap-guangzhou.")
@click.option("--project", default=None, help="Workspace (TiProjectId); default workspace when omitted.")
@click.option(
    "--app-id", default=None, help="AppId shown for items without one (default: the AppId of the account's keys)."
)
@database_option
def import_(file: Path, uin: str, region: str, project: str | None, app_id: str | None, database: str | None) -> None:
    """Import tasks saved from the real service (history: nothing executes them)."""
    from tione_server.importer import ImportError_, account_app_id, import_file

    _require_digits(uin, "--uin")
    settings = _settings(database_url=database)
    store = _open_store(settings)
    progress = _Progress()
    try:
        count = import_file(
            store,
            file,
            uin=uin,
            app_id=account_app_id(store, uin, app_id),
            region=region,
            project=project,
            settings=settings,
            progress=progress,
        )
    except ImportError_ as err:
        progress.end()
        click.echo(f"Import failed, nothing was imported: {err}", err=True)
        sys.exit(1)
    progress.end()
    click.echo(f"Imported {count} task(s).")


class _Progress:
    """Tasks read so far and the rate, on stderr: redrawn in place on a terminal, a line per batch otherwise."""

    def __init__(self) -> None:
        self.done = 0
        self.started = time.monotonic()
        self.shown = False
        self.tty = sys.stderr.isatty()

    def __call__(self, batch: int) -> None:
        self.done += batch
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        line = f"imported {self.done} tasks ({rate:.0f}/s)"
        click.echo(f"\r{line}" if self.tty else line, err=True, nl=not self.tty)
        self.shown = True

    def end(self) -> None:
        if self.shown and self.tty:
            click.echo("", err=True)


def _require_digits(value: str, option: str) -> None:
    if not value.isdigit():
        raise click.BadParameter("must be a string of digits, e.g. 100000000001", param_hint=option)
