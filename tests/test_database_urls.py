"""Database URLs (issue 7 F14): one normal form for every command, and one line on stderr, exit 2, for a URL or a
database nobody can use. `normalise_url` is tested directly; every command through a real subprocess."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL
from tests.live import BIN, cli, create_key, free_port
from tione_server.config import Settings
from tione_server.store import DatabaseError, Store, normalise_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@127.0.0.1:5432/db", "postgresql+psycopg://u@127.0.0.1:5432/db"),
        ("postgresql://u:pw@db.example:5433/x", "postgresql+psycopg://u:pw@db.example:5433/x"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////var/lib/tione.db", "sqlite:////var/lib/tione.db"),
    ],
)
def test_normalise_url_accepts_the_documented_forms(given: str, expected: str) -> None:
    assert normalise_url(given) == expected
    assert normalise_url(expected) == expected  # idempotent: workers normalise again


def test_normalise_url_makes_a_relative_sqlite_path_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalise_url("sqlite:///tione.db") == f"sqlite:///{tmp_path / 'tione.db'}"
    assert Settings(database_url="sqlite:///tione.db").database_url == f"sqlite:///{tmp_path / 'tione.db'}"


@pytest.mark.parametrize(
    "url",
    ["mysql://root@127.0.0.1/tione", "postgresql+psycopg2://u@h/db", "sqlite://", "sqlite:///:memory:", "tione.db"],
)
def test_normalise_url_refuses_what_no_command_can_use(url: str) -> None:
    with pytest.raises(DatabaseError):
        normalise_url(url)
    with pytest.raises(DatabaseError):
        Settings(database_url=url)


def test_store_accepts_postgres_scheme_when_reachable() -> None:
    if not POSTGRES_URL:
        pytest.skip("TIONE_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgres://")
    store = Store(plain)
    try:
        assert store.db.dialect == "postgresql"
    finally:
        store.close()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def _assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    """Exit 2, stdout empty, and one `Error:` line (after the `Database:` line) on stderr: no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Database: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    tasks = tmp_path / "tasks.json"
    tasks.write_text("[]", encoding="utf-8")
    return {
        "serve": ["serve", "--port", str(free_port())],
        "keys create": ["keys", "create", "--uin", "100000000001"],
        "keys list": ["keys", "list"],
        "keys revoke": ["keys", "revoke", "AKIDnope"],
        "import": ["import", str(tasks), "--uin", "100000000001", "--region", "ap-guangzhou"],
    }


@pytest.mark.parametrize("command", ["serve", "keys create", "keys list", "keys revoke", "import"])
def test_cli_unreachable_postgres_is_one_line(command: str, tmp_path: Path) -> None:
    # `postgres://` is accepted as PostgreSQL: the failure is the connection (a closed port on loopback).
    url = f"postgres://postgres@127.0.0.1:{free_port()}/tione"
    result = _run([*_commands(tmp_path)[command], "--database", url], tmp_path)
    _assert_one_line_error(result)
    assert "PostgreSQL" in result.stderr


@pytest.mark.parametrize("command", ["serve", "keys create", "keys list", "keys revoke", "import"])
def test_cli_unsupported_scheme_is_one_line(command: str, tmp_path: Path) -> None:
    result = _run([*_commands(tmp_path)[command], "--database", "mysql://root@127.0.0.1/tione"], tmp_path)
    _assert_one_line_error(result)
    assert "mysql" in result.stderr


def test_cli_sqlite_in_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = _run(["keys", "list", "--database", f"sqlite:///{tmp_path / 'nowhere' / 'tione.db'}"], tmp_path)
    _assert_one_line_error(result)
    assert not (tmp_path / "nowhere").exists()


def test_cli_bad_url_in_environment_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN), "keys", "list"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
        env={"PATH": "/usr/bin:/bin", "TIONE_DATABASE_URL": "mysql://root@127.0.0.1/tione"},
    )  # fmt: skip
    _assert_one_line_error(result)


def test_keys_create_reports_the_database_it_wrote(tmp_path: Path) -> None:
    # issue 7 F15: a relative URL is resolved against the working directory and the absolute file is named.
    result = subprocess.run(
        [str(BIN), "keys", "create", "--uin", "100000000001", "--json", "--database", "sqlite:///keys.db"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert result.stderr.splitlines() == [f"Database: sqlite:///{tmp_path / 'keys.db'} (new file)"]
    assert (tmp_path / "keys.db").exists()


@pytest.mark.parametrize("command", ["keys list", "keys revoke", "import"])
def test_cli_says_which_database(command: str, sqlite_url: str, tmp_path: Path) -> None:
    create_key(sqlite_url, "100000000001")  # the file exists: no `(new file)`
    result = cli(*_commands(tmp_path)[command], database_url=sqlite_url, check=False)
    assert f"Database: {sqlite_url}" in result.stderr.splitlines()


def test_cli_hides_the_database_password(tmp_path: Path) -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{free_port()}/tione"
    result = _run(["keys", "list", "--database", url], tmp_path)
    assert "s3cret" not in result.stderr
    assert result.returncode == 2
