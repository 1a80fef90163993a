"""Persistence: one Store class over SQLite (the default) and PostgreSQL, through SQLAlchemy Core."""

from tione_server.store.store import IdElsewhere, SchemaTooNew, Store

__all__ = ["IdElsewhere", "SchemaTooNew", "Store"]
