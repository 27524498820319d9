"""The allocator's slow path as an explicit state machine.

Models mm/page_alloc.c (Linux 6.12.0): __alloc_pages_slowpath (4204), gfp_to_alloc_flags (via
:func:`emulator.mm.page_alloc.gfp.gfp_to_alloc_flags`), wake_all_kswapds, __gfp_pfmemalloc_flags,
__alloc_pages_direct_compact (3668), __alloc_pages_direct_reclaim (3940) with __perform_reclaim,
should_reclaim_retry (4094), should_compact_retry (3727), unreserve_highatomic_pageblock (2084)
and __alloc_pages_may_oom (3573) up to the point where it would call out_of_memory().

The kernel's function is a loop of ``goto`` labels (``restart``, ``retry``, ``nopage``,
``got_pg``); its state is a handful of locals (``alloc_flags``, ``compact_priority``,
``compact_result``, ``compaction_retries``, ``no_progress_loops``, ``did_some_progress``). Here
those locals are :class:`SlowpathState` and each label's code is one step, so a test can follow
the decisions the kernel takes, in its order:

1. ``restart``: reset the retry state, ``alloc_flags = gfp_to_alloc_flags()``, wake kswapd
   (``ALLOC_KSWAPD``), one attempt at the MIN watermark;
2. the initial async compaction (``INIT_COMPACT_PRIORITY``) for ``can_direct_reclaim &&
   can_compact && (costly || (order > 0 && migratetype != MOVABLE)) && !gfp_pfmemalloc_allowed``;
   costly ``__GFP_NORETRY`` requests fail at once on COMPACT_SKIPPED / COMPACT_DEFERRED and
   otherwise keep async priority;
3. ``retry``: wake kswapd, reserve flags, freelist attempt; no direct reclaim -> ``nopage``;
   direct reclaim (one ``drain_all_pages`` after a failed post-reclaim attempt), direct
   compaction at ``compact_priority``; ``__GFP_NORETRY`` -> ``nopage``; costly without
   ``__GFP_RETRY_MAYFAIL`` -> ``nopage``; ``should_reclaim_retry`` (its highatomic unreserve is
   the decision when the zones say no) and ``did_some_progress && can_compact &&
   should_compact_retry`` loop back to ``retry``;
4. ``__alloc_pages_may_oom``: the last attempt at the HIGH watermark, then the OOM decision.

Simplifies (and says so): there is **no OOM killer**: where the kernel would call
``out_of_memory()`` the request fails with reason ``oom`` and :attr:`SlowpathStats.would_oom`
counts it (the kernel would kill a task and retry); ``oom_lock`` is not modelled. No cpusets,
mempolicies or zonelist seqcounts (``check_retry_cpuset``/``check_retry_zonelist`` never
restart), no PF_MEMALLOC tasks, no fatal signals, no psi/delayacct. ``__GFP_NOFAIL`` is treated
like any request (the kernel would loop forever without an OOM killer). kswapd is the seam
``PageAllocator.wakeup_kswapd`` (counted, then the node's kswapd).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from emulator.engine import NullRecorder, Recorder
from emulator.mm.alloc_latency import (
    CAPTURE,
    COMPACT_OTHER,
    DRAIN,
    RECLAIM,
    RETRY,
    lat_credit,
    lat_enter,
    lat_leave,
)
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import (
    DEF_COMPACT_PRIORITY,
    INIT_COMPACT_PRIORITY,
    MIN_COMPACT_COSTLY_PRIORITY,
    MIN_COMPACT_PRIORITY,
    CompactPriority,
    CompactResult,
)
from emulator.mm.compaction.defer import compaction_defer_reset
from emulator.mm.compaction.suitable import compaction_zonelist_suitable
from emulator.mm.internal import Allocator, AllocContext
from emulator.mm.memmap import PG_ALLOC
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_CPUSET,
    ALLOC_KSWAPD,
    ALLOC_NO_WATERMARKS,
    ALLOC_WMARK_HIGH,
)
from emulator.mm.page_alloc.drain import drain_all_pages
from emulator.mm.page_alloc.gfp import (
    __GFP_DIRECT_RECLAIM,
    __GFP_HARDWALL,
    __GFP_MEMALLOC,
    __GFP_NOMEMALLOC,
    __GFP_NORETRY,
    __GFP_RETRY_MAYFAIL,
    __GFP_THISNODE,
    gfp_compaction_allowed,
    gfp_to_alloc_flags,
    gfp_to_alloc_flags_cma,
)
from emulator.mm.page_alloc.highatomic import unreserve_highatomic_pageblock_locked
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.page_alloc.watermark import zone_watermark_ok_free
from emulator.mm.reclaim.vmscan import (
    MAX_RECLAIM_RETRIES,
    try_to_free_pages,
    zone_reclaimable_pages,
)
from emulator.mm.snapshot import MIGRATE_MOVABLE, PAGE_ALLOC_COSTLY_ORDER, PAGEBLOCK_NR_PAGES
from emulator.mm.zone import ZONE_NORMAL

__all__ = [
    "MAX_COMPACT_RETRIES",
    "SlowpathState",
    "alloc_pages_direct_compact",
    "alloc_pages_direct_reclaim",
    "alloc_pages_slowpath",
    "gfp_pfmemalloc_allowed",
    "should_compact_retry",
    "should_reclaim_retry",
    "unreserve_highatomic_pageblock",
]

#: page_alloc.c:3663: compaction retries with progress before giving up
MAX_COMPACT_RETRIES = 16

# failure reasons the slow path adds to the fast path's (mm_page_alloc failures keep them)
REASON_COMPACT_SKIPPED = "compact_skipped"
"""costly __GFP_NORETRY: the initial async compaction was skipped in every zone"""
REASON_COMPACT_DEFERRED = "compact_deferred"
"""costly __GFP_NORETRY: the initial async compaction was deferred"""
REASON_NORETRY = "noretry"
"""__GFP_NORETRY after one reclaim + compaction round"""
REASON_COSTLY = "costly_order"
"""costly order without __GFP_RETRY_MAYFAIL (or no compaction): one round only"""
REASON_OOM = "oom"
"""retries exhausted where the kernel would invoke the OOM killer (not modelled)"""
REASON_NO_OOM = "reclaim_exhausted"
"""retries exhausted, and the OOM killer is not used for this request (order > 3,
__GFP_RETRY_MAYFAIL or __GFP_THISNODE, or a lowmem-only request)"""


@attrs.define(slots=True, eq=False)
class SlowpathState:
    """The locals of one __alloc_pages_slowpath call (its state between labels): the kernel's
    function keeps them on its stack."""

    gfp_mask: int
    order: int
    ac: AllocContext
    owner: int
    can_direct_reclaim: bool
    can_compact: bool
    costly_order: bool
    alloc_flags: int = 0
    did_some_progress: int = 0
    compact_priority: int = DEF_COMPACT_PRIORITY
    #: 6.12.y and later initialise it at ``restart``; 6.12.0 leaves it unset until the first
    #: direct compaction, which always runs before should_compact_retry reads it
    compact_result: int = CompactResult.COMPACT_SKIPPED
    compaction_retries: int = 0
    no_progress_loops: int = 0
    #: the last freelist attempt's failure reason (watermark, watermark_high_order, ...)
    reason: str = ""
    #: how the allocation succeeded, for :class:`SlowpathStats`
    via: str = ""


def gfp_pfmemalloc_flags(gfp_mask: int) -> int:
    """Models mm/page_alloc.c: __gfp_pfmemalloc_flags — __GFP_MEMALLOC without
    __GFP_NOMEMALLOC gives ALLOC_NO_WATERMARKS. (No PF_MEMALLOC tasks or OOM victims are
    modelled.)"""
    if gfp_mask & __GFP_NOMEMALLOC:
        return 0
    if gfp_mask & __GFP_MEMALLOC:
        return ALLOC_NO_WATERMARKS
    return 0


def gfp_pfmemalloc_allowed(gfp_mask: int) -> bool:
    """Models mm/page_alloc.c: gfp_pfmemalloc_allowed."""
    return bool(gfp_pfmemalloc_flags(gfp_mask))


async def wake_all_kswapds(pa: Allocator, order: int, gfp_mask: int, ac: AllocContext) -> None:
    """Models mm/page_alloc.c: wake_all_kswapds — one wakeup_kswapd per node of the zonelist
    (which reads the nodes' kswapd state and watermarks: synchronised first)."""
    await pa.sim.sync()
    last_node = -1
    for zone in ac.zonelist:
        if zone.zone_idx > ac.highest_zoneidx or not zone.managed_pages:
            continue
        if zone.node != last_node:
            pa.wakeup_kswapd(zone, order, ac.highest_zoneidx, gfp_mask)
            last_node = zone.node


async def unreserve_highatomic_pageblock(pa: Allocator, ac: AllocContext, force: bool) -> bool:
    """Models mm/page_alloc.c: unreserve_highatomic_pageblock — give one highatomic pageblock (or
    free block) of the first zone that has one back to ``ac->migratetype``, under zone->lock.
    Without ``force`` a zone keeps its last pageblock of reserve. True if something moved."""
    await pa.sim.sync()  # nr_reserved_highatomic is read without the lock, as the kernel does
    for zone in ac.zonelist:
        if zone.zone_idx > ac.highest_zoneidx:
            continue
        if not force and zone.nr_reserved_highatomic <= PAGEBLOCK_NR_PAGES:
            continue
        async with pa.zone_locked(zone, "unreserve_highatomic_pageblock"):
            ret = unreserve_highatomic_pageblock_locked(zone, ac.migratetype, force)
        if ret > 0:
            return True
    return False


async def _freelist(
    pa: Allocator, cpu: Cpu, st: SlowpathState, alloc_flags: int, gfp: int = -1
) -> int:
    """get_page_from_freelist with the slow path's flags; records the failure reason. The
    caller's clock has moved since its last shared read: synchronise first."""
    await pa.sim.sync()
    pfn, reason = await pa.get_page_from_freelist(
        cpu, st.gfp_mask if gfp < 0 else gfp, st.order, alloc_flags, st.ac, st.owner
    )
    if pfn < 0:
        st.reason = reason
    return pfn


def _prep_captured(pa: Allocator, pfn: int, st: SlowpathState) -> None:
    """Models mm/page_alloc.c: prep_new_page, for a page compaction captured: it never went
    through rmqueue (no pgalloc count, as in the kernel); it becomes the caller's block."""
    pa.memmap.mark_block(pfn, st.order, PG_ALLOC, st.owner)


async def alloc_pages_direct_compact(pa: Allocator, cpu: Cpu, st: SlowpathState, prio: int) -> int:
    """Models mm/page_alloc.c: __alloc_pages_direct_compact.

    Sets ``st.compact_result``. COMPACT_SKIPPED returns at once, counting nothing; any other
    result counts ``compact_stall`` (an all-DEFERRED result too). A captured page is prepped;
    otherwise one freelist attempt. Success: ``compact_blockskip_flush = false``,
    ``compaction_defer_reset(zone, order, true)``, ``compact_success``; else ``compact_fail``.
    """
    order = st.order
    if not order:
        return -1
    resume = lat_enter(pa.sim, COMPACT_OTHER)
    result, pfn = await try_to_compact_pages(
        pa, cpu, st.gfp_mask, order, st.alloc_flags, st.ac, CompactPriority(prio)
    )
    lat_leave(pa.sim, resume)
    st.compact_result = result
    if result == CompactResult.COMPACT_SKIPPED:
        return -1
    ev = pa.vm_events
    ev["compact_stall"] += 1
    captured = pfn >= 0
    if captured:
        lat_credit(pa.sim, CAPTURE, pa.costs.prep_new_page)
        await pa.sim.delay(pa.costs.prep_new_page)
        _prep_captured(pa, pfn, st)
    else:
        pfn = await _freelist(pa, cpu, st, st.alloc_flags)
    if pfn >= 0:
        zone = pa.zone_of(pfn)
        zone.compact_blockskip_flush = False
        compaction_defer_reset(zone, order, True)
        ev["compact_success"] += 1
        st.via = "captured" if captured else "compaction"
        return pfn
    ev["compact_fail"] += 1
    return -1


async def alloc_pages_direct_reclaim(pa: Allocator, cpu: Cpu, st: SlowpathState) -> int:
    """Models mm/page_alloc.c: __alloc_pages_direct_reclaim + __perform_reclaim.

    ``try_to_free_pages`` in the allocating actor's time; no progress returns at once. After
    progress, one freelist attempt; if it fails, ``unreserve_highatomic_pageblock(ac, false)``
    and ``drain_all_pages(NULL)`` once, and one more attempt (with
    ``mitigation.drain_after_reclaim`` off, before 9ee493ce0a60: no drain).
    """
    sim = pa.sim
    resume = lat_enter(sim, RECLAIM)
    st.did_some_progress = await try_to_free_pages(pa, cpu, st.ac, st.order, st.gfp_mask)
    lat_leave(sim, resume)
    if not st.did_some_progress:
        return -1
    pfn = await _freelist(pa, cpu, st, st.alloc_flags)
    if pfn < 0:
        await unreserve_highatomic_pageblock(pa, st.ac, False)
        if pa.machine.mitigations.on("drain_after_reclaim"):
            resume = lat_enter(sim, DRAIN)
            await drain_all_pages(pa, cpu, None)
            lat_leave(sim, resume)
        pfn = await _freelist(pa, cpu, st, st.alloc_flags)
    if pfn >= 0:
        st.via = "reclaim"
    return pfn


async def should_reclaim_retry(pa: Allocator, st: SlowpathState) -> bool:
    """Models mm/page_alloc.c: should_reclaim_retry.

    ``no_progress_loops`` resets on progress for order <= PAGE_ALLOC_COSTLY_ORDER and always
    grows for costly orders; past MAX_RECLAIM_RETRIES (16) stop; else retry if any zone would
    pass ``__zone_watermark_ok(order, MIN, free + reclaimable)``. When the answer is no, the
    result of ``unreserve_highatomic_pageblock(ac, true)`` is the answer (the reserve is
    exhausted before giving up).
    """
    if st.did_some_progress and st.order <= PAGE_ALLOC_COSTLY_ORDER:
        st.no_progress_loops = 0
    else:
        st.no_progress_loops += 1
    ret = False
    if st.no_progress_loops <= MAX_RECLAIM_RETRIES:
        await pa.sim.sync()  # zone counters are shared state
        ac = st.ac
        for zone in ac.zonelist:
            if zone.zone_idx > ac.highest_zoneidx:
                continue
            reclaimable = zone_reclaimable_pages(pa, zone)
            available = reclaimable + zone.nr_free_pages
            min_wmark = zone.min_wmark_pages
            wmark = zone_watermark_ok_free(
                zone, st.order, min_wmark, ac.highest_zoneidx, st.alloc_flags, available
            )
            rec = pa.rec
            if rec.enabled:
                rec.emit(
                    "reclaim_retry_zone",
                    node=zone.node,
                    zone=zone.name,
                    order=st.order,
                    reclaimable=reclaimable,
                    available=available,
                    min_wmark=min_wmark,
                    no_progress_loops=st.no_progress_loops,
                    wmark_check=int(wmark),
                )
            if wmark:
                ret = True
                break
    if not ret:
        return await unreserve_highatomic_pageblock(pa, st.ac, True)
    return ret


def compact_result_to_feedback(result: int) -> str:
    """Models include/trace/events/mmflags.h: compact_result_to_feedback, as compact_retry prints
    it: COMPLETE is "failed", SUCCESS "progress", anything else "withdrawn"."""
    if result == CompactResult.COMPACT_COMPLETE:
        return "failed"
    if result == CompactResult.COMPACT_SUCCESS:
        return "progress"
    return "withdrawn"


def should_compact_retry(
    st: SlowpathState,
    zonelist_suitable: Callable[[], bool] | None = None,
    rec: Recorder | NullRecorder | None = None,
) -> bool:
    """Models mm/page_alloc.c: should_compact_retry.

    Order 0 never retries. COMPACT_SKIPPED (too few free order-0 pages) retries iff
    ``zonelist_suitable()`` (compaction_zonelist_suitable: reclaim could make compaction
    possible). COMPACT_SUCCESS (the page was raced away) retries while
    ``++compaction_retries <= MAX_COMPACT_RETRIES`` (16, a quarter for costly orders); any
    other result, or SUCCESS past the limit, raises the priority (lower number) down to
    MIN_COMPACT_PRIORITY (SYNC_FULL), or MIN_COMPACT_COSTLY_PRIORITY (SYNC_LIGHT) for costly
    orders, resetting the retries; at the floor, stop. Fires ``compact_retry``
    (include/trace/events/oom.h) with the priority and retries it started from.
    """
    order = st.order
    if not order:
        return False
    max_retries = MAX_COMPACT_RETRIES
    retries = st.compaction_retries
    priority = st.compact_priority
    ret = False
    if st.compact_result == CompactResult.COMPACT_SKIPPED:
        ret = bool(zonelist_suitable()) if zonelist_suitable is not None else False
    else:
        if st.compact_result == CompactResult.COMPACT_SUCCESS:
            if order > PAGE_ALLOC_COSTLY_ORDER:
                max_retries //= 4
            st.compaction_retries += 1
            ret = st.compaction_retries <= max_retries
        if not ret:
            min_priority = (
                MIN_COMPACT_COSTLY_PRIORITY
                if order > PAGE_ALLOC_COSTLY_ORDER
                else MIN_COMPACT_PRIORITY
            )
            if st.compact_priority > min_priority:
                st.compact_priority -= 1
                st.compaction_retries = 0
                ret = True
    if rec is not None and rec.enabled:
        rec.emit(
            "compact_retry",
            order=order,
            priority=CompactPriority(priority).name,
            compaction_result=compact_result_to_feedback(st.compact_result),
            retries=retries,
            max_retries=max_retries,
            should_retry=int(ret),
        )
    return ret


async def should_compact_retry_async(pa: Allocator, st: SlowpathState) -> bool:
    """should_compact_retry in the allocating actor: the COMPACT_SKIPPED branch reads the
    zones (compaction_zonelist_suitable) at a synchronised instant."""
    if st.order and st.compact_result == CompactResult.COMPACT_SKIPPED:
        await pa.sim.sync()

    def suitable() -> bool:
        return bool(compaction_zonelist_suitable(pa, st.ac, st.order, st.alloc_flags))

    return should_compact_retry(st, suitable, pa.rec)


async def alloc_pages_may_oom(pa: Allocator, cpu: Cpu, st: SlowpathState) -> int:
    """Models mm/page_alloc.c: __alloc_pages_may_oom up to out_of_memory().

    The last attempt at the HIGH watermark (``(gfp | __GFP_HARDWALL) & ~__GFP_DIRECT_RECLAIM``,
    ``ALLOC_WMARK_HIGH | ALLOC_CPUSET``); then the kernel skips the OOM killer for costly
    orders, __GFP_RETRY_MAYFAIL or __GFP_THISNODE, and lowmem-only requests. Where it would
    call out_of_memory(), this model counts ``would_oom`` and fails (reason ``oom``).
    """
    gfp = (st.gfp_mask | __GFP_HARDWALL) & ~__GFP_DIRECT_RECLAIM
    pfn = await _freelist(pa, cpu, st, ALLOC_WMARK_HIGH | ALLOC_CPUSET, gfp)
    if pfn >= 0:
        st.via = "freelist"
        return pfn
    if (
        st.order > PAGE_ALLOC_COSTLY_ORDER
        or st.gfp_mask & (__GFP_RETRY_MAYFAIL | __GFP_THISNODE)
        or st.ac.highest_zoneidx < ZONE_NORMAL
    ):
        st.reason = REASON_NO_OOM
    else:
        st.reason = REASON_OOM
    return -1


async def alloc_pages_slowpath(
    pa: Allocator, cpu: Cpu, gfp_mask: int, order: int, ac: AllocContext, owner: int
) -> tuple[int, str]:
    """Models mm/page_alloc.c: __alloc_pages_slowpath. Returns ``(pfn, failure reason)``."""
    stats = pa.slowpath_stats[order]
    stats.entered += 1
    st = SlowpathState(
        gfp_mask,
        order,
        ac,
        owner,
        can_direct_reclaim=bool(gfp_mask & __GFP_DIRECT_RECLAIM),
        can_compact=gfp_compaction_allowed(gfp_mask),
        costly_order=order > PAGE_ALLOC_COSTLY_ORDER,
    )
    pfn = await _slowpath(pa, cpu, st)
    if pfn >= 0:
        if st.via == "reclaim":
            stats.succeeded_after_reclaim += 1
        elif st.via in ("compaction", "captured"):
            stats.succeeded_after_compaction += 1
            if st.via == "captured":
                stats.captured += 1
        else:
            stats.succeeded_freelist += 1
        return pfn, ""
    stats.failed[st.reason] += 1
    if st.reason == REASON_OOM:
        stats.would_oom += 1
    return -1, st.reason


async def _slowpath(pa: Allocator, cpu: Cpu, st: SlowpathState) -> int:
    """The labels of __alloc_pages_slowpath in order (``restart`` once: no cpusets)."""
    gfp_mask = st.gfp_mask
    order = st.order
    ac = st.ac
    # -- restart:
    st.compaction_retries = 0
    st.no_progress_loops = 0
    st.compact_priority = DEF_COMPACT_PRIORITY
    st.alloc_flags = gfp_to_alloc_flags(gfp_mask, order)
    if st.alloc_flags & ALLOC_KSWAPD:
        await wake_all_kswapds(pa, order, gfp_mask, ac)
    pfn = await _freelist(pa, cpu, st, st.alloc_flags)
    if pfn >= 0:
        st.via = "freelist"
        return pfn
    if (
        st.can_direct_reclaim
        and st.can_compact
        and (st.costly_order or (order > 0 and ac.migratetype != MIGRATE_MOVABLE))
        and not gfp_pfmemalloc_allowed(gfp_mask)
    ):
        pfn = await alloc_pages_direct_compact(pa, cpu, st, INIT_COMPACT_PRIORITY)
        if pfn >= 0:
            return pfn
        if st.costly_order and gfp_mask & __GFP_NORETRY:
            if st.compact_result == CompactResult.COMPACT_SKIPPED:
                st.reason = REASON_COMPACT_SKIPPED
                return -1
            if st.compact_result == CompactResult.COMPACT_DEFERRED:
                st.reason = REASON_COMPACT_DEFERRED
                return -1
            st.compact_priority = INIT_COMPACT_PRIORITY
    while True:
        # -- retry:
        if st.alloc_flags & ALLOC_KSWAPD:
            await wake_all_kswapds(pa, order, gfp_mask, ac)
        reserve_flags = gfp_pfmemalloc_flags(gfp_mask)
        if reserve_flags:
            st.alloc_flags = gfp_to_alloc_flags_cma(gfp_mask, reserve_flags) | (
                st.alloc_flags & ALLOC_KSWAPD
            )
        pfn = await _freelist(pa, cpu, st, st.alloc_flags)
        if pfn >= 0:
            st.via = "freelist"
            return pfn
        if not st.can_direct_reclaim:
            return -1  # nopage, with the freelist's reason
        pfn = await alloc_pages_direct_reclaim(pa, cpu, st)
        if pfn >= 0:
            return pfn
        pfn = await alloc_pages_direct_compact(pa, cpu, st, st.compact_priority)
        if pfn >= 0:
            return pfn
        if gfp_mask & __GFP_NORETRY:
            st.reason = REASON_NORETRY
            return -1
        if st.costly_order and (not st.can_compact or not gfp_mask & __GFP_RETRY_MAYFAIL):
            st.reason = REASON_COSTLY
            return -1
        lat_enter(pa.sim, RETRY)  # the rest of this pass and every later one
        if await should_reclaim_retry(pa, st):
            continue
        if st.did_some_progress > 0 and st.can_compact and await should_compact_retry_async(pa, st):
            continue
        pfn = await alloc_pages_may_oom(pa, cpu, st)
        return pfn  # no OOM killer: it never makes progress, so no ``goto retry``


def merged_stats(pa: Allocator) -> dict[str, dict[str, Any]]:
    """summary.json ``slowpath``: outcomes per order (orders that entered the slow path)."""
    return {str(o): s.summary() for o, s in enumerate(pa.slowpath_stats) if s.entered}
