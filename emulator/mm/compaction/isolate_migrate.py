"""Compaction's migration scanner: Models mm/compaction.c: isolate_migratepages,
isolate_migratepages_block, fast_find_migrateblock, suitable_migration_source,
too_many_isolated, test_and_set_skip, update_cached_migrate, and
mm/migrate.c: putback_movable_pages.

Who may be isolated: a folio on an LRU list (``PF_LRU`` in ``memmap.pflags``: not in a CPU's
lru-add batch, not isolated already) that passes every later check of
``isolate_migratepages_block``: long-term pinned anonymous folios fail the ``refcount - 1 >
mapcount`` test, unevictable (mlocked, ``PF_UNEVICTABLE``) ones need ``ISOLATE_UNEVICTABLE``
i.e. ``vm.compact_unevictable_allowed``, file folios need ``__GFP_FS`` (the owner-kind table
:func:`isolatable_table`). Isolation is :func:`emulator.mm.reclaim.lru.folio_isolate_lru_locked`
under the node's ``lru_lock`` (off the list, ``PF_ISOLATED``, ``nr_isolated_anon/file``); the folio
stays allocated and its holder may still let go of it (then the putback frees it).

Time: the scan proceeds in units of ``COMPACT_CLUSTER_MAX`` (32) pfns, the kernel's lock-drop
granularity. A unit's pages are classified in one pass before the lock is taken; its
isolations happen at the unit's start instant; the unit's cost (pfns scanned, pages isolated)
is charged in one delay, under the node's ``lru_lock`` from the first isolation on (isolate
first, then lock, as since v5.11). Between units the actor synchronises: that is where the
kernel drops the lock and calls ``cond_resched``, so other CPUs run there.

Simplified: no ``__PageMovable`` non-LRU pages (zsmalloc, balloon), no hugetlb pages, no
writeback/dirty folios (so ISOLATE_ASYNC_MIGRATE rejects nothing), one lruvec per node (no
memcg).
"""

from __future__ import annotations

from emulator.engine import SpinLock
from emulator.mm.alloc_latency import (
    COMPACT_ISOLATE,
    COMPACT_THROTTLE,
    lat_credit,
    lat_enter,
    lat_leave,
)
from emulator.mm.compaction.control import COMPACT_CLUSTER_MAX
from emulator.mm.compaction.skip import pageblock_skip_persistent
from emulator.mm.internal import MIGRATE_ASYNC, Allocator, CompactControl
from emulator.mm.memmap import (
    OWNER_FILE,
    OWNER_ON_LRU,
    OWNER_PINNED,
    PF_ISOLATED,
    PF_LRU,
    PF_UNEVICTABLE,
    PG_ALLOC,
    PG_BUDDY,
    PG_ISOLATED,
    PG_KIND_MASK,
    PG_PCP,
    PG_RESERVED,
    Memmap,
)
from emulator.mm.page_alloc.gfp import __GFP_FS
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.reclaim.lru import folio_isolate_lru_locked, lruvec_add_folio, putback_lru_page
from emulator.mm.reclaim.lruvec import (
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
)
from emulator.mm.reclaim.rmap import NO_HANDLE
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_MOVABLE,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)

__all__ = [
    "ISOLATE_ABORT",
    "ISOLATE_NONE",
    "ISOLATE_SUCCESS",
    "isolatable_table",
    "isolate_migratepages",
    "isolate_migratepages_block",
    "lru_lock",
    "node_isolated",
    "pageblock_end_pfn",
    "putback_folios",
    "putback_movable_pages",
    "reclaim_throttle_isolated",
    "too_many_isolated",
]

# isolate_migrate_t
ISOLATE_ABORT = 0
ISOLATE_NONE = 1
ISOLATE_SUCCESS = 2

_FILE = OWNER_FILE
_NEVER = OWNER_PINNED

#: reclaim_throttle(pgdat, VMSCAN_THROTTLE_ISOLATED) timeout: HZ/50 (vmscan.c:568)
ISOLATED_THROTTLE_NS = 20_000_000

_PB_MASK = PAGEBLOCK_NR_PAGES - 1
#: page kinds that are neither a free buddy nor an LRU folio: each pfn is an isolate_fail
_FAIL_KINDS = (PG_PCP, PG_ISOLATED, PG_RESERVED)
_ULONG_MAX = (1 << 64) - 1
_TABLES: dict[tuple[bool, bool], bytes] = {}


def isolatable_table(unevictable_allowed: bool, gfp_fs: bool) -> bytes:
    """256 entries over the owner kind: 1 where ``isolate_migratepages_block`` isolates an LRU
    folio of that kind (pinned never; file only with ``__GFP_FS``). The unevictable test is on
    ``PF_UNEVICTABLE`` (in :func:`isolate_migratepages_block`)."""
    key = (unevictable_allowed, gfp_fs)
    t = _TABLES.get(key)
    if t is None:
        table = bytearray(256)
        for o in range(len(OWNER_ON_LRU)):
            if not OWNER_ON_LRU[o] or o == _NEVER:
                continue  # not an LRU kind; pinned: refcount - 1 > mapcount
            if o == _FILE and not gfp_fs:
                continue  # file folios need __GFP_FS
            table[o] = 1
        t = _TABLES[key] = bytes(table)
    return t


def lru_lock(pa: Allocator, nid: int) -> SpinLock:
    """``lruvec->lru_lock`` of node ``nid`` (one lruvec per node: no memcg)."""
    return pa.lruvecs[nid].lru_lock


def node_isolated(pa: Allocator, nid: int) -> int:
    """``NR_ISOLATED_ANON + NR_ISOLATED_FILE`` of node ``nid``."""
    lv = pa.lruvecs[nid]
    return lv.nr_isolated_anon + lv.nr_isolated_file


def too_many_isolated(cc: CompactControl) -> bool:
    """Models mm/compaction.c: too_many_isolated (791-822) — ``isolated > (inactive + active)
    / 2``, inactive and active each first shifted right by 3 for ``__GFP_FS`` callers (the
    GFP_NOFS ABBA-deadlock fix); when not too many, ``wake_throttle_isolated`` wakes every
    task sleeping in ``reclaim_throttle(pgdat, VMSCAN_THROTTLE_ISOLATED)``. The caller must
    have synchronised (the wake-up is issued at its instant)."""
    pa = cc.pa
    assert pa is not None
    lv = pa.lruvecs[cc.zone.node]
    n = lv.nr_pages
    inactive = n[LRU_INACTIVE_FILE] + n[LRU_INACTIVE_ANON]
    active = n[LRU_ACTIVE_FILE] + n[LRU_ACTIVE_ANON]
    isolated = lv.nr_isolated_file + lv.nr_isolated_anon
    if cc.gfp_mask & __GFP_FS:
        inactive >>= 3
        active >>= 3
    too_many = isolated > (inactive + active) // 2
    if not too_many:
        wq = lv.reclaim_wait_isolated
        if wq is not None and len(wq):
            wq.wake_up_now(1 << 62)  # wake_throttle_isolated: wake_up() of non-exclusive waiters
    return too_many


async def reclaim_throttle_isolated(cc: CompactControl) -> None:
    """Models mm/vmscan.c: reclaim_throttle(pgdat, VMSCAN_THROTTLE_ISOLATED) (520-583): a
    kernel thread other than kswapd (here kcompactd: mmemu's daemon actors are its kernel
    threads) is not throttled, it only ``cond_resched()``s (charged
    ``costs.throttle_cond_resched``) and its caller tests again; any other task sleeps on
    ``pgdat->reclaim_wait[VMSCAN_THROTTLE_ISOLATED]`` for HZ/50, woken early by
    ``wake_throttle_isolated`` (a ``too_many_isolated`` that found the count low enough)."""
    pa = cc.pa
    assert pa is not None
    sim = pa.sim
    me = sim.current
    if me.daemon and not me.name.startswith("kswapd"):
        await sim.delay(pa.costs.throttle_cond_resched)
        return
    wq = pa.lruvecs[cc.zone.node].reclaim_wait_isolated
    if wq is None:
        await sim.delay(ISOLATED_THROTTLE_NS)
        return
    await wq.wait(ISOLATED_THROTTLE_NS)


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
    """Models mm/compaction.c: update_cached_migrate (466-482) — move the cached migrate pfns
    (index 0 always, index 1 for sync modes) forward to ``pageblock_end_pfn(pfn)``, i.e.
    ``ALIGN(pfn + 1, pageblock_nr_pages)`` (pageblock-flags.h:63): an aligned pfn moves a whole
    block on (both callers, 1328 and 2159, pass the aligned end of the block just scanned)."""
    if cc.no_set_skip_hint:
        return
    zone = cc.zone
    pfn = pageblock_end_pfn(pfn)
    cached = zone.compact_cached_migrate_pfn
    if pfn > cached[0]:
        cached[0] = pfn
    if cc.mode != MIGRATE_ASYNC and pfn > cached[1]:
        cached[1] = pfn


def pageblock_end_pfn(pfn: int) -> int:
    """Models include/linux/pageblock-flags.h: pageblock_end_pfn — ``ALIGN((pfn) + 1,
    pageblock_nr_pages)``: the first pfn past ``pfn``'s pageblock (also for an aligned pfn)."""
    return (pfn + PAGEBLOCK_NR_PAGES) & ~_PB_MASK


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
    ``reclaim_throttle`` (:func:`reclaim_throttle_isolated`) and test again. Per pfn, in units
    of 32: at the block start a set skip bit aborts the block; free buddies and tails are passed
    over; compound pages of order >= ``cc.order`` (except order -1) or >= pageblock order are
    skipped; a page not on the LRU, pinned, unevictable without ``compact_unevictable_allowed``
    or file-backed without ``__GFP_FS`` fails; the rest are isolated. The first isolation takes
    the node's ``lru_lock`` (``compact_lock_irqsave``: a failed trylock in async mode sets
    ``cc.contended``) and test-and-sets the block's skip bit: if another compactor had set it,
    the block is abandoned (unless ``finish_pageblock``). Async direct compaction works per
    ``cc.order``-aligned sub-block (``skip_on_failure``): the first failure puts back what was
    isolated and moves to the next sub-block; a fully isolated sub-block ends the scan. A page
    neither a free buddy nor an LRU folio (on a pcp list, in a compactor's ``freepages[]`` or
    captured, reserved) is a failure. The scan also stops once ``cc.nr_migratepages`` reaches 32
    *pages* (``folio_nr_pages`` added per folio) unless ``finish_pageblock`` or ``contended``;
    each folio goes to the head of ``cc.migratepages`` (``list_add``). At the block end with
    nothing isolated (or a finish_pageblock rescan) the skip bit is set and the cached pfn
    moved. ``mitigation.skip_claim`` off (before e380bebe4771): no test-and-set claim, the bit
    is set only at that block end; ``mitigation.async_contended_abort`` off: async mode spins
    for ``lru_lock`` like sync and never records contention. Fires
    ``mm_compaction_isolate_migratepages``; counts ``compact_isolated``.
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
    mitigations = pa.machine.mitigations
    # e380bebe4771: test_and_set_skip claims the source block (off: no claim; the skip bit is
    # set only after a block that isolated nothing, as before)
    skip_claim = mitigations.on("skip_claim")
    # c67fe3752abe: async mode trylocks lru_lock and records contention (off: it spins)
    trylock_abort = mitigations.on("async_contended_abort")

    await sim.sync()
    while too_many_isolated(cc):
        if cc.nr_migratepages or cc.mode == MIGRATE_ASYNC:
            return EAGAIN
        resume = lat_enter(sim, COMPACT_THROTTLE)
        await reclaim_throttle_isolated(cc)
        await sim.sync()
        lat_leave(sim, resume)

    state = mm.state
    od = mm.order
    ow = mm.owner
    fl = mm.pflags
    unevictable_ok = bool(pa.machine.compact_unevictable_allowed)
    table = isolatable_table(unevictable_ok, bool(cc.gfp_mask & __GFP_FS))
    # folios of this order or above are passed over (skip_isolation_on_order)
    too_big = min(cc.order, PAGEBLOCK_ORDER) if cc.order >= 0 else PAGEBLOCK_ORDER
    # the flags an isolatable folio has none of: PageLRU is tested apart
    bad_flags = 0 if unevictable_ok else PF_UNEVICTABLE
    lruvec = pa.lruvecs[nid]
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
                nr_scanned += 1  # counted before the isolation_suitable test (1011, 1021)
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
            # classify the segment's pages before taking the lock (isolate first, then
            # lock): the LRU folios that may be isolated, in pfn order; the first failure
            # (isolate_fail: a folio that may not be isolated, or a page neither a free
            # buddy nor an LRU folio: on a pcp list, in a compactor's freepages[] or
            # captured, PageReserved, each of its pfns a failure, compaction.c:1082-1101);
            # the last allocated head (a block crossing the segment's end is passed over)
            good: list[int] = []
            good_orders: list[int] = []
            first_fail = -1
            last_head = -1
            p = pfn
            while p < seg_end:
                s = state[p]
                if s == PG_ALLOC:
                    last_head = p
                    o = od[p]
                    f = fl[p]
                    if table[ow[p]] and f & PF_LRU and not f & bad_flags and o < too_big:
                        good.append(p)
                        good_orders.append(o)
                    elif skip_on_failure:
                        first_fail = p
                        break
                    p += 1 << o
                    continue
                if s == PG_BUDDY:
                    p += 1 << od[p]
                    continue
                k = s & PG_KIND_MASK
                if skip_on_failure and k in _FAIL_KINDS:
                    first_fail = p
                    break
                p += 1
            if good or first_fail >= 0:
                if good and first_lock_at < 0:
                    first_lock_at = good[0]
                    # isolate first, then lock: compact_lock_irqsave(&lruvec->lru_lock)
                    acquired = False
                    if cc.mode == MIGRATE_ASYNC and not cc.contended and trylock_abort:
                        acquired = await lock.try_acquire("isolate_migratepages_block")
                        if not acquired:
                            cc.contended = True
                    if not acquired:
                        await lock.acquire("isolate_migratepages_block")
                    if not skip_updated and valid_page >= 0 and skip_claim:
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
                # cc->nr_migratepages counts pages (folio_nr_pages); the scan stops once it
                # reaches COMPACT_CLUSTER_MAX (compaction.c:1242-1256)
                remaining = COMPACT_CLUSTER_MAX - cc.nr_migratepages
                take = good
                hit_limit = False
                if limit_applies and not cc.contended and take and remaining > 0:
                    cum = 0
                    for i, o in enumerate(good_orders):
                        cum += 1 << o
                        if cum >= remaining:
                            take = good[: i + 1]
                            hit_limit = True
                            break
                if take:
                    taken = [p for p in take if folio_isolate_lru_locked(pa, lruvec, p)]
                    pages = sum(1 << mm.order[p] for p in taken)
                    # list_add: each folio goes to the head of cc->migratepages (1240)
                    cc.migratepages[:0] = taken[::-1]
                    block_iso.extend(taken)
                    cc.nr_migratepages += pages
                    nr_isolated += pages
                    unit_iso_pages += pages
                if hit_limit:
                    last = take[-1]
                    pfn = last + (1 << od[last])
                    unit_scanned += pfn - seg_start
                    stop = True
                    break
                if first_fail >= 0:
                    # isolate_fail with skip_on_failure: put back, go to the next sub-block
                    unit_scanned += first_fail - seg_start + 1
                    if nr_isolated:
                        if lock.holder is sim.current:
                            # the lock is dropped before putback_movable_pages
                            await sim.delay(
                                unit_scanned * costs.compact_scan_page
                                + unit_iso_pages * costs.compact_isolate_page
                            )
                            lock.release()
                            nr_scanned += unit_scanned
                            unit_scanned = unit_iso_pages = 0
                            first_lock_at = -1
                        await _putback(pa, cc, block_iso, nid)
                        block_iso = []
                        nr_isolated = 0
                    pfn = next_skip_pfn
                    next_skip_pfn += sub
                    seg_start = pfn
                    continue
            # the segment is scanned to its end; a block crossing the end is passed over
            last_end = seg_end
            if last_head >= 0:
                last_end = max(seg_end, last_head + (1 << od[last_head]))
            unit_scanned += last_end - seg_start
            pfn = min(last_end, end_pfn)
            seg_start = pfn
        nr_scanned += unit_scanned
        charge = (
            unit_scanned * costs.compact_scan_page + unit_iso_pages * costs.compact_isolate_page
        )
        lat_credit(sim, COMPACT_ISOLATE, unit_iso_pages * costs.compact_isolate_page)
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


async def putback_folios(pa: Allocator, cpu: Cpu | None, pfns: list[int]) -> None:
    """Models mm/migrate.c: putback_movable_pages over ``pfns`` (isolated folios):
    ``NR_ISOLATED_*`` back, each folio back on its LRU list, in one ``lru_lock`` hold per node
    (the kernel's ``folio_putback_lru`` goes through the per-CPU lru-add batch, flushed in
    batches of 31: modelled as one batch); a folio its holder let go of meanwhile (no handle)
    was held by us alone and is freed (:func:`emulator.mm.reclaim.lru.putback_lru_page`)."""
    if not pfns:
        return
    mm = pa.memmap
    costs = pa.costs
    cpu = cpu if cpu is not None else pa.cpus[0]
    by_node: dict[int, list[int]] = {}
    one_node = len(pa.lruvecs) == 1
    for pfn in pfns:
        if mm.handle[pfn] == NO_HANDLE:
            await putback_lru_page(pa, cpu, pfn)  # the last reference: freed
        else:
            nid = 0 if one_node else pa.zone_of(pfn).node
            group = by_node.get(nid)
            if group is None:
                group = by_node[nid] = []
            group.append(pfn)
    for nid, group in by_node.items():
        lruvec = pa.lruvecs[nid]
        lock = lruvec.lru_lock
        await lock.acquire("putback_movable_pages")
        orphans = []
        for pfn in group:
            if mm.handle[pfn] == NO_HANDLE:
                orphans.append(pfn)  # let go while we waited for the lock: ours to free
                continue
            nr = 1 << mm.order[pfn]
            if mm.owner[pfn] == OWNER_FILE:
                lruvec.nr_isolated_file -= nr
            else:
                lruvec.nr_isolated_anon -= nr
            mm.pflags[pfn] &= ~PF_ISOLATED
            lruvec_add_folio(pa, lruvec, pfn)
        await pa.sim.delay(costs.lru_lock + len(group) * costs.lru_op)
        lock.release()
        for pfn in orphans:
            await putback_lru_page(pa, cpu, pfn)


async def _putback(pa: Allocator, cc: CompactControl, pfns: list[int], nid: int) -> None:
    """Put back ``pfns`` (a tail of ``cc.migratepages``) and take them off the list."""
    keep = set(pfns)
    cc.migratepages = [p for p in cc.migratepages if p not in keep]
    cc.nr_migratepages -= sum(1 << cc.zone.memmap.order[p] for p in pfns)
    await putback_folios(pa, cc.cpu, pfns)


async def putback_movable_pages(cc: CompactControl) -> None:
    """Models mm/migrate.c: putback_movable_pages — every page left on ``cc.migratepages``
    goes back to the LRU (``NR_ISOLATED_*`` decremented); the list is emptied."""
    pa = cc.pa
    assert pa is not None
    await pa.sim.sync()
    pfns = cc.migratepages
    cc.migratepages = []
    await putback_folios(pa, cc.cpu, pfns)
    cc.nr_migratepages = 0
