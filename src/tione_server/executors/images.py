"""From a task's `ImageInfo.ImageUrl` to the root filesystem its pods see (issue 9 item 4).

The catalogue's `[image_roots]` table maps an image URL to a directory or a tarball on this machine; a tarball is
unpacked once into a cache directory named after the tarball (path, size, modification time), so a changed file
is unpacked again and an unchanged one never. The built-in image `host` (and a task naming no image) shows the
host's own /usr, /bin, /lib*, /etc (sandbox.HOST_IMAGE_ENTRIES).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tione_server.executors import archives

HOST = "host"
MAX_MEMBERS = 2_000_000
"""Most members an image tarball may hold (a CUDA image holds a few hundred thousand)."""
MAX_BYTES = 64 * 2**30
"""Most bytes an image tarball may unpack to (64 GiB)."""


class ImageUnavailable(Exception):
    """The task's image cannot be had; the text names it and says why (the task ends SUBMIT_FAILED)."""


def resolve(url: str, table: Mapping[str, Path], cache_dir: Path) -> Path | None:
    """The root filesystem of image `url`: a directory, or None for the built-in `host` image."""
    if url in ("", HOST):
        return None
    path = table.get(url)
    if path is None:
        known = ", ".join(sorted([HOST, *table]))
        raise ImageUnavailable(f"image {url!r} is not in this server's [image_roots] table (known: {known})")
    if path.is_dir():
        return path
    if path.is_file() and archives.is_archive(path.name):
        return _unpacked(url, path, cache_dir)
    raise ImageUnavailable(f"image {url!r}: {path} is neither a directory nor a tarball")


def _unpacked(url: str, tarball: Path, cache_dir: Path) -> Path:
    """The directory `tarball` unpacks to, unpacking it now unless an earlier call (or another server) has."""
    st = tarball.stat()
    key = hashlib.sha256(f"{tarball.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:32]
    dest = cache_dir / key
    if dest.is_dir():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=cache_dir))
    try:
        work.chmod(0o755)  # pods run as other users: they must be able to enter the image
        with tarball.open("rb") as fh:
            archives.unpack(fh, tarball.name, work, max_members=MAX_MEMBERS, max_bytes=MAX_BYTES, rootfs=True)
        work.rename(dest)  # whole or not at all: a crash mid-way leaves only a .unpacking- directory
    except archives.BadArchive as err:
        raise ImageUnavailable(f"image {url!r}: {tarball}: {err}") from None
    except OSError:
        if not dest.is_dir():  # another unpacker won the rename: use its copy
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest
