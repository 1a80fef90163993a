"""Executor names -> factories: the one list the CLI (`serve --executor` choices), the settings and create_app read.

A factory builds its executor from the server's Settings and imports its module only when called, so naming an
executor here costs nothing to servers that use another (issue 8 item 3). Each entry must pass
tests/test_executor_contract.py, which runs over every name below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tione_server.executors.base import Executor

if TYPE_CHECKING:
    from tione_server.config import Settings


def _local(settings: Settings) -> Executor:
    from tione_server.executors.local import LocalExecutor

    # Pods run in other directories: no relative paths.
    return LocalExecutor(data_dir=Path(settings.data_dir).resolve(), cos_root=settings.cos_dir.resolve())


def _simulate(settings: Settings) -> Executor:
    from tione_server.executors.simulate import SimulateExecutor

    submit, start, run = settings.simulate_seconds
    return SimulateExecutor(
        data_dir=Path(settings.data_dir).resolve(), submit_seconds=submit, start_seconds=start, run_seconds=run
    )


EXECUTORS: dict[str, Callable[[Settings], Executor]] = {"local": _local, "simulate": _simulate}
"""Every executor a server can run with (setting `executor`, `serve --executor`; docs/executors.md)."""


def make_executor(settings: Settings) -> Executor:
    """The executor the settings name (Settings checks the name against EXECUTORS)."""
    return EXECUTORS[settings.executor](settings)
