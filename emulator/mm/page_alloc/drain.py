"""Draining per-CPU page lists back to the buddy allocator, under pcp->lock and zone->lock.

Models mm/page_alloc.c: free_pcppages_bulk (the locking half; the list walk is
:meth:`PerCpuPages.free_bulk`), drain_pages_zone, __drain_all_pages with the
``pcpu_drain_mutex`` trylock rule, and the drain of decay_pcp_high (run from vmstat's
refresh_cpu_vm_stats). In 6.12 a drain of another CPU's lists runs on the calling CPU under that
pcp's own lock (commits 4b23a68f9536, 443c2accd1b6, 01b44456a7aa): no IPI, no workqueue.

:class:`PcpDrain` is a mixin of :class:`~emulator.mm.page_alloc.allocator.PageAllocator`; it uses
the allocator's ``sim``, ``costs``, ``rec``, ``cpus``, ``zones``, ``pcpu_drain_mutex`` and
``zone_locked``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.mm.page_alloc.pcp import CONFIG_PCP_BATCH_SCALE_MAX, PerCpuPages

if TYPE_CHECKING:
    from emulator.engine import Mutex, Sim
    from emulator.engine.recorder import NullRecorder, Recorder
    from emulator.mm.costs import Costs
    from emulator.mm.internal import ZoneLockHold
    from emulator.mm.page_alloc.allocator import Cpu
    from emulator.mm.page_alloc.buddy import Zone

__all__ = ["PcpDrain"]


class PcpDrain:
    """The drain paths of the page allocator (a mixin; see the module docstring)."""

    sim: Sim
    costs: Costs
    rec: Recorder | NullRecorder
    cpus: list[Cpu]
    zones: list[Zone]
    pcpu_drain_mutex: Mutex
    _explore: bool

    def zone_locked(self, zone: Zone, site: str) -> ZoneLockHold:  # provided by PageAllocator
        raise NotImplementedError

    async def free_pcppages_bulk(
        self,
        zone: Zone,
        pcp: PerCpuPages,
        count: int,
        pindex: int,
        site: str = "free_pcppages_bulk",
    ) -> int:
        """Models mm/page_alloc.c: free_pcppages_bulk. One zone->lock hold for the whole drain
        (caller holds ``pcp->lock``). Fires ``mm_page_pcpu_drain`` per block. Returns pages freed.
        """
        async with self.zone_locked(zone, site) as hold:
            blocks = pcp.free_bulk(count, pindex)
            rec = self.rec
            if rec.enabled:
                for pfn, order, mt in blocks:
                    rec.emit("mm_page_pcpu_drain", pfn=pfn, order=order, migratetype=mt)
            hold.charge += len(blocks) * self.costs.bulk_per_block
        return sum(1 << o for _, o, _ in blocks)

    async def drain_pages_zone(self, target: Cpu, zone: Zone) -> int:
        """Models mm/page_alloc.c: drain_pages_zone. Empty ``target``'s pcp for ``zone`` in chunks
        of batch << CONFIG_PCP_BATCH_SCALE_MAX, each under pcp->lock (from any CPU, as in 6.12: no
        IPI). Returns pages drained."""
        pcp = target.pcp[zone.gidx]
        drained = 0
        while True:
            await pcp.lock.acquire("drain_pages_zone")
            count = pcp.count
            if count:
                to_drain = min(count, pcp.batch << CONFIG_PCP_BATCH_SCALE_MAX)
                drained += await self.free_pcppages_bulk(zone, pcp, to_drain, 0, "drain_pages_zone")
                count -= to_drain
            await self.sim.delay(self.costs.pcp_lock)
            pcp.lock.release()
            if not count:
                return drained

    async def drain_all_pages(self, cpu: Cpu, zone: Zone | None = None) -> int:
        """Models mm/page_alloc.c: __drain_all_pages(zone, false). Drain every CPU's pcp (for one
        zone or all) from the calling CPU. Takes ``pcpu_drain_mutex`` with trylock: a global drain
        (``zone=None``) returns at once, draining nothing, while another drain runs; a zone drain
        waits for it. Returns pages drained."""
        mutex = self.pcpu_drain_mutex
        if not await mutex.try_acquire("__drain_all_pages"):
            if zone is None:
                return 0
            await mutex.acquire("__drain_all_pages")
        zones = [zone] if zone is not None else self.zones
        with_pcps = [c for c in self.cpus if any(c.pcp[z.gidx].count for z in zones)]
        drained = 0
        for target in with_pcps:
            if self._explore:
                await self.sim.preempt("__drain_all_pages:next_cpu")
            await self.sim.delay(self.costs.drain_cpu)
            for z in zones:
                drained += await self.drain_pages_zone(target, z)
        mutex.release()
        return drained

    async def decay_pcp_high(self, cpu: Cpu) -> int:
        """Models mm/page_alloc.c: decay_pcp_high for each of ``cpu``'s pcps, as vmstat's
        refresh_cpu_vm_stats runs it about once a second. Returns pages drained."""
        drained = 0
        for z in self.zones:
            await self.sim.sync()  # reads pcp->count/high, which remote drains change
            pcp = cpu.pcp[z.gidx]
            to_drain = pcp.decay_high()
            if to_drain > 0:
                await pcp.lock.acquire("decay_pcp_high")
                drained += await self.free_pcppages_bulk(z, pcp, to_drain, 0, "decay_pcp_high")
                pcp.lock.release()
        return drained
