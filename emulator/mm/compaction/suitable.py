"""Is compaction worth running: Models mm/compaction.c: __compaction_suitable,
compaction_suitable (with the fragmentation-index test against ``vm.extfrag_threshold``),
compaction_suit_allocation_order, compaction_zonelist_suitable; and the fragmentation score of
proactive compaction (fragmentation_score_zone / _zone_weighted / _node,
fragmentation_score_wmark, should_proactive_compact_node), which :mod:`emulator.mm.vmstat`
re-exports. The fragmentation index itself is vmstat.c's (:mod:`emulator.mm.vmstat`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emulator.mm.compaction.control import CompactResult, compact_gap
from emulator.mm.compaction.sysctl import COMPACTION_PROACTIVENESS, EXTFRAG_THRESHOLD
from emulator.mm.internal import Allocator
from emulator.mm.page_alloc.alloc_flags import ALLOC_CMA, ALLOC_WMARK_MASK
from emulator.mm.page_alloc.watermark import zone_watermark_ok, zone_watermark_ok_free
from emulator.mm.snapshot import PAGE_ALLOC_COSTLY_ORDER
from emulator.mm.vmstat import (
    COMPACTION_HPAGE_ORDER,
    HasNrFree,
    ScoredNode,
    ScoredZone,
    extfrag_for_order,
    fragmentation_index,
)
from emulator.mm.zone import Zone

__all__ = [
    "compaction_suit_allocation_order",
    "compaction_suitable",
    "compaction_suitable_free",
    "compaction_zonelist_suitable",
    "fragmentation_score_node",
    "fragmentation_score_wmark",
    "fragmentation_score_zone",
    "fragmentation_score_zone_weighted",
    "should_proactive_compact_node",
]

R = CompactResult


_EXTFRAG_THRESHOLD = EXTFRAG_THRESHOLD.int_default()
_PROACTIVENESS = COMPACTION_PROACTIVENESS.int_default()


def compaction_suitable_free(
    zone: Zone, order: int, highest_zoneidx: int, wmark_target: int
) -> bool:
    """Models mm/compaction.c: __compaction_suitable — an order-0 check of ``wmark_target``
    free pages against the (boosted) LOW mark for costly orders, else MIN, plus
    ``compact_gap(order)``, with ALLOC_CMA."""
    mark = zone.low_wmark_pages if order > PAGE_ALLOC_COSTLY_ORDER else zone.min_wmark_pages
    mark += compact_gap(order)
    return zone_watermark_ok_free(zone, 0, mark, highest_zoneidx, ALLOC_CMA, wmark_target)


def compaction_suitable(
    zone: Zone, order: int, highest_zoneidx: int, extfrag_threshold: int = _EXTFRAG_THRESHOLD
) -> bool:
    """Models mm/compaction.c: compaction_suitable — the order-0 watermark plus gap on
    NR_FREE_PAGES; then, for costly orders, a fragmentation index in
    ``[0, extfrag_threshold]`` (``vm.extfrag_threshold``, the caller passes the machine's)
    means the failure is lack of memory, not fragmentation: not
    suitable (trace result COMPACT_NOT_SUITABLE_ZONE). Fires ``mm_compaction_suitable``."""
    suitable = compaction_suitable_free(zone, order, highest_zoneidx, zone.nr_free_pages)
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
    zone: Zone,
    order: int,
    highest_zoneidx: int,
    alloc_flags: int,
    extfrag_threshold: int = _EXTFRAG_THRESHOLD,
) -> CompactResult:
    """Models mm/compaction.c: compaction_suit_allocation_order — SUCCESS if the allocation
    would already pass its watermark at ``order``, SKIPPED if the zone is not
    :func:`compaction_suitable`, else CONTINUE."""
    mark = zone.wmark_pages(alloc_flags & ALLOC_WMARK_MASK)
    if zone_watermark_ok(zone, order, mark, highest_zoneidx, alloc_flags):
        return R.COMPACT_SUCCESS
    if not compaction_suitable(zone, order, highest_zoneidx, extfrag_threshold):
        return R.COMPACT_SKIPPED
    return R.COMPACT_CONTINUE


def compaction_zonelist_suitable(pa: Allocator, ac: Any, order: int, alloc_flags: int) -> bool:
    """Models mm/compaction.c: compaction_zonelist_suitable — would some zone pass
    ``__compaction_suitable`` if reclaim freed ``zone_reclaimable_pages / order`` more pages?
    (``zone_reclaimable_pages`` is 0 until the LRU counts exist: then only free pages count.)"""
    for zone in ac.zonelist:
        if zone.zone_idx > ac.highest_zoneidx:
            continue
        available = _zone_reclaimable_pages(pa, zone) // order if order else 0
        available += zone.nr_free_pages
        if compaction_suitable_free(zone, order, ac.highest_zoneidx, available):
            return True
    return False


def _zone_reclaimable_pages(pa: Allocator, zone: Zone) -> int:
    fn = getattr(pa, "zone_reclaimable_pages", None)
    return int(fn(zone)) if fn is not None else 0


def fragmentation_score_zone(zone: HasNrFree | Sequence[int]) -> int:
    """Models mm/compaction.c: fragmentation_score_zone —
    ``extfrag_for_order(zone, COMPACTION_HPAGE_ORDER)``, in [0, 100]."""
    return extfrag_for_order(zone, COMPACTION_HPAGE_ORDER)


def fragmentation_score_zone_weighted(zone: ScoredZone, node_present_pages: int) -> int:
    """Models mm/compaction.c: fragmentation_score_zone_weighted —
    ``zone->present_pages * score / (node_present_pages + 1)``.

    It weights by *present* pages, not managed pages, so a small zone (DMA, often DMA32)
    contributes almost nothing to its node's score. A zone whose present size is unknown (0
    in a snapshot parsed from buddyinfo alone) weighs 0.
    """
    return (zone.present_pages * fragmentation_score_zone(zone)) // (node_present_pages + 1)


def fragmentation_score_node(node: ScoredNode) -> int:
    """Models mm/compaction.c: fragmentation_score_node — the sum of the weighted scores of
    the node's populated zones."""
    node_present = sum(z.present_pages for z in node.zones)
    return sum(
        fragmentation_score_zone_weighted(z, node_present) for z in node.zones if z.populated
    )


def fragmentation_score_wmark(low: bool, proactiveness: int = _PROACTIVENESS) -> int:
    """Models mm/compaction.c: fragmentation_score_wmark (v6.12) —
    ``wmark_low = max(100 - proactiveness, 5)``; the high mark is ``min(wmark_low + 10, 100)``.
    Proactiveness 20 (the default) gives low 80, high 90."""
    COMPACTION_PROACTIVENESS.check(proactiveness)
    wmark_low = max(100 - proactiveness, 5)
    return wmark_low if low else min(wmark_low + 10, 100)


def should_proactive_compact_node(
    node: ScoredNode, proactiveness: int = _PROACTIVENESS, kswapd_running: bool = False
) -> bool:
    """Models mm/compaction.c: should_proactive_compact_node(pgdat) — True when proactiveness
    is non-zero, kswapd is not running on the node (``kswapd_is_running``, passed in here since
    a snapshot cannot know it), and the node's score is strictly above the high mark. kcompactd
    evaluates this every 500 ms of idleness."""
    if not proactiveness or kswapd_running:
        return False
    return fragmentation_score_node(node) > fragmentation_score_wmark(False, proactiveness)
