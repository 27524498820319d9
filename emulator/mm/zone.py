"""``struct zone``: its fields, free_area lists and free-page accounting (include/linux/mmzone.h).

:class:`Zone` holds what the kernel keeps in ``struct zone`` for the page allocator: the span
(``zone_start_pfn``, spanned/present/managed pages), ``free_area[order]`` (one list head per
migratetype, ``nr_free`` in blocks), the free counters ``NR_FREE_PAGES`` / ``NR_FREE_CMA_PAGES`` /
``nr_free_highatomic``, ``nr_reserved_highatomic``, ``_watermark[]``, ``watermark_boost``,
``lowmem_reserve[]`` and ``flags``. The list primitives here are the kernel's static helpers of
mm/page_alloc.c (``__add_to_free_list``, ``move_to_free_list``, ``__del_page_from_free_list``,
``account_freepages``); the algorithms that use them live in :mod:`emulator.mm.page_alloc.buddy`.

Locking: none here. Every method assumes the caller holds ``zone->lock`` (the actor layer's
SpinLock); they are plain synchronous code.

Work counter: ``buddy_steps`` is incremented once per free-list operation and once per split or
merge step, so callers can charge virtual time per step.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Callable

from emulator.engine.recorder import NULL_RECORDER, NullRecorder, Recorder
from emulator.engine.sim import Sim
from emulator.engine.sync import SpinLock
from emulator.mm.memmap import PG_BUDDY, Memmap
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_ORDER,
    ZONE_NAMES,
    ZoneSnapshot,
)

# enum zone_type (x86-64 without CONFIG_ZONE_DEVICE / HIGHMEM)
ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
ZONE_MOVABLE = 3
MAX_NR_ZONES = len(ZONE_NAMES)

# enum zone_watermarks
WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2
WMARK_PROMO = 3
NR_WMARK = 4

# enum zone_flags (bit numbers, as set_bit uses them)
ZONE_BOOSTED_WATERMARK = 0
ZONE_RECLAIM_ACTIVE = 1
ZONE_BELOW_HIGH = 2


class Zone:
    """Models include/linux/mmzone.h: struct zone. Its data and free-list primitives (the
    caller holds zone->lock); ``lock`` is zone->lock once an allocator has bound the zone."""

    def __init__(
        self,
        memmap: Memmap,
        node: int,
        zone_idx: int,
        start_pfn: int,
        spanned: int,
        *,
        vm_events: defaultdict[str, int] | None = None,
        recorder: Recorder | NullRecorder = NULL_RECORDER,
        watermark_boost_factor: int,
    ) -> None:
        self.memmap = memmap
        self.node = node
        self.zone_idx = zone_idx
        self.name = ZONE_NAMES[zone_idx]
        self.zone_start_pfn = start_pfn
        self.spanned_pages = spanned
        self.zone_end_pfn = start_pfn + spanned
        self.present_pages = 0
        self.managed_pages = 0
        self.cma_pages = 0
        # free_area[order].free_list[mt] are list heads sbase + order*MIGRATE_TYPES + mt
        self.sbase = memmap.new_lists(NR_PAGE_ORDERS * MIGRATE_TYPES)
        self.nr_free = [0] * NR_PAGE_ORDERS
        self.nr_free_mt = [0] * (NR_PAGE_ORDERS * MIGRATE_TYPES)
        # counters (vm_stat[NR_FREE_PAGES], vm_stat[NR_FREE_CMA_PAGES], nr_free_highatomic)
        self.nr_free_pages = 0
        self.nr_free_cma = 0
        self.nr_free_highatomic = 0
        self.nr_reserved_highatomic = 0
        #: fragmenting fallbacks by the requesting migratetype: ``mm_page_alloc_extfrag`` with
        #: fallback_order < pageblock_order (the kernel has the tracepoint only, no counter)
        self.extfrag_fragmenting = [0] * MIGRATE_TYPES
        self._watermark = [0] * NR_WMARK
        self.watermark_boost = 0
        self.lowmem_reserve = [0] * MAX_NR_ZONES
        self.flags = 0
        self.vm_events: defaultdict[str, int] = (
            vm_events if vm_events is not None else defaultdict(int)
        )
        self.rec = recorder
        self.buddy_steps = 0
        self.capture: Callable[[int, int, int], bool] | None = None
        """Compaction capture hook (``compaction_capture``): ``capture(pfn, order, mt) -> bool``.

        Called by ``__free_one_page`` at every merge order; returning True takes the block (its
        pages are left marked :data:`~emulator.mm.memmap.PG_ISOLATED`, off the free counters).
        None (no capturing task) by default.
        """
        #: vm.watermark_boost_factor (the kernel's boost_watermark reads the global)
        self.watermark_boost_factor = watermark_boost_factor
        self.page_group_by_mobility_disabled = False
        # struct zone's CONFIG_COMPACTION fields (mmzone.h:968-983), used by mm/compaction.py
        self.compact_cached_free_pfn = 0
        self.compact_cached_migrate_pfn: list[int] = [0, 0]
        self.compact_init_migrate_pfn = 0
        self.compact_init_free_pfn = 0
        self.compact_considered = 0
        self.compact_defer_shift = 0
        self.compact_order_failed = 0
        self.compact_blockskip_flush = False
        self.gidx = -1
        """Index in the allocator's ``zones`` (and every CPU's ``pcp``); -1 until :meth:`bind`."""
        self.lock_or_none: SpinLock | None = None
        self.lock_waits = array("q")
        """The emulator's record of every wait for ``zone->lock``: flat (start ns, wait ns)
        pairs (not a struct zone field; the plots and ``mmemu latency`` read it)."""
        """``zone->lock``, or None for a bare zone (synchronous unit tests)."""
        self.pgalloc_key = "pgalloc_" + self.name.lower()
        """The /proc/vmstat event this zone's allocations count under (pgalloc_<zone>)."""

    # --- the allocator's binding (zone->lock lives in the engine) ---

    def bind(self, sim: Sim, gidx: int) -> None:
        """Adopt this zone into an allocator running on ``sim``: its ``zone->lock`` (an engine
        SpinLock), its index ``gidx`` and the sim's recorder."""
        self.gidx = gidx
        self.lock_or_none = SpinLock(sim, "&zone->lock")
        self.rec = sim.recorder

    @property
    def lock(self) -> SpinLock:
        """``zone->lock`` (exists once an allocator has bound the zone)."""
        lock = self.lock_or_none
        if lock is None:
            raise RuntimeError(f"{self!r} has no zone->lock: no PageAllocator has bound it")
        return lock

    # --- identity / span ---

    @property
    def populated(self) -> bool:
        """Models include/linux/mmzone.h: populated_zone. The zone has present pages."""
        return self.present_pages > 0

    def spans(self, pfn: int) -> bool:
        """Models include/linux/mmzone.h: zone_spans_pfn."""
        return self.zone_start_pfn <= pfn < self.zone_end_pfn

    def free_list(self, order: int, mt: int) -> int:
        """The list head index of ``free_area[order].free_list[mt]``."""
        return self.sbase + order * MIGRATE_TYPES + mt

    # --- watermarks (wmark_pages etc.) ---

    def wmark_pages(self, w: int) -> int:
        """Models include/linux/mmzone.h: wmark_pages. ``_watermark[w] + watermark_boost``."""
        return self._watermark[w] + self.watermark_boost

    @property
    def min_wmark_pages(self) -> int:
        return self._watermark[WMARK_MIN] + self.watermark_boost

    @property
    def low_wmark_pages(self) -> int:
        return self._watermark[WMARK_LOW] + self.watermark_boost

    @property
    def high_wmark_pages(self) -> int:
        return self._watermark[WMARK_HIGH] + self.watermark_boost

    @property
    def promo_wmark_pages(self) -> int:
        return self._watermark[WMARK_PROMO] + self.watermark_boost

    # --- free-list primitives (mm/page_alloc.c static helpers) ---

    def account_freepages(self, nr_pages: int, mt: int) -> None:
        """Models mm/page_alloc.c: account_freepages. NR_FREE_PAGES except ISOLATE; CMA and
        highatomic sub-counters."""
        if mt == MIGRATE_ISOLATE:
            return
        self.nr_free_pages += nr_pages
        if mt == MIGRATE_CMA:
            self.nr_free_cma += nr_pages
        elif mt == MIGRATE_HIGHATOMIC:
            self.nr_free_highatomic += nr_pages

    def add_to_free_list(self, pfn: int, order: int, mt: int, tail: bool) -> None:
        """Models mm/page_alloc.c: __add_to_free_list + set_buddy_order. list_add or
        list_add_tail, nr_free++."""
        mm = self.memmap
        mm.state[pfn] = PG_BUDDY
        mm.order[pfn] = order
        i = order * MIGRATE_TYPES + mt
        if tail:
            mm.list_add_tail(self.sbase + i, pfn)
        else:
            mm.list_add(self.sbase + i, pfn)
        self.nr_free[order] += 1
        self.nr_free_mt[i] += 1
        self.buddy_steps += 1

    def del_from_free_list(self, pfn: int, order: int, mt: int) -> None:
        """Models mm/page_alloc.c: __del_page_from_free_list. list_del, nr_free-- (the caller
        fixes the page state)."""
        self.memmap.list_del(pfn)
        self.nr_free[order] -= 1
        self.nr_free_mt[order * MIGRATE_TYPES + mt] -= 1
        self.buddy_steps += 1

    def move_to_free_list(self, pfn: int, order: int, old_mt: int, new_mt: int) -> None:
        """Models mm/page_alloc.c: move_to_free_list. list_move_tail to ``new_mt``'s list, move
        the accounting."""
        mm = self.memmap
        mm.list_del(pfn)
        mm.list_add_tail(self.sbase + order * MIGRATE_TYPES + new_mt, pfn)
        self.nr_free_mt[order * MIGRATE_TYPES + old_mt] -= 1
        self.nr_free_mt[order * MIGRATE_TYPES + new_mt] += 1
        self.account_freepages(-(1 << order), old_mt)
        self.account_freepages(1 << order, new_mt)
        self.buddy_steps += 1

    def free_list_pfns(self, order: int, mt: int) -> list[int]:
        """The pfns on ``free_area[order].free_list[mt]``, first (head) to last."""
        return self.memmap.list_entries(self.free_list(order, mt))

    # --- views ---

    def pageblock_range(self) -> range:
        """Indices of the pageblocks this zone's span touches."""
        if not self.spanned_pages:
            return range(0)
        return range(
            self.zone_start_pfn >> PAGEBLOCK_ORDER,
            ((self.zone_end_pfn - 1) >> PAGEBLOCK_ORDER) + 1,
        )

    def pageblocks_by_mt(self) -> tuple[int, ...]:
        """Pageblocks per migratetype, as pagetypeinfo counts them (blocks with present pages)."""
        counts = [0] * MIGRATE_TYPES
        st = self.memmap.state
        pb = self.memmap.pb_mt
        for b in self.pageblock_range():
            lo = max(b << PAGEBLOCK_ORDER, self.zone_start_pfn)
            hi = min((b + 1) << PAGEBLOCK_ORDER, self.zone_end_pfn)
            if any(st[lo:hi]):  # any present page (PG_HOLE is 0)
                counts[pb[b]] += 1
        return tuple(counts)

    def snapshot(self) -> ZoneSnapshot:
        """Freeze this zone into the :class:`~emulator.mm.snapshot.ZoneSnapshot` seam."""
        by_mt = tuple(
            tuple(self.nr_free_mt[o * MIGRATE_TYPES + mt] for o in range(NR_PAGE_ORDERS))
            for mt in range(MIGRATE_TYPES)
        )
        return ZoneSnapshot(
            node=self.node,
            name=self.name,
            nr_free=tuple(self.nr_free),
            nr_free_by_mt=by_mt,
            pageblocks_by_mt=self.pageblocks_by_mt(),
            start_pfn=self.zone_start_pfn,
            spanned=self.spanned_pages,
            present=self.present_pages,
            managed=self.managed_pages,
            cma=self.cma_pages,
            # zoneinfo prints min_wmark_pages() etc., which include the boost
            wmark_min=self.min_wmark_pages,
            wmark_low=self.low_wmark_pages,
            wmark_high=self.high_wmark_pages,
            wmark_promo=self.promo_wmark_pages,
            boost=self.watermark_boost,
            lowmem_reserve=tuple(self.lowmem_reserve),
            nr_free_pages=self.nr_free_pages,
        )

    def __repr__(self) -> str:
        return (
            f"<Zone node {self.node} {self.name} pfn {self.zone_start_pfn:#x}-"
            f"{self.zone_end_pfn:#x} managed {self.managed_pages} free {self.nr_free_pages}>"
        )
