"""pcp_hidden_block: free pages hidden on remote pcp lists make a high-order allocation fail.

Kernel mechanism: an order-0 free goes to the freeing CPU's pcp list (free_unref_page), where it
is not PageBuddy: it does not merge with its free buddy and the high-order part of the
watermark check (and rmqueue) cannot see it. A pageblock whose pages are all free, some on other
CPUs' pcp lists, is not an order-9 block until those lists are drained.

Mitigation: 9ee493ce0a60 "mm: page allocator: drain per-cpu lists after direct reclaim
allocation fails" (v2.6.35): when the attempt after direct reclaim fails, the allocator calls
``drain_all_pages(NULL)`` and tries once more (``mitigation.drain_after_reclaim``; off: no drain,
as before).

Property violated: ``no_failure_with_pcp_pages`` — a high-order allocation fails while an
aligned block of its order is all free, some of it on pcp lists.

Set-up: every other page of every zone but DMA is free and the allocated half is unmovable
kernel memory (off the LRU: compaction cannot move it), so no free block above order 0 exists;
ZONE_DMA is reclaimable slab with a shrinker, so direct reclaim makes progress there without
forming a high-order block. In ``regions`` pageblocks of the largest zone, the allocated odd
pages belong to CPUs 1.., which free them at the start of the run: onto their pcp lists. At
``probe_at`` CPU 0 asks for an order-``order`` block with GFP_KERNEL: the fast path and the
initial async compaction fail, direct reclaim shrinks the slab (progress), the attempt after it
fails, and then the drain makes the hidden blocks whole (on) or the allocation fails (off).

Measured: see docs/races.md (``mmemu run races/pcp_hidden_block --set
mitigation.drain_after_reclaim=off``).
"""

from emulator.explore.properties import NO_FAILURE_WITH_PCP_PAGES
from emulator.mm.initstate import allocate_everything, free_k_of_n
from emulator.mm.memmap import OWNER_RECLAIMABLE, OWNER_UNMOVABLE, PG_ALLOC
from emulator.mm.page_alloc.gfp import GFP_KERNEL
from emulator.mm.reclaim.lru import charge_folio
from emulator.mm.zone import ZONE_DMA
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, FreePattern, Phase, Workload


def build(p):
    if p.cpus <= p["probes"]:
        raise ValueError(
            f"{NAME} needs cpus > probes (CPUs 0..probes-1 probe, the others hide pages)"
        )
    noop = AllocClass(0, "GFP_KERNEL")
    return Workload(
        [
            Phase(
                "free-to-pcp",
                [noop],
                duration=0,
                free_at_end=FreePattern("all"),
                cpus=tuple(range(p["probes"], p.cpus)),
            )
        ],
        idle_cpus=tuple(range(p["probes"])),
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
    givers = ctx.programs[p["probes"] :]
    given = 0
    for block in big.pageblock_range():
        base = block * 512
        odd = range(base + 1, base + 512, 2)
        if base < big.zone_start_pfn or any(mm.state[pfn] != PG_ALLOC for pfn in odd):
            continue  # pageblocks with holes or reserved pages
        for pfn in odd:
            givers[given % len(givers)].adopt(pfn, 0)
        given += 1
        if given == p["regions"]:
            break


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim

    got = ctx.findings.setdefault("probe", {"ok": 0, "failed": 0})

    def probe(cpu):
        async def run():
            await sim.delay(p["probe_at"])
            pfn = await pa.alloc_pages(cpu, p["order"], GFP_KERNEL)
            got["ok" if pfn >= 0 else "failed"] += 1

        return run

    return [(f"cpu{c.id}-probe", probe(c)) for c in pa.cpus[: p["probes"]]]


NAME = "pcp_hidden_block"

SCENARIO = Scenario(
    NAME,
    "an order-9 GFP_KERNEL allocation fails while whole blocks hide on remote pcp lists, unless "
    "the slow path drains them after reclaim",
    build,
    defaults={"memory": "128M", "cpus": 3, "duration": "3ms", "sample": "1ms"},
    params={
        "regions": Param(2, "pageblocks whose odd pages are freed to pcp lists", 1, 1 << 20),
        "order": Param(9, "order of the probing allocation", 1, 10),
        "probe_at": Param("1ms", "when the probing CPUs ask", 0, 3600 * 10**9, "duration"),
        "probes": Param(1, "CPUs that ask for a block at probe_at (CPUs 0..probes-1)", 1, 255),
    },
    setup=setup,
    actors=actors,
    properties=[NO_FAILURE_WITH_PCP_PAGES],
)
