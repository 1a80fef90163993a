"""Persistence: one Store class over SQLite (the default) and PostgreSQL, through SQLAlchemy Core."""

from tione_server.store.store import SchemaTooNew, Store

__all__ = ["SchemaTooNew", "Store"]
