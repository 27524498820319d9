"""Where compaction resumes and what it skips: Models mm/compaction.c:
reset_cached_positions, __reset_isolation_pfn, __reset_isolation_suitable (as
reset_isolation_suitable_zone),
reset_isolation_suitable. (Setting the bits and moving the cached pfns is the scanners' work:
:mod:`emulator.mm.compaction.isolate_migrate`, :mod:`emulator.mm.compaction.isolate_free`.)

``PB_migrate_skip`` is a hint: set on migration-source blocks that yielded nothing (or after a
``finish_pageblock`` rescan), as the claim of a source block (``test_and_set_skip``), on fully
scanned free-scanner blocks and by ``fast_isolate_around``; read unless ``ignore_skip_hint``
(SYNC_FULL, ``compact_memory``, proactive); cleared only by ``__reset_isolation_suitable``,
which does nothing unless ``zone->compact_blockskip_flush`` was set by a direct compactor whose
scanners met. It is called when kswapd goes to sleep (``reset_isolation_suitable``) and by
``compact_zone`` when ``compaction_restarting``.
"""

from __future__ import annotations

from collections.abc import Sequence

from emulator.mm.memmap import PF_LRU, PG_ALLOC, PG_BUDDY, PG_KIND_MASK, PG_TAIL, Memmap
from emulator.mm.snapshot import (
    MIGRATE_MOVABLE,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import Zone

__all__ = [
    "pageblock_skip_persistent",
    "reset_cached_positions",
    "reset_isolation_suitable",
    "reset_isolation_suitable_zone",
]


def _pageblock_start(pfn: int) -> int:
    return pfn & ~(PAGEBLOCK_NR_PAGES - 1)


def pageblock_skip_persistent(mm: Memmap, pfn: int) -> bool:
    """Models mm/compaction.c: pageblock_skip_persistent — the block starts with (a page of) a
    compound page of order >= pageblock_order."""
    start = _pageblock_start(pfn)
    return mm.state[start] & 7 == PG_ALLOC and mm.order[mm.block_head(start)] >= PAGEBLOCK_ORDER


def reset_cached_positions(zone: Zone) -> None:
    """Models mm/compaction.c: reset_cached_positions."""
    zone.compact_cached_migrate_pfn[0] = zone.zone_start_pfn
    zone.compact_cached_migrate_pfn[1] = zone.zone_start_pfn
    zone.compact_cached_free_pfn = _pageblock_start(zone.zone_end_pfn - 1)


def _reset_isolation_pfn(zone: Zone, pfn: int, check_source: bool, check_target: bool) -> bool:
    """Models mm/compaction.c: __reset_isolation_pfn — clear the block's skip bit if a sample
    of every 8th page finds an LRU page (source) or a free buddy (target)."""
    mm = zone.memmap
    if not zone.spans(pfn) or pageblock_skip_persistent(mm, pfn):
        return False
    if check_source and check_target and not mm.pb_skip[pfn >> PAGEBLOCK_ORDER]:
        return True
    if not check_source and check_target and mm.pb_mt[pfn >> PAGEBLOCK_ORDER] != MIGRATE_MOVABLE:
        return False
    start = max(_pageblock_start(pfn), zone.zone_start_pfn)
    end = min(_pageblock_start(pfn) + PAGEBLOCK_NR_PAGES, zone.zone_end_pfn)
    st = mm.state
    fl = mm.pflags
    od = mm.order
    step = 1 << PAGE_ALLOC_COSTLY_ORDER
    for p in range(start, end, step):
        s = st[p]
        if check_source and s & PG_KIND_MASK == PG_ALLOC:
            head = p
            if s & PG_TAIL:
                head = mm.block_head(p)
            if fl[head] & PF_LRU and od[head] < PAGEBLOCK_ORDER:
                mm.pb_skip[pfn >> PAGEBLOCK_ORDER] = 0
                return True
        if check_target and s == PG_BUDDY:
            mm.pb_skip[pfn >> PAGEBLOCK_ORDER] = 0
            return True
    return False


def reset_isolation_suitable_zone(zone: Zone) -> None:
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
        if _reset_isolation_pfn(zone, migrate_pfn, True, source_set) and (
            migrate_pfn < reset_migrate
        ):
            source_set = True
            reset_migrate = migrate_pfn
            zone.compact_init_migrate_pfn = reset_migrate
            zone.compact_cached_migrate_pfn[0] = reset_migrate
            zone.compact_cached_migrate_pfn[1] = reset_migrate
        if _reset_isolation_pfn(zone, free_pfn, free_set, True) and free_pfn > reset_free:
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


def reset_isolation_suitable(zones: Sequence[Zone]) -> None:
    """Models mm/compaction.c: reset_isolation_suitable(pgdat) — ``__reset_isolation_suitable``
    for every populated zone of a node (``zones``); kswapd calls it on going to sleep."""
    for zone in zones:
        if zone.present_pages:
            reset_isolation_suitable_zone(zone)
