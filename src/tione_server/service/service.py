"""TioneService: the actions this server implements; every other action answers UnsupportedOperation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tione_server.api._generated import DescribeTrainingTasksRequest, DescribeTrainingTasksResponse
from tione_server.api.extensions import ServedApi
from tione_server.catalogue import Catalogue
from tione_server.config import Settings
from tione_server.context import RequestContext
from tione_server.executors import Executor, make_executor
from tione_server.executors.gpus import PROC_GPUS, discover
from tione_server.executors.registry import Host
from tione_server.scheduling import Scheduler, inventory_of
from tione_server.service.billing import BillingActions
from tione_server.service.extensions import ExtensionActions
from tione_server.service.lifecycle import LifecycleActions
from tione_server.service.listing import build_query
from tione_server.service.logs import LogActions
from tione_server.service.render import list_item
from tione_server.service.scope import scope_of
from tione_server.store import Store


class TioneService(LifecycleActions, LogActions, BillingActions, ExtensionActions, ServedApi):
    """Business rules per action; the store is the only I/O."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.catalogue = (
            Catalogue.load(Path(settings.catalogue_path)) if settings.catalogue_path else Catalogue.default()
        )
        host = executor_host(settings, store, self.catalogue)
        sandboxed = settings.executor == "local" and settings.sandbox
        gpus = [g.index for g in host.gpus.gpus] if sandboxed else None
        self.scheduler = Scheduler(inventory_of(self.catalogue, gpus))
        """Capacity questions (issue 8 item 4); the runner asks the same one."""
        self.executor: Executor = make_executor(settings, host)
        self.wake: Callable[[], None] = lambda: None
        """Set by create_app to the runner's wake-up, so a change is picked up at once."""

    def describe_training_tasks(
        self, ctx: RequestContext, req: DescribeTrainingTasksRequest
    ) -> DescribeTrainingTasksResponse:
        """The list, exactly per spec §5."""
        query = build_query(req)
        tasks, total = self.store.list_tasks(scope_of(ctx, req.TiProjectId), query)
        offset = self.settings.time_offset_hours
        return DescribeTrainingTasksResponse(
            TrainingTaskSet=[list_item(t, ctx.now, offset, self.catalogue) for t in tasks], TotalCount=total
        )


def executor_host(settings: Settings, store: Store, catalogue: Catalogue) -> Host:
    """What the executor gets beyond Settings (issue 9): the account uids, the image table, the GPUs found here
    (TIONE_GPU_PROC_DIR / TIONE_GPU_DEV_DIR point discovery elsewhere: a test or operator hook)."""
    proc = Path(settings.gpu_proc_dir) if settings.gpu_proc_dir else PROC_GPUS
    dev = Path(settings.gpu_dev_dir) if settings.gpu_dev_dir else Path("/dev")
    return Host(account_uid=store.account_uid, image_roots=catalogue.image_roots, gpus=discover(proc, dev))
