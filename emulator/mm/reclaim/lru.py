"""The LRU lists of a node and the holder's page life cycle around them.

Models ``struct lruvec`` (include/linux/mmzone.h; one per node, no memcg) and its
``lru_lock``, the per-CPU lru-add batch of mm/swap.c (``folio_add_lru`` ->
``folio_batch_add_and_move`` -> ``folio_batch_move_lru`` -> ``lru_add``, ``lru_add_drain``),
``lruvec_add_folio`` / ``lruvec_del_folio`` (include/linux/mm_inline.h), the release of a
folio by its holder (:func:`release_handle`: the unmap, ``__page_cache_release``, the free),
and the isolation interface
compaction and reclaim use (``folio_isolate_lru``, ``putback_lru_page`` /
``folio_putback_lru``).

Lists: five per node (enum lru_list), threaded through ``Memmap.nxt``/``prv`` as the kernel
threads ``folio->lru`` (a union with the buddy and pcp list links: an allocated page is on
neither). Only head pages are on a list; counts are in pages, per node (``nr_inactive_anon``
...) and per zone (``nr_zone_inactive_anon`` ...), plus ``nr_isolated_anon/file``,
``nr_slab_reclaimable`` and ``nr_mlock``, under the kernel's /proc/vmstat names.

Which list: anon and pinned -> anon, file -> file, mlocked -> unevictable. New folios go on
the inactive lists (as in 6.12 without MGLRU); nothing activates them yet (no page references
are modelled), so the active lists stay empty until a reclaim model moves pages.

Counters of isolated folios follow the kernel's callers: :func:`folio_isolate_lru_locked` adds
to ``nr_isolated_*`` (compaction's ``node_stat_mod_folio`` after isolating, vmscan's
``__mod_node_page_state`` after ``isolate_lru_folios``); :func:`putback_lru_page` and
:func:`evict` take it back.

A folio whose holder lets go while it is isolated, or still in a CPU's lru-add batch, is not
freed by the holder: the isolater (or the batch) holds a reference, and frees it when it lets
go (:func:`putback_lru_page`, the batch flush), as ``folio_put`` does in the kernel.
"""

from __future__ import annotations

import numpy as np

from emulator.engine import SpinLock
from emulator.mm.internal import Allocator
from emulator.mm.lockdep import lockdep_assert_held
from emulator.mm.memmap import (
    OWNER_ANON,
    OWNER_FILE,
    OWNER_MLOCKED,
    OWNER_NONE,
    OWNER_ON_LRU,
    OWNER_PINNED,
    OWNER_RECLAIMABLE,
    PF_ACTIVE,
    PF_ISOLATED,
    PF_LRU,
    PF_LRU_BATCH,
    PF_UNEVICTABLE,
    PG_ALLOC,
    Memmap,
)
from emulator.mm.page_alloc.page_free import free_pages, free_pages_prepare, free_prepared
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.reclaim.lruvec import (
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LRU_UNEVICTABLE,
    NR_LRU_LISTS,
    Lruvec,
)
from emulator.mm.reclaim.rmap import NO_HANDLE

__all__ = [
    "PAGEVEC_SIZE",
    "adopt_allocated",
    "charge_folio",
    "evict",
    "folio_add_lru",
    "folio_isolate_lru",
    "folio_isolate_lru_locked",
    "folio_lru_list",
    "lru_add_drain",
    "lru_add_drain_all",
    "lruvec_add_folio",
    "lruvec_del_folio",
    "putback_lru_page",
    "release_handle",
]

#: include/linux/pagevec.h: a folio_batch holds 31 folios
PAGEVEC_SIZE = 31


def folio_lru_list(memmap: Memmap, pfn: int) -> int:
    """Models include/linux/mm_inline.h: folio_lru_list. The list a folio belongs on: the
    unevictable list when PF_UNEVICTABLE, else anon or file, active when PF_ACTIVE."""
    fl = memmap.pflags[pfn]
    if fl & PF_UNEVICTABLE:
        return LRU_UNEVICTABLE
    lru = LRU_INACTIVE_FILE if memmap.owner[pfn] == OWNER_FILE else LRU_INACTIVE_ANON
    return lru + 1 if fl & PF_ACTIVE else lru


def lruvec_add_folio(pa: Allocator, lruvec: Lruvec, pfn: int) -> None:
    """Models include/linux/mm_inline.h: lruvec_add_folio (+ folio_set_lru): list_add at the
    head of the folio's list, the counters up. Caller holds ``lru_lock``."""
    lockdep_assert_held(lruvec.lru_lock_or_none)
    mm = pa.memmap
    fl = mm.pflags[pfn]
    lru = folio_lru_list(mm, pfn)
    nr = 1 << mm.order[pfn]
    mm.list_add(lruvec.lists + lru, pfn)
    mm.pflags[pfn] = (fl | PF_LRU) & ~PF_LRU_BATCH
    lruvec.nr_pages[lru] += nr
    lruvec.nr_zone_pages[pa.zone_of(pfn).zone_idx][lru] += nr


def lruvec_del_folio(pa: Allocator, lruvec: Lruvec, pfn: int) -> None:
    """Models include/linux/mm_inline.h: lruvec_del_folio (+ folio_clear_lru): list_del, the
    counters down. Caller holds ``lru_lock``."""
    lockdep_assert_held(lruvec.lru_lock_or_none)
    mm = pa.memmap
    fl = mm.pflags[pfn]
    lru = folio_lru_list(mm, pfn)
    nr = 1 << mm.order[pfn]
    mm.list_del(pfn)
    mm.pflags[pfn] = fl & ~PF_LRU
    lruvec.nr_pages[lru] -= nr
    lruvec.nr_zone_pages[pa.zone_of(pfn).zone_idx][lru] -= nr


async def _lru_locked(pa: Allocator, lruvec: Lruvec, site: str) -> SpinLock:
    """spin_lock_irq(&lruvec->lru_lock), charging the lock operation."""
    lock = lruvec.lru_lock
    await lock.acquire(site)
    return lock


# -- the holder's side: a page enters and leaves the LRU --------------------------------------


async def folio_add_lru(pa: Allocator, cpu: Cpu, pfn: int) -> None:
    """Models mm/swap.c: folio_add_lru (folio_batch_add_and_move with lru_add).

    The folio (an LRU owner kind, just allocated and mapped) joins ``cpu``'s lru-add batch
    (``PF_LRU_BATCH``); the batch moves to the LRU lists under ``lru_lock`` when it holds
    :data:`PAGEVEC_SIZE` folios or this folio is large (order > 0), as the kernel does.
    An mlocked folio gets PF_UNEVICTABLE and counts ``unevictable_pgs_culled`` and ``nr_mlock``.
    The folio is published (flag, batch) at a synchronised instant: other actors read both
    (:func:`lru_add_drain_all`, compaction's PageLRU test).
    """
    mm = pa.memmap
    sim = pa.sim
    if not sim.is_synchronised():
        await sim.sync()  # the batch and the flags are read by others (drain_all, compaction)
    owner = mm.owner[pfn]
    if not OWNER_ON_LRU[owner]:
        raise ValueError(f"folio_add_lru: pfn {pfn:#x} has owner kind {owner}, not an LRU kind")
    if owner == OWNER_MLOCKED:
        nr = 1 << mm.order[pfn]
        mm.pflags[pfn] = PF_UNEVICTABLE | PF_LRU_BATCH
        pa.vm_events["unevictable_pgs_culled"] += nr
        pa.vm_events["unevictable_pgs_mlocked"] += nr
        pa.lruvecs[pa.zone_of(pfn).node].nr_mlock[pa.zone_of(pfn).zone_idx] += nr
    else:
        mm.pflags[pfn] = PF_LRU_BATCH
    batch = cpu.lru_add
    batch.append(pfn)
    if len(batch) >= PAGEVEC_SIZE or mm.order[pfn]:
        await lru_add_drain(pa, cpu)


async def lru_add_drain(pa: Allocator, cpu: Cpu) -> None:
    """Models mm/swap.c: lru_add_drain (folio_batch_move_lru of ``cpu``'s lru-add batch).

    One ``lru_lock`` hold per run of folios of the same node (folio_lruvec_relock_irqsave);
    each folio costs ``lru_op``. As in the kernel, the folios stay in the batch (PG_lru clear,
    ``PF_LRU_BATCH`` here) until they move onto their list under ``lru_lock``: each run leaves
    the batch at the instant it is moved, under the lock (the kernel's batch is only reset,
    folio_batch_reinit, after the move). A folio whose holder let go meanwhile is not added:
    the batch's reference was the last, so it is freed after the lock is dropped (folios_put).

    Simplified: the kernel's ``local_lock(&cpu_fbatches.lock)`` is not modelled; a second
    drainer of the same batch (another actor on ``cpu``, or :func:`lru_add_drain_all`) reads
    the batch afresh under ``lru_lock``, so no folio is moved twice or left flagged in no batch.
    """
    sim = pa.sim
    if not sim.is_synchronised():
        await sim.sync()  # cpu_needs_drain: the batch as it is at our instant
    if not cpu.lru_add:
        return
    mm = pa.memmap
    costs = pa.costs
    orphans: list[int] = []
    budget = len(cpu.lru_add)  # what is there now; later additions are the next drain's
    while cpu.lru_add and budget > 0:
        lruvec = pa.lruvecs[pa.zone_of(cpu.lru_add[0]).node]
        lock = await _lru_locked(pa, lruvec, "folio_batch_move_lru")
        # at the instant we hold the lock: the batch as it is now (another drainer may have
        # moved some or all of it while we waited)
        batch = cpu.lru_add
        nid = lruvec.nid
        i = 0
        hold = costs.lru_lock
        while i < len(batch) and pa.zone_of(batch[i]).node == nid:
            pfn = batch[i]
            i += 1
            hold += costs.lru_op
            if mm.handle[pfn] == NO_HANDLE:
                mm.pflags[pfn] &= ~PF_LRU_BATCH
                orphans.append(pfn)
                continue
            lruvec_add_folio(pa, lruvec, pfn)
        cpu.lru_add = batch[i:]
        budget -= i
        await sim.delay(hold)
        lock.release()
    for pfn in orphans:
        await _free_folio(pa, cpu, pfn)


async def lru_add_drain_all(pa: Allocator, cpu: Cpu) -> None:
    """Models mm/swap.c: lru_add_drain_all, simplified: the calling CPU flushes every CPU's
    lru-add batch itself (the kernel queues work on each CPU and waits for it)."""
    for target in pa.cpus:
        await lru_add_drain(pa, target)


async def release_handle(pa: Allocator, cpu: Cpu, handle: int) -> int:
    """Models the holder letting go of its page (munmap or truncation: the unmap, then the last
    ``folio_put`` -> __folio_put -> __page_cache_release + free_unref_page).

    free_pages_prepare's time is charged first, then everything happens at one synchronised
    instant, as compaction and reclaim act at theirs: the handle is resolved to the pfn it holds
    *now* (after any migration) and released; an evicted page needs no free. A folio that is
    isolated, or in a CPU's lru-add batch, is left to the isolater or the batch, which hold the
    last reference. An LRU folio comes off its list under ``lru_lock`` (trylock at this
    instant, else a wait), ``nr_mlock``/``unevictable_pgs_cleared`` and
    ``nr_slab_reclaimable`` are settled, and the page is freed. Returns the pfn freed or left
    to its last holder, or :data:`~emulator.mm.reclaim.rmap.EVICTED`.

    Simplified: free_pages_prepare is charged before __page_cache_release (the kernel runs it
    after), so the LRU work starts ``free_prepare`` ns late.
    """
    rmap = pa.machine.rmap
    pfn = rmap.handle_pfn[handle]
    if pfn < 0:  # evicted: nothing to free (only its holder can change that)
        return rmap.release(handle)
    mm = pa.memmap
    await free_pages_prepare(pa, cpu, pfn, mm.order[pfn])
    pfn = rmap.release(handle)  # at our instant: the pfn it holds now (after any migration)
    if pfn < 0:
        return pfn
    fl = mm.pflags[pfn]
    if fl & (PF_LRU_BATCH | PF_ISOLATED):
        return pfn  # the batch (lru_add_drain) or the isolater (putback_lru_page) frees it
    if fl & PF_LRU:
        sim = pa.sim
        lruvec = pa.lruvecs[pa.zone_of(pfn).node]
        lock = lruvec.lru_lock
        if not lock.try_acquire_now("__page_cache_release"):
            await lock.acquire("__page_cache_release")
            if not mm.pflags[pfn] & PF_LRU:  # isolated while we waited: theirs to free
                lock.release()
                return pfn
        lruvec_del_folio(pa, lruvec, pfn)
        await sim.delay(pa.costs.lru_lock + pa.costs.lru_op)
        lock.release()
        if not sim.is_synchronised():
            await sim.sync()
    # _free_folio(prepared=True), inline: one coroutine frame less on every free
    await free_prepared(pa, cpu, pfn, _settle_folio(pa, pfn))
    return pfn


def _settle_folio(pa: Allocator, pfn: int) -> int:
    """The accounting at the end of a folio nobody holds (mlock and slab counters, the page
    flags cleared); returns its order."""
    mm = pa.memmap
    order = mm.order[pfn]
    owner = mm.owner[pfn]
    if owner in _ACCOUNTED:
        nr = 1 << order
        zone = pa.zone_of(pfn)
        if owner == OWNER_RECLAIMABLE:
            pa.lruvecs[zone.node].nr_slab_reclaimable -= nr
        elif mm.pflags[pfn] & PF_UNEVICTABLE:
            pa.lruvecs[zone.node].nr_mlock[zone.zone_idx] -= nr
            pa.vm_events["unevictable_pgs_cleared"] += nr
    mm.pflags[pfn] = 0
    return order


async def _free_folio(pa: Allocator, cpu: Cpu, pfn: int, prepared: bool = False) -> None:
    """The end of a folio nobody holds: mlock and slab accounting, then the page allocator
    (``prepared``: free_pages_prepare is done and the caller is at a synchronised instant)."""
    order = _settle_folio(pa, pfn)
    if prepared:
        await free_prepared(pa, cpu, pfn, order)
    else:
        await free_pages(pa, cpu, pfn, order)


def charge_folio(pa: Allocator, pfn: int) -> None:
    """Account a newly allocated non-LRU folio where the kernel does: reclaimable slab pages
    count in ``nr_slab_reclaimable`` (NR_SLAB_RECLAIMABLE_B, in pages here)."""
    if pa.memmap.owner[pfn] == OWNER_RECLAIMABLE:
        pa.lruvecs[pa.zone_of(pfn).node].nr_slab_reclaimable += 1 << pa.memmap.order[pfn]


# -- the kernel's side: isolation and putback --------------------------------------------------


def _is_file(memmap: Memmap, pfn: int) -> bool:
    """folio_is_file_lru: page cache (not swap-backed)."""
    return memmap.owner[pfn] == OWNER_FILE


def folio_isolate_lru_locked(pa: Allocator, lruvec: Lruvec, pfn: int) -> bool:
    """Models the isolation step under ``lru_lock`` of compaction (isolate_migratepages_block:
    folio_test_clear_lru + lruvec_del_folio) and of vmscan's isolate_lru_folios, with the
    caller's ``nr_isolated_anon/file`` update. Returns False when the folio is not on an LRU
    list (already isolated, in a batch, or not an LRU page). Caller holds ``lru_lock``.

    The caller decides what may be isolated: pinned folios (``OWNER_PINNED``: migration would
    fail) and unevictable ones (``PF_UNEVICTABLE``, only with vm.compact_unevictable_allowed)
    are the caller's checks, as in the kernel.
    """
    mm = pa.memmap
    if mm.state[pfn] != PG_ALLOC or not mm.pflags[pfn] & PF_LRU:
        return False
    lruvec_del_folio(pa, lruvec, pfn)
    mm.pflags[pfn] |= PF_ISOLATED
    nr = 1 << mm.order[pfn]
    if _is_file(mm, pfn):
        lruvec.nr_isolated_file += nr
    else:
        lruvec.nr_isolated_anon += nr
    return True


async def folio_isolate_lru(pa: Allocator, pfn: int) -> bool:
    """Models mm/vmscan.c: folio_isolate_lru. Take ``lru_lock``, isolate the folio (see
    :func:`folio_isolate_lru_locked`), drop the lock. Returns whether it was isolated."""
    lruvec = pa.lruvecs[pa.zone_of(pfn).node]
    lock = await _lru_locked(pa, lruvec, "folio_isolate_lru")
    ok = folio_isolate_lru_locked(pa, lruvec, pfn)
    await pa.sim.delay(pa.costs.lru_lock + (pa.costs.lru_op if ok else 0))
    lock.release()
    return ok


async def putback_lru_page(pa: Allocator, cpu: Cpu, pfn: int) -> None:
    """Models mm/migrate.c: putback_movable_pages for one folio (node_stat_mod_folio of
    NR_ISOLATED_*, then folio_putback_lru: folio_add_lru + folio_put).

    ``nr_isolated_anon/file`` drop by the folio's pages. If its holder let go while it was
    isolated (no handle), this was the last reference: the folio is freed. Otherwise it goes
    back on its LRU list under ``lru_lock`` (directly, not through the lru-add batch: a
    simplification that keeps putback in one hold).
    """
    mm = pa.memmap
    if not mm.pflags[pfn] & PF_ISOLATED:
        raise ValueError(f"putback_lru_page: pfn {pfn:#x} is not an isolated folio")
    sim = pa.sim
    await sim.sync()  # the counters and the holder are shared: act at our instant
    lruvec = pa.lruvecs[pa.zone_of(pfn).node]
    nr = 1 << mm.order[pfn]
    if _is_file(mm, pfn):
        lruvec.nr_isolated_file -= nr
    else:
        lruvec.nr_isolated_anon -= nr
    mm.pflags[pfn] &= ~PF_ISOLATED
    if mm.handle[pfn] == NO_HANDLE:
        await _free_folio(pa, cpu, pfn)
        return
    lock = lruvec.lru_lock
    if not lock.try_acquire_now("folio_putback_lru"):
        await lock.acquire("folio_putback_lru")
    lruvec_add_folio(pa, lruvec, pfn)
    await sim.delay(pa.costs.lru_lock + pa.costs.lru_op)
    lock.release()


def evict(pa: Allocator, pfn: int) -> int:
    """Models the end of mm/vmscan.c: shrink_folio_list for a clean page-cache folio that
    reclaim isolated: the holder is told (``Rmap.evict``), ``nr_isolated_file`` drops, the
    folio loses its owner. Returns the holder's handle (or -1). The block stays ``PG_ALLOC``:
    the caller frees it (free_unref_folios -> ``page_free.free_pages``)."""
    mm = pa.memmap
    if mm.owner[pfn] != OWNER_FILE or not mm.pflags[pfn] & PF_ISOLATED:
        raise ValueError(f"evict: pfn {pfn:#x} is not an isolated page-cache folio")
    lruvec = pa.lruvecs[pa.zone_of(pfn).node]
    nr = 1 << mm.order[pfn]
    lruvec.nr_isolated_file -= nr
    h = pa.machine.rmap.evict(pfn)
    mm.set_owner(pfn, mm.order[pfn], OWNER_NONE)
    mm.pflags[pfn] = 0
    return h


#: heads turned into Python ints at a time by :func:`adopt_allocated` (its peak memory)
_ADOPT_CHUNK = 1 << 16


def adopt_allocated(pa: Allocator, holder: int = -1) -> int:
    """Give every allocated block that has an LRU owner kind but no holder (a state built
    directly in the memmap, e.g. by :mod:`emulator.mm.initstate`) a holder handle and put it
    on its node's LRU list, oldest (lowest pfn) at the tail, as if it had been faulted in long
    ago. Set-up code, synchronous, vectorised. Returns the number of folios adopted."""
    mm = pa.memmap
    st = np.frombuffer(mm.state, dtype=np.uint8)
    owner = np.frombuffer(mm.owner, dtype=np.uint8)
    fl = np.frombuffer(mm.pflags, dtype=np.uint8)
    hd = np.frombuffer(mm.handle, dtype=np.int32)
    on_lru = np.frombuffer(OWNER_ON_LRU, dtype=np.uint8).astype(bool)
    heads = np.flatnonzero((st == PG_ALLOC) & on_lru[owner] & (fl == 0) & (hd < 0))
    if not heads.size:
        return 0
    orders = np.frombuffer(mm.order, dtype=np.uint8)[heads].astype(np.int64)
    kinds = owner[heads]
    rmap = pa.machine.rmap
    for i in range(0, heads.size, _ADOPT_CHUNK):  # in chunks: no list of every head at once
        for pfn in heads[i : i + _ADOPT_CHUNK].tolist():
            rmap.add(pfn, holder)
    mlocked = kinds == OWNER_MLOCKED
    fl[heads[mlocked]] = PF_UNEVICTABLE
    lru = np.where(
        mlocked,
        LRU_UNEVICTABLE,
        np.where(kinds == OWNER_FILE, LRU_INACTIVE_FILE, LRU_INACTIVE_ANON),
    )
    starts = np.array([z.zone_start_pfn for z in pa.zones], dtype=np.int64)
    zone_of = np.searchsorted(starts, heads, side="right") - 1
    nxt = mm.nxt
    prv = mm.prv
    for gidx, zone in enumerate(pa.zones):
        lruvec = pa.lruvecs[zone.node]
        for lst in range(NR_LRU_LISTS):
            sel = (zone_of == gidx) & (lru == lst)
            group = heads[sel][::-1]  # newest (highest pfn) first
            if not group.size:
                continue
            nr = int((1 << orders[sel]).sum())
            lruvec.nr_pages[lst] += nr
            lruvec.nr_zone_pages[zone.zone_idx][lst] += nr
            if lst == LRU_UNEVICTABLE:
                lruvec.nr_mlock[zone.zone_idx] += nr
            head = lruvec.lists + lst
            last = prv[head]  # append the group at the tail (older than what is there)
            for i in range(0, group.size, _ADOPT_CHUNK):
                for pfn in group[i : i + _ADOPT_CHUNK].tolist():
                    nxt[last] = pfn
                    prv[pfn] = last
                    last = pfn
            nxt[last] = head
            prv[head] = last
    fl[heads] |= PF_LRU
    return int(heads.size)


#: Owner kinds with a counter to settle when freed (nr_mlock, nr_slab_reclaimable)
_ACCOUNTED = frozenset({OWNER_MLOCKED, OWNER_RECLAIMABLE})
#: Owner kinds a reclaim model may evict: clean page cache (anon needs swap, not modelled)
EVICTABLE_OWNERS = frozenset({OWNER_FILE})
#: Owner kinds whose folios go on the anon lists
ANON_OWNERS = frozenset({OWNER_ANON, OWNER_PINNED})
