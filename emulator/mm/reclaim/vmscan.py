"""Direct reclaim: free clean page cache and reclaimable slab for an allocating task.

Models mm/vmscan.c (Linux 6.12.0), simplified and said so: try_to_free_pages (6478),
do_try_to_free_pages (6245), shrink_zones (6122), compaction_ready (6054), shrink_node (5936),
should_continue_reclaim (5805), shrink_lruvec (5669), shrink_list / shrink_inactive_list (1914),
isolate_lru_folios, shrink_folio_list (for clean, unmapped file folios only),
zone_reclaimable_pages (368), lruvec_lru_size; and mm/shrinker.c: do_shrink_slab (371) for one
shrinker per node.

How it runs: reclaim is the allocating actor's own work in virtual time. Scanning takes the
node's ``lru_lock`` (:class:`emulator.mm.reclaim.lru.Lruvec`) to isolate at most
``SWAP_CLUSTER_MAX``
(32) pages from the tail of the inactive file list, charging ``lru_op`` per folio while
holding it, drops it, reclaims the batch (``shrink_folio`` per page: the holder is told,
:func:`emulator.mm.reclaim.lru.evict`, then the folio is freed through the page allocator on this
CPU, as ``free_unref_folios`` does), and retakes it for the putback's accounting. Other CPUs
allocate, free, compact and isolate in between.

What is simplified:

* No swap is configured, so ``get_scan_count`` is always SCAN_FILE: anonymous memory is never
  scanned or reclaimed (``can_reclaim_anon_pages`` is false).
* No page references, dirty or writeback pages: every isolated file folio is clean and
  unmapped and is reclaimed; nothing activates folios, so the active lists are empty and
  only the inactive file list is scanned (no ``shrink_active_list``).
* Slab: one shrinker per node (:class:`SlabShrinker`, ``PageAllocator.shrinkers``) over the
  reclaimable slab pages registered with it (a scenario's set-up); one object per page;
  ``do_shrink_slab``'s delta and deferred work are the kernel's (``DEFAULT_SEEKS`` 2,
  ``SHRINK_BATCH`` 128).
* No memcg (one root lruvec; the ``memcg_full_walk`` retry of do_try_to_free_pages is kept
  because it is what the kernel does when nothing was reclaimed), no
  ``throttle_direct_reclaim`` (no pfmemalloc throttling), no ``reclaim_throttle``, no MGLRU.

kswapd (:mod:`emulator.mm.reclaim.kswapd`) reuses :func:`shrink_node` with
``ScanControl(kswapd=True)``, which
counts ``pgscan_kswapd`` / ``pgsteal_kswapd`` instead of the ``_direct`` counters.
"""

from __future__ import annotations

import attrs

from emulator.mm.compaction.control import compact_gap
from emulator.mm.compaction.suitable import compaction_suitable
from emulator.mm.compaction.sysctl import EXTFRAG_THRESHOLD
from emulator.mm.internal import Allocator, AllocContext
from emulator.mm.lockdep import lockdep_assert_held
from emulator.mm.memmap import OWNER_RECLAIMABLE
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.page_alloc.watermark import zone_watermark_ok
from emulator.mm.reclaim.lru import evict, folio_isolate_lru_locked
from emulator.mm.reclaim.lruvec import LRU_ACTIVE_FILE, LRU_INACTIVE_FILE, Lruvec
from emulator.mm.snapshot import PAGE_ALLOC_COSTLY_ORDER, ZONE_NAMES
from emulator.mm.zone import MAX_NR_ZONES, Zone

__all__ = [
    "DEF_PRIORITY",
    "MAX_RECLAIM_RETRIES",
    "SWAP_CLUSTER_MAX",
    "ScanControl",
    "compaction_ready",
    "do_try_to_free_pages",
    "isolate_lru_folios",
    "lruvec_lru_size",
    "should_continue_reclaim",
    "shrink_node",
    "try_to_free_pages",
    "zone_reclaimable_pages",
]

SWAP_CLUSTER_MAX = 32
"""include/linux/swap.h: the reclaim batch (pages isolated per lru_lock hold)."""
DEF_PRIORITY = 12
"""mm/vmscan.c: scan ``lru_size >> priority`` pages per pass, priority 12 down to 0."""
MAX_RECLAIM_RETRIES = 16
"""mm/internal.h: reclaim rounds without progress before the allocator gives up."""
DEFAULT_SEEKS = 2
"""include/linux/shrinker.h"""
SHRINK_BATCH = 128
"""mm/shrinker.c"""
SHRINK_STOP = (1 << 64) - 2
"""include/linux/shrinker.h: ``~0UL - 1``, what scan_objects returns when it can make no
progress"""
#: the vm event ``pgskip_<zone>`` by zone index
_PGSKIP = tuple(f"pgskip_{ZONE_NAMES[z].lower()}" for z in range(MAX_NR_ZONES))


@attrs.define(slots=True, eq=False)
class ScanControl:
    """Models mm/vmscan.c: struct scan_control (the fields this model reads)."""

    nr_to_reclaim: int
    gfp_mask: int
    reclaim_idx: int
    order: int
    priority: int = DEF_PRIORITY
    may_writepage: bool = True
    may_unmap: bool = True
    may_swap: bool = True
    kswapd: bool = False
    """current_is_kswapd(): picks the pgscan/pgsteal counters and the proportional rule"""
    nr_scanned: int = 0
    nr_reclaimed: int = 0
    compaction_ready: bool = False
    memcg_full_walk: bool = False


def lruvec_lru_size(lruvec: Lruvec, lru: int, zone_idx: int) -> int:
    """Models mm/vmscan.c: lruvec_lru_size — pages on list ``lru`` in zones 0..zone_idx."""
    return sum(lruvec.nr_zone_pages[z][lru] for z in range(zone_idx + 1))


def isolate_lru_folios(
    pa: Allocator, lruvec: Lruvec, nr_to_scan: int, sc: ScanControl, lru: int
) -> tuple[list[int], int]:
    """Models mm/vmscan.c: isolate_lru_folios — from the tail (oldest) of list ``lru``, take
    folios until ``nr_to_scan`` eligible pages were scanned; folios of zones above
    ``sc.reclaim_idx`` are skipped (``pgskip_<zone>``) and spliced back to the head of the list
    (vmscan.c:1670-1674, 1716-1733: so the next scan does not meet them again at the tail).
    Returns (the isolated folio heads, pages scanned including the skipped, as
    ``*nr_scanned``). Caller holds ``lru_lock``."""
    lockdep_assert_held(lruvec.lru_lock_or_none)
    mm = pa.memmap
    prv = mm.prv
    head = lruvec.lists + lru
    taken: list[int] = []
    scan = 0
    total_scan = 0
    skipped: list[int] = []
    p = prv[head]
    while p != head and scan < nr_to_scan:
        older = prv[p]
        nr = 1 << mm.order[p]
        total_scan += nr
        zone = pa.zone_of(p)
        if zone.zone_idx > sc.reclaim_idx:
            pa.vm_events[_PGSKIP[zone.zone_idx]] += nr
            skipped.append(p)
        else:
            scan += nr
            if folio_isolate_lru_locked(pa, lruvec, p):
                taken.append(p)
        p = older
    # list_move onto folios_skipped, then list_splice(&folios_skipped, src): the last skipped
    # ends up first at the head
    for p in skipped:
        mm.list_del(p)
        mm.list_add(head, p)
    return taken, total_scan


def zone_reclaimable_pages(pa: Allocator, zone: Zone) -> int:
    """Models mm/vmscan.c: zone_reclaimable_pages — the zone's file LRU pages (no swap: anon
    is not reclaimable). Isolated folios are not counted, as in the kernel."""
    nz = pa.lruvecs[zone.node].nr_zone_pages[zone.zone_idx]
    return nz[LRU_INACTIVE_FILE] + nz[LRU_ACTIVE_FILE]


def compaction_ready(
    zone: Zone, sc: ScanControl, extfrag_threshold: int = EXTFRAG_THRESHOLD.int_default()
) -> bool:
    """Models mm/vmscan.c: compaction_ready — the allocation would already succeed at MIN, or
    compaction is suitable and the zone is above HIGH + compact_gap(order)."""
    if not sc.gfp_mask & _GFP_IO:
        return False
    if zone_watermark_ok(zone, sc.order, zone.min_wmark_pages, sc.reclaim_idx, 0):
        return True
    if not compaction_suitable(zone, sc.order, sc.reclaim_idx, extfrag_threshold):
        return False
    watermark = zone.high_wmark_pages + compact_gap(sc.order)
    return zone_watermark_ok(zone, 0, watermark, sc.reclaim_idx, 0)


def in_reclaim_compaction(sc: ScanControl) -> bool:
    """Models mm/vmscan.c: in_reclaim_compaction."""
    return bool(
        sc.gfp_mask & _GFP_IO
        and sc.order
        and (sc.order > PAGE_ALLOC_COSTLY_ORDER or sc.priority < DEF_PRIORITY - 2)
    )


def should_continue_reclaim(
    pa: Allocator, lruvec: Lruvec, nr_reclaimed: int, sc: ScanControl
) -> bool:
    """Models mm/vmscan.c: should_continue_reclaim — for reclaim/compaction, go on until
    compaction could run (or the allocation would succeed), while the last pass reclaimed
    something and the node's inactive file list holds more than compact_gap(order)."""
    if not in_reclaim_compaction(sc):
        return False
    if not nr_reclaimed:
        return False
    threshold = pa.machine.extfrag_threshold
    for zone in pa.zones:
        if zone.node != lruvec.nid or zone.zone_idx > sc.reclaim_idx or not zone.managed_pages:
            continue
        if zone_watermark_ok(zone, sc.order, zone.min_wmark_pages, sc.reclaim_idx, 0):
            return False
        if compaction_suitable(zone, sc.order, sc.reclaim_idx, threshold):
            return False
    return lruvec.nr_pages[LRU_INACTIVE_FILE] > compact_gap(sc.order)


async def shrink_inactive_list(
    pa: Allocator, cpu: Cpu, lruvec: Lruvec, nr_to_scan: int, sc: ScanControl
) -> int:
    """Models mm/vmscan.c: shrink_inactive_list + shrink_folio_list, for clean file folios.

    Isolate under lru_lock (``pgscan_*``, ``pgscan_file``), drop it, reclaim each folio (the
    holder is told, then the pages are freed on this CPU), retake lru_lock for the putback's
    accounting (``pgsteal_*``, ``pgsteal_file``). Returns pages reclaimed."""
    sim = pa.sim
    costs = pa.costs
    ev = pa.vm_events
    lock = lruvec.lru_lock
    await lock.acquire("shrink_inactive_list:isolate")
    taken, nr_scanned = isolate_lru_folios(pa, lruvec, nr_to_scan, sc, LRU_INACTIVE_FILE)
    ev["pgscan_kswapd" if sc.kswapd else "pgscan_direct"] += nr_scanned
    ev["pgscan_file"] += nr_scanned
    await sim.delay(costs.lru_lock + costs.lru_op * max(len(taken), 1))
    lock.release()
    sc.nr_scanned += nr_scanned
    if not taken:
        return 0
    mm = pa.memmap
    nr_reclaimed = 0
    for pfn in taken:
        order = mm.order[pfn]
        await sim.delay(costs.shrink_folio << order)
        evict(pa, pfn)
        await free_pages(pa, cpu, pfn, order)
        nr_reclaimed += 1 << order
    await lock.acquire("shrink_inactive_list:putback")
    ev["pgsteal_kswapd" if sc.kswapd else "pgsteal_direct"] += nr_reclaimed
    ev["pgsteal_file"] += nr_reclaimed
    await sim.delay(costs.lru_lock)
    lock.release()
    return nr_reclaimed


async def shrink_lruvec(pa: Allocator, cpu: Cpu, lruvec: Lruvec, sc: ScanControl) -> None:
    """Models mm/vmscan.c: shrink_lruvec with get_scan_count's SCAN_FILE (no swap).

    Scan target ``lruvec_lru_size(inactive file, reclaim_idx) >> priority``, in
    SWAP_CLUSTER_MAX batches; direct reclaim at DEF_PRIORITY scans its whole target
    (proportional reclaim), otherwise it stops once ``nr_to_reclaim`` is met (with anon not
    scanned, the proportional nudge ends the loop)."""
    await pa.sim.sync()  # the LRU sizes are shared state
    nr = lruvec_lru_size(lruvec, LRU_INACTIVE_FILE, sc.reclaim_idx) >> sc.priority
    proportional = not sc.kswapd and sc.priority == DEF_PRIORITY
    nr_reclaimed = 0
    while nr:
        nr_to_scan = min(nr, SWAP_CLUSTER_MAX)
        nr -= nr_to_scan
        nr_reclaimed += await shrink_inactive_list(pa, cpu, lruvec, nr_to_scan, sc)
        if nr_reclaimed < sc.nr_to_reclaim or proportional:
            continue
        break  # nr_anon == 0: "if (!nr_file || !nr_anon) break"
    sc.nr_reclaimed += nr_reclaimed


async def shrink_slab(pa: Allocator, cpu: Cpu, nid: int, sc: ScanControl) -> int:
    """Models mm/shrinker.c: shrink_slab -> do_shrink_slab, for the node's slab shrinker.

    ``count_objects``, then ``xchg_nr_deferred`` (the deferred work is taken, so concurrent
    invocations do not repeat it); ``delta = (freeable >> priority) * 4 / DEFAULT_SEEKS`` plus
    the deferred work, capped at 2 * freeable, scanned in SHRINK_BATCH batches
    (``slabs_scanned``) by :func:`slab_scan_objects`; a batch that returns SHRINK_STOP ends the
    loop. Freed pages count as reclaimed (``reclaim_state->reclaimed``, flush_reclaim_state)
    and leave ``nr_slab_reclaimable``; the unused work goes back with ``add_nr_deferred``.

    Concurrent reclaim: the object count is a snapshot. Other reclaimers (kswapd, direct
    reclaimers on other CPUs) scan the same list while this one waits for its frees, so the
    list is re-read for every object, as ``scan_objects`` walks its list under the list's
    lock: a list emptied meanwhile ends the batch with what was freed, and a batch that finds
    it empty returns SHRINK_STOP."""
    shrinker = pa.shrinkers[nid]
    await pa.sim.sync()  # the shrinker's list and deferred count are shared
    freeable = shrinker.count_objects()
    if not freeable:
        return 0
    nr = shrinker.nr_deferred
    shrinker.nr_deferred = 0
    delta = ((freeable >> sc.priority) * 4) // DEFAULT_SEEKS
    total_scan = min((nr >> sc.priority) + delta, 2 * freeable)
    scanned = 0
    freed = 0
    ev = pa.vm_events
    while total_scan >= SHRINK_BATCH or total_scan >= freeable:
        nr_to_scan = min(SHRINK_BATCH, total_scan)
        if not nr_to_scan:
            break
        ret = await slab_scan_objects(pa, cpu, nid, nr_to_scan)
        if ret == SHRINK_STOP:
            break
        freed += ret
        ev["slabs_scanned"] += nr_to_scan
        total_scan -= nr_to_scan
        scanned += nr_to_scan
    next_deferred = min(max(nr + delta - scanned, 0), 2 * freeable)
    await pa.sim.sync()
    shrinker.nr_deferred += next_deferred
    shrinker.freed += freed
    return freed


async def slab_scan_objects(pa: Allocator, cpu: Cpu, nid: int, nr_to_scan: int) -> int:
    """The shrinker's ``scan_objects`` (a list_lru walk, as ``super_cache_scan`` does): take
    up to ``nr_to_scan`` objects from the list, reading it afresh for each (another reclaimer
    may have emptied it while this one freed the previous object), and free them. Returns the
    pages freed, or SHRINK_STOP when the list is empty at the start (no progress possible)."""
    shrinker = pa.shrinkers[nid]
    mm = pa.memmap
    lruvec = pa.lruvecs[nid]
    freed = 0
    for i in range(nr_to_scan):
        await pa.sim.sync()
        if not shrinker.pages:
            return SHRINK_STOP if i == 0 else freed
        pfn = shrinker.pages.pop()
        order = mm.order[pfn]
        if mm.owner[pfn] == OWNER_RECLAIMABLE:
            lruvec.nr_slab_reclaimable -= 1 << order
        await pa.sim.delay(pa.costs.shrink_slab_object)
        await free_pages(pa, cpu, pfn, order)
        freed += 1 << order
    return freed


async def shrink_node(pa: Allocator, cpu: Cpu, lruvec: Lruvec, sc: ScanControl) -> None:
    """Models mm/vmscan.c: shrink_node (one root memcg): shrink_lruvec, shrink_slab, and again
    while should_continue_reclaim."""
    while True:
        nr_reclaimed = sc.nr_reclaimed
        await shrink_lruvec(pa, cpu, lruvec, sc)
        sc.nr_reclaimed += await shrink_slab(pa, cpu, lruvec.nid, sc)
        await pa.sim.sync()  # the watermark reads below are shared state
        if sc.nr_reclaimed > nr_reclaimed and pa.kthreads is not None:
            # progress makes the node reclaimable again: a hopeless kswapd revives
            pa.kthreads.kswapd[lruvec.nid].kswapd_failures = 0
        if not should_continue_reclaim(pa, lruvec, sc.nr_reclaimed - nr_reclaimed, sc):
            return


async def shrink_zones(pa: Allocator, cpu: Cpu, zonelist: list[Zone], sc: ScanControl) -> None:
    """Models mm/vmscan.c: shrink_zones — each node of the zonelist once; for costly orders a
    zone where compaction_ready() holds sets ``sc.compaction_ready`` and is skipped."""
    last_node = -1
    await pa.sim.sync()
    for zone in zonelist:
        if zone.zone_idx > sc.reclaim_idx:
            continue
        if sc.order > PAGE_ALLOC_COSTLY_ORDER and compaction_ready(
            zone, sc, pa.machine.extfrag_threshold
        ):
            sc.compaction_ready = True
            continue
        if zone.node == last_node:
            continue
        last_node = zone.node
        await shrink_node(pa, cpu, pa.lruvecs[zone.node], sc)
        await pa.sim.sync()


async def do_try_to_free_pages(
    pa: Allocator, cpu: Cpu, zonelist: list[Zone], sc: ScanControl
) -> int:
    """Models mm/vmscan.c: do_try_to_free_pages — count allocstall_<reclaim zone>, then
    shrink_zones at priority 12 down to 0 until nr_to_reclaim is met or compaction is ready.
    Nothing reclaimed and not compaction-ready: one more round with memcg_full_walk (counted
    again, as the kernel counts it)."""
    initial_priority = sc.priority
    ev = pa.vm_events
    while True:
        ev["allocstall_" + ZONE_NAMES[sc.reclaim_idx].lower()] += 1
        while True:
            sc.nr_scanned = 0
            await shrink_zones(pa, cpu, zonelist, sc)
            if sc.nr_reclaimed >= sc.nr_to_reclaim or sc.compaction_ready:
                break
            if sc.priority < DEF_PRIORITY - 2:
                sc.may_writepage = True
            sc.priority -= 1
            if sc.priority < 0:
                break
        if sc.nr_reclaimed:
            return sc.nr_reclaimed
        if sc.compaction_ready:
            return 1
        if not sc.memcg_full_walk:
            sc.priority = initial_priority
            sc.memcg_full_walk = True
            continue
        return 0


async def try_to_free_pages(
    pa: Allocator, cpu: Cpu, ac: AllocContext, order: int, gfp_mask: int
) -> int:
    """Models mm/vmscan.c: try_to_free_pages — direct reclaim for ``order`` on the allocation's
    zonelist; fires mm_vmscan_direct_reclaim_begin/end. Returns pages reclaimed (1 when it
    stopped early for compaction)."""
    sc = ScanControl(
        nr_to_reclaim=SWAP_CLUSTER_MAX,
        gfp_mask=gfp_mask,
        reclaim_idx=ac.highest_zoneidx,
        order=order,
    )
    rec = pa.rec
    if rec.enabled:
        rec.emit("mm_vmscan_direct_reclaim_begin", order=order, gfp_flags=pa.gfp_name(gfp_mask))
    nr_reclaimed = await do_try_to_free_pages(pa, cpu, ac.zonelist, sc)
    if rec.enabled:
        rec.emit("mm_vmscan_direct_reclaim_end", nr_reclaimed=nr_reclaimed)
    return nr_reclaimed


_GFP_IO = 1 << 6  # __GFP_IO (gfp_compaction_allowed)
