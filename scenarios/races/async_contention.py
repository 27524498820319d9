"""async_contention: async compaction meets zone->lock contention: abort (COMPACT_CONTENDED) or
queue behind the allocators.

Kernel mechanism: compaction's free scanner takes ``zone->lock`` and its migration scanner the
node's ``lru_lock`` through ``compact_lock_irqsave``. In MIGRATE_ASYNC mode (the slow path's
first, opportunistic round, and THP faults without direct reclaim) a failed trylock sets
``cc->contended`` and ``__compact_finished`` then returns COMPACT_CONTENDED: async compaction
gives up rather than add to the contention of CPUs allocating and freeing under the same lock.

Mitigation: c67fe3752abe "mm: compaction: Abort async compaction if locks are contended or
taking too long" (v3.3) (``mitigation.async_contended_abort``; off: async mode spins for the
locks like sync mode and scans on).

Property violated: ``async_compaction_bounded`` — an async direct compaction of a zone runs
longer than ``limit`` of virtual time.

Set-up: the lower half of each zone's managed pages is the migration scanner's source: anonymous
memory on the LRU with two of every four pages free (order-1 buddies), the first ``stuck``
pageblocks each holding one unmovable page a quarter of the way in (async direct compaction
migrates the pages before it, then abandons the block at the isolation failure and moves to the
next). The upper half has every other page free (order-0 buddies: the free scanner's targets
and, since ``__rmqueue_smallest`` takes the lowest order first, the only pages the contending
CPUs' pcp refills take, so none of their pcp pages sits in a source block). CPUs 1.. fault and
free short-lived anonymous pages at ``rate`` (each one added to and taken off the LRU under
``lru_lock``, which the migration scanner takes too; pcp refills and drains take
``zone->lock``); CPU 0 faults ``thp`` THPs with GFP_TRANSHUGE, whose first compaction round is
async.
"""

import numpy as np

from emulator.explore.properties import async_compaction_within
from emulator.mm.initstate import allocate_everything, free_pages_mask
from emulator.mm.memmap import OWNER_UNMOVABLE, PG_ALLOC
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.mm.snapshot import PAGEBLOCK_NR_PAGES
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload

LIMIT_NS = 1_000_000
STUCK_AT = 130  # an allocated page a quarter into its pageblock


def build(p):
    if p.cpus < 2:
        raise ValueError("async_contention needs cpus >= 2 (CPU 0 compacts, the others contend)")
    hammer = AllocClass(0, "GFP_HIGHUSER_MOVABLE", lifetime="exp(5us)")
    return Workload(
        [Phase("contend", [hammer], rate=p["rate"], cpus=tuple(range(1, p.cpus)))],
        idle_cpus=(0,),
    )


def setup(p, ctx):
    pa = ctx.allocator
    state = np.frombuffer(pa.memmap.state, dtype=np.uint8)
    owner = np.frombuffer(pa.memmap.owner, dtype=np.uint8)
    for zone in pa.zones:
        allocate_everything(zone)
        lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
        managed = np.flatnonzero(state[lo:hi] == PG_ALLOC)
        if not managed.size:
            continue
        # the managed part's lower half is the migration scanner's source: a pageblock
        # aligned run of blocks, two of every four pages free (order-1 buddies, which the
        # contending CPUs' order-0 refills leave alone); its upper half has every other page
        # free (order-0 buddies: the contending CPUs' supply and the free scanner's targets)
        base = -(-(lo + int(managed[0])) // PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES
        mid = base + (hi - base) // 2 // PAGEBLOCK_NR_PAGES * PAGEBLOCK_NR_PAGES
        pfn = np.arange(lo, hi)
        free_pages_mask(zone, np.where(pfn < mid, pfn % 4 < 2, pfn % 2 == 0) & (pfn >= base))
        # the first `stuck` source blocks hold an unmovable page a quarter of the way in
        stuck = base + np.arange(p["stuck"]) * PAGEBLOCK_NR_PAGES + STUCK_AT
        owner[stuck[stuck < mid]] = OWNER_UNMOVABLE
    adopt_allocated(pa)


def actors(p, ctx):
    pa = ctx.allocator
    got = ctx.findings.setdefault("thp", {"ok": 0, "failed": 0})

    async def compactor():
        for _ in range(p["thp"]):
            pfn = await pa.alloc_pages(pa.cpus[0], 9, GFP_TRANSHUGE)
            got["ok" if pfn >= 0 else "failed"] += 1

    return [("cpu0-thp", compactor)]


SCENARIO = Scenario(
    "async_contention",
    "an async THP compaction meets lru_lock contention from CPUs faulting anonymous pages",
    build,
    defaults={"memory": "128M", "cpus": 8, "duration": "3ms", "sample": "1ms"},
    params={
        "thp": Param(2, "THPs CPU 0 faults", 1, 1000),
        "stuck": Param(8, "leading source blocks holding an unmovable page", 0, 64),
        "rate": Param(2_000_000.0, "page faults per second on each other CPU", 1.0, 1e9),
    },
    setup=setup,
    actors=actors,
    properties=[async_compaction_within(LIMIT_NS)],
)
