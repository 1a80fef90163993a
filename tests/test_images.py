"""Resolving a task's ImageInfo.ImageUrl through the catalogue's [images] table (issue 9 item 4): the built-in
`host` image, directories, and tarballs unpacked once, safely, into a cache."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tione_server.executors import images
from tione_server.executors.images import ImageUnavailable


def make_tarball(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def test_images_host_and_no_image_are_the_host(tmp_path: Path) -> None:
    assert images.resolve("host", {}, tmp_path) is None
    assert images.resolve("", {}, tmp_path) is None


def test_images_unknown_image_names_itself(tmp_path: Path) -> None:
    with pytest.raises(ImageUnavailable, match=r"ccr\.example/ns/missing:1"):
        images.resolve("ccr.example/ns/missing:1", {"ccr.example/ns/other:1": tmp_path}, tmp_path / "cache")


def test_images_directory_is_used_as_it_is(tmp_path: Path) -> None:
    assert images.resolve("mine:1", {"mine:1": tmp_path}, tmp_path / "cache") == tmp_path


def test_images_tarball_is_unpacked_once_with_its_absolute_links(tmp_path: Path) -> None:
    tarball = make_tarball(
        tmp_path / "rootfs.tar.gz",
        [
            (member("usr/bin", tarfile.DIRTYPE, mode=0o755), b""),
            (member("usr/bin/tool", mode=0o4755), b"#!/bin/sh\n"),
            (member("bin", tarfile.SYMTYPE, "usr/bin"), b""),
            (member("etc/alternatives/tool", tarfile.SYMTYPE, "/usr/bin/tool"), b""),
            (member("dev/sda", tarfile.BLKTYPE), b""),
        ],
    )
    cache = tmp_path / "cache"
    root = images.resolve("tools:1", {"tools:1": tarball}, cache)
    assert root is not None
    assert (root / "etc/alternatives/tool").readlink() == Path("/usr/bin/tool")  # resolves inside the pod
    assert (root / "usr/bin/tool").stat().st_mode & 0o7777 == 0o755  # no set-uid bit
    assert not (root / "dev/sda").exists()  # no device files
    (root / "marker").touch()
    assert images.resolve("tools:1", {"tools:1": tarball}, cache) == root  # not unpacked again
    assert [p.name for p in cache.iterdir()] == [root.name]
    os.utime(tarball, ns=(1, 1))  # a changed tarball is unpacked anew
    again = images.resolve("tools:1", {"tools:1": tarball}, cache)
    assert again != root
    assert again is not None
    assert not (again / "marker").exists()


@pytest.mark.parametrize(
    "bad",
    [
        member("../escape"),
        member("etc/passwd", tarfile.LNKTYPE, "/etc/passwd"),
    ],
    ids=["escaping name", "hard link to a host file"],
)
def test_images_tarball_cannot_reach_outside_its_cache(tmp_path: Path, bad: tarfile.TarInfo) -> None:
    tarball = make_tarball(tmp_path / "bad.tar", [(member("ok"), b"x"), (bad, b"")])
    with pytest.raises(ImageUnavailable, match="bad:1"):
        images.resolve("bad:1", {"bad:1": tarball}, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # nothing half-unpacked is left


def test_images_write_through_a_link_out_is_refused(tmp_path: Path) -> None:
    tarball = make_tarball(
        tmp_path / "sneaky.tar", [(member("etc", tarfile.SYMTYPE, "/etc"), b""), (member("etc/evil"), b"x")]
    )
    with pytest.raises(ImageUnavailable, match="sneaky:1"):
        images.resolve("sneaky:1", {"sneaky:1": tarball}, tmp_path / "cache")
    assert not Path("/etc/evil").exists()
