"""The one INFO line per request (issue 7 F16), written without building a LogRecord (issue 12).

At `info` every request logs a line, and a LogRecord plus its formatting cost about a tenth of a list request.
When logging is set up as `serve` sets it up (app.configure_logging: one stream handler on the root logger), the
line is formatted here, byte for byte as that handler's format would, and written under the handler's lock.
Any other setup (a test's capture handler, a user's dictConfig) gets an ordinary record.
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

HANDLER_NAME = "tione-stderr"
"""The name app.configure_logging gives its handler; only that one is written to directly."""


class RequestLog:
    """Writes request lines for one logger name."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)
        self._second = -1
        self._stamp = ""

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
        if second != self._second:  # the formatter's asctime: local time, then milliseconds after a comma
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        line = f"{self._stamp},{int((now - second) * 1000):03d} INFO {logger.name}: {message}\n"
        handler.acquire()
        try:
            handler.stream.write(line)
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
