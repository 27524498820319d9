"""Compaction's migration scanner: Models mm/compaction.c: isolate_migratepages,
isolate_migratepages_block, fast_find_migrateblock, suitable_migration_source,
pageblock_skip_persistent, too_many_isolated, test_and_set_skip, update_cached_migrate, and
mm/migrate.c: putback_movable_pages.

Who may be isolated is a property of the page's owner kind (``memmap.owner``), read through two
256-entry tables: :func:`page_lru_table` (``PageLRU``) and :func:`isolatable_table` (passes
every check of ``isolate_migratepages_block`` after PageLRU: pinned anonymous pages fail the
``refcount - 1 > mapcount`` test, unevictable (mlocked) pages need ``ISOLATE_UNEVICTABLE`` i.e.
``vm.compact_unevictable_allowed``, file pages need ``__GFP_FS``). An isolated page keeps its
owner kind with :data:`OWNER_ISOLATED` or-ed in (``folio_test_clear_lru`` cleared its LRU
flag): it stays allocated, another scanner skips it, its holder may still free it.

Time: the scan proceeds in units of ``COMPACT_CLUSTER_MAX`` (32) pfns, the kernel's lock-drop
granularity. A unit's pages are classified with one numpy pass; its isolations happen at the
unit's start instant; the unit's cost (pfns scanned, pages isolated) is charged in one delay,
under the node's ``lru_lock`` from the first isolation on (isolate first, then lock, as since
v5.11). Between units the actor synchronises: that is where the kernel drops the lock and calls
``cond_resched``, so other CPUs run there.

Simplified: no ``__PageMovable`` non-LRU pages (zsmalloc, balloon), no hugetlb pages, no
writeback/dirty folios (so ISOLATE_ASYNC_MIGRATE rejects nothing), one lruvec per node (no
memcg).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

from emulator.engine import SpinLock
from emulator.mm import memmap as _memmap
from emulator.mm.compaction_control import COMPACT_CLUSTER_MAX, MIGRATE_ASYNC
from emulator.mm.gfp import __GFP_FS
from emulator.mm.memmap import OWNER_MOVABLE, OWNER_PINNED, PG_ALLOC, Memmap
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_MOVABLE,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)

if TYPE_CHECKING:
    from emulator.mm.allocator import PageAllocator
    from emulator.mm.internal import CompactControl
    from emulator.mm.page_alloc import Zone

__all__ = [
    "ISOLATE_ABORT",
    "ISOLATE_NONE",
    "ISOLATE_SUCCESS",
    "OWNER_ISOLATED",
    "isolatable_table",
    "isolate_migratepages",
    "isolate_migratepages_block",
    "lru_lock",
    "node_isolated",
    "page_lru_table",
    "pageblock_skip_persistent",
    "putback_movable_pages",
    "too_many_isolated",
]

# isolate_migrate_t
ISOLATE_ABORT = 0
ISOLATE_NONE = 1
ISOLATE_SUCCESS = 2

#: or-ed into ``memmap.owner`` of an isolated page (off the LRU, on a migratepages list)
OWNER_ISOLATED = 0x80
#: the owner kinds on an LRU list (PageLRU) and which of them pass isolation's checks
_LRU_OWNERS = {OWNER_MOVABLE, OWNER_PINNED}
for _name in ("OWNER_ANON", "OWNER_FILE", "OWNER_MLOCKED"):
    if hasattr(_memmap, _name):
        _LRU_OWNERS.add(getattr(_memmap, _name))
_UNEVICTABLE = {getattr(_memmap, "OWNER_MLOCKED", -1)}
_FILE = {getattr(_memmap, "OWNER_FILE", -1)}
_NEVER = {OWNER_PINNED}

#: reclaim_throttle(pgdat, VMSCAN_THROTTLE_ISOLATED) timeout: HZ/50 (vmscan.c:568)
ISOLATED_THROTTLE_NS = 20_000_000

_PB_MASK = PAGEBLOCK_NR_PAGES - 1
_ULONG_MAX = (1 << 64) - 1
_TABLES: dict[tuple[bool, bool], np.ndarray] = {}


def page_lru_table(zone: Zone | None = None) -> np.ndarray:
    """256 entries: 1 where the owner kind is on an LRU list (``PageLRU``)."""
    t = np.zeros(256, dtype=np.uint8)
    for o in _LRU_OWNERS:
        t[o] = 1
    return t


def isolatable_table(unevictable_allowed: bool, gfp_fs: bool) -> np.ndarray:
    """256 entries: 1 where ``isolate_migratepages_block`` isolates a page of that owner kind
    (an already isolated page, ``| OWNER_ISOLATED``, is not on the LRU: 0)."""
    key = (unevictable_allowed, gfp_fs)
    t = _TABLES.get(key)
    if t is None:
        t = np.zeros(256, dtype=np.uint8)
        for o in _LRU_OWNERS:
            if o in _NEVER:
                continue  # pinned: refcount - 1 > mapcount
            if o in _UNEVICTABLE and not unevictable_allowed:
                continue  # !(mode & ISOLATE_UNEVICTABLE)
            if o in _FILE and not gfp_fs:
                continue  # file folios need __GFP_FS
            t[o] = 1
        _TABLES[key] = t
    return t


def pageblock_skip_persistent(mm: Memmap, pfn: int) -> bool:
    """Models mm/compaction.c: pageblock_skip_persistent — the block starts with (a page of) a
    compound page of order >= pageblock_order."""
    start = pfn & ~_PB_MASK
    return mm.state[start] & 7 == PG_ALLOC and mm.order[mm.block_head(start)] >= PAGEBLOCK_ORDER


# -- per-node LRU state kept here until the LRU model provides it ------------------------------

_NODE_STATE: weakref.WeakKeyDictionary[PageAllocator, tuple[list[int], list[SpinLock]]] = (
    weakref.WeakKeyDictionary()
)


def _node_state(pa: PageAllocator) -> tuple[list[int], list[SpinLock]]:
    st = _NODE_STATE.get(pa)
    if st is None:
        st = (
            [0] * pa.nr_nodes,
            [SpinLock(pa.sim, "&lruvec->lru_lock") for _ in range(pa.nr_nodes)],
        )
        _NODE_STATE[pa] = st
    return st


def lru_lock(pa: PageAllocator, nid: int) -> SpinLock:
    """``lruvec->lru_lock`` of node ``nid`` (one lruvec per node: no memcg)."""
    lock = getattr(pa, "lru_locks", None)
    if lock is not None:
        return lock[nid]
    return _node_state(pa)[1][nid]


def node_isolated(pa: PageAllocator, nid: int) -> int:
    """``NR_ISOLATED_ANON + NR_ISOLATED_FILE`` of node ``nid``."""
    return _node_state(pa)[0][nid]


def _mod_isolated(pa: PageAllocator, nid: int, delta: int) -> None:
    _node_state(pa)[0][nid] += delta


def _node_lru_pages(pa: PageAllocator, zone: Zone) -> int:
    """``inactive + active`` (anon + file) of the zone's node: the pages on its LRU lists."""
    lru = page_lru_table(zone)
    mm = pa.memmap
    total = 0
    for z in pa.zones:
        if z.node != zone.node:
            continue
        own = np.frombuffer(mm.owner, dtype=np.uint8)[z.zone_start_pfn : z.zone_end_pfn]
        st = np.frombuffer(mm.state, dtype=np.uint8)[z.zone_start_pfn : z.zone_end_pfn]
        total += int(np.count_nonzero(lru[own] & ((st & 7) == PG_ALLOC)))
    return total


def too_many_isolated(cc: CompactControl) -> bool:
    """Models mm/compaction.c: too_many_isolated — ``isolated > (inactive + active) / 2``, the
    LRU sizes first divided by 8 for ``__GFP_FS`` callers (the GFP_NOFS ABBA-deadlock fix)."""
    pa = cc.pa
    assert pa is not None
    isolated = node_isolated(pa, cc.zone.node)
    if not isolated:
        return False
    lru = _node_lru_pages(pa, cc.zone)
    if cc.gfp_mask & __GFP_FS:
        lru >>= 3
    return isolated > lru // 2


def suitable_migration_source(cc: CompactControl, pfn: int) -> bool:
    """Models mm/compaction.c: suitable_migration_source — not a persistent (>= pageblock
    order compound) block; async direct compaction only takes blocks of its own type
    (MOVABLE or CMA for a movable request)."""
    mm = cc.zone.memmap
    if pageblock_skip_persistent(mm, pfn):
        return False
    if cc.mode != MIGRATE_ASYNC or not cc.direct_compaction:
        return True
    block_mt = mm.pb_mt[pfn >> PAGEBLOCK_ORDER]
    if cc.migratetype == MIGRATE_MOVABLE:
        return block_mt in (MIGRATE_MOVABLE, MIGRATE_CMA)
    return block_mt == cc.migratetype


def update_cached_migrate(cc: CompactControl, pfn: int) -> None:
    """Models mm/compaction.c: update_cached_migrate — move the cached migrate pfns (index 0
    always, index 1 for sync modes) forward to the end of ``pfn``'s pageblock."""
    if cc.no_set_skip_hint:
        return
    zone = cc.zone
    pfn = (pfn & ~_PB_MASK) + PAGEBLOCK_NR_PAGES if pfn & _PB_MASK else pfn
    cached = zone.compact_cached_migrate_pfn
    if pfn > cached[0]:
        cached[0] = pfn
    if cc.mode != MIGRATE_ASYNC and pfn > cached[1]:
        cached[1] = pfn


def _update_fast_start_pfn(cc: CompactControl, pfn: int) -> None:
    """compaction.c: update_fast_start_pfn — remember the lowest block fast search chose."""
    if cc.fast_start_pfn == _ULONG_MAX:
        return
    if not cc.fast_start_pfn:
        cc.fast_start_pfn = pfn
    cc.fast_start_pfn = min(cc.fast_start_pfn, pfn)


def _reinit_migrate_pfn(cc: CompactControl) -> int:
    """compaction.c: reinit_migrate_pfn — after a failed search, resume the linear scan at the
    block a previous search chose (once)."""
    if not cc.fast_start_pfn or cc.fast_start_pfn == _ULONG_MAX:
        return cc.migrate_pfn
    cc.migrate_pfn = cc.fast_start_pfn
    cc.fast_start_pfn = _ULONG_MAX
    return cc.migrate_pfn


def _move_freelist_tail(mm: Memmap, head: int, freepage: int) -> None:
    """compaction.c: move_freelist_tail — rotate so that ``freepage`` (and everything before
    it) moves to the tail of the list."""
    nxt = mm.nxt
    prv = mm.prv
    last = prv[head]
    if last == freepage:
        return
    first = nxt[head]
    after = nxt[freepage]
    # the list becomes: after .. last, first .. freepage
    nxt[head] = after
    prv[after] = head
    nxt[last] = first
    prv[first] = last
    nxt[freepage] = head
    prv[head] = freepage


async def fast_find_migrateblock(cc: CompactControl) -> int:
    """Models mm/compaction.c: fast_find_migrateblock — pick a migration source near the start
    of the zone from the free lists instead of scanning linearly.

    No search (``cc.migrate_pfn`` returned) with ``ignore_skip_hint``, ``finish_pageblock``, a
    continued scan (not at the zone start or a pageblock start), ``order <= 3``, or direct
    compaction for a non-movable request. Otherwise walk the MOVABLE free lists of orders
    ``cc.order - 1`` down to 3 under ``zone->lock`` (at most ``freelist_scan_limit`` entries)
    for a free page below ``high_pfn`` (an eighth of the scanners' span ahead, half at the zone
    start) whose block is not skip-marked; start there (rotating the entry to the list tail).
    A failure counts ``fast_search_fail`` and resumes at an earlier search's block.
    """
    pfn = cc.migrate_pfn
    zone = cc.zone
    if cc.ignore_skip_hint or cc.finish_pageblock:
        return pfn
    if pfn != zone.zone_start_pfn and pfn & _PB_MASK:
        return pfn
    if cc.order <= PAGE_ALLOC_COSTLY_ORDER:
        return pfn
    if cc.direct_compaction and cc.migratetype != MIGRATE_MOVABLE:
        return pfn
    pa = cc.pa
    assert pa is not None
    mm = zone.memmap
    limit = (COMPACT_CLUSTER_MAX >> min(63, cc.fast_search_fail)) + 1
    nr_scanned = 0
    distance = (cc.free_pfn - cc.migrate_pfn) >> 1
    if cc.migrate_pfn != zone.zone_start_pfn:
        distance >>= 2
    high_pfn = (cc.migrate_pfn + distance) & ~_PB_MASK
    found = False
    order = cc.order - 1
    while order >= PAGE_ALLOC_COSTLY_ORDER and not found and nr_scanned < limit:
        if zone.nr_free[order]:
            hold = await pa.zone_lock(zone, "fast_find_migrateblock")
            head = zone.free_list(order, MIGRATE_MOVABLE)
            freepage = mm.nxt[head]
            scanned_here = 0
            while freepage != head:
                if nr_scanned >= limit:
                    nr_scanned += 1
                    _move_freelist_tail(mm, head, freepage)
                    break
                nr_scanned += 1
                scanned_here += 1
                if freepage < high_pfn:
                    if mm.pb_skip[freepage >> PAGEBLOCK_ORDER]:
                        freepage = mm.nxt[freepage]
                        continue
                    _move_freelist_tail(mm, head, freepage)
                    _update_fast_start_pfn(cc, freepage)
                    pfn = max(freepage & ~_PB_MASK, zone.zone_start_pfn)
                    cc.fast_search_fail = 0
                    found = True
                    break
                freepage = mm.nxt[freepage]
            hold.charge += scanned_here * pa.costs.compact_free_scan_page
            await hold.unlock()
            await pa.sim.sync()
        order -= 1
    cc.total_migrate_scanned += nr_scanned
    if not found:
        cc.fast_search_fail += 1
        pfn = _reinit_migrate_pfn(cc)
    return pfn


async def isolate_migratepages(cc: CompactControl) -> int:
    """Models mm/compaction.c: isolate_migratepages — from ``fast_find_migrateblock``'s pfn,
    walk pageblocks while they end at or below ``cc.free_pfn``: skip blocks with the skip bit
    (unless hints are ignored) and blocks that are no suitable source (moving the cached pfn
    past them), run :func:`isolate_migratepages_block` on the first suitable one, stop.
    Returns ISOLATE_ABORT (the block function failed), ISOLATE_SUCCESS or ISOLATE_NONE."""
    zone = cc.zone
    pa = cc.pa
    assert pa is not None
    mm = zone.memmap
    await pa.sim.sync()
    low_pfn = await fast_find_migrateblock(cc)
    block_start = max(low_pfn & ~_PB_MASK, zone.zone_start_pfn)
    fast_find_block = low_pfn != cc.migrate_pfn and not cc.fast_search_fail
    block_end = (low_pfn & ~_PB_MASK) + PAGEBLOCK_NR_PAGES
    pb_skip = mm.pb_skip
    scanned_blocks = 0
    while block_end <= cc.free_pfn:
        if (
            (not low_pfn & _PB_MASK or low_pfn == zone.zone_start_pfn)
            and not fast_find_block
            and not cc.ignore_skip_hint
            and pb_skip[block_start >> PAGEBLOCK_ORDER]
        ):
            pass  # !isolation_suitable: next block
        elif not suitable_migration_source(cc, block_start):
            update_cached_migrate(cc, block_end)
        else:
            if scanned_blocks:
                await pa.sim.delay(scanned_blocks * pa.costs.compact_block_check)
            if await isolate_migratepages_block(cc, low_pfn, min(block_end, zone.zone_end_pfn)):
                return ISOLATE_ABORT
            break
        scanned_blocks += 1
        fast_find_block = False
        cc.migrate_pfn = low_pfn = block_end
        block_start = block_end
        block_end += PAGEBLOCK_NR_PAGES
    else:
        if scanned_blocks:
            await pa.sim.delay(scanned_blocks * pa.costs.compact_block_check)
    return ISOLATE_SUCCESS if cc.nr_migratepages else ISOLATE_NONE


EAGAIN = -11
EINTR = -4


async def isolate_migratepages_block(cc: CompactControl, low_pfn: int, end_pfn: int) -> int:
    """Models mm/compaction.c: isolate_migratepages_block — isolate the migratable pages of
    ``[low_pfn, end_pfn)`` (one pageblock) onto ``cc.migratepages``.

    ``too_many_isolated``: -EAGAIN if this compaction already holds pages or is async, else
    sleep 20 ms (``reclaim_throttle``) and test again. Per pfn, in units of 32: at the block
    start a set skip bit aborts the block; free buddies and tails are passed over; compound
    pages of order >= ``cc.order`` (except order -1) or >= pageblock order are skipped; a page
    not on the LRU, pinned, unevictable without ``compact_unevictable_allowed`` or file-backed
    without ``__GFP_FS`` fails; the rest are isolated. The first isolation takes the node's
    ``lru_lock`` (``compact_lock_irqsave``: a failed trylock in async mode sets
    ``cc.contended``) and test-and-sets the block's skip bit: if another compactor had set it,
    the block is abandoned (unless ``finish_pageblock``). Async direct compaction works per
    ``cc.order``-aligned sub-block (``skip_on_failure``): the first failure puts back what was
    isolated and moves to the next sub-block; a fully isolated sub-block ends the scan. The scan
    also stops at 32 isolated pages unless ``finish_pageblock`` or ``contended``. At the block
    end with nothing isolated (or a finish_pageblock rescan) the skip bit is set and the cached
    pfn moved. Fires ``mm_compaction_isolate_migratepages``; counts ``compact_isolated``.
    Returns 0 or -EAGAIN.
    """
    zone = cc.zone
    pa = cc.pa
    assert pa is not None
    sim = pa.sim
    costs = pa.costs
    mm = zone.memmap
    nid = zone.node
    start_pfn = low_pfn
    cc.migrate_pfn = low_pfn

    await sim.sync()
    while too_many_isolated(cc):
        if cc.nr_migratepages or cc.mode == MIGRATE_ASYNC:
            return EAGAIN
        await sim.delay(ISOLATED_THROTTLE_NS)  # reclaim_throttle: no one wakes us early
        await sim.sync()

    st_all = np.frombuffer(mm.state, dtype=np.uint8)
    od_all = np.frombuffer(mm.order, dtype=np.uint8)
    ow_all = np.frombuffer(mm.owner, dtype=np.uint8)
    table = isolatable_table(
        bool(pa.machine.compact_unevictable_allowed), bool(cc.gfp_mask & __GFP_FS)
    )
    skip_on_failure = cc.direct_compaction and cc.mode == MIGRATE_ASYNC
    sub = 1 << cc.order if cc.order > 0 else 1
    next_skip_pfn = ((low_pfn // sub) + 1) * sub if skip_on_failure else 0
    limit_applies = not cc.finish_pageblock
    lock = lru_lock(pa, nid)
    nr_scanned = 0
    nr_isolated = 0
    valid_page = -1
    skip_updated = False
    abort_block = False
    pfn = low_pfn
    block_iso: list[int] = []  # this call's isolations (what putback returns on a failure)
    stop = False
    while pfn < end_pfn and not stop:
        unit_end = min(end_pfn, (pfn // COMPACT_CLUSTER_MAX + 1) * COMPACT_CLUSTER_MAX)
        await sim.sync()  # the lock was dropped at the unit boundary: others ran
        if valid_page < 0 and (not pfn & _PB_MASK or pfn == zone.zone_start_pfn):
            if not cc.ignore_skip_hint and mm.pb_skip[pfn >> PAGEBLOCK_ORDER]:
                pfn = end_pfn
                abort_block = True
                break
            valid_page = pfn
        seg_start = pfn
        unit_scanned = 0
        unit_iso_pages = 0
        first_lock_at = -1
        while pfn < unit_end:
            if skip_on_failure and pfn >= next_skip_pfn:
                if nr_isolated:
                    stop = True
                    break
                next_skip_pfn = ((pfn // sub) + 1) * sub
            seg_end = min(unit_end, next_skip_pfn) if skip_on_failure else unit_end
            st = st_all[pfn:seg_end]
            heads = np.flatnonzero(st == PG_ALLOC)
            if heads.size:
                hp = heads + pfn
                orders = od_all[hp]
                owners = ow_all[hp]
                ok = table[owners].astype(bool)
                if cc.order >= 0:
                    big = orders >= min(cc.order, PAGEBLOCK_ORDER)
                else:
                    big = orders >= PAGEBLOCK_ORDER
                ok &= ~big
                fails = np.flatnonzero(~ok)
                good = hp[ok]
                if skip_on_failure and fails.size:
                    first_fail = int(hp[fails[0]])
                    good = good[good < first_fail]
                else:
                    first_fail = -1
                if good.size and first_lock_at < 0:
                    first_lock_at = int(good[0])
                    # isolate first, then lock: compact_lock_irqsave(&lruvec->lru_lock)
                    acquired = False
                    if cc.mode == MIGRATE_ASYNC and not cc.contended:
                        acquired = await lock.try_acquire("isolate_migratepages_block")
                        if not acquired:
                            cc.contended = True
                    if not acquired:
                        await lock.acquire("isolate_migratepages_block")
                    # waiting for the lock let other isolators (reclaim, another compactor)
                    # run; the kernel's folio_test_clear_lru is atomic: take only what is
                    # still an isolatable allocated head now
                    good = good[(st_all[good] == PG_ALLOC) & table[ow_all[good]].astype(bool)]
                    if not skip_updated and valid_page >= 0:
                        skip_updated = True
                        b = valid_page >> PAGEBLOCK_ORDER
                        was = bool(mm.pb_skip[b]) and not cc.ignore_skip_hint
                        if not cc.ignore_skip_hint and not cc.no_set_skip_hint:
                            mm.pb_skip[b] = 1  # test_and_set_skip: the claim
                        if was and not cc.finish_pageblock:
                            # another compactor claimed this block: abandon it
                            unit_scanned += first_lock_at - seg_start + 1
                            pfn = end_pfn
                            abort_block = True
                            stop = True
                            break
                remaining = COMPACT_CLUSTER_MAX - cc.nr_migratepages
                take = good
                hit_limit = False
                if limit_applies and not cc.contended and take.size >= remaining > 0:
                    take = take[:remaining]
                    hit_limit = True
                if take.size:
                    pages = _isolate(mm, take, ow_all, od_all)
                    cc.migratepages.extend(take.tolist())
                    block_iso.extend(take.tolist())
                    cc.nr_migratepages += pages
                    nr_isolated += pages
                    unit_iso_pages += pages
                    _mod_isolated(pa, nid, pages)
                if hit_limit:
                    last = int(take[-1])
                    pfn = last + (1 << int(od_all[last]))
                    unit_scanned += pfn - seg_start
                    stop = True
                    break
                if first_fail >= 0:
                    # isolate_fail with skip_on_failure: put back, go to the next sub-block
                    if nr_isolated:
                        await _putback(pa, cc, block_iso, nid)
                        block_iso = []
                        nr_isolated = 0
                    unit_scanned += first_fail - seg_start + 1
                    pfn = next_skip_pfn
                    next_skip_pfn += sub
                    seg_start = pfn
                    continue
            # the segment is scanned to its end; a block crossing the end is passed over
            last_end = seg_end
            if heads.size:
                last = int(heads[-1]) + seg_start
                last_end = max(seg_end, last + (1 << int(od_all[last])))
            unit_scanned += last_end - seg_start
            pfn = min(last_end, end_pfn)
            seg_start = pfn
        nr_scanned += unit_scanned
        charge = (
            unit_scanned * costs.compact_scan_page + unit_iso_pages * costs.compact_isolate_page
        )
        if first_lock_at >= 0 and lock.holder is sim.current:
            await sim.delay(charge)
            lock.release()  # unlock_page_lruvec_irqrestore at the 32-pfn boundary
        else:
            await sim.delay(charge)
        if abort_block:
            break
    if pfn > end_pfn:
        pfn = end_pfn
    if pfn == end_pfn and (not nr_isolated or cc.finish_pageblock):
        if not cc.no_set_skip_hint and valid_page >= 0 and not skip_updated:
            mm.pb_skip[valid_page >> PAGEBLOCK_ORDER] = 1
        update_cached_migrate(cc, pfn)
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            "mm_compaction_isolate_migratepages",
            start_pfn=start_pfn,
            end_pfn=pfn,
            nr_scanned=nr_scanned,
            nr_taken=nr_isolated,
        )
    cc.total_migrate_scanned += nr_scanned
    if nr_isolated:
        pa.vm_events["compact_isolated"] += nr_isolated
    cc.migrate_pfn = pfn
    return 0


def _isolate(mm: Memmap, heads: np.ndarray, ow_all: np.ndarray, od_all: np.ndarray) -> int:
    """folio_test_clear_lru + lruvec_del_folio for each head: mark the block isolated.
    Returns the pages isolated."""
    orders = od_all[heads]
    if not orders.any():
        ow_all[heads] |= OWNER_ISOLATED
        return int(heads.size)
    pages = 0
    for h, o in zip(heads.tolist(), orders.tolist(), strict=True):
        n = 1 << o
        ow_all[h : h + n] |= OWNER_ISOLATED
        pages += n
    return pages


def _unisolate(mm: Memmap, pfns: list[int]) -> int:
    """folio_putback_lru for each isolated block still held: clear the isolated mark.
    Returns the pages given back (blocks freed meanwhile by their holder count too)."""
    ow = mm.owner
    st = mm.state
    od = mm.order
    pages = 0
    for h in pfns:
        n = 1 << od[h] if st[h] == PG_ALLOC else 1
        if st[h] == PG_ALLOC and ow[h] & OWNER_ISOLATED:
            for p in range(h, h + n):
                ow[p] &= ~OWNER_ISOLATED
        pages += n
    return pages


async def _putback(pa: PageAllocator, cc: CompactControl, pfns: list[int], nid: int) -> None:
    """Put back ``pfns`` (a tail of ``cc.migratepages``) and take them off the list."""
    keep = set(pfns)
    before = len(cc.migratepages)
    cc.migratepages = [p for p in cc.migratepages if p not in keep]
    pages = _unisolate(cc.zone.memmap, pfns)
    cc.nr_migratepages -= pages
    _mod_isolated(pa, nid, -pages)
    await pa.sim.delay((before - len(cc.migratepages)) * pa.costs.compact_isolate_page)


async def putback_movable_pages(cc: CompactControl) -> None:
    """Models mm/migrate.c: putback_movable_pages — every page left on ``cc.migratepages``
    goes back to the LRU (``NR_ISOLATED_*`` decremented); the list is emptied."""
    pa = cc.pa
    assert pa is not None
    await pa.sim.sync()
    pfns = cc.migratepages
    cc.migratepages = []
    if pfns:
        pages = _unisolate(cc.zone.memmap, pfns)
        _mod_isolated(pa, cc.zone.node, -pages)
        await pa.sim.delay(len(pfns) * pa.costs.compact_isolate_page)
    cc.nr_migratepages = 0
