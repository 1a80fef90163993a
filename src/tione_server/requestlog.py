"""The one INFO line per request (issue 7 F16), written without building a LogRecord (issue 12).

At `info` every request logs a line, and a LogRecord plus its formatting cost about a tenth of a list request.
When logging is set up as `serve` sets it up (app.configure_logging: one stream handler on the root logger), the
line is formatted here, byte for byte as that handler's format would, and written under the handler's lock. On the
event loop, lines are gathered and written together at most FLUSH_SECONDS later (one write, not one per request);
`flush` writes what is pending (the app calls it when it stops). Any other setup (a test's capture handler, a
user's dictConfig) gets an ordinary record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TextIO

HANDLER_NAME = "tione-stderr"
"""The name app.configure_logging gives its handler; only that one is written to directly."""
FLUSH_SECONDS = 0.05
"""The longest a request's line waits before it is written."""


class RequestLog:
    """Writes INFO lines for one logger name: the request lines, and the task state lines (events.py)."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)
        self._clock = (-1, "")
        """The second last written and its asctime, one tuple: the runner and handler threads write lines too."""
        self._pending: list[str] = []
        self._flush_at: asyncio.TimerHandle | None = None

    def enabled(self) -> bool:
        """Whether an INFO line would be written (build the message only then)."""
        return self._logger.isEnabledFor(logging.INFO)

    def info(self, message: str) -> None:
        """Log `message` at INFO, as `logging.getLogger(name).info(message)` would."""
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        handler = _own_handler(logger)
        if handler is None:
            logger.info("%s", message)
            return
        now = time.time()
        second = int(now)
        clock = self._clock
        if clock[0] != second:  # the formatter's asctime: local time, then milliseconds after a comma
            clock = self._clock = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
        line = f"{clock[1]},{int((now - second) * 1000):03d} INFO {logger.name}: {message}\n"
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop: no timer to flush it later
            _write(handler, line)
            return
        self._pending.append(line)
        if self._flush_at is None:
            self._flush_at = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write the lines gathered so far."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        lines, self._pending = self._pending, []
        handler = _own_handler(self._logger)
        if lines and handler is not None:
            _write(handler, "".join(lines))


def _write(handler: logging.StreamHandler[TextIO], text: str) -> None:
    handler.acquire()
    try:
        handler.stream.write(text)
        handler.flush()
    finally:
        handler.release()


def _own_handler(logger: logging.Logger) -> logging.StreamHandler[TextIO] | None:
    """The stream handler configure_logging installed, when it is the only place a record would go."""
    root = logging.root
    if logger.handlers or not logger.propagate or len(root.handlers) != 1:
        return None
    handler = root.handlers[0]
    if handler.name != HANDLER_NAME or not isinstance(handler, logging.StreamHandler) or handler.level > logging.INFO:
        return None
    return handler
