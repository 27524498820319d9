"""Compaction's free scanner: Models mm/compaction.c: isolate_freepages,
isolate_freepages_block, fast_isolate_freepages, fast_isolate_around, suitable_migration_target,
update_pageblock_skip, compaction_alloc, compaction_free, release_free_list; and
mm/page_alloc.c: __isolate_free_page.

Isolated free blocks keep their order (``cc.freepages[order]``, one list per order, since the
v6.9 "enable compacting >0 order folios" series) and are marked ``PG_ISOLATED``: off the free
lists and out of NR_FREE_PAGES. ``compaction_alloc`` splits a larger one on demand.

Time: ``isolate_freepages_block`` scans in units of ``COMPACT_CLUSTER_MAX`` pfns (sampled with
its stride). A unit that meets a free page takes ``zone->lock`` (``compact_lock_irqsave``: a
failed trylock in async mode sets ``cc.contended`` and then spins for it), isolates, and is
charged in one hold; the lock is dropped at the unit boundary, where the actor synchronises.
``fast_isolate_freepages`` takes the lock once per order searched, as the kernel does.

Simplified: with a stride above 1 the sampled pfns are ``start + k * stride`` (the kernel's
phase shifts after each isolation); no offline sections or holes inside a zone's pageblocks.
"""

from __future__ import annotations

from emulator.mm.alloc_latency import (
    COMPACT_ISOLATE,
    COMPACT_SCAN,
    lat_credit,
    lat_enter,
    lat_leave,
)
from emulator.mm.compaction.control import COMPACT_CLUSTER_MAX
from emulator.mm.internal import MIGRATE_ASYNC, CompactControl, ZoneLockHold
from emulator.mm.memmap import OWNER_NONE, PG_ALLOC, PG_BUDDY, PG_ISOLATED
from emulator.mm.page_alloc.alloc_flags import ALLOC_CMA
from emulator.mm.page_alloc.fallback import move_freepages_block
from emulator.mm.page_alloc.highatomic import migratetype_is_mergeable
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.page_alloc.watermark import zone_watermark_ok_free
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import WMARK_MIN, Zone

__all__ = [
    "compaction_alloc",
    "compaction_alloc_isolated",
    "compaction_free",
    "fast_isolate_freepages",
    "isolate_free_page",
    "isolate_freepages",
    "isolate_freepages_block",
    "release_free_list",
    "suitable_migration_target",
]

_PB_MASK = PAGEBLOCK_NR_PAGES - 1


def isolate_free_page(zone: Zone, pfn: int, order: int) -> int:
    """Models mm/page_alloc.c: __isolate_free_page (zone->lock held) — unless the block is
    ISOLATE, require the order-0 watermark ``_watermark[WMARK_MIN] + (1 << order)`` (raw: no
    boost) with ALLOC_CMA, or fail (0). Take the block off its free list and the counters,
    mark it ``PG_ISOLATED``; a block of at least half a pageblock turns every mergeable
    pageblock it covers MOVABLE. Returns the pages isolated."""
    mm = zone.memmap
    mt = mm.pb_mt[pfn >> PAGEBLOCK_ORDER]
    if mt != MIGRATE_ISOLATE:
        mark = zone._watermark[WMARK_MIN] + (1 << order)
        if not zone_watermark_ok_free(zone, 0, mark, 0, ALLOC_CMA, zone.nr_free_pages):
            return 0
    zone.del_from_free_list(pfn, order, mt)
    zone.account_freepages(-(1 << order), mt)
    mm.mark_block(pfn, order, PG_ISOLATED)
    if order >= PAGEBLOCK_ORDER - 1:
        end = pfn + (1 << order) - 1
        p = pfn
        while p < end:
            bmt = mm.pb_mt[p >> PAGEBLOCK_ORDER]
            if migratetype_is_mergeable(bmt) and bmt != MIGRATE_MOVABLE:
                move_freepages_block(zone, p, bmt, MIGRATE_MOVABLE)
            p += PAGEBLOCK_NR_PAGES
    return 1 << order


def suitable_migration_target(cc: CompactControl, pfn: int) -> bool:
    """Models mm/compaction.c: suitable_migration_target — not a block whose first page is a
    free buddy of at least ``cc.order`` (pageblock order for order -1): it already helps;
    any block with ``ignore_block_suitable`` (SYNC_FULL); else MOVABLE or CMA blocks only."""
    mm = cc.zone.memmap
    if mm.state[pfn] == PG_BUDDY:
        order = cc.order if cc.order > 0 else PAGEBLOCK_ORDER
        if mm.order[pfn] >= order:
            return False
    if cc.ignore_block_suitable:
        return True
    return mm.pb_mt[pfn >> PAGEBLOCK_ORDER] in (MIGRATE_MOVABLE, MIGRATE_CMA)


async def _compact_zone_lock(cc: CompactControl, site: str) -> ZoneLockHold:
    """Models mm/compaction.c: compact_lock_irqsave on zone->lock — async mode trylocks first
    and records a failure in ``cc.contended``, then (like sync) spins for the lock. With
    ``mitigation.async_contended_abort`` off (before c67fe3752abe) async mode spins at once."""
    pa = cc.pa
    assert pa is not None
    if (
        cc.mode == MIGRATE_ASYNC
        and not cc.contended
        and pa.machine.mitigations.on("async_contended_abort")
    ):
        hold = await pa.zone_trylock(cc.zone, site)
        if hold is not None:
            return hold
        cc.contended = True
    return await pa.zone_lock(cc.zone, site)


async def isolate_freepages_block(
    cc: CompactControl, start_pfn: int, end_pfn: int, stride: int, strict: bool = False
) -> tuple[int, int]:
    """Models mm/compaction.c: isolate_freepages_block — isolate the free buddies met in
    ``[start_pfn, end_pfn)`` (sampled every ``stride`` pfns), each whole at its order onto
    ``cc.freepages[order]``, until ``nr_freepages >= nr_migratepages``. An allocated compound
    page is passed over whole when it ends inside the block, all its pages counted scanned
    (630-640), and the next sample is ``stride`` past its last page; ``__isolate_free_page``
    failing (the MIN watermark) stops the scan.
    Fires ``mm_compaction_isolate_freepages``. Returns ``(pages isolated, next pfn)``."""
    zone = cc.zone
    pa = cc.pa
    assert pa is not None
    sim = pa.sim
    costs = pa.costs
    mm = zone.memmap
    state = mm.state
    od = mm.order
    if strict:
        stride = 1
    nr_scanned = 0
    total_isolated = 0
    pfn = start_pfn
    stop = False
    while pfn < end_pfn and not stop:
        unit_end = min(end_pfn, (pfn // COMPACT_CLUSTER_MAX + 1) * COMPACT_CLUSTER_MAX)
        await sim.sync()  # compact_unlock_should_abort: lock dropped, cond_resched
        isolated_here = 0
        hold: ZoneLockHold | None = None
        scanned = 0
        b = pfn
        while b < unit_end:
            scanned += 1
            kind = state[b]
            if kind == PG_ALLOC:
                order = od[b]
                if order:
                    # PageCompound: skipped whole if it ends inside the block (630-640)
                    n = 1 << order
                    if b + n <= end_pfn:
                        b += n - 1
                        scanned += n - 1
            elif kind == PG_BUDDY:
                if hold is None:
                    hold = await _compact_zone_lock(cc, "isolate_freepages_block")
                if state[b] == PG_BUDDY:  # rechecked under the lock
                    order = od[b]
                    got = isolate_free_page(zone, b, order)
                    if not got:
                        stop = True
                        break
                    cc.freepages[order].append(b)
                    cc.nr_freepages += got
                    total_isolated += got
                    isolated_here += got
                    scanned += got - 1
                    if not strict and cc.nr_migratepages <= cc.nr_freepages:
                        b += got
                        stop = True
                        break
                    b += got - 1
            b += stride
        next_pfn = b
        charge = scanned * costs.compact_free_scan_page
        if hold is not None:
            iso = isolated_here and costs.compact_isolate_page
            hold.charge += charge + iso
            lat_credit(sim, COMPACT_ISOLATE, iso)
            await hold.unlock()
        else:
            await sim.delay(charge)
        nr_scanned += scanned
        pfn = next_pfn
    if pfn > end_pfn:
        pfn = end_pfn
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            "mm_compaction_isolate_freepages",
            start_pfn=start_pfn,
            end_pfn=pfn,
            nr_scanned=nr_scanned,
            nr_taken=total_isolated,
        )
    cc.total_free_scanned += nr_scanned
    if total_isolated:
        pa.vm_events["compact_isolated"] += total_isolated
    return total_isolated, pfn


def update_pageblock_skip(cc: CompactControl, pfn: int) -> None:
    """Models mm/compaction.c: update_pageblock_skip — set the skip bit of a fully scanned
    free-scanner block and lower ``compact_cached_free_pfn`` to ``pfn``."""
    if cc.no_set_skip_hint:
        return
    zone = cc.zone
    zone.memmap.pb_skip[(pfn + PAGEBLOCK_NR_PAGES) >> PAGEBLOCK_ORDER] = 1
    if pfn < zone.compact_cached_free_pfn:
        zone.compact_cached_free_pfn = pfn


async def isolate_freepages(cc: CompactControl) -> None:
    """Models mm/compaction.c: isolate_freepages — ``fast_isolate_freepages`` first; if that
    isolated nothing, scan pageblocks downwards from ``cc.free_pfn`` to the end of the migrate
    scanner's block, taking only suitable targets without a skip bit, with a stride of 32
    (async) adapting 1..32; mark fully scanned blocks skip; stop when enough pages are
    isolated or a block was cut short; save ``cc.free_pfn``."""
    zone = cc.zone
    pa = cc.pa
    assert pa is not None
    await fast_isolate_freepages(cc)
    if cc.nr_freepages:
        return
    mm = zone.memmap
    isolate_start = cc.free_pfn
    block_start = isolate_start & ~_PB_MASK
    block_end = min(block_start + PAGEBLOCK_NR_PAGES, zone.zone_end_pfn)
    low_pfn = (cc.migrate_pfn & ~_PB_MASK) + PAGEBLOCK_NR_PAGES
    stride = COMPACT_CLUSTER_MAX if cc.mode == MIGRATE_ASYNC else 1
    checked = 0
    await pa.sim.sync()
    while block_start >= low_pfn:
        start = max(block_start, zone.zone_start_pfn)
        if suitable_migration_target(cc, start) and (
            cc.ignore_skip_hint or not mm.pb_skip[start >> PAGEBLOCK_ORDER]
        ):
            if checked:
                await pa.sim.delay(checked * pa.costs.compact_block_check)
                checked = 0
            nr_isolated, isolate_start = await isolate_freepages_block(
                cc, isolate_start, block_end, stride
            )
            if isolate_start == block_end:
                update_pageblock_skip(cc, block_start - PAGEBLOCK_NR_PAGES)
            if cc.nr_freepages >= cc.nr_migratepages:
                if isolate_start >= block_end:
                    isolate_start = block_start - PAGEBLOCK_NR_PAGES
                break
            if isolate_start < block_end:
                break
            stride = 1 if nr_isolated else min(COMPACT_CLUSTER_MAX, stride << 1)
            await pa.sim.sync()
        else:
            checked += 1
        block_end = block_start
        block_start -= PAGEBLOCK_NR_PAGES
        isolate_start = block_start
    if checked:
        await pa.sim.delay(checked * pa.costs.compact_block_check)
    cc.free_pfn = isolate_start


def _freelist_scan_limit(cc: CompactControl) -> int:
    """compaction.c: freelist_scan_limit — ``(32 >> min(63, fast_search_fail)) + 1``."""
    return (COMPACT_CLUSTER_MAX >> min(63, cc.fast_search_fail)) + 1


def _next_search_order(cc: CompactControl, order: int) -> int:
    """compaction.c: next_search_order — round-robin below ``cc.order``."""
    order -= 1
    if order < 0:
        order = cc.order - 1
    if order == cc.search_order:
        cc.search_order -= 1
        if cc.search_order < 0:
            cc.search_order = cc.order - 1
        return -1
    return order


async def fast_isolate_freepages(cc: CompactControl) -> None:
    """Models mm/compaction.c: fast_isolate_freepages — for ``cc.order > 0``, search the
    MOVABLE free lists of orders below ``cc.order`` (round-robin from ``search_order``,
    tail first) for a block in the top quarter of the span between the scanners (or the
    highest one in the top half), isolate it and rotate the list (``move_freelist_head``);
    then ``fast_isolate_around`` scans the rest of its pageblock (not for async direct
    compaction). Updates ``compact_cached_free_pfn`` and ``fast_search_fail``."""
    if cc.order <= 0:
        return
    zone = cc.zone
    pa = cc.pa
    assert pa is not None
    mm = zone.memmap
    nxt = mm.nxt
    prv = mm.prv
    limit = max(1, _freelist_scan_limit(cc) >> 1)
    scan_start = False
    if cc.free_pfn >= zone.compact_init_free_pfn:
        limit = PAGEBLOCK_NR_PAGES >> 1
        scan_start = True
    distance = cc.free_pfn - cc.migrate_pfn
    low_pfn = (cc.free_pfn - (distance >> 2)) & ~_PB_MASK
    min_pfn = (cc.free_pfn - (distance >> 1)) & ~_PB_MASK
    if min_pfn > low_pfn:
        low_pfn = min_pfn
    cc.search_order = min(cc.order - 1, cc.search_order)
    nr_scanned = 0
    total_isolated = 0
    highest = 0
    page = -1
    order = cc.search_order
    await pa.sim.sync()
    while page < 0 and order >= 0:
        if zone.nr_free[order]:
            hold = await pa.zone_lock(zone, "fast_isolate_freepages")
            head = zone.free_list(order, MIGRATE_MOVABLE)
            order_scanned = 0
            high_pfn = 0
            freepage = prv[head]
            cur = freepage
            while cur != head:
                order_scanned += 1
                nr_scanned += 1
                freepage = cur
                if cur >= highest:
                    highest = max(cur & ~_PB_MASK, zone.zone_start_pfn)
                if cur >= low_pfn:
                    cc.fast_search_fail = 0
                    cc.search_order = order
                    page = cur
                    break
                if min_pfn <= cur and cur > high_pfn:
                    high_pfn = cur
                    limit >>= 1
                if order_scanned >= limit:
                    break
                cur = prv[cur]
            if page < 0 and high_pfn:
                page = freepage = high_pfn
            if freepage != head and nxt[head] != freepage:
                _move_freelist_head(mm, head, freepage)
            if page >= 0:
                got = isolate_free_page(zone, page, order)
                if got:
                    nr_scanned += got - 1
                    total_isolated += got
                    cc.nr_freepages += got
                    cc.freepages[order].append(page)
                    pa.vm_events["compact_isolated"] += got
                else:
                    order = cc.search_order + 1
                    page = -1
            hold.charge += order_scanned * pa.costs.compact_free_scan_page
            await hold.unlock()
            if cc.nr_freepages >= cc.nr_migratepages:
                break
            if order_scanned >= limit:
                limit = max(1, limit >> 1)
            await pa.sim.sync()
        order = _next_search_order(cc, order)
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            "mm_compaction_fast_isolate_freepages",
            start_pfn=min_pfn,
            end_pfn=cc.free_pfn,
            nr_scanned=nr_scanned,
            nr_taken=total_isolated,
        )
    if page < 0:
        cc.fast_search_fail += 1
        if scan_start:
            if highest >= min_pfn:
                page = highest
                cc.free_pfn = highest
            elif cc.direct_compaction and zone.spans(min_pfn):
                page = min_pfn if suitable_migration_target(cc, min_pfn) else -1
                cc.free_pfn = min_pfn
    if highest and highest >= zone.compact_cached_free_pfn:
        zone.compact_cached_free_pfn = highest - PAGEBLOCK_NR_PAGES
    cc.total_free_scanned += nr_scanned
    if page < 0:
        return
    await fast_isolate_around(cc, page)


def _move_freelist_head(mm: object, head: int, freepage: int) -> None:
    """compaction.c: move_freelist_head — rotate the list so that the entries before
    ``freepage`` go to the tail (``freepage`` becomes the first entry)."""
    nxt = mm.nxt  # type: ignore[attr-defined]
    prv = mm.prv  # type: ignore[attr-defined]
    first = nxt[head]
    last = prv[head]
    before = prv[freepage]
    if first == freepage or before == head:
        return
    # cut [first .. before] and splice it after last
    nxt[head] = freepage
    prv[freepage] = head
    nxt[last] = first
    prv[first] = last
    nxt[before] = head
    prv[head] = before


async def fast_isolate_around(cc: CompactControl, pfn: int) -> None:
    """Models mm/compaction.c: fast_isolate_around — unless enough pages are isolated or
    this is async direct compaction, isolate the free pages of ``pfn``'s pageblock (stride 1)
    and mark it skip if it was scanned to the end."""
    if cc.nr_freepages >= cc.nr_migratepages:
        return
    if cc.direct_compaction and cc.mode == MIGRATE_ASYNC:
        return
    zone = cc.zone
    start = max(pfn & ~_PB_MASK, zone.zone_start_pfn)
    end = min((pfn & ~_PB_MASK) + PAGEBLOCK_NR_PAGES, zone.zone_end_pfn)
    _, nxt_pfn = await isolate_freepages_block(cc, start, end, 1)
    if nxt_pfn == end and not cc.no_set_skip_hint:
        zone.memmap.pb_skip[start >> PAGEBLOCK_ORDER] = 1


def compaction_alloc_isolated(cc: CompactControl, order: int) -> int:
    """The part of mm/compaction.c: compaction_alloc that takes no lock: the first block of the
    smallest non-empty ``freepages[o]``, ``o >= order``, its excess split back onto the lower
    lists; -1 when every such list is empty (then :func:`compaction_alloc` runs the free
    scanner). The target stays ``PG_ISOLATED`` until the copy marks it allocated."""
    freepages = cc.freepages
    start_order = order
    while not freepages[start_order]:
        start_order += 1
        if start_order >= NR_PAGE_ORDERS:
            return -1
    page = freepages[start_order].pop(0)
    if start_order > order:
        mm = cc.zone.memmap
        size = 1 << start_order
        while start_order > order:
            start_order -= 1
            size >>= 1
            freepages[start_order].insert(0, page + size)
            mm.mark_block(page + size, start_order, PG_ISOLATED)
    cc.nr_freepages -= 1 << order
    cc.nr_migratepages -= 1 << order
    return page


async def compaction_alloc(cc: CompactControl, order: int) -> int:
    """Models mm/compaction.c: compaction_alloc — the migration target for a folio of
    ``order`` (:func:`compaction_alloc_isolated`); if none, ``isolate_freepages`` once; still
    none: -1 (NULL, so ``migrate_pages`` returns -ENOMEM)."""
    page = compaction_alloc_isolated(cc, order)
    if page >= 0:
        return page
    pa = cc.pa
    assert pa is not None
    resume = lat_enter(pa.sim, COMPACT_SCAN)
    await isolate_freepages(cc)
    lat_leave(pa.sim, resume)
    return compaction_alloc_isolated(cc, order)


def compaction_free(cc: CompactControl, pfn: int, order: int) -> None:
    """Models mm/compaction.c: compaction_free — an unused target goes back on
    ``freepages[order]``."""
    cc.zone.memmap.mark_block(pfn, order, PG_ISOLATED)
    cc.freepages[order].insert(0, pfn)
    cc.nr_freepages += 1 << order
    cc.nr_migratepages += 1 << order


async def release_free_list(cc: CompactControl) -> int:
    """Models mm/compaction.c: release_free_list — give every isolated free block back
    (``mark_allocated`` + ``__free_pages``: orders 0-3 and 9 land on the compactor CPU's pcp
    lists). Returns the highest pfn released."""
    pa = cc.pa
    assert pa is not None
    cpu = cc.cpu if cc.cpu is not None else pa.cpus[0]
    mm = cc.zone.memmap
    high_pfn = 0
    for order in range(NR_PAGE_ORDERS):
        lst = cc.freepages[order]
        cc.freepages[order] = []
        for pfn in lst:
            mm.mark_block(pfn, order, PG_ALLOC, OWNER_NONE)
            await free_pages(pa, cpu, pfn, order)
            if pfn > high_pfn:
                high_pfn = pfn
    return high_pfn
