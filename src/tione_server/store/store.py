"""The Store: every persistent concept of the service over one database (SQLite file or PostgreSQL).

A facade that only holds the concept objects; each owns its tables and SQL and shares the `Database` (engines,
transactions, schema). Callers name the concept: `store.keys.get(...)`, `store.pages.tasks(...)`,
`store.runs.transition(...)` (issue 8 item 5).
"""

from __future__ import annotations

from tione_server.store.accounts import Accounts
from tione_server.store.database import Database
from tione_server.store.keys import Keys
from tione_server.store.leases import Leases
from tione_server.store.lifecycle import Lifecycle
from tione_server.store.nonces import Nonces
from tione_server.store.pages import Pages
from tione_server.store.runs import Runs
from tione_server.store.scopes import Scopes
from tione_server.store.secrets import Secrets
from tione_server.store.tasks import Tasks


class Store:
    """All persistent state of the service, by concept. Opening it creates or upgrades the schema."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        """Engines, transactions and the schema (store/database.py)."""
        self.scopes = Scopes(self.db)
        """(account, region, workspace) ids, shared by tasks and runs."""
        self.keys = Keys(self.db)
        """API keys."""
        self.tasks = Tasks(self.db, self.scopes)
        """Task rows: import and lookup."""
        self.pages = Pages(self.db, self.scopes)
        """The list's reads: a page, its exact TotalCount, the signing key's check (issue 12)."""
        self.lifecycle = Lifecycle(self.db, self.scopes, self.tasks)
        """Create, Start, Stop and Delete of a task."""
        self.runs = Runs(self.db, self.scopes)
        """Runs, pods and metrics: the runner's reads and writes."""
        self.leases = Leases(self.db)
        """Leadership leases (the runner's)."""
        self.secrets = Secrets(self.db)
        """Server keys made once per database (log Contexts)."""
        self.nonces = Nonces(self.db)
        """Accepted v1 Nonces (replay protection)."""
        self.accounts = Accounts(self.db)
        """The uid each account's pods run as (sandbox)."""

    def close(self) -> None:
        """Release every pooled connection."""
        self.db.close()
