"""The one place request paths are confined (paths.py) and archives unpacked (executors/archives.py), on their own.

Real files, real symlinks, real archives; the live-server side of the same rules is in test_confinement.py.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from tione_server.executors.archives import BadArchive, unpack
from tione_server.paths import MAX_LENGTH, PathRefused, Tree, refusal


@pytest.mark.parametrize(
    ("value", "absolute_ok", "refused"),
    [
        ("bucket/code/train.py", False, False),
        ("a/./b/", False, False),
        ("a..b/c..", False, False),  # dots inside a name are just a name
        ("..", False, True),
        ("a/../../b", False, True),
        ("/etc", False, True),
        ("/opt/ml/input/data/train", True, False),
        ("/opt/../etc", True, True),
        ("a\x00b", True, True),
        ("a\x01b", True, True),
        ("a\nb", True, True),
        ("a\x7fb", True, True),
        ("a\x85b", True, True),
        ("数据/训练", False, False),
        ("x" * (MAX_LENGTH + 1), True, True),
    ],
)
def test_refusal_forms(value: str, absolute_ok: bool, refused: bool) -> None:
    assert bool(refusal(value, absolute_ok=absolute_ok)) is refused


def test_tree_resolves_inside_and_refuses_symlinks_out(tmp_path: Path) -> None:
    root = tmp_path / "cos" / "100000000001"
    (root / "b" / "v3").mkdir(parents=True)
    (root / "b" / "v3" / "train.py").write_text("x")
    (root / "b" / "latest").symlink_to("v3")  # a symlink inside the tree is fine
    (tmp_path / "secret").mkdir()
    (root / "b" / "out").symlink_to(tmp_path / "secret")
    (root / "b" / "up").symlink_to("../..")
    tree = Tree(root)
    assert tree.real("b/latest/train.py") == (root / "b" / "v3" / "train.py").resolve()
    fd = tree.open("b/latest/train.py")
    try:
        assert os.read(fd, 10) == b"x"
    finally:
        os.close(fd)
    for bad in ("b/out", "b/out/new", "b/up", "b/up/100000000002/x", "../x", "/etc"):
        with pytest.raises(PathRefused):
            tree.real(bad)
        with pytest.raises(PathRefused):
            tree.open(bad, make_dirs=True)
    assert list((tmp_path / "secret").iterdir()) == []  # nothing was created through the symlink
    with pytest.raises(FileNotFoundError):
        tree.open("b/missing")


def test_tree_open_refuses_a_symlink_swapped_in_after_the_check(tmp_path: Path) -> None:
    root = tmp_path / "cos"
    (root / "b" / "d").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    tree = Tree(root)
    real = tree.real("b/d")
    (root / "b" / "d").rmdir()
    (root / "b" / "d").symlink_to(tmp_path / "elsewhere")  # the race: replaced between the check and the open
    with pytest.raises(PathRefused):
        tree._walk(real.relative_to(root.resolve()).parts, make_dirs=False)


def test_tree_link_refuses_a_mapping_under_another(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    mnt = Tree(tmp_path / "mnt")
    link = mnt.link("/opt/ml/input/data/train", data)
    assert link.resolve() == data.resolve()
    with pytest.raises(PathRefused):
        mnt.link("/opt/ml/input/data/train/inner", data)  # would create a link inside `data`
    with pytest.raises(PathRefused):
        mnt.link("/opt/ml/input/data/train", data)
    with pytest.raises(PathRefused):
        mnt.link("/", data)
    assert list(data.iterdir()) == []


def _tar(members: dict[str, bytes], mode: str = "w:gz") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _zip(members: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    buf.seek(0)
    return buf


def test_unpack_good_archives(tmp_path: Path) -> None:
    unpack(_tar({"pkg/train.py": b"print(1)"}), "code.tar.gz", tmp_path / "t")
    assert (tmp_path / "t" / "pkg" / "train.py").read_bytes() == b"print(1)"
    unpack(_zip({"z/train.py": b"print(2)"}), "code.zip", tmp_path / "z")
    assert (tmp_path / "z" / "z" / "train.py").read_bytes() == b"print(2)"


def _link_tar(target: str, kind: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("link")
        info.type = kind
        info.linkname = target
        tf.addfile(info)
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    ("name", "archive"),
    [
        ("x.zip", io.BytesIO(b"this is not a zip file at all")),
        ("x.tar.gz", io.BytesIO(os.urandom(4096))),
        ("x.tar.gz", io.BytesIO(_tar({"a": os.urandom(100_000)}).getvalue()[:2000])),  # cut short
        ("x.tar.gz", _tar({"../evil.py": b"x"})),
        ("x.tar", _tar({"/tmp/evil.py": b"x"}, mode="w")),
        ("x.tar", _link_tar("/etc/passwd", tarfile.SYMTYPE)),
        ("x.tar", _link_tar("../../outside", tarfile.LNKTYPE)),
        ("x.zip", _zip({"../evil.py": b"x"})),
        ("x.zip", _zip({"/abs.py": b"x"})),
        ("x.tar.bz2", io.BytesIO(b"BZh9" + os.urandom(200))),
        ("x.tar.xz", io.BytesIO(b"\xfd7zXZ\x00" + os.urandom(200))),
    ],
)
def test_unpack_refuses_bad_archives(tmp_path: Path, name: str, archive: io.BytesIO) -> None:
    dest = tmp_path / "code"
    dest.mkdir()
    with pytest.raises(BadArchive):
        unpack(archive, name, dest)
    assert not (tmp_path / "evil.py").exists()
    assert not (tmp_path / "outside").exists()


def test_unpack_bounds_members_and_bytes(tmp_path: Path) -> None:
    many = {f"f{i}": b"" for i in range(11)}
    with pytest.raises(BadArchive, match="more than 10 members"):
        unpack(_tar(many), "x.tar.gz", tmp_path / "a", max_members=10)
    with pytest.raises(BadArchive, match="more than 10 members"):
        unpack(_zip(many), "x.zip", tmp_path / "b", max_members=10)
    # A bomb: a megabyte of zeros in a few kilobytes; refused before anything is written.
    bomb = {"zeros": b"\0" * 2**20}
    with pytest.raises(BadArchive, match="more than"):
        unpack(_zip(bomb), "x.zip", tmp_path / "c", max_bytes=2**19)
    with pytest.raises(BadArchive, match="more than"):
        unpack(_tar(bomb), "x.tar.gz", tmp_path / "d", max_bytes=2**19)
    assert not (tmp_path / "c").exists()
    assert not (tmp_path / "d").exists()
