"""``__rmqueue`` and its zone->lock-held callers, from mm/page_alloc.c (Linux 6.12).

:func:`rmqueue_locked` models ``__rmqueue``: the CMA balancing, ``__rmqueue_smallest``, the CMA
lists, then ``__rmqueue_fallback``. :func:`rmqueue_buddy_locked` and :func:`rmqueue_bulk` are
the parts of ``rmqueue_buddy`` and ``rmqueue_bulk`` under ``zone->lock`` (the caller holds it;
the allocator's actor layer takes it). They sit above the buddy core
(:mod:`emulator.mm.page_alloc.buddy`) and the fallback (:mod:`emulator.mm.page_alloc.fallback`),
which they both use.
"""

from __future__ import annotations

from emulator.mm.lockdep import lockdep_assert_held
from emulator.mm.memmap import OWNER_FOR_MIGRATETYPE, OWNER_NONE, PG_ALLOC, PG_PCP
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_CMA,
    ALLOC_HIGHATOMIC,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
)
from emulator.mm.page_alloc.buddy import rmqueue_smallest
from emulator.mm.page_alloc.fallback import rmqueue_fallback
from emulator.mm.snapshot import MIGRATE_CMA, MIGRATE_HIGHATOMIC
from emulator.mm.zone import Zone

__all__ = ["rmqueue_buddy_locked", "rmqueue_bulk", "rmqueue_locked"]


def rmqueue_locked(zone: Zone, order: int, migratetype: int, alloc_flags: int) -> int:
    """Models mm/page_alloc.c: __rmqueue (CMA balancing, smallest, CMA, fallback).

    Returns the pfn of a block taken off the free lists and counters (pages unmarked: the
    caller marks them) or -1.
    """
    if alloc_flags & ALLOC_CMA and zone.nr_free_cma > zone.nr_free_pages // 2:
        page = rmqueue_smallest(zone, order, MIGRATE_CMA)
        if page >= 0:
            return page
    page = rmqueue_smallest(zone, order, migratetype)
    if page < 0:
        if alloc_flags & ALLOC_CMA:
            page = rmqueue_smallest(zone, order, MIGRATE_CMA)
        if page < 0:
            page = rmqueue_fallback(zone, order, migratetype, alloc_flags)
    return page


def rmqueue_buddy_locked(
    zone: Zone, order: int, migratetype: int, alloc_flags: int = 0, owner: int | None = None
) -> int:
    """Models mm/page_alloc.c: rmqueue_buddy (the part under zone->lock, plus PGALLOC).

    Tries the HIGHATOMIC list first with ALLOC_HIGHATOMIC, then ``__rmqueue``, then HIGHATOMIC
    as a last chance for ALLOC_OOM / ALLOC_NON_BLOCK. Marks the block ``PG_ALLOC`` with
    ``owner`` (default: the owner kind matching ``migratetype``) and counts ``pgalloc_<zone>``.
    Returns the pfn or -1. Simplified: no check_new_pages retry (no bad pages).
    """
    lockdep_assert_held(zone.lock_or_none)
    page = -1
    if alloc_flags & ALLOC_HIGHATOMIC:
        page = rmqueue_smallest(zone, order, MIGRATE_HIGHATOMIC)
    if page < 0:
        page = rmqueue_locked(zone, order, migratetype, alloc_flags)
        if page < 0 and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
            page = rmqueue_smallest(zone, order, MIGRATE_HIGHATOMIC)
        if page < 0:
            return -1
    if owner is None:
        owner = OWNER_FOR_MIGRATETYPE[migratetype] if migratetype < 3 else OWNER_NONE
    zone.memmap.mark_block(page, order, PG_ALLOC, owner)
    zone.vm_events[zone.pgalloc_key] += 1 << order
    return page


def rmqueue_bulk(
    zone: Zone, order: int, count: int, migratetype: int, alloc_flags: int = 0
) -> list[int]:
    """Models mm/page_alloc.c: rmqueue_bulk (under one hold of zone->lock).

    Takes up to ``count`` blocks of ``order`` with ``__rmqueue`` and marks them ``PG_PCP``;
    the caller adds them to its pcp list (list_add_tail, in this order).
    """
    lockdep_assert_held(zone.lock_or_none)
    out = []
    mark = zone.memmap.mark_block
    for _ in range(count):
        page = rmqueue_locked(zone, order, migratetype, alloc_flags)
        if page < 0:
            break
        mark(page, order, PG_PCP)
        out.append(page)
    return out
