"""TioneService: the actions this server implements; every other action answers UnsupportedOperation."""

from __future__ import annotations

from collections.abc import Callable

from tione_server.api._generated import DescribeTrainingTasksRequest, DescribeTrainingTasksResponse
from tione_server.api.extensions import ServedApi
from tione_server.catalogue import Catalogue
from tione_server.config import Settings
from tione_server.context import RequestContext
from tione_server.executors import Executor
from tione_server.models import Scope
from tione_server.scheduling import Scheduler
from tione_server.service.billing import BillingActions
from tione_server.service.extensions import ExtensionActions
from tione_server.service.lifecycle import LifecycleActions
from tione_server.service.listing import build_query
from tione_server.service.logs import LogActions
from tione_server.service.render import RenderedItems
from tione_server.service.scope import scope_of
from tione_server.store import Store
from tione_server.store.pages import Entry


class TioneService(LifecycleActions, LogActions, BillingActions, ExtensionActions, ServedApi):
    """Business rules per action; their I/O goes through the store and the executor they are given."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        catalogue: Catalogue,
        scheduler: Scheduler,
        executor: Executor,
        *,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        """The parts come from the composition root (app.create_app; issue 8 item 1). `wake` tells the runner
        that something changed, so it acts at once rather than at its next pass."""
        self.settings = settings
        self.store = store
        self.catalogue = catalogue
        self.scheduler = scheduler
        """Capacity questions (issue 8 item 4); the runner asks the same one."""
        self.executor = executor
        self.wake = wake
        self.items = RenderedItems(catalogue, settings.time_offset_hours)
        """The list's items, rendered once per stored row (issue 12)."""

    def describe_training_tasks(
        self, ctx: RequestContext, req: DescribeTrainingTasksRequest
    ) -> DescribeTrainingTasksResponse:
        """The list, exactly per spec §5."""
        scope, query = scope_of(ctx, req.TiProjectId), build_query(req)
        page = self.store.pages.read(scope, query, key=ctx.cached_key, have=self.items.kept)
        return self._list_reply(page, scope, ctx.now)

    async def describe_training_tasks_async(
        self, ctx: RequestContext, req: DescribeTrainingTasksRequest
    ) -> DescribeTrainingTasksResponse:
        """`describe_training_tasks` without blocking the event loop on the database (PostgreSQL)."""
        scope, query = scope_of(ctx, req.TiProjectId), build_query(req)
        page = await self.store.pages.read_async(scope, query, key=ctx.cached_key, have=self.items.kept)
        return self._list_reply(page, scope, ctx.now)

    def _list_reply(self, page: tuple[list[Entry], int], scope: Scope, now: float) -> DescribeTrainingTasksResponse:
        entries, total = page
        items = self.items.render(entries, scope, now)
        # The items are encoded already: msgspec writes a Raw as it is (the reply's bytes are unchanged).
        return DescribeTrainingTasksResponse(TrainingTaskSet=items, TotalCount=total)  # type: ignore[arg-type]
