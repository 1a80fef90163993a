"""The `tione-server` command: serve, keys {create,list,revoke}, import."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import click

from tione_server.config import Settings
from tione_server.store import Store

database_option = click.option(
    "--database",
    "database",
    envvar="TIONE_DATABASE_URL",
    default=None,
    help="sqlite:///path.db or postgresql+psycopg://...; default: tione.db in the working directory.",
)


def _settings(**overrides: object) -> Settings:
    return Settings.from_env(**overrides)


@click.group()
def main() -> None:
    """A self-hosted TI-ONE (2021-11-11) training-task service."""


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
    type=click.Choice(["local", "simulate"]),
    default=None,
    help="How tasks run (also TIONE_EXECUTOR): local processes (default) or a simulated timeline.",
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
def serve(
    host: str, port: int, database: str | None, rate_limit: int, catalogue: str | None, workers: int,
    executor: str | None, data_dir: str | None, cos_root: str | None,
) -> None:  # fmt: skip
    """Run the API server."""
    import uvicorn

    from tione_server.app import SETTINGS_ENV, create_app
    from tione_server.catalogue import Catalogue

    settings = _settings(
        host=host, port=port, database_url=database, rate_limit=rate_limit, catalogue_path=catalogue,
        executor=executor, data_dir=str(Path(data_dir).resolve()) if data_dir else None, cos_root=cos_root,
    )  # fmt: skip
    if settings.catalogue_path:
        # Check the file before anything starts, so a bad catalogue is one clear line, not a traceback.
        try:
            Catalogue.load(Path(settings.catalogue_path))
        except ValueError as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(2)
    app = create_app(settings)
    if app.store.count_active_keys() == 0:
        click.echo(
            "No API keys yet. Create one with:\n"
            f"  tione-server keys create --uin 100000000001 --database {settings.database_url}",
            err=True,
        )
    click.echo(f"tione-server listening on http://{host}:{port} (database {settings.database_url})", err=True)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    # uvicorn starts each worker as a fresh process that imports its app by name; the app built above
    # has done its job (schema created once, keys checked) and the workers rebuild it from `settings`.
    app.store.close()
    os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
    uvicorn.run(
        "tione_server.app:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )


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
    store = Store(_settings(database_url=database).database_url)
    key = store.create_key(uin=uin, app_id=app_id or uin, sub_uin=sub_uin or uin)
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
    store = Store(_settings(database_url=database).database_url)
    for k in store.list_keys():
        state = "revoked" if k.revoked else "active"
        click.echo(f"{k.secret_id}  uin={k.uin} app_id={k.app_id} sub_uin={k.sub_uin}  {state}")


@keys.command("revoke")
@click.argument("secret_id")
@database_option
def keys_revoke(secret_id: str, database: str | None) -> None:
    """Revoke a key: requests it signs are refused from now on."""
    store = Store(_settings(database_url=database).database_url)
    if not store.revoke_key(secret_id):
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
    store = Store(settings.database_url)
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
