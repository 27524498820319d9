"""The page allocator's entry points, run by CPU actors: fast path, pcp lists, zone->lock.

Models mm/page_alloc.c of Linux 6.12: __alloc_pages_noprof, get_page_from_freelist, rmqueue,
rmqueue_pcplist/__rmqueue_pcplist, rmqueue_buddy (locking half) and prep_new_page. The buddy
core under the lock is :mod:`emulator.mm.page_alloc.buddy` (functions over a
:class:`~emulator.mm.zone.Zone`); the pcp arithmetic is :mod:`emulator.mm.page_alloc.pcp`. The
free side (free_unref_page, free_one_page, __free_pages_ok) is
:mod:`emulator.mm.page_alloc.page_free` and the drains (free_pcppages_bulk, drain_pages_zone,
__drain_all_pages, decay_pcp_high) :mod:`emulator.mm.page_alloc.drain`: functions taking the
allocator as the :class:`~emulator.mm.internal.Allocator` interface, as every mechanism below
this module does. The per-order outcome counters are in
:mod:`emulator.mm.page_alloc.alloc_stats`.

Time and ordering (what is "own" and what is "shared")
------------------------------------------------------
* Entering an allocation or a free is a shared operation: the CPU actor synchronises once
  (:meth:`Sim.sync`), then, at that instant, reads the zone counters for the watermark checks
  (lockless, as the kernel does) and trylocks its own ``pcp->lock``. In 6.12 a pcp is shared:
  other CPUs drain it remotely under that lock, so it is ordered in global time like any lock.
* The work that follows is charged as virtual time from :class:`~emulator.mm.costs.Costs`
  while the locks are held, so lock hold times, and hence contention, follow from the costs.
* Refills (``rmqueue_bulk``) and drains (``free_pcppages_bulk``) take ``zone->lock`` once per
  batch; the hold time grows with the pages moved and the buddy steps taken.

Simplifies: no cpusets, memcg, page_owner, KASAN, debug checks (check_new_pages never fails);
``zone_statistics`` (NUMA hit/miss counters) is not kept; remote-node pcp expiry
(``drain_zone_pages``) is not modelled. The slow path (:meth:`alloc_pages_slowpath`) is
:mod:`emulator.mm.page_alloc.slowpath`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from emulator.engine import Mutex, Sim, SpinLock
from emulator.engine.recorder import NullRecorder, Recorder
from emulator.mm.alloc_latency import SLOWPATH, AllocClock
from emulator.mm.costs import Costs
from emulator.mm.internal import AllocContext, KthreadsView, ZoneLockHold
from emulator.mm.invariants import check_lru, check_machine, check_pcp_lists
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_FOR_MIGRATETYPE, OWNER_NONE, PG_ALLOC, Memmap
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_HIGHATOMIC,
    ALLOC_KSWAPD,
    ALLOC_NO_WATERMARKS,
    ALLOC_NOFRAGMENT,
    ALLOC_WMARK_MASK,
)
from emulator.mm.page_alloc.alloc_stats import SlowpathStats, order_summary
from emulator.mm.page_alloc.gfp import (
    __GFP_THISNODE as _GFP_THISNODE,
)
from emulator.mm.page_alloc.gfp import (
    __GFP_ZERO as _GFP_ZERO,
)
from emulator.mm.page_alloc.gfp import fast_path_alloc_flags, format_gfp, gfp_migratetype, gfp_zone
from emulator.mm.page_alloc.highatomic import highatomic_max_managed, reserve_highatomic_pageblock
from emulator.mm.page_alloc.pcp import (
    PCPF_FREE_HIGH_BATCH,
    Cpu,
    PerCpuPages,
    pageset_high_and_batch,
)
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.page_alloc.slowpath import alloc_pages_slowpath
from emulator.mm.page_alloc.watermark import zone_watermark_fast
from emulator.mm.reclaim.lruvec import Lruvec, SlabShrinker
from emulator.mm.reclaim.vmscan import zone_reclaimable_pages
from emulator.mm.snapshot import (
    MIGRATE_PCPTYPES,
    NR_PAGE_ORDERS,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import (
    ZONE_BELOW_HIGH,
    ZONE_BOOSTED_WATERMARK,
    ZONE_DMA32,
    ZONE_MOVABLE,
    ZONE_RECLAIM_ACTIVE,
    Zone,
)

__all__ = [
    "PageAllocator",
]

_BELOW_HIGH = 1 << ZONE_BELOW_HIGH
_RECLAIM_ACTIVE = 1 << ZONE_RECLAIM_ACTIVE
_BOOSTED = 1 << ZONE_BOOSTED_WATERMARK
_PCP_MAX_ORDER = PAGE_ALLOC_COSTLY_ORDER
PAGE_SHIFT = 12
#: _rmqueue_pcplist_take: the pcp list was empty (``pcp->lock`` held, a refill follows)
_PCP_EMPTY = -2


class PageAllocator:
    """The allocator of one machine, shared by all CPU actors of one :class:`Sim`.

    ``machine`` is a :class:`~emulator.mm.machine.Machine`. ``cpus_per_node`` CPUs are created
    per node, numbered node-major. Every CPU has a pcp for every populated zone (remote nodes'
    included, as ``zone->per_cpu_pageset`` is per CPU).
    """

    #: a recorder for the timeline's mmemu-specific markers (``mmemu_alloc_begin`` at the entry
    #: of every allocation, whose end is ``mm_page_alloc``; ``mmemu_slowpath_begin`` / ``_end``
    #: around the slow path); None (the default) records none. The runner sets it for a trace.
    markers: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> PageAllocator:
        # unpickling (the set-up cache) makes the object with ``__new__`` alone and then sets
        # its state; with an explicit ``__new__``, a class compiled with mypyc
        # (emulator.native) does not run ``__init__`` there either
        return super().__new__(cls)

    def __init__(
        self,
        machine: Machine,
        sim: Sim,
        cpus_per_node: int,
        costs: Costs | None = None,
    ) -> None:
        if cpus_per_node < 1:
            raise ValueError(f"cpus_per_node must be >= 1, got {cpus_per_node}")
        self.machine: Machine = machine
        self.sim: Sim = sim
        self.costs: Costs = costs or Costs()
        self.rec: Recorder | NullRecorder = sim.recorder
        self.memmap: Memmap = machine.memmap
        self.vm_events: defaultdict[str, int] = machine.vm_events
        self.zones: list[Zone] = machine.populated_zones()
        for i, z in enumerate(self.zones):
            z.bind(sim, i)
        #: every node's lruvec (indexed by node id), with its lru_lock bound to ``sim``
        self.lruvecs: list[Lruvec] = [n.lruvec for n in machine.nodes]
        for lv in self.lruvecs:
            lv.bind(sim)
        self.nr_nodes: int = len(machine.nodes)
        self.cpus: list[Cpu] = []
        for node in range(self.nr_nodes):
            for _ in range(cpus_per_node):
                self.cpus.append(Cpu(len(self.cpus), node))
        self.pcpu_drain_mutex: Mutex = Mutex(sim, "pcpu_drain_mutex")
        for cpu in self.cpus:
            for z in self.zones:
                cpu.pcp.append(PerCpuPages(z, cpu.id, SpinLock(sim, "&pcp->lock")))
            cpu.zonelists = [machine.zonelist(cpu.node, hz) for hz in range(ZONE_MOVABLE + 1)]
        self._dma32_populated: list[bool] = [
            any(z.node == n and z.zone_idx == ZONE_DMA32 for z in self.zones) or self.nr_nodes == 1
            for n in range(self.nr_nodes)
        ]
        self._zone_starts: list[int] = [z.zone_start_pfn for z in self.zones]
        self._gfp_names: dict[int, str] = {}
        #: with a strategy that injects delays (random, pct), the allocator offers named
        #: preemption points at the kernel's unlocked windows; with fifo they cost nothing
        self.explore: bool = bool(sim.strategy.delays)
        #: prepare_alloc_pages' result per (node, gfp): the alloc_context, the fast path's
        #: alloc_flags and the default owner kind
        self._gfp_ctx: dict[tuple[int, int], tuple[AllocContext, int, int]] = {}
        self._pgalloc_keys: list[str] = [z.pgalloc_key for z in self.zones]
        self.zone_pcp_update()
        for cpu in self.cpus:  # cacheinfo_cpu_online -> setup_pcp_cacheinfo, after boot
            self.setup_pcp_cacheinfo(cpu)
        # setup_per_zone_wmarks -> zone_pcp_update, and
        # percpu_pagelist_high_fraction_sysctl_handler -> zone_set_pageset_high_and_batch
        # (a bound method, not a closure: a machine after set-up pickles, emulator/setup_cache.py)
        machine.wmark_observers.append(self._wmarks_changed)
        #: wakeup_kswapd calls (rmqueue's boost wake-up and wake_all_kswapds)
        self.kswapd_wakeups: int = 0
        self.wakeup_kswapd_hook: Callable[[Zone, int, int], None] | None = None
        #: every node's kswapd and kcompactd (emulator.mm.reclaim.kswapd.Kthreads) once started
        self.kthreads: KthreadsView | None = None
        #: the slow path's outcomes per order (mm/slowpath.py) and each node's slab shrinker
        #: (mm/vmscan.py)
        self.slowpath_stats = [SlowpathStats() for _ in range(NR_PAGE_ORDERS)]
        self.shrinkers = [SlabShrinker() for _ in range(self.nr_nodes)]
        #: per order: zones whose watermark check passed and whose rmqueue then found no
        #: block (another CPU took the pages in the unlocked window between the two); mmemu's
        #: count, the kernel keeps none
        self.watermark_ok_lost = [0] * NR_PAGE_ORDERS
        #: per-allocator state of mechanisms defined elsewhere, by name (hugetlb's pool,
        #: migration's registered rmap holders): an attribute, not a weak-keyed table, so it
        #: is pickled with the allocator
        self.extensions: dict[str, Any] = {}

    # -- set-up ------------------------------------------------------------------------------

    def zone_pcp_update(self) -> None:
        """Models mm/page_alloc.c: zone_pcp_update. Recompute every pcp's batch, high_min, high_max
        (at boot and when min_free_kbytes, watermark_scale_factor or
        percpu_pagelist_high_fraction change). With ``mitigation.pcp_high_autotune`` off
        (before 51a755c56dc0) high_max = high_min: a fixed ``pcp->high``."""
        fraction = self.machine.percpu_pagelist_high_fraction
        autotune = self.machine.mitigations.on("pcp_high_autotune")
        for z in self.zones:
            node_cpus = sum(1 for c in self.cpus if c.node == z.node)
            high_min, high_max, batch = pageset_high_and_batch(
                z.low_wmark_pages, z.managed_pages, node_cpus, fraction
            )
            if not autotune:
                high_max = high_min
            for cpu in self.cpus:
                cpu.pcp[z.gidx].set_high_and_batch(high_min, high_max, batch)

    def _wmarks_changed(self, _machine: Machine) -> None:
        self.zone_pcp_update()

    def setup_pcp_cacheinfo(self, cpu: Cpu) -> None:
        """Models mm/page_alloc.c: setup_pcp_cacheinfo -> zone_pcp_update_cacheinfo for every
        populated zone: PCPF_FREE_HIGH_BATCH is set when the CPU's LLC slice, in pages, exceeds
        3 * batch (then a free_high drain also needs pcp->count >= batch). Run once per CPU
        (the kernel runs it when the CPU's cache information is set up)."""
        slice_pages = self.machine.per_cpu_data_slice_size >> PAGE_SHIFT
        for pcp in cpu.pcp:
            if slice_pages > 3 * pcp.batch:
                pcp.flags |= PCPF_FREE_HIGH_BATCH
            else:
                pcp.flags &= ~PCPF_FREE_HIGH_BATCH

    def zone_of(self, pfn: int) -> Zone:
        """Models include/linux/mm.h: page_zone. The zone holding ``pfn``."""
        zones = self.zones
        starts = self._zone_starts
        i = len(starts) - 1
        while i > 0 and starts[i] > pfn:
            i -= 1
        z = zones[i]
        if not z.zone_start_pfn <= pfn < z.zone_end_pfn:
            for z in zones:
                if z.zone_start_pfn <= pfn < z.zone_end_pfn:
                    return z
            raise ValueError(f"pfn {pfn:#x} is in no zone")
        return z

    def zone_reclaimable_pages(self, zone: Zone) -> int:
        """vmscan.c: zone_reclaimable_pages (:mod:`emulator.mm.reclaim.vmscan`)."""
        return zone_reclaimable_pages(self, zone)

    def gfp_name(self, gfp: int) -> str:
        name = self._gfp_names.get(gfp)
        if name is None:
            name = self._gfp_names[gfp] = format_gfp(gfp)
        return name

    # -- allocation --------------------------------------------------------------------------

    async def alloc_pages(self, cpu: Cpu, order: int, gfp: int, owner: int = -1) -> int:
        """Models mm/page_alloc.c: __alloc_pages_noprof. Allocate ``1 << order`` pages; pfn or -1.

        ``owner`` is the owner kind of the pages (memmap OWNER_*); by default it follows the
        migratetype. Fires ``mm_page_alloc`` (pfn -1 on failure).
        """
        sim = self.sim
        me = sim._current
        assert me is not None, "alloc_pages outside an actor"
        start = me.now
        markers = self.markers
        if markers is not None:  # mmemu-specific: the kernel has no tracepoint here
            markers.emit("mmemu_alloc_begin", order=order, gfp_flags=self.gfp_name(gfp))
        stats = cpu.stats[order]
        stats.attempts += 1
        # the latency parts (emulator.mm.alloc_latency), in this actor's own accumulators
        clock = me.clock
        if clock is None:
            clock = me.clock = AllocClock()
        timed = not clock.active
        if timed:
            if markers is not None and clock.segments is None:
                clock.segments = []
            clock.start(me)
        if self.explore:
            await sim.preempt("alloc_pages")
        else:
            await sim.sync()
        ctx = self._gfp_ctx.get((cpu.node, gfp))
        if ctx is None:
            ctx = self.prepare_alloc_pages(cpu, gfp)
        ac, alloc_flags, default_owner = ctx
        mt = ac.migratetype
        if owner < 0:
            owner = default_owner
        pfn, reason = await self.get_page_from_freelist(cpu, gfp, order, alloc_flags, ac, owner)
        if pfn < 0:
            if markers is not None:
                markers.emit("mmemu_slowpath_begin", order=order)
            if timed:
                clock.switch(SLOWPATH, me)
            pfn, reason = await self.alloc_pages_slowpath(cpu, gfp, order, ac, owner, reason)
            if markers is not None:
                markers.emit("mmemu_slowpath_end", pfn=pfn, order=order, reason=reason or "")
        if pfn < 0:
            stats.failures += 1
            stats.failure_reasons[reason] += 1
        if timed:
            parts = clock.finish(me)
            if parts is not None:
                stats.parts.append(len(stats.latencies))
                stats.parts.extend(parts)
                if markers is not None and clock.segments:
                    markers.emit("mmemu_alloc_parts", order=order, segments=clock.segments)
        stats.starts.append(start)
        stats.latencies.append(me.now - start)
        rec = self.rec
        if rec.enabled:
            rec.emit(
                "mm_page_alloc", pfn=pfn, order=order, migratetype=mt, gfp_flags=self.gfp_name(gfp)
            )
        return pfn

    def prepare_alloc_pages(self, cpu: Cpu, gfp: int) -> tuple[AllocContext, int, int]:
        """Models mm/page_alloc.c: prepare_alloc_pages (+ the fast path's alloc_flags_nofragment
        and alloc_flags for the first attempt). Cached per (node, gfp), as it depends on nothing
        else here (no cpusets, no mempolicy: ``nodemask`` is None). Returns the
        :class:`AllocContext`, the first attempt's alloc_flags and the default owner kind."""
        mt = gfp_migratetype(gfp)
        hz = gfp_zone(gfp)
        zonelist = cpu.zonelists[hz]
        if gfp & _GFP_THISNODE:
            # node_zonelist -> gfp_zonelist: ZONELIST_NOFALLBACK, this node's zones only
            zonelist = [z for z in zonelist if z.node == cpu.node]
        if not zonelist:
            raise ValueError(f"cpu {cpu.id}: no populated zone at or below index {hz}")
        preferred = zonelist[0]
        alloc_flags = fast_path_alloc_flags(
            gfp, preferred.zone_idx, self._dma32_populated[preferred.node]
        )
        if not self.machine.mitigations.on("alloc_nofragment"):
            alloc_flags &= ~ALLOC_NOFRAGMENT  # before 6bb154504f8b: no such flag
        owner = OWNER_FOR_MIGRATETYPE[mt] if mt < MIGRATE_PCPTYPES else OWNER_NONE
        ac = AllocContext(
            zonelist=zonelist,
            nodemask=None,
            preferred_zoneref=preferred,
            migratetype=mt,
            highest_zoneidx=hz,
            spread_dirty_pages=False,
        )
        ctx = self._gfp_ctx[(cpu.node, gfp)] = (ac, alloc_flags, owner)
        return ctx

    async def alloc_pages_slowpath(
        self, cpu: Cpu, gfp: int, order: int, ac: AllocContext, owner: int, reason: str
    ) -> tuple[int, str]:
        """page_alloc.c: __alloc_pages_slowpath (:mod:`emulator.mm.page_alloc.slowpath`): wake
        kswapd,
        direct compaction, direct reclaim, retries; ``(pfn, failure reason)``."""
        return await alloc_pages_slowpath(self, cpu, gfp, order, ac, owner)

    async def get_page_from_freelist(
        self, cpu: Cpu, gfp: int, order: int, alloc_flags: int, ac: AllocContext, owner: int
    ) -> tuple[int, str]:
        """Models mm/page_alloc.c: get_page_from_freelist. Walk the zonelist, check the HIGH mark
        first (setting ZONE_BELOW_HIGH on failure), then the requested mark, then rmqueue.

        Runs at the caller's synchronised instant up to the first lock it must wait for.
        Returns ``(pfn, failure reason)``.
        """
        costs = self.costs
        sim = self.sim
        charge = costs.alloc_entry
        reason = "watermark"
        zonelist = ac.zonelist
        preferred = ac.preferred_zoneref
        hz = ac.highest_zoneidx
        mt = ac.migratetype
        while True:
            no_fallback = alloc_flags & ALLOC_NOFRAGMENT
            retry = False
            for zone in zonelist:
                if (
                    no_fallback
                    and self.nr_nodes > 1
                    and zone is not preferred
                    and zone.node != preferred.node
                ):
                    alloc_flags &= ~ALLOC_NOFRAGMENT
                    retry = True
                    break
                charge += costs.watermark_check
                if sim.strict:
                    sim.assert_synchronised("zone watermark read")
                ok = False
                if not zone.flags & _BELOW_HIGH:
                    if zone_watermark_fast(zone, order, zone.high_wmark_pages, hz, alloc_flags):
                        ok = True
                    else:
                        zone.flags |= _BELOW_HIGH
                if not ok:
                    charge += costs.watermark_check
                    mark = zone.wmark_pages(alloc_flags & ALLOC_WMARK_MASK)
                    ok = zone_watermark_fast(zone, order, mark, hz, alloc_flags) or bool(
                        alloc_flags & ALLOC_NO_WATERMARKS
                    )
                if not ok:
                    if (
                        order
                        and reason == "watermark"
                        and zone_watermark_fast(zone, 0, mark, hz, alloc_flags)
                        and not any(zone.nr_free[order:])
                    ):
                        # enough free pages, but no free block of this order or larger on the
                        # buddy lists (pages on pcp lists are invisible here)
                        reason = "watermark_high_order"
                    continue
                if self.explore:
                    # the unlocked window between the watermark check and rmqueue: another
                    # CPU may take the pages the check counted
                    await self.sim.preempt("get_page_from_freelist:watermark_ok")
                pfn, charge = await self.rmqueue(
                    cpu, zone, order, gfp, alloc_flags, mt, owner, charge
                )
                if pfn >= 0:
                    charge += costs.prep_new_page
                    if gfp & _GFP_ZERO:
                        charge += costs.clear_page << order
                    if alloc_flags & ALLOC_HIGHATOMIC:
                        await self.sim.delay(charge)
                        charge = 0
                        await self._reserve_highatomic(zone, pfn, order)
                    await self.sim.delay(charge)
                    return pfn, ""
                reason = "no_free_block"
                self.watermark_ok_lost[order] += 1
            if retry:
                continue
            if no_fallback:
                alloc_flags &= ~ALLOC_NOFRAGMENT
                continue
            await self.sim.delay(charge)
            return -1, reason

    async def rmqueue(
        self,
        cpu: Cpu,
        zone: Zone,
        order: int,
        gfp: int,
        alloc_flags: int,
        mt: int,
        owner: int,
        charge: int,
    ) -> tuple[int, int]:
        """Models mm/page_alloc.c: rmqueue. Pcp for pcp orders, else (or when the pcp trylock fails
        or the refill finds nothing) rmqueue_buddy under zone->lock. Returns ``(pfn, charge)``:
        charges not yet applied to the clock are carried in ``charge``.

        The ZONE_BOOSTED_WATERMARK test comes after the page is taken, as in the kernel
        (page_alloc.c:3085). Called at a synchronised instant: a path that took zone->lock let
        other actors run, so it synchronises again before that test (and before a failure
        sends the caller on to the next zone's counters). Simplified: on a pcp hit, which takes
        no zone->lock, the flag is read at the synchronised entry instant rather than one pcp
        hold (``pcp_lock + pcp_list_op``) later, saving a synchronisation per allocation.
        """
        boosted = zone.flags & _BOOSTED
        pfn = -1
        took_lock = False
        if order <= _PCP_MAX_ORDER or order == PAGEBLOCK_ORDER:
            # rmqueue_pcplist: a hit needs no coroutine frame of its own
            pfn = self._rmqueue_pcplist_take(cpu, zone, order, mt, owner)
            if pfn >= 0:
                costs = self.costs
                await self.sim.delay(costs.pcp_lock + costs.pcp_list_op)
                cpu.pcp[zone.gidx].lock.release()
            elif pfn == _PCP_EMPTY:
                pfn, charge, took_lock = await self._rmqueue_pcplist_refill(
                    cpu, zone, order, alloc_flags, mt, owner, charge
                )
        if pfn < 0:
            await self.sim.delay(charge)
            charge = 0
            pfn = await self.rmqueue_buddy(cpu, zone, order, alloc_flags, mt, owner)
            took_lock = True
        if took_lock and (pfn < 0 or alloc_flags & ALLOC_KSWAPD):
            # others ran while we held or waited for zone->lock: get back to our instant
            # before reading shared state again (the caller's next zone, or the boost flag,
            # which another CPU may have set or cleared meanwhile, or our own fallback set)
            await self.sim.sync()
            boosted = zone.flags & _BOOSTED
        if alloc_flags & ALLOC_KSWAPD and boosted:
            if not took_lock:
                # a pcp hit read the flag at its entry instant; the pcp hold since may have let
                # another actor act first: get back to our instant before the clear_bit and
                # the wakeup, which touch shared state, and test the bit again there
                await self.sim.sync()
                boosted = zone.flags & _BOOSTED
            if boosted:
                zone.flags &= ~_BOOSTED
                self.wakeup_kswapd(zone, 0, zone.zone_idx)
        return pfn, charge

    def _rmqueue_pcplist_take(self, cpu: Cpu, zone: Zone, order: int, mt: int, owner: int) -> int:
        """Models mm/page_alloc.c: rmqueue_pcplist + __rmqueue_pcplist, up to the hold: trylock
        this CPU's pcp (-1 when busy), then take the hottest page. On a hit the page is marked
        allocated and counted and its pfn returned, ``pcp->lock`` held: the caller charges
        the hold (``pcp_lock + pcp_list_op``) and releases it. An empty list returns
        :data:`_PCP_EMPTY`, ``pcp->lock`` held, for :meth:`_rmqueue_pcplist_refill`.

        ``pcp->lock`` is held for the pcp work only; the caller's ``charge`` (its entry and
        watermark work, done before the lock in the kernel) is applied after the lock is
        dropped, so it never lengthens the critical section."""
        pcp = cpu.pcp[zone.gidx]
        if not pcp.lock.try_acquire_now("rmqueue_pcplist"):
            return -1
        pcp.free_count >>= 1
        pfn = pcp.take(order, mt)
        if pfn < 0:
            return _PCP_EMPTY
        cpu.stats[order].pcp_hits += 1
        self.memmap.mark_block(pfn, order, PG_ALLOC, owner)
        self.vm_events[self._pgalloc_keys[zone.gidx]] += 1 << order
        return pfn

    async def _rmqueue_pcplist_refill(
        self,
        cpu: Cpu,
        zone: Zone,
        order: int,
        alloc_flags: int,
        mt: int,
        owner: int,
        charge: int,
    ) -> tuple[int, int, bool]:
        """rmqueue_pcplist after :meth:`_rmqueue_pcplist_take` found the list empty, holding
        ``pcp->lock``: one rmqueue_bulk under zone->lock, then take the hottest page."""
        pcp = cpu.pcp[zone.gidx]
        lock = pcp.lock
        costs = self.costs
        batch = pcp.nr_pcp_alloc(order, bool(zone.flags & _BELOW_HIGH))
        await self.sim.delay(costs.pcp_lock)
        if await self._rmqueue_bulk(zone, pcp, order, batch, mt, alloc_flags):
            cpu.stats[order].refills += 1
        pfn = pcp.take(order, mt)
        hold = costs.pcp_list_op
        if pfn < 0:
            await self.sim.delay(hold)
            lock.release()
            return -1, charge, True
        self.memmap.mark_block(pfn, order, PG_ALLOC, owner)
        self.vm_events[self._pgalloc_keys[zone.gidx]] += 1 << order
        await self.sim.delay(hold)
        lock.release()
        return pfn, charge, True

    # -- zone->lock ---------------------------------------------------------------------------

    def zone_locked(self, zone: Zone, site: str) -> ZoneLockHold:
        """``async with pa.zone_locked(zone, site) as hold:`` — spin_lock_irqsave(&zone->lock),
        the body's synchronous work, then the hold charged (lock operation, a cache-line
        bounce when another CPU held it last, buddy steps, ``hold.charge``) and the lock
        released. See :mod:`emulator.mm.internal`."""
        c = self.costs
        return ZoneLockHold(zone, site, c.zone_lock, c.lock_bounce, c.buddy_step)

    async def zone_lock(self, zone: Zone, site: str) -> ZoneLockHold:
        """spin_lock_irqsave(&zone->lock) for a hold ended by ``await hold.unlock()`` (a caller
        that drops and retakes the lock across a scan, as compaction does)."""
        return await self.zone_locked(zone, site).acquire()

    def zone_trylock_now(self, zone: Zone, site: str) -> ZoneLockHold | None:
        """spin_trylock_irqsave(&zone->lock) at the caller's just-synchronised instant: the
        hold, or None when the lock is busy (compact_lock_irqsave's async-mode test)."""
        hold = self.zone_locked(zone, site)
        return hold if hold.try_acquire_now() else None

    async def zone_trylock(self, zone: Zone, site: str) -> ZoneLockHold | None:
        """spin_trylock_irqsave(&zone->lock), synchronising first."""
        await self.sim.sync()
        return self.zone_trylock_now(zone, site)

    async def _rmqueue_bulk(
        self, zone: Zone, pcp: PerCpuPages, order: int, count: int, mt: int, alloc_flags: int
    ) -> int:
        """Models mm/page_alloc.c: rmqueue_bulk. One zone->lock hold for the whole refill."""
        async with self.zone_locked(zone, "rmqueue_bulk") as hold:
            n = pcp.refill(order, mt, count, alloc_flags)
            hold.charge += n * self.costs.bulk_per_block
        return n

    async def rmqueue_buddy(
        self, cpu: Cpu, zone: Zone, order: int, alloc_flags: int, mt: int, owner: int
    ) -> int:
        """Models mm/page_alloc.c: rmqueue_buddy. Take zone->lock, allocate one block directly."""
        async with self.zone_locked(zone, "rmqueue_buddy"):
            pfn = rmqueue_buddy_locked(zone, order, mt, alloc_flags, owner)
        return pfn

    async def _reserve_highatomic(self, zone: Zone, pfn: int, order: int) -> None:
        """Models mm/page_alloc.c: reserve_highatomic_pageblock. The unlocked checks (a zone
        too small for a reserve, or whose reserve is full: return without the lock), then
        zone->lock and the rest
        (:func:`~emulator.mm.page_alloc.highatomic.reserve_highatomic_pageblock`, which
        re-checks the limit under the lock). Called at a synchronised instant."""
        if highatomic_max_managed(zone) == 0:
            return
        async with self.zone_locked(zone, "reserve_highatomic_pageblock"):
            reserve_highatomic_pageblock(zone, pfn, order)

    def wakeup_kswapd(
        self, zone: Zone, order: int, highest_zoneidx: int, gfp_flags: int = 0
    ) -> None:
        """The wakeup_kswapd call sites (rmqueue after a boost, wake_all_kswapds): counted, then
        the node's kswapd (:meth:`emulator.mm.reclaim.kswapd.Kswapd.wakeup_kswapd`) once the
        kthreads
        run, and the test hook if one is set."""
        self.kswapd_wakeups += 1
        if self.kthreads is not None:
            self.kthreads.wakeup_kswapd(zone, gfp_flags, order, highest_zoneidx)
        if self.wakeup_kswapd_hook is not None:
            self.wakeup_kswapd_hook(zone, order, highest_zoneidx)

    # -- views -------------------------------------------------------------------------------

    def pcp_pages(self) -> int:
        """Pages sitting on all pcp lists (free, but not in NR_FREE_PAGES)."""
        return sum(p.count for c in self.cpus for p in c.pcp)

    def order_summary(self) -> dict[int, dict[str, Any]]:
        """Allocation outcomes per order, all CPUs merged (orders with attempts only)."""
        return order_summary(c.stats for c in self.cpus)

    def check(self) -> None:
        """Check every invariant of the machine, of the pcp layer (list links, entries, counts,
        no stray PG_PCP pages) with the pcp pages accounted, and of the LRU and the reverse map;
        raises :class:`~emulator.mm.invariants.InvariantViolation` naming what is wrong."""
        check_machine(self.machine, check_pcp_lists(self))
        check_lru(self)
