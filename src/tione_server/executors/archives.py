"""Unpacking a code package archive (issue 7 A3): a hostile input, so bounded and confined before it is used.

An archive whose members would land outside the target (`..`, absolute names, links pointing out, devices), that
holds more than MAX_MEMBERS members or more than MAX_BYTES once unpacked, or that is not the archive its name
says, raises BadArchive: the same bytes would fail the same way every time, so the run fails and is never retried.
Errors of the machine itself (a full disk) stay OSError for the caller to retry.
"""

from __future__ import annotations

import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tione_server.paths import refusal

SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip")
MAX_MEMBERS = 100_000
"""Most members (files, directories, links) an archive may hold."""
MAX_BYTES = 4 * 2**30
"""Most bytes an archive may unpack to (4 GiB): a zip bomb ends the run instead of filling the disk."""
_DATA_ERRORS = (
    tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, lzma.LZMAError,
    NotImplementedError, RuntimeError, ValueError,
)  # fmt: skip
"""What a malformed archive raises while being read (RuntimeError: an encrypted zip member)."""


class BadArchive(Exception):
    """The archive cannot be unpacked here, and never will be; the text says why."""


def is_archive(name: str) -> bool:
    """Whether a code package of this name is unpacked (rather than copied as it is)."""
    return name.endswith(SUFFIXES)


def unpack(
    src: BinaryIO,
    name: str,
    dest: Path,
    *,
    max_members: int = MAX_MEMBERS,
    max_bytes: int = MAX_BYTES,
    rootfs: bool = False,
) -> None:
    """Unpack the archive `src` (called `name`) into the directory `dest`; BadArchive when it may not be.

    `rootfs`: an image's root filesystem (issue 9 item 4), whose symlinks may point to absolute paths.
    """
    try:
        if name.endswith(".zip"):
            _unzip(src, dest, max_members, max_bytes)
        else:
            _untar(src, dest, max_members, max_bytes, _rootfs_filter if rootfs else tarfile.data_filter)
    except _DATA_ERRORS as err:
        raise BadArchive(f"not a readable {_kind(name)} archive ({type(err).__name__}: {err})") from None
    except OSError as err:
        if err.errno is None:  # gzip/bz2 data errors carry no errno; a full disk or an I/O error does
            raise BadArchive(f"not a readable {_kind(name)} archive ({err})") from None
        raise


def _kind(name: str) -> str:
    return next(s for s in SUFFIXES if name.endswith(s)).lstrip(".")


def _check_member(name: str, count: int, total: int, max_members: int, max_bytes: int) -> None:
    if count > max_members:
        raise BadArchive(f"holds more than {max_members} members")
    if total > max_bytes:
        raise BadArchive(f"unpacks to more than {max_bytes} bytes")
    reason = refusal(name)
    if reason:
        raise BadArchive(f"member {name!r} {reason}")


def _unzip(src: BinaryIO, dest: Path, max_members: int, max_bytes: int) -> None:
    with zipfile.ZipFile(src) as zf:
        total = 0
        infos = zf.infolist()
        for count, info in enumerate(infos, 1):
            # Declared sizes bound what is written: zipfile stops reading a member at its declared size.
            total += info.file_size
            _check_member(info.filename, count, total, max_members, max_bytes)
        zf.extractall(dest)  # noqa: S202 - every member name was checked above


_Filter = Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]


def _rootfs_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """PEP 706's "data" filter, except that a symlink may point anywhere: in an image, `/usr/bin/x ->
    /etc/alternatives/x` resolves inside the pod's own root. Writes through a symlink stay refused when they would
    land outside `dest` (both filters check that), and device files and fifos are skipped rather than refused."""
    if member.isdev():
        return None
    if member.issym():
        return tarfile.tar_filter(member, dest)
    return tarfile.data_filter(member, dest)


def _untar(src: BinaryIO, dest: Path, max_members: int, max_bytes: int, tar_filter: _Filter) -> None:
    with tarfile.open(fileobj=src, mode="r:*") as tf:
        total = 0
        count = 0
        while (member := tf.next()) is not None:  # one header at a time: a million-member tar stops early
            count += 1
            total += max(member.size, 0)
            _check_member(member.name, count, total, max_members, max_bytes)
        # The "data" filter refuses links pointing out, device files and absolute names, and drops modes that
        # would make files set-uid or world-writable (PEP 706).
        tf.extractall(dest, filter=tar_filter)  # noqa: S202 - data_filter or _rootfs_filter (PEP 706), as above
