"""Persistence: one Store class over SQLite (the default) and PostgreSQL, through SQLAlchemy Core."""

from tione_server.store.store import IdElsewhere, SchemaTooNew, Store
from tione_server.store.urls import DatabaseError, display_url, normalise_url, sqlite_path

__all__ = ["DatabaseError", "IdElsewhere", "SchemaTooNew", "Store", "display_url", "normalise_url", "sqlite_path"]
