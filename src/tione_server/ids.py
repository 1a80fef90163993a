"""Identifiers: task numbers (`train-` + 19 digits, snowflake style) and run ids (spec §1.4).

A number is `(milliseconds since 2015-01-01) << 22 | worker << 12 | sequence`: strictly increasing within a
process, unique across processes (the worker bits are random per process; a clash on insert is retried by the
caller), and ordered by creation time across processes to the millisecond. With this epoch the numbers have
19 digits from 2022 until 2084, and sort among real TI-ONE ids of the same moment.
"""

from __future__ import annotations

import os
import secrets
import string
import threading
import time

EPOCH_MS = 1_420_070_400_000
"""2015-01-01T00:00:00Z."""
_LOWER_ALNUM = string.ascii_lowercase + string.digits


class Snowflake:
    """A generator of strictly increasing 63-bit numbers."""

    def __init__(self, worker: int | None = None) -> None:
        self.worker = secrets.randbelow(1024) if worker is None else worker % 1024
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """A number larger than every number this generator returned before."""
        with self._lock:
            candidate = (int(time.time() * 1000) - EPOCH_MS) << 22 | self.worker << 12
            # Same millisecond (or a clock step backwards): continue after the last one.
            self._last = max(candidate, self._last + 1)
            return self._last


_GENERATOR = Snowflake()


def next_num() -> int:
    """A fresh task or run number."""
    return _GENERATOR.next()


def task_id(num: int) -> str:
    """`train-1329791605108055040`."""
    return f"train-{num}"


def run_id(task: str) -> str:
    """`<task id>-` + 12 lowercase alphanumerics, e.g. `train-1329791605108055040-a3vq1whfx24g`: one random
    number below 36**12 written in base 36, one draw from the OS where a draw per character cost twelve."""
    n = secrets.randbelow(_RUN_SUFFIXES)
    chars = []
    for _ in range(12):
        n, digit = divmod(n, 36)
        chars.append(_LOWER_ALNUM[digit])
    return f"{task}-" + "".join(chars)


_RUN_SUFFIXES = 36**12


def request_id() -> str:
    """A random (version 4) UUID as text, the form of every reply's RequestId (api3-protocol §5.1).

    The same 122 random bits as `str(uuid.uuid4())`, formatted without a UUID object: a third of the cost, on
    every request."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_VARIANT = "89ab"
"""The RFC 4122 variant's first hex digit: binary 10xx."""
