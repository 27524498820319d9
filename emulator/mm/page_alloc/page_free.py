"""The free side of the page allocator: __free_pages down to the pcp lists or the buddy.

Models mm/page_alloc.c of Linux 6.12: free_pages_prepare (its time), free_unref_page,
free_unref_page_commit (the pcp list add and the drain at ``high``, through
:meth:`~emulator.mm.page_alloc.drain.PcpDrain.free_pcppages_bulk`), and
free_one_page/__free_pages_ok (the
locking half; the buddy merge under the lock is :meth:`Zone.free_one_page
<emulator.mm.page_alloc.buddy.Zone.free_one_page>`).

:class:`PageFree` is a mixin of :class:`~emulator.mm.page_alloc.allocator.PageAllocator` (as
:class:`~emulator.mm.page_alloc.drain.PcpDrain`, which it extends); it uses the allocator's ``sim``,
``costs``, ``rec``, ``memmap``, ``vm_events``, ``zone_of`` and ``zone_locked``.

Simplifies as the allocator does: no debug checks in free_pages_prepare (only its time is
charged), no memcg uncharge, no page_owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.mm.memmap import PG_ALLOC
from emulator.mm.page_alloc.drain import PcpDrain
from emulator.mm.snapshot import (
    MAX_PAGE_ORDER,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    PAGE_ALLOC_COSTLY_ORDER,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import ZONE_BELOW_HIGH, ZONE_MOVABLE, ZONE_RECLAIM_ACTIVE

if TYPE_CHECKING:
    from collections import defaultdict

    from emulator.mm.memmap import Memmap
    from emulator.mm.page_alloc.allocator import Cpu
    from emulator.mm.page_alloc.buddy import Zone

__all__ = ["PageFree"]

_BELOW_HIGH = 1 << ZONE_BELOW_HIGH
_RECLAIM_ACTIVE = 1 << ZONE_RECLAIM_ACTIVE
_PCP_MAX_ORDER = PAGE_ALLOC_COSTLY_ORDER


class PageFree(PcpDrain):
    """The free paths of the page allocator (a mixin; see the module docstring)."""

    memmap: Memmap
    vm_events: defaultdict[str, int]

    def zone_of(self, pfn: int) -> Zone:  # provided by PageAllocator
        raise NotImplementedError

    async def free_pages(self, cpu: Cpu, pfn: int, order: int) -> None:
        """Models mm/page_alloc.c: __free_pages -> free_unref_page (pcp orders) or __free_pages_ok.

        Raises ValueError for a pfn that is not the head of an allocated block of ``order``
        (a double free or a wrong order), naming the pfn and what it is.
        """
        sim = self.sim
        if not 0 <= pfn < self.memmap.end_pfn or not 0 <= order <= MAX_PAGE_ORDER:
            raise ValueError(f"cpu {cpu.id}: free of pfn {pfn} order {order}: out of range")
        # free_pages_prepare runs before any shared state is touched (as free_pages_prepare
        # below, inlined: this is the hot path)
        await sim.delay(self.costs.free_prepare)
        if self._explore:
            await sim.preempt("free_pages")
        else:
            await sim.sync()
        await self.free_prepared(cpu, pfn, order)

    async def free_pages_prepare(self, cpu: Cpu, pfn: int, order: int) -> None:
        """Models mm/page_alloc.c: free_pages_prepare (its time), then synchronise: the free
        touches shared state from here on. ``free_prepared`` follows at that instant."""
        sim = self.sim
        if not 0 <= pfn < self.memmap.end_pfn or not 0 <= order <= MAX_PAGE_ORDER:
            raise ValueError(f"cpu {cpu.id}: free of pfn {pfn} order {order}: out of range")
        # free_pages_prepare runs before any shared state is touched
        await sim.delay(self.costs.free_prepare)
        if self._explore:
            await sim.preempt("free_pages")
        else:
            await sim.sync()

    async def free_prepared(self, cpu: Cpu, pfn: int, order: int) -> None:
        """The rest of __free_pages after free_pages_prepare: free_unref_page (the pcp
        trylock, free_unref_page_commit, a drain at ``high``) or free_one_page. Called at a
        synchronised instant (:meth:`free_pages_prepare`)."""
        sim = self.sim
        mm = self.memmap
        costs = self.costs
        if mm.state[pfn] != PG_ALLOC or mm.order[pfn] != order:
            raise ValueError(
                f"cpu {cpu.id}: free of pfn {pfn:#x} order {order}, but it is not the head of an "
                f"allocated order-{order} block (state {mm.state[pfn]}, order {mm.order[pfn]})"
            )
        zone = self.zone_of(pfn)
        rec = self.rec
        if rec.enabled:
            rec.emit("mm_page_free", pfn=pfn, order=order)
        if not (order <= _PCP_MAX_ORDER or order == PAGEBLOCK_ORDER):
            await self.free_one_page(zone, pfn, order)
            return
        mt = mm.pb_mt[pfn >> PAGEBLOCK_ORDER]
        if mt >= MIGRATE_PCPTYPES:
            if mt == MIGRATE_ISOLATE:
                await self.free_one_page(zone, pfn, order)
                return
            mt = MIGRATE_MOVABLE
        pcp = cpu.pcp[zone.gidx]
        lock = pcp.lock
        if not lock.try_acquire_now("free_unref_page"):
            await self.free_one_page(zone, pfn, order)
            return
        charge = costs.pcp_lock + costs.pcp_list_op
        # free_unref_page_commit
        pcp.alloc_factor >>= 1
        self.vm_events["pgfree"] += 1 << order
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
            await self.free_pcppages_bulk(zone, pcp, count, pindex)
            if zone.flags & _BELOW_HIGH:
                await sim.sync()  # the drain let others run: read zone state at our instant
            if zone.flags & _BELOW_HIGH and zone.zone_watermark_ok(
                0, zone.high_wmark_pages, ZONE_MOVABLE, 0
            ):
                zone.flags &= ~_BELOW_HIGH
        if charge:
            await sim.delay(charge)
        lock.release()

    async def free_one_page(self, zone: Zone, pfn: int, order: int) -> None:
        """Models mm/page_alloc.c: free_one_page. Free straight to the buddy lists under
        zone->lock."""
        async with self.zone_locked(zone, "free_one_page"):
            zone.free_one_page(pfn, order)
