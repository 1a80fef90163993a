"""Task state changes as log lines: one INFO line per change, whether the API or the runner made it.

The request log says what was asked; these lines say what happened to a task afterwards (issue 7 F16).
"""

from __future__ import annotations

from tione_server.requestlog import RequestLog

_log = RequestLog("tione_server.tasks")
"""Written as the request lines are, without a LogRecord: a create and each of its run's moves log a line."""


def state_changed(task_id: str, run_id: str, uin: str, before: str, after: str, reason: str = "") -> None:
    """Log `before -> after` for one run of a task, with the reason when there is one (FailureReason, the action)."""
    if _log.enabled():
        suffix = f" ({reason})" if reason else ""
        _log.info(f"task {task_id} run {run_id} uin={uin} {before or '-'} -> {after}{suffix}")
