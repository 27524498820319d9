"""drain_refill: ``drain_all_pages`` races with frees that refill the pcp lists it just drained.

Kernel mechanism: after direct reclaim, a failed attempt calls ``drain_all_pages(NULL)``
(9ee493ce0a60), which drains every CPU's pcp lists one CPU after another (6.12: remotely, under
each ``pcp->lock``), and the allocation tries once more. The other CPUs go on freeing: a CPU
whose list was just drained puts its next order-0 frees on it at once. The drain is a snapshot,
not a barrier: a block whose last pages are freed after the drain is whole again, but split
between the buddy lists and a pcp list, where no allocation can take it.

Mitigation: none closes it in 6.12 (the drain narrows the window; ``should_reclaim_retry`` and
compaction deal with the rest). The entry shows the window under explored schedules and how
``mitigation.drain_after_reclaim=off`` widens it.

Property violated: ``no_failure_with_pcp_pages`` — a high-order allocation fails while an
aligned block of its order is all free, some of it on pcp lists.

Set-up: as ``races/pcp_hidden_block`` (every other page free with unmovable kernel memory
between; ZONE_DMA reclaimable slab), but the odd pages of ``regions`` pageblocks are freed by
CPUs 1.. one every ``interval`` during the run, while CPU 0 asks for an order-9 block with
GFP_KERNEL at ``probe_at``.
"""

from emulator.explore.properties import NO_FAILURE_WITH_PCP_PAGES
from emulator.mm.initstate import allocate_everything, free_k_of_n
from emulator.mm.memmap import OWNER_RECLAIMABLE, OWNER_UNMOVABLE, PG_ALLOC
from emulator.mm.page_alloc.gfp import GFP_KERNEL
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.reclaim.lru import charge_folio
from emulator.mm.zone import ZONE_DMA
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    if p.cpus < 2:
        raise ValueError("drain_refill needs cpus >= 2 (CPU 0 probes, the others free)")
    return Workload(
        [Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, cpus=())],
        idle_cpus=tuple(range(p.cpus)),
    )


def setup(p, ctx):
    pa = ctx.allocator
    mm = ctx.machine.memmap
    for zone in pa.zones:
        if zone.zone_idx == ZONE_DMA:
            allocate_everything(zone, OWNER_RECLAIMABLE)
            shrinker = pa.shrinkers[zone.node]
            for pfn in range(zone.zone_start_pfn, zone.zone_end_pfn):
                if mm.state[pfn] == PG_ALLOC:
                    shrinker.register(pfn)
                    charge_folio(pa, pfn)
        else:
            free_k_of_n(zone, 1, 2, owner=OWNER_UNMOVABLE)
    big = max(pa.zones, key=lambda z: z.managed_pages)
    pages = []
    for block in big.pageblock_range():
        base = block * 512
        odd = range(base + 1, base + 512, 2)
        if base < big.zone_start_pfn or any(mm.state[pfn] != PG_ALLOC for pfn in odd):
            continue
        pages.extend(odd)
        if len(pages) >= 256 * p["regions"]:
            break
    ctx.findings["to_free"] = pages


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim
    pages = ctx.findings.pop("to_free")
    givers = pa.cpus[1:]
    got = ctx.findings.setdefault("probe", {"ok": 0, "failed": 0})

    def giver(i, cpu):
        async def run():
            for pfn in pages[i :: len(givers)]:
                await sim.delay(p["interval"])
                await free_pages(pa, cpu, pfn, 0)

        return run

    async def probe():
        await sim.delay(p["probe_at"])
        pfn = await pa.alloc_pages(pa.cpus[0], 9, GFP_KERNEL)
        got["ok" if pfn >= 0 else "failed"] += 1

    return [("cpu0-probe", probe)] + [
        (f"cpu{c.id}-free", giver(i, c)) for i, c in enumerate(givers)
    ]


SCENARIO = Scenario(
    "drain_refill",
    "drain_all_pages after reclaim races with CPUs freeing onto the lists it drains",
    build,
    defaults={"memory": "1G", "cpus": 2, "duration": "2ms", "sample": "1ms"},
    params={
        "regions": Param(1, "pageblocks whose odd pages are freed during the run", 1, 1 << 20),
        "interval": Param(
            "1us", "time between two frees of the freeing CPUs", 1, 10**9, "duration"
        ),
        "probe_at": Param("400us", "when CPU 0 asks", 0, 3600 * 10**9, "duration"),
    },
    setup=setup,
    actors=actors,
    properties=[NO_FAILURE_WITH_PCP_PAGES],
)
