"""Memory compaction, the driver: Models mm/compaction.c of Linux 6.12: compact_zone (the
main loop), compact_finished / __compact_finished, compact_zone_order with its
``capture_control``, try_to_compact_pages (direct compaction over the zonelist), compact_node /
compact_nodes (manual compaction: ``vm.compact_memory`` and the per-node sysfs file).

This module is the public API: it re-exports the types (:mod:`emulator.mm.compaction.control`:
``CompactResult``, ``CompactPriority``, ``compaction_made_progress`` etc.), deferral
(:mod:`emulator.mm.compaction.defer`), suitability and the fragmentation score
(:mod:`emulator.mm.compaction.suitable`; the score is also re-exported by
:mod:`emulator.mm.vmstat`, the seam for kcompactd's proactive compaction) and the skip-bit reset
(:mod:`emulator.mm.compaction.skip`). The scanners live in
:mod:`emulator.mm.compaction.isolate_migrate`
and :mod:`emulator.mm.compaction.isolate_free`, migration in :mod:`emulator.mm.migrate`.

Time and interleaving: every function here that touches a zone runs in the calling actor
(a direct compactor's CPU, or the actor that wrote ``vm.compact_memory``). The scanners charge
their work in one delay per lock-held unit of ``COMPACT_CLUSTER_MAX`` pfns and synchronise at
each unit boundary, exactly where the kernel drops its locks or calls ``cond_resched``, so
other CPUs allocate, free and steal between units.

Simplifications (see docs/model.md, "Compaction"): no cpusets or nodemasks (every zone of the
zonelist is allowed); no fatal signals (never pending); ``need_resched()`` is never true (async
direct compaction goes on to further zones); no CMA allocation or ``alloc_contig`` users.
"""

from __future__ import annotations

from typing import Any

from emulator.mm.alloc_latency import COMPACT_MIGRATE, COMPACT_SCAN, DRAIN, lat_enter, lat_leave
from emulator.mm.compaction.control import (
    MIN_COMPACT_PRIORITY,
    CompactPriority,
    CompactResult,
    capture_registry,
    is_via_compact_memory,
    kswapd_is_running,
    reset_for_zone,
)
from emulator.mm.compaction.defer import (
    compaction_defer_reset,
    compaction_deferred,
    compaction_restarting,
    defer_compaction,
)
from emulator.mm.compaction.isolate_free import release_free_list
from emulator.mm.compaction.isolate_migrate import (
    ISOLATE_ABORT,
    ISOLATE_NONE,
    isolate_migratepages,
    putback_movable_pages,
)
from emulator.mm.compaction.skip import (
    reset_cached_positions,
    reset_isolation_suitable_zone,
)
from emulator.mm.compaction.suitable import (
    compaction_suit_allocation_order,
    fragmentation_score_wmark,
    fragmentation_score_zone,
)
from emulator.mm.internal import (
    MIGRATE_ASYNC,
    MIGRATE_SYNC,
    MIGRATE_SYNC_LIGHT,
    Allocator,
    CaptureControl,
    CompactControl,
)
from emulator.mm.migrate import ENOMEM, migrate_pages
from emulator.mm.page_alloc.drain import drain_pages_zone
from emulator.mm.page_alloc.fallback import find_suitable_fallback
from emulator.mm.page_alloc.gfp import GFP_KERNEL, gfp_compaction_allowed, gfp_migratetype
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.reclaim.lru import lru_add_drain, lru_add_drain_all
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_MOVABLE,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.vmstat import COMPACTION_HPAGE_ORDER
from emulator.mm.zone import Zone

R = CompactResult

__all__ = [
    "compact_finished",
    "compact_node",
    "compact_nodes",
    "compact_zone",
    "compact_zone_order",
    "try_to_compact_pages",
]

# ------------------------------------------------------------------------------ finished


def compact_scanners_met(cc: CompactControl) -> bool:
    """Models mm/compaction.c: compact_scanners_met — the free scanner reached the migrate
    scanner's pageblock."""
    return (cc.free_pfn >> PAGEBLOCK_ORDER) <= (cc.migrate_pfn >> PAGEBLOCK_ORDER)


def _pageblock_start(pfn: int) -> int:
    return pfn & ~(PAGEBLOCK_NR_PAGES - 1)


def __compact_finished(cc: CompactControl) -> CompactResult:
    """Models mm/compaction.c: __compact_finished — scanners met (COMPLETE for a whole-zone
    run, else PARTIAL_SKIPPED; direct compaction sets ``compact_blockskip_flush``); proactive
    runs compare the zone's score with the low mark; order -1 goes on; a started pageblock is
    finished; SUCCESS if a free block of ``cc.order`` or above is on the right list, the CMA
    list, or a stealable fallback; CONTENDED if ``cc.contended``."""
    zone = cc.zone
    if compact_scanners_met(cc):
        reset_cached_positions(zone)
        if cc.direct_compaction:
            zone.compact_blockskip_flush = True
        return R.COMPACT_COMPLETE if cc.whole_zone else R.COMPACT_PARTIAL_SKIPPED
    if cc.proactive_compaction:
        if kswapd_is_running(cc):
            return R.COMPACT_PARTIAL_SKIPPED
        score = fragmentation_score_zone(zone)
        wmark_low = fragmentation_score_wmark(True, cc.proactiveness)
        ret = R.COMPACT_CONTINUE if score > wmark_low else R.COMPACT_SUCCESS
    else:
        if is_via_compact_memory(cc.order):
            return R.COMPACT_CONTINUE
        if cc.migrate_pfn & (PAGEBLOCK_NR_PAGES - 1):
            return R.COMPACT_CONTINUE
        ret = R.COMPACT_NO_SUITABLE_PAGE
        mt = cc.migratetype
        nr_free_mt = zone.nr_free_mt
        for order in range(cc.order, NR_PAGE_ORDERS):
            if not zone.nr_free[order]:
                continue
            base = order * MIGRATE_TYPES
            if nr_free_mt[base + mt]:
                return R.COMPACT_SUCCESS
            if mt == MIGRATE_MOVABLE and nr_free_mt[base + MIGRATE_CMA]:
                return R.COMPACT_SUCCESS
            if find_suitable_fallback(zone, order, mt, True)[0] != -1:
                return R.COMPACT_SUCCESS
    if cc.contended:
        ret = R.COMPACT_CONTENDED
    return ret


def compact_finished(cc: CompactControl) -> CompactResult:
    """Models mm/compaction.c: compact_finished — fires ``mm_compaction_finished`` and maps
    NO_SUITABLE_PAGE to CONTINUE."""
    ret = __compact_finished(cc)
    zone = cc.zone
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            "mm_compaction_finished",
            nid=zone.node,
            idx=zone.zone_idx,
            order=cc.order,
            ret=ret.status,
        )
    if ret == R.COMPACT_NO_SUITABLE_PAGE:
        ret = R.COMPACT_CONTINUE
    return ret


# ------------------------------------------------------------------------------ the loop


async def compact_zone(cc: CompactControl, capc: CaptureControl | None) -> CompactResult:
    """Models mm/compaction.c: compact_zone — the main loop.

    Checks ``compaction_suit_allocation_order`` (not for order -1), resets the skip bits when
    ``compaction_restarting``, starts the scanners at the zone edges (``whole_zone``) or the
    cached pfns, then until :func:`compact_finished` says otherwise: isolate a batch of
    migration sources, ``migrate_pages`` them to free pages isolated from the top of the zone,
    rescan the rest of a pageblock after a failure (``finish_pageblock``), stop on a capture,
    and drain the local pcp lists when the migrate scanner leaves a ``cc.order``-aligned block
    (``lru_add_drain_cpu_zone``), so freed sources merge (and are captured). At the end the
    unused free pages are released, the cached free pfn moved back up, and
    ``compact_migrate_scanned`` / ``compact_free_scanned`` counted.
    """
    zone = cc.zone
    pa = cc.pa
    assert pa is not None
    start_pfn = zone.zone_start_pfn
    end_pfn = zone.zone_end_pfn
    sync = cc.mode != MIGRATE_ASYNC
    reset_for_zone(cc)
    cc.migratetype = gfp_migratetype(cc.gfp_mask)

    await pa.sim.sync()  # reads the zone's counters and free lists
    if not is_via_compact_memory(cc.order):
        ret = compaction_suit_allocation_order(
            zone, cc.order, cc.highest_zoneidx, cc.alloc_flags, pa.machine.extfrag_threshold
        )
        if ret != R.COMPACT_CONTINUE:
            return ret

    if compaction_restarting(zone, cc.order):
        reset_isolation_suitable_zone(zone)

    cc.fast_start_pfn = 0
    if cc.whole_zone:
        cc.migrate_pfn = start_pfn
        cc.free_pfn = _pageblock_start(end_pfn - 1)
    else:
        cc.migrate_pfn = zone.compact_cached_migrate_pfn[int(sync)]
        cc.free_pfn = zone.compact_cached_free_pfn
        if cc.free_pfn < start_pfn or cc.free_pfn >= end_pfn:
            cc.free_pfn = _pageblock_start(end_pfn - 1)
            zone.compact_cached_free_pfn = cc.free_pfn
        if cc.migrate_pfn < start_pfn or cc.migrate_pfn >= end_pfn:
            cc.migrate_pfn = start_pfn
            zone.compact_cached_migrate_pfn[0] = cc.migrate_pfn
            zone.compact_cached_migrate_pfn[1] = cc.migrate_pfn
        if cc.migrate_pfn <= zone.compact_init_migrate_pfn:
            cc.whole_zone = True

    last_migrated_pfn = 0
    update_cached = (
        not sync and zone.compact_cached_migrate_pfn[0] == zone.compact_cached_migrate_pfn[1]
    )
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            "mm_compaction_begin",
            zone_start=start_pfn,
            migrate_pfn=cc.migrate_pfn,
            free_pfn=cc.free_pfn,
            zone_end=end_pfn,
            sync=sync,
        )
    sim = pa.sim
    if cc.cpu is not None:
        resume = lat_enter(sim, DRAIN)
        await lru_add_drain(pa, cc.cpu)  # this CPU's lru-add batch onto the LRU lists
        lat_leave(sim, resume)

    while True:
        ret = compact_finished(cc)
        if ret != R.COMPACT_CONTINUE:
            break
        iteration_start_pfn = cc.migrate_pfn
        cc.finish_pageblock = _pageblock_start(last_migrated_pfn) == _pageblock_start(
            iteration_start_pfn
        )
        rescan = True
        goto_out = False
        while rescan:
            rescan = False
            resume = lat_enter(sim, COMPACT_SCAN)
            isolated = await isolate_migratepages(cc)
            lat_leave(sim, resume)
            if isolated == ISOLATE_ABORT:
                ret = R.COMPACT_CONTENDED
                await putback_movable_pages(cc)
                goto_out = True
                break
            if isolated == ISOLATE_NONE:
                if update_cached:
                    zone.compact_cached_migrate_pfn[1] = zone.compact_cached_migrate_pfn[0]
                break
            update_cached = False
            last_migrated_pfn = max(start_pfn, _pageblock_start(cc.migrate_pfn - 1))
            nr_migratepages = cc.nr_migratepages
            resume = lat_enter(sim, COMPACT_MIGRATE)
            err, nr_succeeded = await migrate_pages(cc)
            lat_leave(sim, resume)
            if rec.enabled:
                rec.emit(
                    "mm_compaction_migratepages",
                    nr_migrated=nr_succeeded,
                    nr_failed=nr_migratepages - nr_succeeded,
                )
            cc.nr_migratepages = 0
            if err:
                await putback_movable_pages(cc)
                if err == ENOMEM and not compact_scanners_met(cc):
                    ret = R.COMPACT_CONTENDED
                    goto_out = True
                    break
                if (
                    cc.migrate_pfn & (PAGEBLOCK_NR_PAGES - 1)
                    and not cc.ignore_skip_hint
                    and not cc.finish_pageblock
                    and cc.mode < MIGRATE_SYNC
                ):
                    cc.finish_pageblock = True
                    if cc.order == COMPACTION_HPAGE_ORDER:
                        last_migrated_pfn = 0
                    rescan = True
        if goto_out:
            break
        if capc is not None and capc.page >= 0:
            ret = R.COMPACT_SUCCESS
            break
        # check_drain
        if cc.order > 0 and last_migrated_pfn:
            current_block_start = cc.migrate_pfn & ~((1 << cc.order) - 1)
            if last_migrated_pfn < current_block_start:
                resume = lat_enter(sim, DRAIN)
                await lru_add_drain_cpu_zone(cc)
                lat_leave(sim, resume)
                last_migrated_pfn = 0
        # a capture made during this drain is not tested here: compact_finished does not see
        # it (the block is off the free lists), so the loop goes round once more and notices
        # capc->page only after that round's migrate_pages (compaction.c:2687-2710)

    # out:
    if cc.nr_freepages > 0:
        free_pfn = await release_free_list(cc)
        cc.nr_freepages = 0
        free_pfn = _pageblock_start(free_pfn)
        if free_pfn > zone.compact_cached_free_pfn:
            zone.compact_cached_free_pfn = free_pfn
    ev = pa.vm_events
    ev["compact_migrate_scanned"] += cc.total_migrate_scanned
    ev["compact_free_scanned"] += cc.total_free_scanned
    if rec.enabled:
        rec.emit(
            "mm_compaction_end",
            zone_start=start_pfn,
            migrate_pfn=cc.migrate_pfn,
            free_pfn=cc.free_pfn,
            zone_end=end_pfn,
            sync=sync,
            status=ret.status,
        )
    return ret


async def lru_add_drain_cpu_zone(cc: CompactControl) -> None:
    """Models mm/swap.c: lru_add_drain_cpu_zone — the compactor CPU's lru-add batch, then
    ``drain_local_pages(zone)``: freed sources sitting on this CPU's pcp lists reach the buddy
    allocator, merge, and may be captured."""
    if cc.cpu is not None:
        assert cc.pa is not None
        await lru_add_drain(cc.pa, cc.cpu)
        await drain_pages_zone(cc.pa, cc.cpu, cc.zone)


async def compact_zone_order(
    pa: Allocator,
    cpu: Cpu,
    zone: Zone,
    order: int,
    gfp_mask: int,
    prio: CompactPriority,
    alloc_flags: int,
    highest_zoneidx: int,
) -> tuple[CompactResult, int]:
    """Models mm/compaction.c: compact_zone_order — direct compaction of one zone with a
    ``capture_control`` published for the calling task (withdrawn before the captured page is
    read). ASYNC priority runs MIGRATE_ASYNC, the others MIGRATE_SYNC_LIGHT; SYNC_FULL adds
    ``whole_zone``, ``ignore_skip_hint`` and ``ignore_block_suitable``. A captured page makes
    the result SUCCESS. Returns ``(result, captured pfn or -1)``. With
    ``mitigation.capture`` off (before 5e1f0f098b46) no capture control is published."""
    full = prio == MIN_COMPACT_PRIORITY
    cc = CompactControl(
        pa=pa,
        cpu=cpu,
        zone=zone,
        order=order,
        search_order=order,
        gfp_mask=gfp_mask,
        mode=MIGRATE_ASYNC if prio == CompactPriority.COMPACT_PRIO_ASYNC else MIGRATE_SYNC_LIGHT,
        alloc_flags=alloc_flags,
        highest_zoneidx=highest_zoneidx,
        direct_compaction=True,
        whole_zone=full,
        ignore_skip_hint=full,
        ignore_block_suitable=full,
    )
    if not pa.machine.mitigations.on("capture"):
        # before 5e1f0f098b46: no capture_control; a block the compactor frees goes to the
        # free lists, and the caller's get_page_from_freelist races every other CPU for it
        return await compact_zone(cc, None), -1
    capc = CaptureControl(cc=cc)
    registry = capture_registry(zone)
    me = pa.sim.current
    registry.publish(me, capc)
    try:
        ret = await compact_zone(cc, capc)
    finally:
        registry.withdraw(me)
    page = capc.page
    if page >= 0:
        ret = R.COMPACT_SUCCESS
    return ret, page


async def try_to_compact_pages(
    pa: Allocator,
    cpu: Cpu,
    gfp_mask: int,
    order: int,
    alloc_flags: int,
    ac: Any,
    prio: CompactPriority,
) -> tuple[CompactResult, int]:
    """Models mm/compaction.c: try_to_compact_pages — direct compaction for a high-order
    allocation, run by the calling actor (``cpu``'s task).

    Walks ``ac.zonelist`` (zones up to ``ac.highest_zoneidx``): for priorities above SYNC_FULL
    a zone whose compaction is deferred contributes DEFERRED; otherwise ``compact_zone_order``.
    SUCCESS stops the walk (with ``compaction_defer_reset(zone, order, False)``); a non-async
    COMPLETE or PARTIAL_SKIPPED defers the zone. Returns the maximum result over the zones and
    the captured pfn (-1 if none); a captured block is off the free lists, marked
    ``PG_ISOLATED``, for the caller to ``prep_new_page``. Fires
    ``mm_compaction_try_to_compact_pages``."""
    rc = R.COMPACT_SKIPPED
    if not gfp_compaction_allowed(gfp_mask):
        return rc, -1
    rec = pa.rec
    if rec.enabled:
        rec.emit(
            "mm_compaction_try_to_compact_pages",
            order=order,
            gfp_mask=pa.gfp_name(gfp_mask),
            prio=int(prio),
        )
    captured = -1
    # 4f92e2586b43 (mitigation.compaction_deferral): off, no zone is ever deferred
    deferral = pa.machine.mitigations.on("compaction_deferral")
    for zone in ac.zonelist:
        if zone.zone_idx > ac.highest_zoneidx:
            continue
        if prio > MIN_COMPACT_PRIORITY and deferral:
            await pa.sim.sync()  # the zone's deferral fields are shared
            if compaction_deferred(zone, order):
                rc = max(R.COMPACT_DEFERRED, rc)
                continue
        status, captured = await compact_zone_order(
            pa, cpu, zone, order, gfp_mask, prio, alloc_flags, ac.highest_zoneidx
        )
        rc = max(status, rc)
        await pa.sim.sync()
        if status == R.COMPACT_SUCCESS:
            compaction_defer_reset(zone, order, False)
            break
        if (
            deferral
            and prio != CompactPriority.COMPACT_PRIO_ASYNC
            and status in (R.COMPACT_COMPLETE, R.COMPACT_PARTIAL_SKIPPED)
        ):
            defer_compaction(zone, order)
    return R(rc), captured


# ------------------------------------------------------------------------------ manual


async def compact_node(pa: Allocator, nid: int, cpu: Cpu | None = None) -> int:
    """Models mm/compaction.c: compact_node(pgdat, proactive=false) — compact every populated
    zone of node ``nid`` with order -1, MIGRATE_SYNC, ``ignore_skip_hint`` and ``whole_zone``
    (manual compaction). ``cpu`` is the CPU whose task runs it (its pcp lists receive the freed
    sources). Returns 0. ``compact_node(pgdat, proactive=true)`` is kcompactd's
    :meth:`~emulator.mm.compaction.kcompactd.Kcompactd.compact_node_proactive`."""
    for zone in pa.zones:
        if zone.node != nid or not zone.managed_pages:
            continue
        cc = CompactControl(
            pa=pa,
            cpu=cpu,
            zone=zone,
            order=-1,
            search_order=-1,
            gfp_mask=GFP_KERNEL,
            mode=MIGRATE_SYNC,
            ignore_skip_hint=True,
            whole_zone=True,
        )
        await compact_zone(cc, None)
    return 0


async def compact_nodes(pa: Allocator, cpu: Cpu | None = None) -> int:
    """Models mm/compaction.c: compact_nodes — ``lru_add_drain_all()`` (every CPU's lru-add
    batch onto the LRU lists, done by the calling CPU), then :func:`compact_node` for every
    online node."""
    await lru_add_drain_all(pa, cpu if cpu is not None else pa.cpus[0])
    for nid in range(pa.nr_nodes):
        ret = await compact_node(pa, nid, cpu)
        if ret:
            return ret
    return 0
