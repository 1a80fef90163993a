"""Which (account, region, workspace) a request addresses (spec §1.1)."""

from __future__ import annotations

from tione_server.context import RequestContext
from tione_server.models import Scope


def workspace(ti_project_id: str | None) -> str:
    """Omitted, "" and "0" all name the default workspace, stored as ""."""
    if ti_project_id is None or ti_project_id in ("", "0"):
        return ""
    return ti_project_id


def scope_of(ctx: RequestContext, ti_project_id: str | None) -> Scope:
    """The scope a request may see: its own account, its region, its workspace."""
    return Scope(uin=ctx.caller.uin, region=ctx.region, project=workspace(ti_project_id))
