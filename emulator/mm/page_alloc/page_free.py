"""The free side of the page allocator: __free_pages down to the pcp lists or the buddy.

Models mm/page_alloc.c of Linux 6.12: free_pages_prepare (its time), free_unref_page,
free_unref_page_commit (the pcp list add and the drain at ``high``, through
:func:`~emulator.mm.page_alloc.drain.free_pcppages_bulk`), and free_one_page/__free_pages_ok
(the locking half; the buddy merge under the lock is
:func:`~emulator.mm.page_alloc.buddy.free_one_page_locked`).

The functions take the allocator as the :class:`~emulator.mm.internal.Allocator` interface and
use its ``sim``, ``costs``, ``rec``, ``memmap``, ``vm_events``, ``zone_of`` and
``zone_locked``.

Simplifies as the allocator does: no debug checks in free_pages_prepare (only its time is
charged), no memcg uncharge, no page_owner.
"""

from __future__ import annotations

from emulator.mm.internal import Allocator
from emulator.mm.memmap import PG_ALLOC
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.page_alloc.drain import free_pcppages_bulk
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.page_alloc.watermark import zone_watermark_ok
from emulator.mm.snapshot import (
    MAX_PAGE_ORDER,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import ZONE_BELOW_HIGH, ZONE_MOVABLE, ZONE_RECLAIM_ACTIVE, Zone

__all__ = ["free_one_page", "free_pages", "free_pages_prepare", "free_prepared"]

_BELOW_HIGH = 1 << ZONE_BELOW_HIGH
_RECLAIM_ACTIVE = 1 << ZONE_RECLAIM_ACTIVE
_PCP_MAX_ORDER = PAGE_ALLOC_COSTLY_ORDER


async def free_pages(pa: Allocator, cpu: Cpu, pfn: int, order: int) -> None:
    """Models mm/page_alloc.c: __free_pages -> free_unref_page (pcp orders) or __free_pages_ok.

    Raises ValueError for a pfn that is not the head of an allocated block of ``order``
    (a double free or a wrong order), naming the pfn and what it is.
    """
    await free_pages_prepare(pa, cpu, pfn, order)
    await free_prepared(pa, cpu, pfn, order)


async def free_pages_prepare(pa: Allocator, cpu: Cpu, pfn: int, order: int) -> None:
    """Models mm/page_alloc.c: free_pages_prepare (the range check, its time), then
    synchronise: the free touches shared state from here on, at the instant
    :func:`free_prepared` follows."""
    sim = pa.sim
    if not 0 <= pfn < pa.memmap.end_pfn or not 0 <= order <= MAX_PAGE_ORDER:
        raise ValueError(f"cpu {cpu.id}: free of pfn {pfn} order {order}: out of range")
    await sim.delay(pa.costs.free_prepare)
    if pa.explore:
        await sim.preempt("free_pages")
    else:
        await sim.sync()


async def free_prepared(pa: Allocator, cpu: Cpu, pfn: int, order: int) -> None:
    """The rest of __free_pages after free_pages_prepare: free_unref_page (the pcp
    trylock, free_unref_page_commit, a drain at ``high``) or free_one_page. Called at a
    synchronised instant (after free_pages_prepare: :func:`free_pages`,
    :func:`~emulator.mm.reclaim.lru.release_handle`)."""
    sim = pa.sim
    mm = pa.memmap
    costs = pa.costs
    if mm.state[pfn] != PG_ALLOC or mm.order[pfn] != order:
        raise ValueError(
            f"cpu {cpu.id}: free of pfn {pfn:#x} order {order}, but it is not the head of an "
            f"allocated order-{order} block (state {mm.state[pfn]}, order {mm.order[pfn]})"
        )
    zone = pa.zone_of(pfn)
    rec = pa.rec
    if rec.enabled:
        rec.emit("mm_page_free", pfn=pfn, order=order)
    if not (order <= _PCP_MAX_ORDER or order == PAGEBLOCK_ORDER):
        await free_one_page(pa, zone, pfn, order)
        return
    mt = mm.pb_mt[pfn >> PAGEBLOCK_ORDER]
    if mt >= MIGRATE_PCPTYPES:
        if mt == MIGRATE_ISOLATE:
            await free_one_page(pa, zone, pfn, order)
            return
        mt = MIGRATE_MOVABLE
    pcp = cpu.pcp[zone.gidx]
    lock = pcp.lock
    if not lock.try_acquire_now("free_unref_page"):
        await free_one_page(pa, zone, pfn, order)
        return
    charge = costs.pcp_lock + costs.pcp_list_op
    # free_unref_page_commit
    pcp.alloc_factor >>= 1
    pa.vm_events["pgfree"] += 1 << order
    pindex = pcp.add_free(pfn, order, mt)
    free_high = pcp.commit_free_flags(order)
    batch = pcp.batch
    flags = zone.flags
    high = pcp.nr_pcp_high(
        batch, free_high, bool(flags & _RECLAIM_ACTIVE), bool(flags & _BELOW_HIGH)
    )
    if pcp.count >= high:
        count = pcp.nr_pcp_free(batch, high, free_high)
        await sim.delay(charge)
        charge = 0
        await free_pcppages_bulk(pa, zone, pcp, count, pindex)
        if zone.flags & _BELOW_HIGH:
            await sim.sync()  # the drain let others run: read zone state at our instant
        if zone.flags & _BELOW_HIGH and zone_watermark_ok(
            zone, 0, zone.high_wmark_pages, ZONE_MOVABLE, 0
        ):
            zone.flags &= ~_BELOW_HIGH
    if charge:
        await sim.delay(charge)
    lock.release()


async def free_one_page(pa: Allocator, zone: Zone, pfn: int, order: int) -> None:
    """Models mm/page_alloc.c: free_one_page. Free straight to the buddy lists under
    zone->lock."""
    async with pa.zone_locked(zone, "free_one_page"):
        free_one_page_locked(zone, pfn, order)
