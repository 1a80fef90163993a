"""Confinement of every path a request names (issue 7 A2): the one place that says what such a path may be and
where it may lead on this machine.

`refusal` is the syntactic check CreateTrainingTask applies (no `..` component, NUL, control character or, for
storage paths, absolute path; bounded length). `Tree` is a directory a request's paths are resolved under (an
account's COS tree, a run's mount root): a path that resolves outside it, through `..` or a symlink, is refused,
and files are opened component by component without following symlinks, so a symlink swapped in after the check
is refused too rather than followed. Standard library only, no service types: executors and sandboxes reuse it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_LENGTH = 1024
"""Longest path a request may name (COS keys are at most 850 bytes)."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathRefused(ValueError):
    """A request path that may not be used; the text says why, without naming the field (callers do)."""


def refusal(value: str, *, absolute_ok: bool = False) -> str:
    """Why `value` may not name a path ("" when it may); `absolute_ok` for paths inside a pod (MappingPath)."""
    if len(value) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if "\x00" in value:
        return "contains a NUL character"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        return "contains a control character"
    if not absolute_ok and value.startswith("/"):
        return "is an absolute path; give a path relative to the bucket"
    if ".." in value.split("/"):
        return "has a `..` component"
    return ""


def relative_parts(value: str, *, absolute_ok: bool = False) -> tuple[str, ...]:
    """The components of an acceptable path (without `.` and empty ones); PathRefused otherwise."""
    reason = refusal(value, absolute_ok=absolute_ok)
    if reason:
        raise PathRefused(reason)
    return tuple(p for p in value.split("/") if p not in ("", "."))


@dataclass(frozen=True, slots=True)
class Tree:
    """A directory that request paths are confined to; see the module docstring."""

    root: Path

    def real(self, rel: str) -> Path:
        """Where `rel` leads, symlinks resolved; PathRefused when that is outside the tree."""
        base = self.root.resolve()
        real = base.joinpath(*relative_parts(rel)).resolve()
        if real != base and not real.is_relative_to(base):
            raise PathRefused("leads outside the account's storage (through a symlink)")
        return real

    def open(self, rel: str, *, make_dirs: bool = False) -> int:
        """A file descriptor of `rel` (a file or a directory), which must exist unless `make_dirs` (then it is
        created as a directory, with its parents). The caller closes it. FileNotFoundError when missing."""
        parts = self.real(rel).relative_to(self.root.resolve()).parts
        if make_dirs:
            self.root.mkdir(parents=True, exist_ok=True)
        fd = self._walk(parts[:-1], make_dirs=make_dirs)
        if not parts:
            return fd
        try:
            if make_dirs:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(parts[-1], 0o755, dir_fd=fd)
            try:
                return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as err:
                if _is_link(fd, parts[-1]):
                    raise PathRefused("was replaced by a symlink while being opened") from err
                raise
        finally:
            os.close(fd)

    def link(self, rel: str, target: Path) -> Path:
        """Create the symlink `rel` -> `target` inside the tree (parents made as needed, none of them a symlink);
        returns its path. PathRefused when a parent is a symlink or `rel` exists."""
        parts = relative_parts(rel, absolute_ok=True)
        if not parts:
            raise PathRefused("names the mount root itself")
        self.root.mkdir(parents=True, exist_ok=True)
        fd = self._walk(parts[:-1], make_dirs=True)
        try:
            os.symlink(target, parts[-1], dir_fd=fd)
        except FileExistsError:
            raise PathRefused("is already used by another mapping") from None
        finally:
            os.close(fd)
        return self.root.joinpath(*parts)

    def _walk(self, parts: tuple[str, ...], *, make_dirs: bool) -> int:
        """A descriptor of the directory root/parts, opened one component at a time, never through a symlink."""
        fd = os.open(self.root.resolve(), _DIR_FLAGS)
        try:
            for part in parts:
                if make_dirs:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as err:
                    if _is_link(fd, part):
                        raise PathRefused(f"goes through the symlink `{part}`") from err
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def fd_path(fd: int) -> Path:
    """A path that names exactly the open file or directory `fd` (Linux `/proc/self/fd`), for APIs that take
    paths (shutil.copytree) but must not re-resolve the name the descriptor was opened by."""
    return Path(f"/proc/self/fd/{fd}")
