"""Memory compaction, the driver: Models mm/compaction.c of Linux 6.12 (and
include/linux/compaction.h).

What is here: ``enum compact_result`` and ``enum compact_priority`` with the helpers the slow
path uses (``compaction_made_progress``, ``compaction_failed``, ``compaction_withdrawn``);
deferral (``defer_compaction``, ``compaction_deferred``, ``compaction_defer_reset``,
``compaction_restarting``); suitability (``__compaction_suitable``, ``compaction_suitable`` with
the fragmentation-index test, ``compaction_suit_allocation_order``,
``compaction_zonelist_suitable``); ``compact_finished`` / ``__compact_finished``;
``compact_zone`` (the main loop); ``compact_zone_order`` with its ``capture_control``;
``try_to_compact_pages`` (direct compaction over the zonelist); ``compact_node`` /
``compact_nodes`` (manual compaction: ``vm.compact_memory`` and the per-node sysfs file); the
skip-bit reset (``__reset_isolation_suitable``, ``reset_isolation_suitable``); and the
fragmentation score (``fragmentation_score_zone`` etc., re-exported by
:mod:`emulator.mm.vmstat`), the seam for kcompactd's proactive compaction.

The scanners live in :mod:`emulator.mm.isolate_migrate` (``isolate_migratepages`` and friends)
and :mod:`emulator.mm.isolate_free` (``isolate_freepages``, ``compaction_alloc``); migration in
:mod:`emulator.mm.migrate`; the control structs in :mod:`emulator.mm.compaction_control`.

Time and interleaving: every function here that touches a zone runs in the calling actor
(a direct compactor's CPU, or the actor that wrote ``vm.compact_memory``). The scanners charge
their work in one delay per lock-held unit of ``COMPACT_CLUSTER_MAX`` pfns and synchronise at
each unit boundary, exactly where the kernel drops its locks or calls ``cond_resched``, so
other CPUs allocate, free and steal between units.

Simplifications (see docs/model.md, "Compaction"): no cpusets or nodemasks (every zone of the
zonelist is allowed); no fatal signals (never pending); ``need_resched()`` is never true (async
direct compaction goes on to further zones); no CMA allocation or ``alloc_contig`` users;
hugetlb pages are not on the buddy lists' neighbourhood as a distinct kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from emulator.mm.alloc_flags import ALLOC_CMA, ALLOC_WMARK_MASK
from emulator.mm.compaction_control import (
    COMPACT_CLUSTER_MAX,
    MIGRATE_ASYNC,
    MIGRATE_SYNC,
    MIGRATE_SYNC_LIGHT,
    CaptureControl,
    CompactControl,
    capture_registry,
    kswapd_is_running,
    reset_for_zone,
)
from emulator.mm.gfp import __GFP_FS, __GFP_IO, GFP_KERNEL, gfp_migratetype
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_MOVABLE,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.vmstat import COMPACTION_HPAGE_ORDER, extfrag_for_order, fragmentation_index
from emulator.mm.zone import WMARK_MIN

if TYPE_CHECKING:
    from emulator.mm.allocator import Cpu, PageAllocator
    from emulator.mm.page_alloc import Zone

__all__ = [
    "COMPACTION_HPAGE_ORDER",
    "COMPACT_CLUSTER_MAX",
    "COMPACT_MAX_DEFER_SHIFT",
    "DEF_COMPACT_PRIORITY",
    "INIT_COMPACT_PRIORITY",
    "MIN_COMPACT_COSTLY_PRIORITY",
    "MIN_COMPACT_PRIORITY",
    "CaptureControl",
    "CompactControl",
    "CompactPriority",
    "CompactResult",
    "compact_gap",
    "compact_node",
    "compact_nodes",
    "compact_zone",
    "compaction_defer_reset",
    "compaction_deferred",
    "compaction_failed",
    "compaction_made_progress",
    "compaction_restarting",
    "compaction_suit_allocation_order",
    "compaction_suitable",
    "compaction_withdrawn",
    "compaction_zonelist_suitable",
    "defer_compaction",
    "fragmentation_score_node",
    "fragmentation_score_wmark",
    "fragmentation_score_zone",
    "fragmentation_score_zone_weighted",
    "reset_isolation_suitable",
    "try_to_compact_pages",
]

#: Do not skip compaction more than 64 times (compaction.c:151)
COMPACT_MAX_DEFER_SHIFT = 6


class CompactResult(IntEnum):
    """``enum compact_result`` (include/linux/compaction.h:21), in the kernel's order: the
    maximum over zones is the result of ``try_to_compact_pages``."""

    COMPACT_NOT_SUITABLE_ZONE = 0
    COMPACT_SKIPPED = 1
    COMPACT_DEFERRED = 2
    COMPACT_NO_SUITABLE_PAGE = 3
    COMPACT_CONTINUE = 4
    COMPACT_COMPLETE = 5
    COMPACT_PARTIAL_SKIPPED = 6
    COMPACT_CONTENDED = 7
    COMPACT_SUCCESS = 8

    @property
    def status(self) -> str:
        """The trace string (``COMPACTION_STATUS`` in include/trace/events/mmflags.h)."""
        return _STATUS[self]


_STATUS = {
    CompactResult.COMPACT_NOT_SUITABLE_ZONE: "not_suitable_zone",
    CompactResult.COMPACT_SKIPPED: "skipped",
    CompactResult.COMPACT_DEFERRED: "deferred",
    CompactResult.COMPACT_NO_SUITABLE_PAGE: "no_suitable_page",
    CompactResult.COMPACT_CONTINUE: "continue",
    CompactResult.COMPACT_COMPLETE: "complete",
    CompactResult.COMPACT_PARTIAL_SKIPPED: "partial_skipped",
    CompactResult.COMPACT_CONTENDED: "contended",
    CompactResult.COMPACT_SUCCESS: "success",
}

R = CompactResult


class CompactPriority(IntEnum):
    """``enum compact_priority`` (include/linux/compaction.h:9): lower means more effort."""

    COMPACT_PRIO_SYNC_FULL = 0
    COMPACT_PRIO_SYNC_LIGHT = 1
    COMPACT_PRIO_ASYNC = 2


MIN_COMPACT_PRIORITY = CompactPriority.COMPACT_PRIO_SYNC_FULL
MIN_COMPACT_COSTLY_PRIORITY = CompactPriority.COMPACT_PRIO_SYNC_LIGHT
DEF_COMPACT_PRIORITY = CompactPriority.COMPACT_PRIO_SYNC_LIGHT
INIT_COMPACT_PRIORITY = CompactPriority.COMPACT_PRIO_ASYNC


def compact_gap(order: int) -> int:
    """``compact_gap(order)`` (compaction.h:66): ``2UL << order`` free pages of headroom."""
    return 2 << order


def compaction_made_progress(result: CompactResult) -> bool:
    """compaction.h: compaction_made_progress — only COMPACT_SUCCESS counts as progress."""
    return result == R.COMPACT_SUCCESS


def compaction_failed(result: CompactResult) -> bool:
    """compaction.h: compaction_failed — the scanners met over the whole zone."""
    return result == R.COMPACT_COMPLETE


def compaction_withdrawn(result: CompactResult) -> bool:
    """compaction.h: compaction_withdrawn — compaction bailed out for reasons that say nothing
    about the zone: SKIPPED (no order-0 headroom), DEFERRED, CONTENDED, PARTIAL_SKIPPED."""
    return result in (
        R.COMPACT_SKIPPED,
        R.COMPACT_DEFERRED,
        R.COMPACT_CONTENDED,
        R.COMPACT_PARTIAL_SKIPPED,
    )


def is_via_compact_memory(order: int) -> bool:
    """compaction.c:51 — order -1 is manual (``compact_memory``) or proactive compaction."""
    return order == -1


# ------------------------------------------------------------------------------ deferral


def _defer_event(zone: Zone, name: str, order: int) -> None:
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            name,
            nid=zone.node,
            idx=zone.zone_idx,
            order=order,
            considered=zone.compact_considered,
            defer_shift=zone.compact_defer_shift,
            order_failed=zone.compact_order_failed,
        )


def defer_compaction(zone: Zone, order: int) -> None:
    """Models mm/compaction.c: defer_compaction — restart the count, back off one more step
    (``compact_defer_shift`` up to 6), remember the lowest failed order."""
    zone.compact_considered = 0
    zone.compact_defer_shift += 1
    if order < zone.compact_order_failed:
        zone.compact_order_failed = order
    if zone.compact_defer_shift > COMPACT_MAX_DEFER_SHIFT:
        zone.compact_defer_shift = COMPACT_MAX_DEFER_SHIFT
    _defer_event(zone, "mm_compaction_defer_compaction", order)


def compaction_deferred(zone: Zone, order: int) -> bool:
    """Models mm/compaction.c: compaction_deferred — True if compaction should be skipped this
    time. Every call at an order >= ``compact_order_failed`` counts one consideration."""
    defer_limit = 1 << zone.compact_defer_shift
    if order < zone.compact_order_failed:
        return False
    zone.compact_considered += 1
    if zone.compact_considered >= defer_limit:
        zone.compact_considered = defer_limit
        return False
    _defer_event(zone, "mm_compaction_deferred", order)
    return True


def compaction_defer_reset(zone: Zone, order: int, alloc_success: bool) -> None:
    """Models mm/compaction.c: compaction_defer_reset — after a success (or an expected one,
    ``alloc_success`` False) raise ``compact_order_failed`` past ``order``; a real allocation
    also clears the back-off."""
    if alloc_success:
        zone.compact_considered = 0
        zone.compact_defer_shift = 0
    if order >= zone.compact_order_failed:
        zone.compact_order_failed = order + 1
    _defer_event(zone, "mm_compaction_defer_reset", order)


def compaction_restarting(zone: Zone, order: int) -> bool:
    """Models mm/compaction.c: compaction_restarting — deferred to the maximum and all 64
    considerations used up: the next run clears the skip bits first."""
    if order < zone.compact_order_failed:
        return False
    return (
        zone.compact_defer_shift == COMPACT_MAX_DEFER_SHIFT
        and zone.compact_considered >= 1 << zone.compact_defer_shift
    )


# ------------------------------------------------------------------------------ suitability


def __compaction_suitable(zone: Zone, order: int, highest_zoneidx: int, wmark_target: int) -> bool:
    """Models mm/compaction.c: __compaction_suitable — an order-0 check of ``wmark_target``
    free pages against the (boosted) LOW mark for costly orders, else MIN, plus
    ``compact_gap(order)``, with ALLOC_CMA."""
    mark = zone.low_wmark_pages if order > PAGE_ALLOC_COSTLY_ORDER else zone.min_wmark_pages
    mark += compact_gap(order)
    return zone.zone_watermark_ok_free(0, mark, highest_zoneidx, ALLOC_CMA, wmark_target)


compaction_suitable_free = __compaction_suitable


def compaction_suitable(
    zone: Zone, order: int, highest_zoneidx: int, extfrag_threshold: int = 500
) -> bool:
    """Models mm/compaction.c: compaction_suitable — the order-0 watermark plus gap on
    NR_FREE_PAGES; then, for costly orders, a fragmentation index in
    ``[0, extfrag_threshold]`` (``vm.extfrag_threshold``, the caller passes the machine's)
    means the failure is lack of memory, not fragmentation: not
    suitable (trace result COMPACT_NOT_SUITABLE_ZONE). Fires ``mm_compaction_suitable``."""
    suitable = __compaction_suitable(zone, order, highest_zoneidx, zone.nr_free_pages)
    if suitable:
        result = R.COMPACT_CONTINUE
        if order > PAGE_ALLOC_COSTLY_ORDER:
            fragindex = fragmentation_index(zone, order)
            if 0 <= fragindex <= extfrag_threshold:
                suitable = False
                result = R.COMPACT_NOT_SUITABLE_ZONE
    else:
        result = R.COMPACT_SKIPPED
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            "mm_compaction_suitable",
            nid=zone.node,
            idx=zone.zone_idx,
            order=order,
            ret=result.status,
        )
    return suitable


def compaction_suit_allocation_order(
    zone: Zone, order: int, highest_zoneidx: int, alloc_flags: int, extfrag_threshold: int = 500
) -> CompactResult:
    """Models mm/compaction.c: compaction_suit_allocation_order — SUCCESS if the allocation
    would already pass its watermark at ``order``, SKIPPED if the zone is not
    :func:`compaction_suitable`, else CONTINUE."""
    mark = zone.wmark_pages(alloc_flags & ALLOC_WMARK_MASK)
    if zone.zone_watermark_ok(order, mark, highest_zoneidx, alloc_flags):
        return R.COMPACT_SUCCESS
    if not compaction_suitable(zone, order, highest_zoneidx, extfrag_threshold):
        return R.COMPACT_SKIPPED
    return R.COMPACT_CONTINUE


def compaction_zonelist_suitable(pa: PageAllocator, ac: Any, order: int, alloc_flags: int) -> bool:
    """Models mm/compaction.c: compaction_zonelist_suitable — would some zone pass
    ``__compaction_suitable`` if reclaim freed ``zone_reclaimable_pages / order`` more pages?
    (``zone_reclaimable_pages`` is 0 until the LRU counts exist: then only free pages count.)"""
    for zone in ac.zonelist:
        if zone.zone_idx > ac.highest_zoneidx:
            continue
        available = _zone_reclaimable_pages(pa, zone) // order if order else 0
        available += zone.nr_free_pages
        if __compaction_suitable(zone, order, ac.highest_zoneidx, available):
            return True
    return False


def _zone_reclaimable_pages(pa: PageAllocator, zone: Zone) -> int:
    fn = getattr(pa, "zone_reclaimable_pages", None)
    return int(fn(zone)) if fn is not None else 0


# ------------------------------------------------------------------------------ finished


def compact_scanners_met(cc: CompactControl) -> bool:
    """Models mm/compaction.c: compact_scanners_met — the free scanner reached the migrate
    scanner's pageblock."""
    return (cc.free_pfn >> PAGEBLOCK_ORDER) <= (cc.migrate_pfn >> PAGEBLOCK_ORDER)


def reset_cached_positions(zone: Zone) -> None:
    """Models mm/compaction.c: reset_cached_positions."""
    zone.compact_cached_migrate_pfn[0] = zone.zone_start_pfn
    zone.compact_cached_migrate_pfn[1] = zone.zone_start_pfn
    zone.compact_cached_free_pfn = _pageblock_start(zone.zone_end_pfn - 1)


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
            if zone.find_suitable_fallback(order, mt, True)[0] != -1:
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
    from emulator.mm.isolate_free import release_free_list
    from emulator.mm.isolate_migrate import (
        ISOLATE_ABORT,
        ISOLATE_NONE,
        isolate_migratepages,
        putback_movable_pages,
    )
    from emulator.mm.migrate import ENOMEM, migrate_pages

    zone = cc.zone
    pa = cc.pa
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
        __reset_isolation_suitable(zone)

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
    # lru_add_drain(): the per-CPU LRU batches are not modelled (pages go to the LRU at once)

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
            isolated = await isolate_migratepages(cc)
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
            err, nr_succeeded = await migrate_pages(cc)
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
                await lru_add_drain_cpu_zone(cc)
                last_migrated_pfn = 0
        if capc is not None and capc.page >= 0:
            # a capture during the drain: the next compact_finished would not see it (the
            # block is off the free lists); the kernel's loop notices capc->page at the next
            # iteration's migrate step. Stop here, as it would after that iteration.
            ret = R.COMPACT_SUCCESS
            break

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
    """Models mm/swap.c: lru_add_drain_cpu_zone — ``drain_local_pages(zone)`` on the
    compactor's CPU (the LRU batches are not modelled). Freed sources sitting on this CPU's
    pcp lists reach the buddy allocator, merge, and may be captured."""
    if cc.cpu is not None:
        await cc.pa.drain_pages_zone(cc.cpu, cc.zone)


async def compact_zone_order(
    pa: PageAllocator,
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
    the result SUCCESS. Returns ``(result, captured pfn or -1)``."""
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


def gfp_compaction_allowed(gfp_mask: int) -> bool:
    """include/linux/gfp.h: gfp_compaction_allowed — compaction needs ``__GFP_IO``."""
    return bool(gfp_mask & __GFP_IO)


async def try_to_compact_pages(
    pa: PageAllocator,
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
    for zone in ac.zonelist:
        if zone.zone_idx > ac.highest_zoneidx:
            continue
        if prio > MIN_COMPACT_PRIORITY:
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
        if prio != CompactPriority.COMPACT_PRIO_ASYNC and status in (
            R.COMPACT_COMPLETE,
            R.COMPACT_PARTIAL_SKIPPED,
        ):
            defer_compaction(zone, order)
    return R(rc), captured


# ------------------------------------------------------------------------------ manual


async def compact_node(
    pa: PageAllocator, nid: int, proactive: bool = False, cpu: Cpu | None = None
) -> int:
    """Models mm/compaction.c: compact_node — compact every populated zone of node ``nid``
    with order -1, ``ignore_skip_hint`` and ``whole_zone``: MIGRATE_SYNC for manual
    compaction, MIGRATE_SYNC_LIGHT for proactive (which also counts
    ``compact_daemon_migrate_scanned`` / ``compact_daemon_free_scanned``). ``cpu`` is the CPU
    whose task runs it (its pcp lists receive the freed sources). Returns 0."""
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
            mode=MIGRATE_SYNC_LIGHT if proactive else MIGRATE_SYNC,
            ignore_skip_hint=True,
            whole_zone=True,
            proactive_compaction=proactive,
        )
        await compact_zone(cc, None)
        if proactive:
            ev = pa.vm_events
            ev["compact_daemon_migrate_scanned"] += cc.total_migrate_scanned
            ev["compact_daemon_free_scanned"] += cc.total_free_scanned
    return 0


async def compact_nodes(pa: PageAllocator, cpu: Cpu | None = None) -> int:
    """Models mm/compaction.c: compact_nodes — ``lru_add_drain_all()`` (nothing to drain: the
    LRU batches are not modelled), then :func:`compact_node` for every online node."""
    for nid in range(pa.nr_nodes):
        ret = await compact_node(pa, nid, False, cpu)
        if ret:
            return ret
    return 0


# ------------------------------------------------------------------------------ skip bits


def __reset_isolation_pfn(zone: Zone, pfn: int, check_source: bool, check_target: bool) -> bool:
    """Models mm/compaction.c: __reset_isolation_pfn — clear the block's skip bit if a sample
    of every 8th page finds an LRU page (source) or a free buddy (target)."""
    from emulator.mm.isolate_migrate import page_lru_table, pageblock_skip_persistent

    mm = zone.memmap
    if not zone.spans(pfn) or pageblock_skip_persistent(mm, pfn):
        return False
    if check_source and check_target and not mm.pb_skip[pfn >> PAGEBLOCK_ORDER]:
        return True
    if not check_source and check_target and mm.pb_mt[pfn >> PAGEBLOCK_ORDER] != MIGRATE_MOVABLE:
        return False
    start = max(_pageblock_start(pfn), zone.zone_start_pfn)
    end = min(_pageblock_start(pfn) + PAGEBLOCK_NR_PAGES, zone.zone_end_pfn)
    from emulator.mm.memmap import PG_ALLOC, PG_BUDDY, PG_KIND_MASK, PG_TAIL

    st = mm.state
    lru = page_lru_table(zone)
    od = mm.order
    step = 1 << PAGE_ALLOC_COSTLY_ORDER
    for p in range(start, end, step):
        s = st[p]
        if check_source and s & PG_KIND_MASK == PG_ALLOC:
            head = p
            if s & PG_TAIL:
                head = mm.block_head(p)
            if lru[mm.owner[head]] and od[head] < PAGEBLOCK_ORDER:
                mm.pb_skip[pfn >> PAGEBLOCK_ORDER] = 0
                return True
        if check_target and s == PG_BUDDY:
            mm.pb_skip[pfn >> PAGEBLOCK_ORDER] = 0
            return True
    return False


def __reset_isolation_suitable(zone: Zone) -> None:
    """Models mm/compaction.c: __reset_isolation_suitable — only when
    ``compact_blockskip_flush`` is set (a direct compactor's scanners met): walk both ends of
    the zone towards each other one pageblock at a time, clearing skip bits of blocks that
    sample as a source (LRU page) or target (free page); the first such blocks become the
    new ``compact_init_*`` and cached pfns."""
    if not zone.compact_blockskip_flush:
        return
    zone.compact_blockskip_flush = False
    migrate_pfn = zone.zone_start_pfn
    free_pfn = zone.zone_end_pfn - 1
    reset_migrate = free_pfn
    reset_free = migrate_pfn
    source_set = False
    free_set = False
    while migrate_pfn < free_pfn:
        if __reset_isolation_pfn(zone, migrate_pfn, True, source_set) and (
            migrate_pfn < reset_migrate
        ):
            source_set = True
            reset_migrate = migrate_pfn
            zone.compact_init_migrate_pfn = reset_migrate
            zone.compact_cached_migrate_pfn[0] = reset_migrate
            zone.compact_cached_migrate_pfn[1] = reset_migrate
        if __reset_isolation_pfn(zone, free_pfn, free_set, True) and free_pfn > reset_free:
            free_set = True
            reset_free = free_pfn
            zone.compact_init_free_pfn = reset_free
            zone.compact_cached_free_pfn = reset_free
        migrate_pfn += PAGEBLOCK_NR_PAGES
        free_pfn -= PAGEBLOCK_NR_PAGES
    if reset_migrate >= reset_free:
        zone.compact_cached_migrate_pfn[0] = migrate_pfn
        zone.compact_cached_migrate_pfn[1] = migrate_pfn
        zone.compact_cached_free_pfn = free_pfn


reset_isolation_suitable_zone = __reset_isolation_suitable


def reset_isolation_suitable(zones: Sequence[Zone]) -> None:
    """Models mm/compaction.c: reset_isolation_suitable(pgdat) — ``__reset_isolation_suitable``
    for every populated zone of a node (``zones``); kswapd calls it on going to sleep."""
    for zone in zones:
        if zone.present_pages:
            __reset_isolation_suitable(zone)


# ------------------------------------------------------------------------------ scores


def fragmentation_score_zone(zone: Any) -> int:
    """Models mm/compaction.c: fragmentation_score_zone —
    ``extfrag_for_order(zone, COMPACTION_HPAGE_ORDER)``, in [0, 100]."""
    return extfrag_for_order(zone, COMPACTION_HPAGE_ORDER)


def fragmentation_score_zone_weighted(zone: Any, node_present_pages: int) -> int:
    """Models mm/compaction.c: fragmentation_score_zone_weighted —
    ``zone->present_pages * score / (node_present_pages + 1)``.

    It weights by *present* pages, not managed pages, so a small zone (DMA, often DMA32)
    contributes almost nothing to its node's score. A zone whose present size is unknown (0
    in a snapshot parsed from buddyinfo alone) weighs 0.
    """
    return (zone.present * fragmentation_score_zone(zone)) // (node_present_pages + 1)


def fragmentation_score_node(node: Any) -> int:
    """Models mm/compaction.c: fragmentation_score_node — the sum of the weighted scores of
    the node's populated zones."""
    node_present = sum(z.present for z in node.zones)
    return sum(
        fragmentation_score_zone_weighted(z, node_present) for z in node.zones if z.populated
    )


def fragmentation_score_wmark(low: bool, proactiveness: int = 20) -> int:
    """Models mm/compaction.c: fragmentation_score_wmark (v6.12) —
    ``wmark_low = max(100 - proactiveness, 5)``; the high mark is ``min(wmark_low + 10, 100)``.
    Proactiveness 20 (the default) gives low 80, high 90."""
    if not 0 <= proactiveness <= 100:
        raise ValueError(f"compaction_proactiveness must be 0..100, got {proactiveness}")
    wmark_low = max(100 - proactiveness, 5)
    return wmark_low if low else min(wmark_low + 10, 100)


def too_many_isolated_limit(gfp_mask: int, inactive: int, active: int) -> int:
    """The threshold of ``too_many_isolated`` (compaction.c:792): ``(inactive + active) / 2``,
    after shifting both right by 3 for ``__GFP_FS`` callers."""
    if gfp_mask & __GFP_FS:
        inactive >>= 3
        active >>= 3
    return (inactive + active) // 2


#: the raw MIN watermark index used by __isolate_free_page
_WMARK_MIN = WMARK_MIN
