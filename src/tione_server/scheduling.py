"""Capacity, placement and usage by node: the one place that does resource arithmetic (issue 8 item 4).

Pure values and functions: no store, no clock, no catalogue lookup inside the algorithm. What there is (an
`Inventory`: pools of nodes, each with its size and GPU cards) is a value passed in, built from the catalogue
today (`inventory_of`) and from a cluster's resources later (issue 10); what is held (`Hold`s, or sums by node)
is passed in too, by the runner from its live runs and by billing from the store. Amounts are in wire units
(spec §1.5): milli-cores, MB, 1/100 cards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tione_server.catalogue import Capacity, Catalogue

ZERO = Capacity(cpu=0, memory=0, gpu=0)
CARD = 100
"""Units in one GPU card (`Gpu` counts 1/100 cards, spec §1.5)."""
POSTPAID_POOL = ""
"""Pool id of pay-as-you-go tasks, and node id of its one machine; a prepaid pool's id is its resource group id."""
WAITING = "Waiting for resources: insufficient free capacity"
"""PENDING Message (spec §6.2 Decision text)."""
NEVER_FITS = WAITING + " (the request is larger than the pool's total capacity)"
"""PENDING Message of a run that could not be placed even on an empty pool: it waits without holding up others."""


@dataclass(frozen=True, slots=True)
class Demand:
    """What one pod needs; `gpu_type` "" takes cards of any model."""

    cpu: int
    memory: int
    gpu: int = 0
    gpu_type: str = ""

    @property
    def empty(self) -> bool:
        """Holds nothing (the MPI launcher): placed on no node."""
        return not (self.cpu or self.memory or self.gpu)


@dataclass(frozen=True, slots=True)
class NodeSize:
    """One node pods can be placed on: its size, card model and the device index of each card."""

    id: str
    size: Capacity
    gpu_type: str = ""
    """Model of its cards; "" takes GPU pods of any model (the postpaid machine's `[capacity]` names none)."""
    cards: tuple[int, ...] = ()
    """Device index of each GPU card: card k holds CARD units, the last one what remains of `size.gpu` (a node of
    50 units is half of one card). Issue 9 passes the indices it discovers on the host."""
    ready: bool = True
    """Takes work (status RUNNING, spec §2); a node in any other state offers nothing."""


@dataclass(frozen=True, slots=True)
class Pool:
    """The nodes one kind of task draws from: the postpaid machine, or one prepaid resource group."""

    id: str
    nodes: tuple[NodeSize, ...]


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every pool by id: the capacity the scheduler works with."""

    pools: Mapping[str, Pool]


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one pod goes: its node ("" when it holds nothing) and the device indices of the GPU cards it holds.

    Issue 9: a pod's cgroup limits are its Demand's cores and memory; CUDA_VISIBLE_DEVICES is `gpus`.
    """

    node: str
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Hold:
    """What one placed pod holds. `slot.gpus` empty with `demand.gpu` set: indices not recorded, so cards are
    counted as a fresh placement would take them."""

    pool: str
    slot: Slot
    demand: Demand


@dataclass(frozen=True, slots=True)
class Offer:
    """The answer for one waiting run: a slot per pod, or None and the PENDING Message saying why."""

    slots: tuple[Slot, ...] | None
    message: str = ""


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """One node as billing shows it (spec §4.10): its size, what is held, what it can still take."""

    id: str
    total: Capacity
    used: Capacity
    available: Capacity
    """`total - used` on a ready node; nothing on a node in any other state."""
    ready: bool

    @property
    def idle(self) -> bool:
        """Ready and holding nothing: counts in `FreeInstance` (spec §4.10)."""
        return self.ready and self.used == ZERO


# --- amounts ----------------------------------------------------------------------------------------------------


def total(amounts: Iterable[Capacity]) -> Capacity:
    """The sum of several amounts."""
    cpu = memory = gpu = 0
    for c in amounts:
        cpu, memory, gpu = cpu + c.cpu, memory + c.memory, gpu + c.gpu
    return Capacity(cpu=cpu, memory=memory, gpu=gpu)


def config_demand(config: Mapping[str, Any]) -> Demand:
    """One pod of a normalised ResourceConfigInfo (postpaid sizes already read from its instance type, spec §3.1)."""
    return Demand(
        cpu=int(config["Cpu"]), memory=int(config["Memory"]), gpu=int(config["Gpu"]),
        gpu_type=str(config.get("GpuType") or ""),
    )  # fmt: skip


def task_demand(configs: Sequence[Mapping[str, Any]]) -> Capacity:
    """All pods of all roles together: `Cpu`/`Memory`/`Gpu` times `InstanceNum`."""
    cpu = memory = gpu = 0
    for c in configs:
        d, n = config_demand(c), int(c["InstanceNum"])
        cpu, memory, gpu = cpu + d.cpu * n, memory + d.memory * n, gpu + d.gpu * n
    return Capacity(cpu=cpu, memory=memory, gpu=gpu)


def _card_units(node: NodeSize) -> dict[int, int]:
    """Units of each card of `node` by device index."""
    left = node.size.gpu
    units: dict[int, int] = {}
    for index in node.cards:
        units[index] = min(CARD, max(0, left))
        left -= units[index]
    return units


def default_cards(gpu: int) -> tuple[int, ...]:
    """Indices 0..n-1 for a node of `gpu` units whose devices are not discovered (a catalogue node)."""
    return tuple(range(-(-gpu // CARD)))


# --- the inventory from the catalogue ---------------------------------------------------------------------------


def inventory_of(catalogue: Catalogue, gpus: Sequence[int] | None = None) -> Inventory:
    """The postpaid pool (the catalogue's `[capacity]`, one machine) and every prepaid resource group.

    `gpus`: the device indices of the GPUs discovered on this machine (issue 9 item 5), which then are the
    postpaid machine's cards whatever `[capacity]` says; None keeps the catalogue's count."""
    cap = catalogue.capacity
    cards = default_cards(cap.gpu)
    if gpus is not None:
        cap, cards = Capacity(cpu=cap.cpu, memory=cap.memory, gpu=len(gpus) * CARD), tuple(gpus)
    pools = {POSTPAID_POOL: Pool(POSTPAID_POOL, (NodeSize(POSTPAID_POOL, cap, cards=cards),))}
    for group in catalogue.resource_groups.values():
        nodes = tuple(
            NodeSize(n.id, Capacity(n.cpu, n.memory, n.gpu), n.gpu_type, default_cards(n.gpu), n.status == "RUNNING")
            for n in group.nodes
        )
        pools[group.id] = Pool(group.id, nodes)
    return Inventory(MappingProxyType(pools))


# --- what is free on one node -----------------------------------------------------------------------------------


class _Free:
    """What one ready node can still take: cores, memory, and units per card."""

    __slots__ = ("cards", "cpu", "gpu_type", "memory")

    def __init__(self, node: NodeSize) -> None:
        self.cpu = node.size.cpu
        self.memory = node.size.memory
        self.gpu_type = node.gpu_type
        self.cards = _card_units(node)

    def place(self, need: Demand) -> tuple[int, ...] | None:
        """Take `need` and return the cards it got, or None (and take nothing) when it does not fit."""
        if need.cpu > self.cpu or need.memory > self.memory:
            return None
        if need.gpu and need.gpu_type and self.gpu_type and need.gpu_type != self.gpu_type:
            return None
        picked = _pick_cards(self.cards, need.gpu)
        if picked is None:
            return None
        self._take(need, picked)
        return tuple(i for i, _ in picked)

    def copy(self) -> _Free:
        """An independent copy, to try a placement on."""
        other = _Free.__new__(_Free)
        other.cpu, other.memory, other.gpu_type, other.cards = self.cpu, self.memory, self.gpu_type, dict(self.cards)
        return other

    def hold(self, need: Demand, gpus: tuple[int, ...]) -> None:
        """Count a pod already placed here, even past what is free (the catalogue may have shrunk since)."""
        picked = _held_cards(need.gpu, gpus) if gpus else _pick_cards(self.cards, need.gpu)
        self._take(need, picked if picked is not None else _spread(self.cards, need.gpu))

    def _take(self, need: Demand, picked: Sequence[tuple[int, int]]) -> None:
        self.cpu -= need.cpu
        self.memory -= need.memory
        for index, units in picked:
            if index in self.cards:
                self.cards[index] -= units


def _pick_cards(free: Mapping[int, int], gpu: int) -> list[tuple[int, int]] | None:
    """(index, units) for `gpu` units: whole free cards first, lowest index first, then the fraction from the
    fullest card that still has room for it (so fractions share cards and whole cards stay whole); None when
    the node lacks them."""
    whole, part = divmod(gpu, CARD)
    full = [i for i, units in free.items() if units >= CARD]
    if len(full) < whole:
        return None
    picked = [(i, CARD) for i in full[:whole]]
    if part:
        rest = [(units, i) for i, units in free.items() if units >= part and i not in full[:whole]]
        if not rest:
            return None
        picked.append((min(rest)[1], part))
    return picked


def _held_cards(gpu: int, gpus: tuple[int, ...]) -> list[tuple[int, int]]:
    """The units a placed pod holds on each of its cards: whole cards in order, the fraction on the last one
    (the order `_pick_cards` gives them)."""
    whole, part = divmod(gpu, CARD)
    return [(i, CARD) for i in gpus[:whole]] + ([(gpus[whole], part)] if part and len(gpus) > whole else [])


def _spread(free: Mapping[int, int], gpu: int) -> list[tuple[int, int]]:
    """Units taken card by card, for a hold that no longer fits: counted, never lost."""
    picked: list[tuple[int, int]] = []
    for index, units in free.items():
        if gpu <= 0:
            break
        take = min(max(units, 0), gpu)
        picked.append((index, take))
        gpu -= take
    return picked


def _place(pool: Pool, free: Mapping[str, _Free], demands: Sequence[Demand]) -> tuple[Slot, ...] | None:
    """Each pod on the first ready node of the pool with room for it (catalogue order), taking from `free`
    (pass a copy); None when one pod finds none."""
    slots: list[Slot] = []
    for need in demands:
        if need.empty:
            slots.append(Slot(""))  # the MPI launcher holds nothing
            continue
        for node in pool.nodes:
            node_free = free.get(node.id)
            gpus = node_free.place(need) if node_free is not None else None
            if gpus is not None:
                slots.append(Slot(node.id, gpus))
                break
        else:
            return None
    return tuple(slots)


def _empty(pool: Pool) -> dict[str, _Free]:
    return {n.id: _Free(n) for n in pool.nodes if n.ready}


# --- the scheduler ----------------------------------------------------------------------------------------------


class Scheduler:
    """The capacity questions of the service and the runner, answered over one Inventory."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def round(self, held: Iterable[Hold]) -> Round:
        """A granting pass, given what live runs hold."""
        return Round(self, held)

    def never_fits(self, pool: str, demands: Sequence[Demand]) -> bool:
        """Whether the pods could not all be placed even on the empty pool (or the pool is unknown)."""
        known = self.inventory.pools.get(pool)
        return known is None or _place(known, _empty(known), demands) is None

    def fits_a_node(self, pool: str, need: Demand) -> bool:
        """Whether one ready node of the pool is, in total, big enough for one pod (spec §4.1 rule 5)."""
        return not self.never_fits(pool, [need])

    def usage(self, pool: str, held: Mapping[str, Capacity]) -> dict[str, NodeUsage]:
        """Every node of the pool by id, with what is held on it (`held`: sums by node id; others hold nothing)."""
        known = self.inventory.pools.get(pool)
        out: dict[str, NodeUsage] = {}
        for node in known.nodes if known is not None else ():
            used, size = held.get(node.id, ZERO), node.size
            # Only a ready node can take work: any other state offers nothing (spec §2 node states).
            available = (
                Capacity(
                    cpu=max(0, size.cpu - used.cpu),
                    memory=max(0, size.memory - used.memory),
                    gpu=max(0, size.gpu - used.gpu),
                )
                if node.ready
                else ZERO
            )
            out[node.id] = NodeUsage(node.id, size, used, available, node.ready)
        return out


class Round:
    """One pass granting capacity to waiting runs (spec §6.2: PENDING until capacity, granted in submission order
    within a pool). Offer runs oldest first; `take` what was granted, so later offers see it held."""

    def __init__(self, scheduler: Scheduler, held: Iterable[Hold]) -> None:
        self._scheduler = scheduler
        self._free = {pool.id: _empty(pool) for pool in scheduler.inventory.pools.values()}
        self._blocked: set[str] = set()
        self._never: dict[tuple[str, tuple[Demand, ...]], bool] = {}
        """never_fits by request: many waiting runs of one pool are often alike."""
        for h in held:
            self._hold(h.pool, h.slot, h.demand)

    def offer(self, pool: str, demands: Sequence[Demand]) -> Offer:
        """Slots for the pods of the oldest run not offered yet, or why it waits. A run that would fit the empty
        pool but not now blocks the later runs of its pool; one that never fits does not."""
        known = self._scheduler.inventory.pools.get(pool)
        if known is not None and pool not in self._blocked:
            trial = {node_id: f.copy() for node_id, f in self._free[pool].items()}
            slots = _place(known, trial, demands)
            if slots is not None:
                return Offer(slots)
        key = (pool, tuple(demands))
        never = self._never.get(key)
        if never is None:
            never = self._never[key] = self._scheduler.never_fits(pool, demands)
        if never:
            return Offer(None, NEVER_FITS)
        self._blocked.add(pool)
        return Offer(None, WAITING)

    def take(self, pool: str, slots: Sequence[Slot], demands: Sequence[Demand]) -> None:
        """Count an offer that was granted."""
        for slot, need in zip(slots, demands, strict=True):
            self._hold(pool, slot, need)

    def hold(self, holds: Iterable[Hold]) -> None:
        """Count what more placed pods hold (a round kept from pass to pass, issue 12 target 5)."""
        for h in holds:
            self._hold(h.pool, h.slot, h.demand)

    def release(self, holds: Sequence[Hold]) -> bool:
        """Give back what `hold` counted, when that is exact: cores and memory are; GPU units counted without
        recorded cards are not (which cards they took depended on the order), so False: build a new round."""
        if any(h.demand.gpu for h in holds):
            return False
        for h in holds:
            free = self._free.get(h.pool, {}).get(h.slot.node)
            if free is not None and not h.demand.empty:
                free.cpu += h.demand.cpu
                free.memory += h.demand.memory
        return True

    def next_pass(self) -> None:
        """Start a new granting pass over the same holdings: no pool is blocked yet."""
        self._blocked.clear()

    def _hold(self, pool: str, slot: Slot, need: Demand) -> None:
        free = self._free.get(pool, {}).get(slot.node)
        if free is not None and not need.empty:  # a node gone from the pool holds nothing of it any more
            free.hold(need, slot.gpus)
