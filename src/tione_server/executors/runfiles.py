"""Run files: the on-disk layout of runs under the data directory, and their stamped pod logs.

Shared by the executors that keep a run's working directory and logs on this machine (local, simulate); an
executor whose logs live elsewhere (a cluster) implements `read_log` and `remove` itself. Log files hold one
`<unix ns> <text>` line per output line, in time order, so a time window is found by binary search and a huge log
never stalls a request (DescribeLogs, service/logs.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from tione_server.executors.base import END, STREAMS, LogLine


class FileBackedRuns:
    """What executors that keep runs under RunFiles share: removing a run, reading a pod's log."""

    files: RunFiles

    def remove(self, run_id: str) -> None:
        """Delete the run's files (working directory and logs)."""
        self.files.remove(run_id)

    def read_log(
        self, run_id: str, pod: str, stream: str, *, start_ns: int = 0, end_ns: int = END, descending: bool = False
    ) -> Iterator[LogLine]:
        """One pod's stream within [start_ns, end_ns], oldest (or newest) first; nothing when there is no log."""
        if stream in STREAMS:
            yield from self.files.read_log(run_id, pod, stream, start_ns=start_ns, end_ns=end_ns, descending=descending)


class RunFiles:
    """The on-disk layout of runs under the data directory: `runs/<run id>/{code,mnt,pods,logs}`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def root(self, run_id: str) -> Path:
        return self.data_dir / "runs" / run_id

    def code(self, run_id: str) -> Path:
        return self.root(run_id) / "code"

    def mounts(self, run_id: str) -> Path:
        return self.root(run_id) / "mnt"

    def pod_dir(self, run_id: str, pod: str) -> Path:
        return self.root(run_id) / "pods" / pod

    def log(self, run_id: str, pod: str, stream: str) -> Path:
        return self.root(run_id) / "logs" / f"{pod}.{stream}.log"

    def remove(self, run_id: str) -> None:
        shutil.rmtree(self.root(run_id), ignore_errors=True)

    def read_log(
        self, run_id: str, pod: str, stream: str, *, start_ns: int = 0, end_ns: int = END, descending: bool = False
    ) -> Iterator[LogLine]:
        """Lines stamped within [start_ns, end_ns], oldest (or newest) first, read lazily.

        Lines are `<unix ns> <text>` (written by the pod supervisor or the simulator) in time order, so the window
        is found by binary search and only the lines a page needs are read: a huge log never stalls a request.
        """
        try:
            fh = self.log(run_id, pod, stream).open("rb")
        except OSError:
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if descending:
                yield from _backward(fh, _lower_bound(fh, size, end_ns + 1), start_ns)
            else:
                yield from _forward(fh, _lower_bound(fh, size, start_ns), end_ns)


_CHUNK = 64 * 1024


def _parse(raw: bytes) -> tuple[int, str] | None:
    """(ns, text) of a complete stored line (with its newline); None for a torn or foreign one."""
    if not raw.endswith(b"\n"):
        return None
    stamp, _, rest = raw[:-1].partition(b" ")
    return (int(stamp), rest.decode("utf-8", "replace")) if stamp.isdigit() else None


def _line_at(fh: BinaryIO, pos: int) -> tuple[int, int]:
    """(start, ns) of the first line starting at or after byte `pos`; ns END when there is none."""
    if pos == 0:
        fh.seek(0)
    else:
        fh.seek(pos - 1)
        fh.readline()
    start = fh.tell()
    parsed = _parse(fh.readline())
    return start, parsed[0] if parsed else END


def _lower_bound(fh: BinaryIO, size: int, ns: int) -> int:
    """Offset of the first line stamped at or after `ns` (or `size`)."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if _line_at(fh, mid)[1] >= ns:
            hi = mid
        else:
            lo = mid + 1
    return min(_line_at(fh, lo)[0], size)


def _forward(fh: BinaryIO, start: int, end_ns: int) -> Iterator[LogLine]:
    fh.seek(start)
    offset = start
    for raw in iter(fh.readline, b""):
        parsed = _parse(raw)
        if parsed is None:
            if not raw.endswith(b"\n"):
                return  # a line still being written
        elif parsed[0] > end_ns:
            return
        else:
            yield LogLine(parsed[0], offset, parsed[1])
        offset += len(raw)


def _backward(fh: BinaryIO, end: int, start_ns: int) -> Iterator[LogLine]:
    """Lines before byte `end` (a line start), newest first, down to `start_ns`."""
    pos, buf = end, b""
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        fh.seek(pos)
        buf = fh.read(step) + buf  # spans [pos, end) and ends with a newline (or is empty)
        parts = buf.split(b"\n")[:-1]
        offsets = [pos]
        for part in parts[:-1]:
            offsets.append(offsets[-1] + len(part) + 1)
        whole = range(len(parts)) if pos == 0 else range(1, len(parts))  # parts[0] may be cut short
        for i in reversed(whole):
            parsed = _parse(parts[i] + b"\n")
            if parsed is None:
                continue
            if parsed[0] < start_ns:
                return
            yield LogLine(parsed[0], offsets[i], parsed[1])
        buf = parts[0] + b"\n" if parts and pos > 0 else b""
        end = pos + len(buf)


def write_log_line(path: Path, ns: int, text: str) -> None:
    """Append one stamped line (the format RunFiles.read_log reads)."""
    write_log_lines(path, [(ns, text)])


def write_log_lines(path: Path, lines: Iterable[tuple[int, str]]) -> None:
    """Append stamped lines, opening the file once (a pod's whole simulated log at launch, issue 7 B4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        for ns, text in lines:
            for line in text.splitlines() or [""]:
                fh.write(b"%d %s\n" % (ns, line.encode("utf-8", "replace")))
