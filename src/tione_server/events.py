"""Task state changes as log lines: one INFO line per change, whether the API or the runner made it.

The request log says what was asked; these lines say what happened to a task afterwards (issue 7 F16).
"""

from __future__ import annotations

import logging

log = logging.getLogger("tione_server.tasks")


def state_changed(task_id: str, run_id: str, uin: str, before: str, after: str, reason: str = "") -> None:
    """Log `before -> after` for one run of a task, with the reason when there is one (FailureReason, the action)."""
    if log.isEnabledFor(logging.INFO):
        suffix = f" ({reason})" if reason else ""
        log.info("task %s run %s uin=%s %s -> %s%s", task_id, run_id, uin, before or "-", after, suffix)
