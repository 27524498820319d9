"""Per-CPU page lists: ``struct per_cpu_pages`` and its sizing and tuning rules (Linux 6.12).

Models mm/page_alloc.c: pcp_allowed_order, order_to_pindex, pindex_to_order, zone_batchsize,
zone_highsize, zone_set_pageset_high_and_batch, nr_pcp_alloc, nr_pcp_free, nr_pcp_high,
decay_pcp_high, and the list work of __rmqueue_pcplist, free_unref_page_commit and
free_pcppages_bulk. Everything here is synchronous: the caller
(:mod:`emulator.mm.page_alloc.allocator`)
holds ``pcp->lock`` and, where said, ``zone->lock``, and charges the virtual time.

Pages on a pcp list are marked ``PG_PCP`` in the memmap: not PageBuddy, so they stop merging,
and not in NR_FREE_PAGES, so watermark checks cannot see them — exactly the kernel's
"pages hidden on pcp lists".

The lists are intrusive lists in the memmap's list store, as the kernel threads
``page->pcp_list``. Head is the hot end: allocation takes the first entry, a free adds at the
head, a refill adds at the tail (physical order) and a drain takes from the tail (coldest).
"""

from __future__ import annotations

from typing import Any

from emulator.engine.sync import SpinLock
from emulator.mm.lockdep import lockdep_assert_held
from emulator.mm.memmap import PG_PCP
from emulator.mm.page_alloc.alloc_stats import OrderStats
from emulator.mm.page_alloc.buddy import free_to_buddy
from emulator.mm.page_alloc.rmqueue import rmqueue_bulk
from emulator.mm.snapshot import (
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    NR_PAGE_ORDERS,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGEBLOCK_ORDER,
    PcpSnapshot,
)
from emulator.mm.zone import Zone

# include/linux/mmzone.h:661-666 (with CONFIG_TRANSPARENT_HUGEPAGE)
NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
NR_PCP_THP = 2
NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + NR_PCP_THP
HPAGE_PMD_ORDER = PAGEBLOCK_ORDER
# mm/Kconfig: PCP_BATCH_SCALE_MAX default 5
CONFIG_PCP_BATCH_SCALE_MAX = 5
# page_alloc.c:93
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8
# pcp->flags
PCPF_PREV_FREE_HIGH_ORDER = 1 << 0
PCPF_FREE_HIGH_BATCH = 1 << 1
# page_alloc.c:5393 boot pageset
BOOT_PAGESET_HIGH = 0
BOOT_PAGESET_BATCH = 1


def pcp_allowed_order(order: int) -> bool:
    """Models mm/page_alloc.c: pcp_allowed_order. Orders 0..3 and, with THP, pageblock order (9)."""
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == HPAGE_PMD_ORDER


def order_to_pindex(migratetype: int, order: int) -> int:
    """Models mm/page_alloc.c: order_to_pindex. 3*order+mt for orders 0..3; 12/13 for THP
    (non-movable / movable)."""
    if order > PAGE_ALLOC_COSTLY_ORDER:
        return NR_LOWORDER_PCP_LISTS + (migratetype == MIGRATE_MOVABLE)
    return MIGRATE_PCPTYPES * order + migratetype


def pindex_to_order(pindex: int) -> int:
    """Models mm/page_alloc.c: pindex_to_order."""
    if pindex >= NR_LOWORDER_PCP_LISTS:
        return HPAGE_PMD_ORDER
    return pindex // MIGRATE_PCPTYPES


def _rounddown_pow_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def zone_batchsize(managed_pages: int) -> int:
    """Models mm/page_alloc.c: zone_batchsize. ~0.1% of the zone or 1 MiB, /4, then 2^n - 1.

    A zone of at least 1 GiB gets 63; a 16 MiB DMA zone gets 1 (the caller takes max(1, ...)).
    """
    batch = min(managed_pages >> 10, (1 << 20) // 4096)
    batch //= 4
    if batch < 1:
        batch = 1
    return _rounddown_pow_of_two(batch + batch // 2) - 1


def zone_highsize(
    low_wmark: int,
    managed_pages: int,
    batch: int,
    node_cpus: int,
    high_fraction: int,
    cpu_online: int = 0,
    online_cpus: int = 1,
) -> int:
    """Models mm/page_alloc.c: zone_highsize. The low watermark (or managed/fraction) split across
    the node's CPUs, at least 4*batch."""
    total = low_wmark if not high_fraction else managed_pages // high_fraction
    nr_split_cpus = node_cpus + cpu_online
    if not nr_split_cpus:
        nr_split_cpus = online_cpus
    return max(total // nr_split_cpus, batch << 2)


def pageset_high_and_batch(
    low_wmark: int, managed_pages: int, node_cpus: int, high_fraction: int
) -> tuple[int, int, int]:
    """Models mm/page_alloc.c: zone_set_pageset_high_and_batch. ``(high_min, high_max, batch)``.

    With ``vm.percpu_pagelist_high_fraction`` 0 (default) high_min comes from the low watermark
    and high_max from managed/8, and auto-tuning is on; otherwise both are managed/fraction.
    """
    batch = max(1, zone_batchsize(managed_pages))
    if high_fraction:
        high_min = zone_highsize(low_wmark, managed_pages, batch, node_cpus, high_fraction)
        high_max = high_min
    else:
        high_min = zone_highsize(low_wmark, managed_pages, batch, node_cpus, 0)
        high_max = zone_highsize(
            low_wmark, managed_pages, batch, node_cpus, MIN_PERCPU_PAGELIST_HIGH_FRACTION
        )
    return high_min, high_max, batch


class PerCpuPages:
    """Models include/linux/mmzone.h: struct per_cpu_pages, for one (CPU, zone) (mmzone.h:683);
    its spinlock is the engine
    lock ``lock`` (``&pcp->lock``) the allocator passes in.

    ``count`` counts base pages (``1 << order`` per entry). ``lists`` is the index of the first
    of :data:`NR_PCP_LISTS` list heads in the memmap's list store.
    """

    __slots__ = (
        "alloc_factor",
        "batch",
        "count",
        "cpu",
        "expire",
        "flags",
        "free_count",
        "high",
        "high_max",
        "high_min",
        "lists",
        "lock",
        "zone",
    )

    def __init__(self, zone: Zone, cpu: int, lock: SpinLock, lists: int = -1) -> None:
        self.lock = lock
        self.zone = zone
        self.cpu = cpu
        #: ``lists`` >= 0: the list heads already made (an unpickled pcp)
        self.lists = zone.memmap.new_lists(NR_PCP_LISTS) if lists < 0 else lists
        self.count = 0
        # per_cpu_pages_init: the boot pageset ("high < batch" disables caching) until
        # set_high_and_batch; high is 0 (memset) until the first use clamps it
        self.high = 0
        self.high_min = BOOT_PAGESET_HIGH
        self.high_max = BOOT_PAGESET_HIGH
        self.batch = BOOT_PAGESET_BATCH
        self.flags = 0
        self.alloc_factor = 0
        self.expire = 0
        self.free_count = 0

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (the set-up cache) as its constructor's arguments and its state: compiled
        # with mypyc (emulator.native), the class runs ``__init__`` when it is unpickled
        return (type(self), (self.zone, self.cpu, self.lock, self.lists), self.__getstate__())

    def set_high_and_batch(self, high_min: int, high_max: int, batch: int) -> None:
        """Models mm/page_alloc.c: pageset_update. Publish new limits. ``high`` itself is left
        alone, as the kernel leaves it: nr_pcp_alloc / nr_pcp_high clamp it into [high_min,
        high_max] at the next allocation or free (so an unused pcp shows ``high: 0`` in
        /proc/zoneinfo)."""
        self.high_min = high_min
        self.high_max = high_max
        self.batch = batch

    # -- tuning rules ------------------------------------------------------------------------

    def nr_pcp_alloc(self, order: int, zone_below_high: bool) -> int:
        """Models mm/page_alloc.c: nr_pcp_alloc. How many blocks a refill takes; grows ``high`` and
        ``alloc_factor`` for runs of order-0 allocations."""
        base_batch = self.batch
        high_min = self.high_min
        high_max = self.high_max
        high = self.high = min(max(self.high, high_min), high_max)
        if high < base_batch:
            return 1
        batch = base_batch if order else base_batch << self.alloc_factor
        if high_min != high_max and not zone_below_high:
            high = self.high = min(high + batch, high_max)
        if not order:
            max_nr_alloc = max(high - self.count - base_batch, base_batch)
            if batch <= max_nr_alloc and self.alloc_factor < CONFIG_PCP_BATCH_SCALE_MAX:
                self.alloc_factor += 1
            batch = min(batch, max_nr_alloc)
        if batch > 1:
            batch = max(batch >> order, 2)
        return batch

    def nr_pcp_free(self, batch: int, high: int, free_high: bool) -> int:
        """Models mm/page_alloc.c: nr_pcp_free. How many pages a free-side drain releases."""
        if free_high:
            return min(self.count, batch << CONFIG_PCP_BATCH_SCALE_MAX)
        if high < batch:
            return 1
        return min(max(self.free_count, batch), high - batch)

    def nr_pcp_high(
        self, batch: int, free_high: bool, reclaim_active: bool, below_high: bool
    ) -> int:
        """Models mm/page_alloc.c: nr_pcp_high. The drain threshold for this free; auto-tunes
        ``high``."""
        high_min = self.high_min
        high_max = self.high_max
        high = self.high = min(max(self.high, high_min), high_max)
        if not high:
            return 0
        if free_high:
            self.high = max(high - (batch << CONFIG_PCP_BATCH_SCALE_MAX), high_min)
            return 0
        if reclaim_active:
            free_count = max(self.free_count, batch)
            self.high = max(high - free_count, high_min)
            return min(batch << 2, self.high)
        if high_min == high_max:
            return high
        if below_high:
            free_count = max(self.free_count, batch)
            self.high = max(high - free_count, high_min)
            high = max(self.count, high_min)
        elif self.count >= high:
            need_high = self.free_count + batch
            if self.high < need_high:
                self.high = min(max(need_high, high_min), high_max)
        return high

    def decay_high(self) -> int:
        """Models mm/page_alloc.c: decay_pcp_high, the tuning half. Lower ``high`` by 1/8 (not below
        high_min, nor below count - batch<<5) and return how many pages to drain (>= 0)."""
        high_min = self.high_min
        if self.high > high_min:
            self.high = max(
                self.count - (self.batch << CONFIG_PCP_BATCH_SCALE_MAX),
                self.high - (self.high >> 3),
                high_min,
            )
        return max(self.count - self.high, 0)

    def commit_free_flags(self, order: int) -> bool:
        """Models mm/page_alloc.c: free_unref_page_commit (the flag and counter updates before
        the drain decision). Returns ``free_high``. (The page is added by :meth:`add_free`.)"""
        batch = self.batch
        free_high = False
        if order and order <= PAGE_ALLOC_COSTLY_ORDER:
            free_high = (
                self.free_count >= batch
                and bool(self.flags & PCPF_PREV_FREE_HIGH_ORDER)
                and (not self.flags & PCPF_FREE_HIGH_BATCH or self.count >= batch)
            )
            self.flags |= PCPF_PREV_FREE_HIGH_ORDER
        elif self.flags & PCPF_PREV_FREE_HIGH_ORDER:
            self.flags &= ~PCPF_PREV_FREE_HIGH_ORDER
        if self.free_count < (batch << CONFIG_PCP_BATCH_SCALE_MAX):
            self.free_count += 1 << order
        return free_high

    # -- list work ---------------------------------------------------------------------------

    def take(self, order: int, migratetype: int) -> int:
        """Models mm/page_alloc.c: __rmqueue_pcplist (the list part): pop the first (hottest)
        entry, or -1."""
        if order > PAGE_ALLOC_COSTLY_ORDER:  # order_to_pindex, inline (the hot path)
            head = self.lists + NR_LOWORDER_PCP_LISTS + (migratetype == MIGRATE_MOVABLE)
        else:
            head = self.lists + MIGRATE_PCPTYPES * order + migratetype
        mm = self.zone.memmap
        nxt = mm.nxt
        pfn = nxt[head]
        if pfn == head:
            return -1
        # list_del, inline
        prv = mm.prv
        n = nxt[pfn]
        p = prv[pfn]
        nxt[p] = n
        prv[n] = p
        self.count -= 1 << order
        return pfn

    def add_free(self, pfn: int, order: int, migratetype: int) -> int:
        """Models mm/page_alloc.c: free_unref_page_commit (the list part): mark PG_PCP,
        list_add at the head. Returns the pindex used."""
        if order > PAGE_ALLOC_COSTLY_ORDER:  # order_to_pindex, inline (the hot path)
            pindex = NR_LOWORDER_PCP_LISTS + (migratetype == MIGRATE_MOVABLE)
        else:
            pindex = MIGRATE_PCPTYPES * order + migratetype
        mm = self.zone.memmap
        mm.mark_block(pfn, order, PG_PCP)
        # list_add at the head, inline
        head = self.lists + pindex
        nxt = mm.nxt
        prv = mm.prv
        n = nxt[head]
        nxt[pfn] = n
        prv[pfn] = head
        prv[n] = pfn
        nxt[head] = pfn
        self.count += 1 << order
        return pindex

    def refill(self, order: int, migratetype: int, count: int, alloc_flags: int) -> int:
        """Models mm/page_alloc.c: rmqueue_bulk (the body; caller holds zone->lock): take up to
        ``count`` blocks with __rmqueue and add them at the list tail. Returns the number of
        blocks added."""
        lockdep_assert_held(self.lock)
        lockdep_assert_held(self.zone.lock_or_none)
        zone = self.zone
        pages = rmqueue_bulk(zone, order, count, migratetype, alloc_flags)
        head = self.lists + order_to_pindex(migratetype, order)
        add_tail = zone.memmap.list_add_tail
        for pfn in pages:
            add_tail(head, pfn)
        self.count += len(pages) << order
        return len(pages)

    def free_bulk(self, count: int, pindex: int) -> list[tuple[int, int, int]]:
        """Models mm/page_alloc.c: free_pcppages_bulk (caller holds pcp->lock and zone->lock).

        Round-robin over non-empty lists starting at ``pindex``, taking from each list's tail
        (coldest) until it is empty or ``count`` pages went; each block goes to __free_one_page
        with its pageblock's migratetype read now. Returns ``(pfn, order, mt)`` per block, for
        the ``mm_page_pcpu_drain`` tracepoint.
        """
        lockdep_assert_held(self.lock)
        lockdep_assert_held(self.zone.lock_or_none)
        count = min(self.count, count)
        zone = self.zone
        mm = zone.memmap
        nxt, prv, pb_mt = mm.nxt, mm.prv, mm.pb_mt
        base = self.lists
        out = []
        pindex -= 1
        while count > 0:
            while True:
                pindex += 1
                if pindex > NR_PCP_LISTS - 1:
                    pindex = 0
                head = base + pindex
                if nxt[head] != head:
                    break
            order = pindex_to_order(pindex)
            nr_pages = 1 << order
            while True:
                pfn = prv[head]
                mt = pb_mt[pfn >> PAGEBLOCK_ORDER]
                mm.list_del(pfn)
                count -= nr_pages
                self.count -= nr_pages
                free_to_buddy(zone, pfn, order, mt)
                out.append((pfn, order, mt))
                if count <= 0 or nxt[head] == head:
                    break
        return out

    def entries(self) -> list[tuple[int, int]]:
        """Every ``(pfn, order)`` on this pcp, list by list (for checks and snapshots)."""
        mm = self.zone.memmap
        return [
            (pfn, pindex_to_order(p))
            for p in range(NR_PCP_LISTS)
            for pfn in mm.list_entries(self.lists + p)
        ]

    def snapshot(self, stat_threshold: int = 0) -> PcpSnapshot:
        return PcpSnapshot(self.cpu, self.count, self.high, self.batch, stat_threshold)


class Cpu:
    """One CPU: its node, its ``per_cpu_pages`` for every zone (indexed like
    ``machine.zones``), its zonelists and its allocation statistics."""

    __slots__ = ("id", "lru_add", "node", "pcp", "stats", "zonelists")

    def __init__(self, cpu_id: int, node: int) -> None:
        self.id = cpu_id
        self.node = node
        #: cpu_fbatches.lru_add: head pfns waiting to go on the LRU (emulator.mm.reclaim.lru)
        self.lru_add: list[int] = []
        self.pcp: list[PerCpuPages] = []
        self.zonelists: list[list[Zone]] = []
        self.stats = [OrderStats() for _ in range(NR_PAGE_ORDERS)]

    def __reduce__(self) -> tuple[Any, ...]:
        # as PerCpuPages.__reduce__
        return (type(self), (self.id, self.node), self.__getstate__())

    def __repr__(self) -> str:
        return f"<Cpu {self.id} node {self.node}>"
