"""Pageblock isolation (CONFIG_MEMORY_ISOLATION) of mm/page_alloc.c and mm/page_isolation.c.

A pageblock of type ``MIGRATE_ISOLATE`` keeps its free pages on the ISOLATE lists, out of
``NR_FREE_PAGES`` (``account_freepages``) and out of every allocation; ``__free_one_page`` does
not merge across its boundary. Models (Linux 6.12):

* ``find_large_buddy`` and ``move_freepages_block_isolate`` (mm/page_alloc.c): set a pageblock's
  type and move its free pages, first splitting a free buddy larger than a pageblock that covers
  it (``split_large_buddy``);
* ``unset_migratetype_isolate`` (mm/page_isolation.c, the part under zone->lock): give the
  pageblock back, re-freeing a free block of at least ``pageblock_order`` at its start to the
  tail so it merges with its free buddy (``__isolate_free_page`` + ``__putback_isolated_page``);
* :func:`isolate_free_block`: the core of ``__isolate_free_page`` (take a free
  block off its list as isolated pages, without the watermark check or pageblock retyping).

Not modelled: ``start_isolate_page_range`` and its unmovable-page check, ``nr_isolate_pageblock``,
``alloc_contig_range`` / ``cma_alloc``.

Functions over a :class:`~emulator.mm.zone.Zone` (caller holds ``zone->lock``); they use the
buddy core's freeing and the fallback machinery's pageblock moves.
"""

from __future__ import annotations

from emulator.mm.memmap import PG_BUDDY, PG_ISOLATED
from emulator.mm.page_alloc.alloc_flags import FPI_NONE, FPI_SKIP_REPORT_NOTIFY, FPI_TO_TAIL
from emulator.mm.page_alloc.buddy import free_to_buddy, split_large_buddy
from emulator.mm.page_alloc.fallback import move_freepages_block_range, prep_move_freepages_block
from emulator.mm.snapshot import (
    MAX_PAGE_ORDER,
    MIGRATE_ISOLATE,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import Zone

_MAXO = MAX_PAGE_ORDER
_PBO = PAGEBLOCK_ORDER


def find_large_buddy(zone: Zone, start_pfn: int) -> int:
    """Models mm/page_alloc.c: find_large_buddy — the head of a free buddy straddling
    ``start_pfn`` from below, or ``start_pfn`` itself if there is none."""
    st = zone.memmap.state
    od = zone.memmap.order
    order = 0
    pfn = start_pfn
    while st[pfn] != PG_BUDDY:
        order += 1
        if order > _MAXO:
            return start_pfn
        pfn &= ~0 << order
        if pfn < zone.zone_start_pfn:
            return start_pfn
    if pfn + (1 << od[pfn]) > start_pfn:
        return pfn
    return start_pfn


def move_freepages_block_isolate(zone: Zone, pfn: int, migratetype: int) -> bool:
    """Models mm/page_alloc.c: move_freepages_block_isolate (CONFIG_MEMORY_ISOLATION).

    Sets the pageblock of ``pfn`` to ``migratetype`` (usually ISOLATE, or back) and moves its
    free pages; a free buddy larger than a pageblock that covers it is first taken off its
    list and re-freed pageblock by pageblock (``split_large_buddy``).
    """
    ok, start, _, _ = prep_move_freepages_block(zone, pfn)
    if not ok:
        return False
    mm = zone.memmap
    head = find_large_buddy(zone, start)
    if head == start and not (mm.state[start] == PG_BUDDY and mm.order[start] > _PBO):
        move_freepages_block_range(zone, start, mm.pb_mt[start >> _PBO], migratetype)
        return True
    order = mm.order[head]
    head_mt = mm.pb_mt[head >> _PBO]
    zone.del_from_free_list(head, order, head_mt)
    zone.account_freepages(-(1 << order), head_mt)
    mm.pb_mt[start >> _PBO] = migratetype
    split_large_buddy(zone, head, order, FPI_NONE)
    return True


def unset_migratetype_isolate(zone: Zone, pfn: int, migratetype: int) -> None:
    """Models mm/page_isolation.c: unset_migratetype_isolate (under zone->lock).

    An isolated pageblock whose first page is a free buddy of order 9 with a non-isolated
    free buddy is taken off the ISOLATE list and re-freed to the tail so it merges
    (``__isolate_free_page`` + ``__putback_isolated_page``); otherwise its free pages are
    moved with ``move_freepages_block_isolate``. ``nr_isolate_pageblock`` is not kept.
    """
    mm = zone.memmap
    start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
    if mm.pb_mt[start >> _PBO] != MIGRATE_ISOLATE:
        return
    if mm.state[start] == PG_BUDDY:
        order = mm.order[start]
        if _PBO <= order < _MAXO:
            buddy = start ^ (1 << order)
            if (
                zone.spans(buddy)
                and mm.state[buddy] == PG_BUDDY
                and mm.order[buddy] == order
                and mm.pb_mt[buddy >> _PBO] != MIGRATE_ISOLATE
            ):
                zone.del_from_free_list(start, order, MIGRATE_ISOLATE)
                mm.pb_mt[start >> _PBO] = migratetype
                free_to_buddy(zone, start, order, migratetype, FPI_SKIP_REPORT_NOTIFY | FPI_TO_TAIL)
                return
    move_freepages_block_isolate(zone, start, migratetype)


def isolate_free_block(zone: Zone, pfn: int) -> int:
    """Models mm/page_alloc.c: __isolate_free_page (its core, without the watermark check or
    the pageblock retyping): take a free buddy block off its list as isolated pages.
    Returns its order."""
    mm = zone.memmap
    if mm.state[pfn] != PG_BUDDY:
        raise ValueError(f"pfn {pfn:#x} is not the head of a free buddy block")
    order = mm.order[pfn]
    mt = mm.pb_mt[pfn >> _PBO]
    zone.del_from_free_list(pfn, order, mt)
    zone.account_freepages(-(1 << order), mt)
    mm.mark_block(pfn, order, PG_ISOLATED)
    return order


__all__ = [
    "find_large_buddy",
    "isolate_free_block",
    "move_freepages_block_isolate",
    "unset_migratetype_isolate",
]
