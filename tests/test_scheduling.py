"""The scheduling module on its own (issue 8 item 4): capacity, placement in submission order, GPU cards and usage
by node, as pure functions of an inventory and what is held. No server, no store."""

from __future__ import annotations

from pathlib import Path

from tests.inprocess import T0, Harness, params
from tione_server.catalogue import Capacity, Catalogue
from tione_server.scheduling import (
    NEVER_FITS,
    POSTPAID_POOL,
    WAITING,
    Demand,
    Hold,
    Inventory,
    NodeSize,
    Pool,
    Scheduler,
    Slot,
    config_demand,
    default_cards,
    inventory_of,
    task_demand,
)

CORE = 1000
GB = 1024


def _node(node_id: str, cores: int, gb: int, gpu: int = 0, gpu_type: str = "", *, ready: bool = True) -> NodeSize:
    return NodeSize(node_id, Capacity(cores * CORE, gb * GB, gpu), gpu_type, default_cards(gpu), ready=ready)


def _scheduler(*pools: Pool) -> Scheduler:
    return Scheduler(Inventory({p.id: p for p in pools}))


def _pods(n: int, cores: int, gb: int, gpu: int = 0, gpu_type: str = "") -> list[Demand]:
    return [Demand(cores * CORE, gb * GB, gpu, gpu_type)] * n


GROUP = Pool("ersg-a", (_node("n-down", 64, 256, ready=False), _node("n-1", 8, 32), _node("n-2", 8, 32)))
MACHINE = Pool(POSTPAID_POOL, (_node(POSTPAID_POOL, 4, 8),))


def test_schedule_places_pods_first_fit_on_running_nodes() -> None:
    plan = _scheduler(GROUP).round([])
    offer = plan.offer("ersg-a", _pods(3, 4, 8))
    assert offer.message == ""
    assert offer.slots is not None
    assert [s.node for s in offer.slots] == ["n-1", "n-1", "n-2"]  # never the node that is not RUNNING


def test_schedule_counts_what_is_held() -> None:
    held = [
        Hold("ersg-a", Slot("n-1"), Demand(6 * CORE, 8 * GB)),
        Hold("ersg-a", Slot("n-2"), Demand(6 * CORE, 8 * GB)),
    ]
    scheduler = _scheduler(GROUP)
    assert scheduler.round(held).offer("ersg-a", _pods(1, 4, 8)).slots is None
    assert scheduler.round(held).offer("ersg-a", _pods(2, 2, 8)).slots is not None
    assert scheduler.round([]).offer("ersg-a", _pods(1, 4, 8)).slots is not None


def test_schedule_grants_in_submission_order_within_a_pool() -> None:
    plan = _scheduler(GROUP, MACHINE).round([Hold(POSTPAID_POOL, Slot(""), Demand(3 * CORE, 2 * GB))])
    first = plan.offer(POSTPAID_POOL, _pods(1, 2, 1))  # fits the machine, not what is left of it
    later = plan.offer(POSTPAID_POOL, _pods(1, 1, 1))  # would fit now, but waits its turn
    other_pool = plan.offer("ersg-a", _pods(1, 8, 32))
    assert (first.slots, first.message) == (None, WAITING)
    assert (later.slots, later.message) == (None, WAITING)
    assert other_pool.slots is not None


def test_schedule_request_larger_than_the_pool_waits_without_blocking() -> None:
    plan = _scheduler(MACHINE).round([])
    huge = plan.offer(POSTPAID_POOL, _pods(2, 3, 1))  # 6 cores: more than the machine has in total
    small = plan.offer(POSTPAID_POOL, _pods(1, 1, 1))
    assert (huge.slots, huge.message) == (None, NEVER_FITS)
    assert small.slots is not None
    unknown = plan.offer("ersg-gone", _pods(1, 1, 1))
    assert (unknown.slots, unknown.message) == (None, NEVER_FITS)


def test_schedule_take_counts_a_granted_offer() -> None:
    plan = _scheduler(MACHINE).round([])
    demands = _pods(1, 3, 4)
    offer = plan.offer(POSTPAID_POOL, demands)
    assert offer.slots is not None
    assert plan.offer(POSTPAID_POOL, demands).slots is not None  # an offer alone holds nothing
    plan.take(POSTPAID_POOL, offer.slots, demands)
    assert plan.offer(POSTPAID_POOL, demands).message == WAITING


def test_schedule_pod_holding_nothing_goes_on_no_node() -> None:
    plan = _scheduler(GROUP).round([])
    offer = plan.offer("ersg-a", [Demand(0, 0), *_pods(1, 1, 1)])  # an MPI launcher and one worker
    assert offer.slots is not None
    assert [s.node for s in offer.slots] == ["", "n-1"]


def test_schedule_gpu_pods_get_distinct_cards() -> None:
    pool = Pool("ersg-g", (_node("g-1", 32, 128, 400, "V100"),))
    plan = _scheduler(pool).round([])
    demands = [Demand(CORE, GB, 100, "V100"), Demand(CORE, GB, 200, "V100")]
    offer = plan.offer("ersg-g", demands)
    assert offer.slots is not None
    one, two = offer.slots
    assert len(one.gpus) == 1
    assert len(two.gpus) == 2
    assert not set(one.gpus) & set(two.gpus)
    plan.take("ersg-g", offer.slots, demands)
    last = plan.offer("ersg-g", [Demand(CORE, GB, 100, "V100")])
    assert last.slots is not None
    assert last.slots[0].gpus == tuple(set(range(4)) - set(one.gpus) - set(two.gpus))
    assert plan.offer("ersg-g", [Demand(CORE, GB, 200, "V100")]).message == WAITING


def test_schedule_gpu_fractions_share_a_card() -> None:
    pool = Pool("ersg-g", (_node("g-1", 32, 128, 200, "T4"),))
    plan = _scheduler(pool).round([])
    halves = [Demand(CORE, GB, 50, "T4")] * 2
    offer = plan.offer("ersg-g", halves)
    assert offer.slots is not None
    assert offer.slots[0].gpus == offer.slots[1].gpus  # both halves on one card
    plan.take("ersg-g", offer.slots, halves)
    whole = plan.offer("ersg-g", [Demand(CORE, GB, 100, "T4")])
    assert whole.slots is not None
    assert whole.slots[0].gpus != offer.slots[0].gpus  # the other card is still whole


def test_schedule_gpu_indices_come_from_the_node() -> None:
    # Issue 9: the host's discovered devices, not necessarily 0..n-1.
    pool = Pool(POSTPAID_POOL, (NodeSize(POSTPAID_POOL, Capacity(8 * CORE, 8 * GB, 200), cards=(2, 5)),))
    held = [Hold(POSTPAID_POOL, Slot("", (2,)), Demand(CORE, GB, 100))]
    offer = _scheduler(pool).round(held).offer(POSTPAID_POOL, [Demand(CORE, GB, 100, "T4")])
    assert offer.slots is not None
    assert offer.slots[0].gpus == (5,)  # the pool's machine names no card model: any model fits


def test_schedule_gpu_model_must_match() -> None:
    pool = Pool("ersg-g", (_node("t4", 32, 128, 400, "T4"), _node("v100", 32, 128, 400, "V100")))
    offer = _scheduler(pool).round([]).offer("ersg-g", [Demand(CORE, GB, 100, "V100"), Demand(CORE, GB, 0, "V100")])
    assert offer.slots is not None
    assert [s.node for s in offer.slots] == ["v100", "t4"]


def test_create_fits_a_node_compares_one_pod_with_node_totals() -> None:
    scheduler = _scheduler(GROUP)
    assert scheduler.fits_a_node("ersg-a", Demand(8 * CORE, 32 * GB))
    assert not scheduler.fits_a_node("ersg-a", Demand(9 * CORE, GB))  # only the stopped node is that big
    assert not scheduler.fits_a_node("ersg-a", Demand(CORE, GB, 100, "V100"))
    assert not scheduler.fits_a_node("ersg-gone", Demand(CORE, GB))


def test_describe_billing_resource_groups_usage_by_node() -> None:
    usage = _scheduler(GROUP).usage("ersg-a", {"n-1": Capacity(2 * CORE, 4 * GB, 0), "elsewhere": Capacity(1, 1, 1)})
    assert list(usage) == ["n-down", "n-1", "n-2"]
    down, busy, idle = usage.values()
    assert (down.available, down.idle) == (Capacity(0, 0, 0), False)
    assert busy.used == Capacity(2 * CORE, 4 * GB, 0)
    assert busy.available == Capacity(6 * CORE, 28 * GB, 0)
    assert not busy.idle
    assert idle.idle
    assert idle.available == idle.total


def test_create_task_demand_sums_instances_of_every_role() -> None:
    configs = [
        {"Role": "PS", "Cpu": 2000, "Memory": 4096, "Gpu": 0, "GpuType": "", "InstanceNum": 1},
        {"Role": "WORKER", "Cpu": 8000, "Memory": 40960, "Gpu": 100, "GpuType": "V100", "InstanceNum": 3},
    ]
    assert task_demand(configs) == Capacity(26000, 4096 + 3 * 40960, 300)
    assert config_demand(configs[1]) == Demand(8000, 40960, 100, "V100")


def test_serve_inventory_comes_from_the_catalogue() -> None:
    catalogue = Catalogue.default()
    inventory = inventory_of(catalogue)
    (machine,) = inventory.pools[POSTPAID_POOL].nodes
    assert machine.size == catalogue.capacity
    for group in catalogue.resource_groups.values():
        nodes = inventory.pools[group.id].nodes
        assert [n.id for n in nodes] == [n.id for n in group.nodes]
        assert [n.ready for n in nodes] == [n.status == "RUNNING" for n in group.nodes]
        assert all(len(n.cards) * 100 >= n.size.gpu for n in nodes)


# --- through the service and the runner (in process, fake clock) --------------------------------------------------

MIXED = """
[capacity]
cpu = 8000
memory = 16384
gpu = 0

[[resource_groups]]
id = "ersg-mixed01"
nodes = [
  { id = "eins-t4node01", cpu = 16000, memory = 65536, gpu = 400, gpu_type = "T4" },
  { id = "eins-v100nd01", cpu = 16000, memory = 65536, gpu = 400, gpu_type = "V100" },
]
"""


def test_create_training_task_gpu_pod_goes_to_a_node_of_its_card_model(tmp_path: Path) -> None:
    h = Harness(tmp_path, catalogue=MIXED)
    try:
        worker = {"Role": "WORKER", "Cpu": 4000, "Memory": 8192, "Gpu": 100, "GpuType": "V100", "InstanceNum": 1}
        request = {"ChargeType": "PREPAID", "ResourceGroupId": "ersg-mixed01", "ResourceConfigInfos": [worker]}
        task_id = h.call("CreateTrainingTask", params("v100", **request))["Id"]
        h.tick(T0 + 1)
        assert h.detail(task_id)["Status"] == "STARTING"
        group = h.call("DescribeBillingResourceGroups", {})["ResourceGroupSet"][0]
        used = {n["InstanceId"]: n["UsedResource"]["Gpu"] for n in group["InstanceSet"]}
        assert used == {"eins-t4node01": 0, "eins-v100nd01": 100}
    finally:
        h.close()
