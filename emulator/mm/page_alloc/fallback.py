"""Anti-fragmentation: the migratetype fallback of mm/page_alloc.c (Linux 6.12), on Zone.

When ``__rmqueue_smallest`` finds nothing of the requested migratetype, ``__rmqueue_fallback``
takes a block from another type's lists and, if the rules allow, claims its whole pageblock so
later allocations of the same mobility stay together. Models, from mm/page_alloc.c:

* ``fallbacks[]`` (:data:`FALLBACKS`) and :func:`can_steal_fallback`;
* ``find_suitable_fallback``, ``boost_watermark``, ``steal_suitable_fallback`` (the 6.10-6.14
  claim rule: free plus "alike" pages of at least half a pageblock) and ``__rmqueue_fallback``
  (with ``ALLOC_NOFRAGMENT`` and the movable "find_smallest" switch, emitting
  ``mm_page_alloc_extfrag``);
* the pageblock-retyping primitives shared with the highatomic reserve and isolation:
  ``change_pageblock_range``, ``prep_move_freepages_block`` (with the free / movable counts),
  ``__move_freepages_block`` and ``move_freepages_block``.

Functions over a :class:`~emulator.mm.zone.Zone`, as the kernel's static functions take
``struct zone *``; like the buddy core (:mod:`emulator.mm.page_alloc.buddy`) they run with
``zone->lock`` held by the caller and use the core's ``expand``, ``page_del_and_expand`` and
``__rmqueue_smallest``.
"""

from __future__ import annotations

from emulator.mm.memmap import (
    OWNER_ON_LRU,
    PG_ALLOC,
    PG_BUDDY,
    PG_KIND_MASK,
    PG_TAIL,
)
from emulator.mm.page_alloc.alloc_flags import ALLOC_KSWAPD, ALLOC_NOFRAGMENT
from emulator.mm.page_alloc.buddy import expand, page_del_and_expand, rmqueue_smallest
from emulator.mm.snapshot import (
    MAX_PAGE_ORDER,
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import WMARK_HIGH, ZONE_BOOSTED_WATERMARK, Zone

#: fallbacks[] (page_alloc.c:1618): the types a pcp type falls back to, in order.
FALLBACKS: tuple[tuple[int, int], ...] = (
    (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),  # UNMOVABLE
    (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),  # MOVABLE
    (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),  # RECLAIMABLE
)

_NT = MIGRATE_TYPES
_MAXO = MAX_PAGE_ORDER
_PBO = PAGEBLOCK_ORDER


def can_steal_fallback(order: int, start_mt: int, mobility_disabled: bool = False) -> bool:
    """can_steal_fallback() (page_alloc.c:1845). ``order`` is the *found* block's order."""
    if order >= PAGEBLOCK_ORDER:
        return True
    return (
        order >= PAGEBLOCK_ORDER // 2
        or start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)
        or mobility_disabled
    )


def find_suitable_fallback(
    zone: Zone, order: int, migratetype: int, only_stealable: bool
) -> tuple[int, bool]:
    """Models mm/page_alloc.c: find_suitable_fallback. Returns (fallback_mt|-1, can_steal)."""
    if not zone.nr_free[order]:
        return -1, False
    can_steal = False
    nxt = zone.memmap.nxt
    for fallback_mt in FALLBACKS[migratetype]:
        s = zone.sbase + order * _NT + fallback_mt
        if nxt[s] == s:
            continue
        if can_steal_fallback(order, migratetype, zone.page_group_by_mobility_disabled):
            can_steal = True
        if not only_stealable or can_steal:
            return fallback_mt, can_steal
    return -1, can_steal


def boost_watermark(zone: Zone) -> bool:
    """Models mm/page_alloc.c: boost_watermark (uses vm.watermark_boost_factor)."""
    factor = zone.watermark_boost_factor
    if not factor:
        return False
    if zone.managed_pages < PAGEBLOCK_NR_PAGES * 4:
        return False
    max_boost = zone._watermark[WMARK_HIGH] * factor // 10000  # mult_frac
    if not max_boost:
        return False
    max_boost = max(PAGEBLOCK_NR_PAGES, max_boost)
    zone.watermark_boost = min(zone.watermark_boost + PAGEBLOCK_NR_PAGES, max_boost)
    return True


def change_pageblock_range(zone: Zone, pfn: int, start_order: int, mt: int) -> None:
    """Models mm/page_alloc.c: change_pageblock_range. Set every pageblock of a >=
    pageblock_order block."""
    b = pfn >> _PBO
    pb_mt = zone.memmap.pb_mt
    for i in range(1 << (start_order - _PBO)):
        pb_mt[b + i] = mt


def prep_move_freepages_block(zone: Zone, pfn: int) -> tuple[bool, int, int, int]:
    """Models mm/page_alloc.c: prep_move_freepages_block (with counting). Returns (ok, start,
    free, movable).

    ``free`` counts pages in PageBuddy blocks, ``movable`` pages that are PageLRU (an LRU
    owner kind: anon, pinned, file, mlocked; a folio still in a CPU's lru-add batch counts
    too; __PageMovable non-LRU pages are not modelled). Fails if the pageblock straddles the
    zone's span.
    """
    start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
    end = start + PAGEBLOCK_NR_PAGES
    if not (zone.spans(start) and zone.spans(end - 1)):
        return False, start, 0, 0
    mm = zone.memmap
    st = mm.state
    od = mm.order
    ow = mm.owner
    on_lru = OWNER_ON_LRU
    free = movable = 0
    p = start
    while p < end:
        s = st[p]
        if s == PG_BUDDY:
            nr = 1 << od[p]
            free += nr
            p += nr
            continue
        if s == PG_ALLOC:
            nr = min(1 << od[p], end - p)
            if on_lru[ow[p]]:
                movable += nr
            p += nr
            continue
        if s & PG_KIND_MASK == PG_ALLOC and on_lru[ow[p]]:
            movable += 1
        p += 1
    zone.buddy_steps += 1
    return True, start, free, movable


def move_freepages_block_range(zone: Zone, start_pfn: int, old_mt: int, new_mt: int) -> int:
    """Models mm/page_alloc.c: __move_freepages_block.

    Moves every free buddy in the pageblock to the tail of ``new_mt``'s lists and sets the
    pageblock's type. Returns the pages moved.
    """
    mm = zone.memmap
    st = mm.state
    od = mm.order
    moved = 0
    p = start_pfn
    end = start_pfn + PAGEBLOCK_NR_PAGES
    while p < end:
        s = st[p]
        if s == PG_BUDDY:
            o = od[p]
            zone.move_to_free_list(p, o, old_mt, new_mt)
            p += 1 << o
            moved += 1 << o
        elif s & PG_TAIL:
            p += 1
        else:
            p += 1 << od[p] if s & PG_KIND_MASK >= PG_ALLOC else 1
    mm.pb_mt[start_pfn >> _PBO] = new_mt
    return moved


def move_freepages_block(zone: Zone, pfn: int, old_mt: int, new_mt: int) -> int:
    """Models mm/page_alloc.c: move_freepages_block. Returns pages moved or -1."""
    ok, start, _, _ = prep_move_freepages_block(zone, pfn)
    if not ok:
        return -1
    return move_freepages_block_range(zone, start, old_mt, new_mt)


def steal_suitable_fallback(
    zone: Zone,
    page: int,
    current_order: int,
    order: int,
    start_type: int,
    alloc_flags: int,
    whole_block: bool,
) -> int:
    """Models mm/page_alloc.c: steal_suitable_fallback (v6.12).

    A block of order >= pageblock_order is claimed outright. Otherwise the watermark is
    boosted, and if ``whole_block`` the pageblock is claimed when its free plus "alike" pages
    reach half a pageblock (256); failing that, exactly ``order`` is cut out of the fallback
    buddy and the remainder stays on the fallback type's lists (the 6.10-6.14 behaviour).
    """
    mm = zone.memmap
    block_type = mm.pb_mt[page >> _PBO]
    if block_type != MIGRATE_HIGHATOMIC:
        if current_order >= _PBO:
            zone.del_from_free_list(page, current_order, block_type)
            zone.account_freepages(-(1 << current_order), block_type)
            change_pageblock_range(zone, page, current_order, start_type)
            nr_added = expand(zone, page, order, current_order, start_type)
            zone.account_freepages(nr_added, start_type)
            return page
        if boost_watermark(zone) and alloc_flags & ALLOC_KSWAPD:
            zone.flags |= 1 << ZONE_BOOSTED_WATERMARK
        if whole_block:
            ok, start_pfn, free_pages, movable_pages = prep_move_freepages_block(zone, page)
            if ok:
                if start_type == MIGRATE_MOVABLE:
                    alike_pages = movable_pages
                elif block_type == MIGRATE_MOVABLE:
                    alike_pages = PAGEBLOCK_NR_PAGES - (free_pages + movable_pages)
                else:
                    alike_pages = 0
                if (
                    free_pages + alike_pages >= (1 << (_PBO - 1))
                    or zone.page_group_by_mobility_disabled
                ):
                    move_freepages_block_range(zone, start_pfn, block_type, start_type)
                    return rmqueue_smallest(zone, order, start_type)
    # single_page
    page_del_and_expand(zone, page, order, current_order, block_type)
    return page


def rmqueue_fallback(zone: Zone, order: int, start_migratetype: int, alloc_flags: int) -> int:
    """Models mm/page_alloc.c: __rmqueue_fallback (v6.12).

    Searches orders 10 down to ``order`` (down to pageblock_order only, with
    ALLOC_NOFRAGMENT and order < pageblock_order) for the largest fallback block; a movable
    request that cannot steal switches to the smallest one. Emits ``mm_page_alloc_extfrag``.
    """
    min_order = order
    if order < _PBO and alloc_flags & ALLOC_NOFRAGMENT:
        min_order = _PBO
    found = False
    fallback_mt = -1
    can_steal = False
    current_order = _MAXO
    while current_order >= min_order:
        fallback_mt, can_steal = find_suitable_fallback(
            zone, current_order, start_migratetype, False
        )
        if fallback_mt != -1:
            found = True
            break
        current_order -= 1
    if not found:
        return -1
    if not can_steal and start_migratetype == MIGRATE_MOVABLE and current_order > order:
        # find_smallest
        for current_order in range(order, NR_PAGE_ORDERS):
            fallback_mt, can_steal = find_suitable_fallback(
                zone, current_order, start_migratetype, False
            )
            if fallback_mt != -1:
                break
    page = zone.memmap.nxt[zone.sbase + current_order * _NT + fallback_mt]
    page = steal_suitable_fallback(
        zone, page, current_order, order, start_migratetype, alloc_flags, can_steal
    )
    if current_order < _PBO:
        # the tracepoint's fragmenting flag (include/trace/events/kmem.h:
        # mm_page_alloc_extfrag, fallback_order < pageblock_order), counted
        zone.extfrag_fragmenting[start_migratetype] += 1
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            "mm_page_alloc_extfrag",
            pfn=page,
            alloc_order=order,
            fallback_order=current_order,
            alloc_migratetype=start_migratetype,
            fallback_migratetype=fallback_mt,
            change_ownership=int(start_migratetype == zone.memmap.pb_mt[page >> _PBO]),
        )
    return page


__all__ = [
    "FALLBACKS",
    "boost_watermark",
    "can_steal_fallback",
    "change_pageblock_range",
    "find_suitable_fallback",
    "move_freepages_block",
    "move_freepages_block_range",
    "prep_move_freepages_block",
    "rmqueue_fallback",
    "steal_suitable_fallback",
]
