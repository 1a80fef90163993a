"""Database URLs as users type them: one normal form for the engine, a form safe to print, and one-line errors.

Every command and Settings go through `normalise_url`, so `serve`, `keys` and `import` agree on what a URL means
and where a SQLite file is (issue 7 F14, F15). Connecting is the store's job; this module only explains failures.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

URL_FORMS = "Database URLs: sqlite:///path/to/tione.db, postgresql://user@host:5432/db"
"""Appended to every URL error, so the user sees what works."""

_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "postgresql+psycopg"})
_SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite"})


class DatabaseError(Exception):
    """A database the server cannot use (a bad URL, a failed first connection); the message is one line."""


def normalise_url(url: str) -> str:
    """The URL the engine is given: `postgres://` and `postgresql://` mean PostgreSQL through psycopg, and a
    relative SQLite path is made absolute (so every command names the same file, issue 7 F15).

    Idempotent; raises DatabaseError for anything else (another database, a driver we do not ship, no file).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"`{url}` is not a database URL. {URL_FORMS}") from None
    scheme = parsed.drivername
    if scheme in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if scheme not in _SQLITE_SCHEMES:
        raise DatabaseError(f"`{scheme}://` databases are not supported. {URL_FORMS}")
    if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        # An in-memory database is gone with its connection, and every pooled connection would get its own.
        raise DatabaseError(f"`{display_url(url)}` names no SQLite file. {URL_FORMS}")
    path = Path(parsed.database).expanduser().absolute()
    return parsed.set(drivername="sqlite", database=str(path)).render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL with its password hidden: what commands print and logs show."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def sqlite_path(url: str) -> Path | None:
    """The file of a normalised SQLite URL; None for PostgreSQL."""
    parsed = make_url(url)
    return Path(parsed.database or "") if parsed.get_backend_name() == "sqlite" else None


def connect_error(url: str, err: BaseException) -> DatabaseError:
    """One line saying why the first connection to `url` failed (from the driver's error), and what URLs work."""
    reason = _reason(err)
    path = sqlite_path(url)
    if path is not None:
        if not path.parent.is_dir():
            reason = f"the folder {path.parent} does not exist"
        return DatabaseError(f"cannot open the SQLite database {path} ({reason}). {URL_FORMS}")
    parsed = make_url(url)
    at = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    return DatabaseError(f"cannot connect to PostgreSQL at {at} ({reason}). {URL_FORMS}")


def _reason(err: BaseException) -> str:
    """The driver's own words, shortened: psycopg says `connection failed: connection to server at "h", port p
    failed: FATAL:  database "x" does not exist`; keep the last clause of its first line."""
    original = getattr(err, "orig", None) or err
    first = (str(original).strip().splitlines() or [type(original).__name__])[0]
    clause = first.rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip()
    return (clause[:1].lower() + clause[1:]) or type(original).__name__
