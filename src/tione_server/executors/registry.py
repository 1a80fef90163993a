"""Executor names -> factories: the one list the CLI (`serve --executor` choices), the settings and create_app read.

A factory builds its executor from the server's Settings and imports its module only when called, so naming an
executor here costs nothing to servers that use another (issue 8 item 3). Each entry must pass
tests/test_executor_contract.py, which runs over every name below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from tione_server.executors.base import Executor
from tione_server.executors.gpus import Inventory

if TYPE_CHECKING:
    from tione_server.config import Settings


@dataclass(frozen=True)
class Host:
    """What the composition root hands an executor beyond Settings (issue 9): the store's per-account uids, the
    catalogue's image table and the GPUs discovered here (the scheduler counts the same ones)."""

    account_uid: Callable[[str], int] | None = None
    image_roots: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    gpus: Inventory = field(default_factory=lambda: Inventory((), ()))


def _local(settings: Settings, host: Host) -> Executor:
    from tione_server.executors.local import LocalExecutor

    # Pods run in other directories: no relative paths.
    return LocalExecutor(
        data_dir=Path(settings.data_dir).resolve(), cos_root=settings.cos_dir.resolve(), sandboxed=settings.sandbox,
        account_uid=host.account_uid, image_roots=host.image_roots, gpu_inventory=host.gpus,
    )  # fmt: skip


def _simulate(settings: Settings, host: Host) -> Executor:
    from tione_server.executors.simulate import SimulateExecutor

    submit, start, run = settings.simulate_seconds
    return SimulateExecutor(
        data_dir=Path(settings.data_dir).resolve(), submit_seconds=submit, start_seconds=start, run_seconds=run
    )


def _ray(settings: Settings, host: Host) -> Executor:
    from tione_server.executors.rayexec import RayExecutor  # never imports ray itself: its driver process does

    return RayExecutor(
        address=settings.ray_address or "auto", data_dir=Path(settings.data_dir).resolve(),
        cos_root=settings.cos_dir.resolve(), lost_after=settings.ray_lost_seconds,
    )  # fmt: skip


EXECUTORS: dict[str, Callable[[Settings, Host], Executor]] = {"local": _local, "simulate": _simulate, "ray": _ray}
"""Every executor a server can run with (setting `executor`, `serve --executor`; docs/executors.md)."""


def make_executor(settings: Settings, host: Host | None = None) -> Executor:
    """The executor the settings name (Settings checks the name against EXECUTORS)."""
    return EXECUTORS[settings.executor](settings, host or Host())
