"""Executors: how a run becomes pods. The contract is base.py; the names a server can run with, registry.py.

Kept import-light: the pod supervisor (podwrap.py) runs as a standalone script and never imports this package.
"""

from __future__ import annotations

from tione_server.executors.base import Executor
from tione_server.executors.registry import EXECUTORS, make_executor

__all__ = ["EXECUTORS", "Executor", "make_executor"]
