"""Executors: how a run becomes pods. `local` (subprocesses, the default) and `simulate` (a timeline).

Kept import-light: the pod supervisor (podwrap.py) runs as a standalone script and never imports this package.
"""

from __future__ import annotations

from pathlib import Path

from tione_server.executors.base import Executor

EXECUTORS = ("local", "simulate")


def make_executor(
    name: str, *, data_dir: Path, cos_root: Path, simulate_seconds: tuple[float, float, float] = (1.0, 2.0, 10.0)
) -> Executor:
    """The executor a server runs with (setting `executor`)."""
    data_dir, cos_root = data_dir.resolve(), cos_root.resolve()  # pods run elsewhere: no relative paths
    if name == "local":
        from tione_server.executors.local import LocalExecutor

        return LocalExecutor(data_dir=data_dir, cos_root=cos_root)
    if name == "simulate":
        from tione_server.executors.simulate import SimulateExecutor

        submit, start, run = simulate_seconds
        return SimulateExecutor(data_dir=data_dir, submit_seconds=submit, start_seconds=start, run_seconds=run)
    raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Executor", "make_executor"]
