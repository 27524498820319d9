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

Set-up: in every pageblock the first 16 of every 32 pages are free (aligned order-4 blocks, no
order-5 or larger), the rest anonymous memory on the LRU. CPUs 1.. fault and free short-lived
anonymous pages at ``rate`` (each one added to and taken off the LRU: ``lru_lock``, taken by
the migration scanner too, is contended); CPU 0 faults ``thp`` THPs with GFP_TRANSHUGE, whose
first compaction round is async.
"""

from emulator.explore.properties import async_compaction_within
from emulator.mm.initstate import free_k_of_n
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload

LIMIT_NS = 1_000_000


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
    for zone in pa.zones:
        free_k_of_n(zone, 16, 32)
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
    "an async THP compaction meets zone->lock contention from CPUs allocating order-4 blocks",
    build,
    defaults={"memory": "128M", "cpus": 8, "duration": "3ms", "sample": "1ms"},
    params={
        "thp": Param(2, "THPs CPU 0 faults", 1, 1000),
        "rate": Param(2_000_000.0, "page faults per second on each other CPU", 1.0, 1e9),
    },
    setup=setup,
    actors=actors,
    properties=[async_compaction_within(LIMIT_NS)],
)
