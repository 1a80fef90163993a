"""Documentation cannot fall behind: every CLI option, setting and implemented action is documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from tione_server.api.extensions import SERVED_ACTIONS, implemented
from tione_server.cli import main
from tione_server.config import Settings
from tione_server.service import TioneService

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        found.append((full, cmd))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, full + " ")
    return found


@pytest.mark.parametrize(("name", "command"), _commands(main))
def test_docs_cli_documents_every_option(name: str, command: click.Command) -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert f"tione-server {name}" in text, f"command `{name}` is not in docs/cli.md"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[0] in text, f"`{name} {param.opts[0]}` is not in docs/cli.md"


def test_docs_configuration_documents_every_setting() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [f.name for f in dataclasses.fields(Settings) if f"`{f.name}`" not in text]
    assert not missing, f"settings not in docs/configuration.md: {missing}"


def test_docs_actions_documents_every_implemented_action() -> None:
    text = (DOCS / "actions.md").read_text(encoding="utf-8")
    served = [a.name for a in SERVED_ACTIONS.values() if implemented(TioneService, a)]  # extensions too (issue 11)
    assert served, "no action is implemented"
    missing = [name for name in served if f"## {name}" not in text]
    assert not missing, f"actions not in docs/actions.md: {missing}"
