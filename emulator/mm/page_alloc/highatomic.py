"""The highatomic reserve of mm/page_alloc.c (Linux 6.12), on Zone.

High-order atomic allocations (``ALLOC_HIGHATOMIC``) that succeed get their pageblock set aside
as ``MIGRATE_HIGHATOMIC``, up to about 1% of the zone, so later atomic requests of that kind find
free high-order pages; under memory pressure the reserve is handed back. Models:

* ``migratetype_is_mergeable`` (mmzone.h),
* ``reserve_highatomic_pageblock`` (the part under zone->lock; the caller takes the lock),
* ``unreserve_highatomic_pageblock`` for one zone (the caller walks the zonelist).

Who uses the reserve is the buddy core: ``rmqueue_buddy`` tries the HIGHATOMIC lists first with
``ALLOC_HIGHATOMIC`` and last for ``ALLOC_OOM`` / ``ALLOC_NON_BLOCK``; the watermark checks count
``nr_free_highatomic`` as unusable without ``ALLOC_RESERVES``.

Functions over a :class:`~emulator.mm.zone.Zone` (caller holds ``zone->lock``); they move
pageblocks with the fallback machinery's ``move_freepages_block`` and
``change_pageblock_range`` (:mod:`emulator.mm.page_alloc.fallback`).
"""

from __future__ import annotations

from emulator.mm.lockdep import lockdep_assert_held
from emulator.mm.page_alloc.fallback import change_pageblock_range, move_freepages_block
from emulator.mm.snapshot import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import Zone

_NT = MIGRATE_TYPES
_PBO = PAGEBLOCK_ORDER


def migratetype_is_mergeable(mt: int) -> bool:
    """migratetype_is_mergeable() (mmzone.h:98): UNMOVABLE, MOVABLE and RECLAIMABLE only."""
    return mt < MIGRATE_PCPTYPES


def highatomic_max_managed(zone: Zone) -> int:
    """The unlocked checks of mm/page_alloc.c: reserve_highatomic_pageblock ("race-prone
    but harmless"): 0 when the zone gets no reserve (1% of it is below a pageblock) or
    its reserve is full, else ``max_managed`` (1% of the zone, pageblock-aligned up)."""
    managed = zone.managed_pages
    if managed // 100 < PAGEBLOCK_NR_PAGES:
        return 0
    max_managed = -(-(managed // 100) // PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES  # ALIGN
    if zone.nr_reserved_highatomic >= max_managed:
        return 0
    return max_managed


def reserve_highatomic_pageblock(zone: Zone, pfn: int, order: int) -> None:
    """Models mm/page_alloc.c: reserve_highatomic_pageblock (the part under zone->lock).

    Called after a successful ALLOC_HIGHATOMIC allocation of ``order`` at ``pfn``, with
    zone->lock held by the caller, which has made the unlocked checks
    (:meth:`highatomic_max_managed`) first; the limit is re-checked here, under the lock.
    """
    lockdep_assert_held(zone.lock_or_none)
    if not highatomic_max_managed(zone):
        return
    mt = zone.memmap.pb_mt[pfn >> _PBO]
    if not migratetype_is_mergeable(mt):
        return
    if order < _PBO:
        if move_freepages_block(zone, pfn, mt, MIGRATE_HIGHATOMIC) == -1:
            return
        zone.nr_reserved_highatomic += PAGEBLOCK_NR_PAGES
    else:
        change_pageblock_range(zone, pfn, order, MIGRATE_HIGHATOMIC)
        zone.nr_reserved_highatomic += 1 << order


def unreserve_highatomic_pageblock_locked(zone: Zone, migratetype: int, force: bool) -> int:
    """Models mm/page_alloc.c: unreserve_highatomic_pageblock for this one zone.

    The kernel walks the zonelist; the caller loops over zones and stops at the first
    non-zero result. Returns the kernel's ``ret`` (pages moved, or 1), 0 if nothing was done.
    """
    lockdep_assert_held(zone.lock_or_none)
    if not force and zone.nr_reserved_highatomic <= PAGEBLOCK_NR_PAGES:
        return 0
    nxt = zone.memmap.nxt
    pb_mt = zone.memmap.pb_mt
    for order in range(NR_PAGE_ORDERS):
        s = zone.sbase + order * _NT + MIGRATE_HIGHATOMIC
        page = nxt[s]
        if page == s:
            continue
        mt = pb_mt[page >> _PBO]
        if mt == MIGRATE_HIGHATOMIC:
            size = max(PAGEBLOCK_NR_PAGES, 1 << order)
            size = min(size, zone.nr_reserved_highatomic)
            zone.nr_reserved_highatomic -= size
        if order < _PBO:
            ret = move_freepages_block(zone, page, mt, migratetype)
        else:
            zone.move_to_free_list(page, order, mt, migratetype)
            change_pageblock_range(zone, page, order, migratetype)
            ret = 1
        if ret > 0:
            return ret
    return 0


__all__ = [
    "highatomic_max_managed",
    "migratetype_is_mergeable",
    "reserve_highatomic_pageblock",
    "unreserve_highatomic_pageblock_locked",
]
