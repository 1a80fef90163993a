"""Persistence over SQLite (the default) and PostgreSQL, through SQLAlchemy Core: one small class per concept
(keys, tasks, lifecycle, runs, leases, secrets, nonces) over a shared `Database`, held together by `Store`."""

from tione_server.store.database import SchemaTooNew
from tione_server.store.store import Store
from tione_server.store.tasks import IdElsewhere
from tione_server.store.urls import DatabaseError, display_url, normalise_url, sqlite_path

__all__ = ["DatabaseError", "IdElsewhere", "SchemaTooNew", "Store", "display_url", "normalise_url", "sqlite_path"]
