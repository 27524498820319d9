"""Draining per-CPU page lists back to the buddy allocator, under pcp->lock and zone->lock.

Models mm/page_alloc.c: free_pcppages_bulk (the locking half; the list walk is
:meth:`PerCpuPages.free_bulk`), drain_pages_zone, __drain_all_pages with the
``pcpu_drain_mutex`` trylock rule, and the drain of decay_pcp_high (run from vmstat's
refresh_cpu_vm_stats). In 6.12 a drain of another CPU's lists runs on the calling CPU under that
pcp's own lock (commits 4b23a68f9536, 443c2accd1b6, 01b44456a7aa): no IPI, no workqueue.

The functions take the allocator as the :class:`~emulator.mm.internal.Allocator` interface and
use its ``sim``, ``costs``, ``rec``, ``cpus``, ``zones``, ``pcpu_drain_mutex`` and
``zone_locked``.
"""

from __future__ import annotations

from emulator.mm.internal import Allocator
from emulator.mm.page_alloc.pcp import CONFIG_PCP_BATCH_SCALE_MAX, Cpu, PerCpuPages
from emulator.mm.zone import Zone

__all__ = ["decay_pcp_high", "drain_all_pages", "drain_pages_zone", "free_pcppages_bulk"]


async def free_pcppages_bulk(
    pa: Allocator,
    zone: Zone,
    pcp: PerCpuPages,
    count: int,
    pindex: int,
    site: str = "free_pcppages_bulk",
) -> int:
    """Models mm/page_alloc.c: free_pcppages_bulk. One zone->lock hold for the whole drain
    (caller holds ``pcp->lock``). Fires ``mm_page_pcpu_drain`` per block. Returns pages freed.
    """
    async with pa.zone_locked(zone, site) as hold:
        blocks = pcp.free_bulk(count, pindex)
        rec = pa.rec
        if rec.enabled:
            for pfn, order, mt in blocks:
                rec.emit("mm_page_pcpu_drain", pfn=pfn, order=order, migratetype=mt)
        hold.charge += len(blocks) * pa.costs.bulk_per_block
    return sum(1 << o for _, o, _ in blocks)


async def drain_pages_zone(pa: Allocator, target: Cpu, zone: Zone) -> int:
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
            drained += await free_pcppages_bulk(pa, zone, pcp, to_drain, 0, "drain_pages_zone")
            count -= to_drain
        await pa.sim.delay(pa.costs.pcp_lock)
        pcp.lock.release()
        if not count:
            return drained


async def drain_all_pages(pa: Allocator, cpu: Cpu, zone: Zone | None = None) -> int:
    """Models mm/page_alloc.c: __drain_all_pages(zone, false). Drain every CPU's pcp (for one
    zone or all) from the calling CPU. Takes ``pcpu_drain_mutex`` with trylock: a global drain
    (``zone=None``) returns at once, draining nothing, while another drain runs; a zone drain
    waits for it. Returns pages drained."""
    mutex = pa.pcpu_drain_mutex
    if not await mutex.try_acquire("__drain_all_pages"):
        if zone is None:
            return 0
        await mutex.acquire("__drain_all_pages")
    zones = [zone] if zone is not None else pa.zones
    with_pcps = [c for c in pa.cpus if any(c.pcp[z.gidx].count for z in zones)]
    drained = 0
    for target in with_pcps:
        if pa.explore:
            await pa.sim.preempt("__drain_all_pages:next_cpu")
        await pa.sim.delay(pa.costs.drain_cpu)
        for z in zones:
            drained += await drain_pages_zone(pa, target, z)
    mutex.release()
    return drained


async def decay_pcp_high(pa: Allocator, cpu: Cpu) -> int:
    """Models mm/page_alloc.c: decay_pcp_high for each of ``cpu``'s pcps, as vmstat's
    refresh_cpu_vm_stats runs it about once a second. Returns pages drained."""
    drained = 0
    for z in pa.zones:
        await pa.sim.sync()  # reads pcp->count/high, which remote drains change
        pcp = cpu.pcp[z.gidx]
        to_drain = pcp.decay_high()
        if to_drain > 0:
            await pcp.lock.acquire("decay_pcp_high")
            drained += await free_pcppages_bulk(pa, z, pcp, to_drain, 0, "decay_pcp_high")
            pcp.lock.release()
    return drained
