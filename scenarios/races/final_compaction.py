"""final_compaction: the allocator's last compaction priority starts at the scanner positions
kswapd's skip-bit reset cached in the middle of the zone.

Kernel mechanism (mm/compaction.c, mm/vmscan.c, mm/page_alloc.c, 6.12): a non-costly
high-order allocation whose compaction keeps failing raises its priority
(``should_compact_retry``) down to COMPACT_PRIO_SYNC_FULL, whose failure is the final answer
(a8e025e55b35 "mm, compaction: add the ultimate direct compaction priority": it ignores
deferral, skip bits and the cached scanner positions). Every other compaction of a zone starts
at ``zone->compact_cached_migrate_pfn`` and ``compact_cached_free_pfn``. When a direct
compactor's scanners meet it sets ``compact_blockskip_flush``; kswapd, going to sleep between
the task's rounds, then runs ``reset_isolation_suitable`` -> ``__reset_isolation_suitable``,
which walks the zone from both ends for a block worth rescanning (an LRU page at the migration
end, a free buddy at the free end) and, finding none, "leaves no distance": it caches both
positions where the walks met, in the middle of the zone. A compaction that starts there meets
its scanners at once and ends COMPACT_PARTIAL_SKIPPED, having scanned nothing.

Mitigation: 06ed29989f39 "mm, compaction: make whole_zone flag ignore cached scanner positions"
(v4.8): ``compact_zone`` starts a ``whole_zone`` compaction (``compact_zone_order`` sets it for
SYNC_FULL) at the zone's edges (``mitigation.whole_zone``; off: the SYNC_FULL round starts at
the cached positions like the other priorities, ``whole_zone`` only if they are at the zone
start).

Property violated: ``final_compaction_covers_zone`` — a SYNC_FULL direct compaction that did
not succeed started away from its zone's edges.

Set-up: ZONE_DMA is all allocated, every other page of it shrinkable slab (direct reclaim makes
progress, yet what it frees never merges above order 0); in the other zones every other page
is free and the rest kernel memory (nothing compaction can move). CPU 0 allocates ``allocs``
order-``order`` blocks with GFP_KERNEL | __GFP_RETRY_MAYFAIL | __GFP_NOWARN: each round of
reclaim and compaction fails, the priority climbs to SYNC_FULL, and kswapd, woken by the
allocation, resets the skip bits between the rounds and wakes kcompactd. kcompactd's own
compaction from the positions the reset left meets its scanners at once and puts them back at
the zone's edges (``reset_cached_positions``). Under the default schedule it does so before
the task's SYNC_FULL round begins, and the round starts at the edges even without the
mitigation; explored schedules (``--perturb``) that let the task in between the reset and
kcompactd show the race.
"""

from emulator.explore.properties import FINAL_COMPACTION_COVERS_ZONE
from emulator.mm.initstate import allocate_everything, free_k_of_n
from emulator.mm.memmap import OWNER_RECLAIMABLE, OWNER_UNMOVABLE, PG_ALLOC
from emulator.mm.page_alloc.gfp import parse_gfp
from emulator.mm.reclaim.lru import charge_folio
from emulator.mm.zone import ZONE_DMA
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    return Workload(
        [Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, cpus=())],
        idle_cpus=tuple(range(p.cpus)),  # the allocation below runs on CPU 0
    )


def setup(p, ctx):
    pa = ctx.allocator
    mm = ctx.machine.memmap
    for zone in pa.zones:
        if zone.zone_idx == ZONE_DMA:
            allocate_everything(zone, OWNER_RECLAIMABLE)
            shrinker = pa.shrinkers[zone.node]
            # every other page is shrinkable slab: reclaim makes progress, yet what it frees
            # never merges above order 0
            for pfn in range(zone.zone_start_pfn | 1, zone.zone_end_pfn, 2):
                if mm.state[pfn] == PG_ALLOC:
                    shrinker.register(pfn)
                    charge_folio(pa, pfn)
        else:
            free_k_of_n(zone, 1, 2, owner=OWNER_UNMOVABLE)


def actors(p, ctx):
    pa = ctx.allocator
    got = ctx.findings.setdefault("alloc", {"ok": 0, "failed": 0})
    gfp = parse_gfp("GFP_KERNEL|__GFP_RETRY_MAYFAIL|__GFP_NOWARN")

    async def alloc():
        for _ in range(p["allocs"]):
            pfn = await pa.alloc_pages(pa.cpus[0], p["order"], gfp)
            got["ok" if pfn >= 0 else "failed"] += 1

    return [("cpu0-alloc", alloc)]


SCENARIO = Scenario(
    "final_compaction",
    "the SYNC_FULL compaction starts where the skip-bit reset left the cached scanners",
    build,
    defaults={"memory": "64M", "cpus": 2, "duration": "5ms", "sample": "1ms"},
    params={
        "order": Param(3, "the allocation's order (non-costly: 1..3)", 1, 3),
        "allocs": Param(1, "allocations CPU 0 makes", 1, 1000),
    },
    setup=setup,
    actors=actors,
    properties=[FINAL_COMPACTION_COVERS_ZONE],
)
