"""A node's reclaim structs: ``struct lruvec`` with ``enum lru_list``, and its slab shrinker.

Data only (with their counters' /proc names); the LRU functions that move folios on and off the
lists are :mod:`emulator.mm.reclaim.lru`, the reclaim that scans them
:mod:`emulator.mm.reclaim.vmscan`. Kept below both, and below the machine that holds one
lruvec per node.
"""

from __future__ import annotations

from array import array
from typing import Any

from emulator.engine.sim import Sim
from emulator.engine.sync import SpinLock, WaitQueue
from emulator.mm.memmap import Memmap
from emulator.mm.zone import MAX_NR_ZONES

# enum lru_list
LRU_INACTIVE_ANON = 0
LRU_ACTIVE_ANON = 1
LRU_INACTIVE_FILE = 2
LRU_ACTIVE_FILE = 3
LRU_UNEVICTABLE = 4
NR_LRU_LISTS = 5
LRU_NAMES = ("inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable")


class SlabShrinker:
    """One node's reclaimable-slab cache with its shrinker (simplified: one object per page).

    Pages are registered by whoever allocated them (a scenario's set-up: the machine's past)
    and are freed only by the shrinker; ``nr_deferred`` is the shrinker's deferred scan
    count. Freed pages leave the node's ``nr_slab_reclaimable``."""

    __slots__ = ("freed", "nr_deferred", "pages")

    def __init__(self) -> None:
        self.pages = array("i")
        self.nr_deferred = 0
        self.freed = 0

    def register(self, pfn: int) -> None:
        self.pages.append(pfn)

    def count_objects(self) -> int:
        return len(self.pages)


__all__ = [
    "LRU_ACTIVE_ANON",
    "LRU_ACTIVE_FILE",
    "LRU_INACTIVE_ANON",
    "LRU_INACTIVE_FILE",
    "LRU_NAMES",
    "LRU_UNEVICTABLE",
    "NR_LRU_LISTS",
    "Lruvec",
    "SlabShrinker",
]


class Lruvec:
    """Models include/linux/mmzone.h: struct lruvec, for one node (no memcg), with the node's
    LRU-related ``vm_stat`` counters.

    ``lists`` is the first of :data:`NR_LRU_LISTS` list heads in the memmap's list store;
    ``nr_pages[lru]`` the node's pages on each list (``nr_inactive_anon`` ...),
    ``nr_zone_pages[zone_idx][lru]`` the same per zone (``nr_zone_inactive_anon`` ...).
    ``lru_lock`` is an engine SpinLock once an allocator has bound the node (:meth:`bind`).
    """

    __slots__ = (
        "lists",
        "lru_lock_or_none",
        "memmap",
        "nid",
        "nr_isolated_anon",
        "nr_isolated_file",
        "nr_mlock",
        "nr_pages",
        "nr_slab_reclaimable",
        "nr_zone_pages",
        "reclaim_wait_isolated",
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> Lruvec:
        # unpickling (the set-up cache) makes the object with ``__new__`` alone and then sets
        # its state; with an explicit ``__new__``, a class compiled with mypyc
        # (emulator.native) does not run ``__init__`` there either
        return super().__new__(cls)

    def __init__(self, memmap: Memmap, nid: int) -> None:
        self.memmap = memmap
        self.nid = nid
        self.lists = memmap.new_lists(NR_LRU_LISTS)
        self.nr_pages = [0] * NR_LRU_LISTS
        self.nr_zone_pages = [[0] * NR_LRU_LISTS for _ in range(MAX_NR_ZONES)]
        self.nr_isolated_anon = 0
        self.nr_isolated_file = 0
        self.nr_slab_reclaimable = 0
        #: NR_MLOCK per zone (a zone stat: ``nr_mlock``)
        self.nr_mlock = [0] * MAX_NR_ZONES
        #: ``lruvec->lru_lock``, or None until :meth:`bind`
        self.lru_lock_or_none: SpinLock | None = None
        #: ``pgdat->reclaim_wait[VMSCAN_THROTTLE_ISOLATED]`` (one lruvec per node stands for the
        #: pgdat), or None until :meth:`bind`
        self.reclaim_wait_isolated: WaitQueue | None = None

    def bind(self, sim: Sim) -> None:
        """Give the node its ``lruvec->lru_lock`` on ``sim``."""
        self.lru_lock_or_none = SpinLock(sim, "&lruvec->lru_lock")
        self.reclaim_wait_isolated = WaitQueue(sim, f"pgdat{self.nid}->reclaim_wait[ISOLATED]")

    @property
    def lru_lock(self) -> SpinLock:
        """``lruvec->lru_lock`` (exists once an allocator has bound the node)."""
        lock = self.lru_lock_or_none
        if lock is None:
            raise RuntimeError(f"node {self.nid}: no lru_lock: no PageAllocator has bound it")
        return lock

    def list_head(self, lru: int) -> int:
        """The list head index of ``lruvec->lists[lru]``."""
        return self.lists + lru

    def folios(self, lru: int) -> list[int]:
        """The head pfns on list ``lru``, head (newest) to tail (oldest)."""
        return self.memmap.list_entries(self.lists + lru)

    def node_stats(self) -> dict[str, int]:
        """This node's LRU counters under their /proc/vmstat names."""
        out = {f"nr_{name}": n for name, n in zip(LRU_NAMES, self.nr_pages, strict=True)}
        out["nr_slab_reclaimable"] = self.nr_slab_reclaimable
        out["nr_isolated_anon"] = self.nr_isolated_anon
        out["nr_isolated_file"] = self.nr_isolated_file
        return out

    def zone_stats(self, zone_idx: int) -> dict[str, int]:
        """One zone's LRU counters under their zoneinfo names (``nr_zone_*``, ``nr_mlock``)."""
        out = {
            f"nr_zone_{name}": n
            for name, n in zip(LRU_NAMES, self.nr_zone_pages[zone_idx], strict=True)
        }
        out["nr_mlock"] = self.nr_mlock[zone_idx]
        return out
