"""shared_migration_source: parallel compactors isolate and migrate from the same pageblock.

Kernel mechanism: every direct compactor of a zone starts its migration scanner at the zone's
cached position (``compact_cached_migrate_pfn``), so compactors that start together scan the
same pageblocks; kcompactd joins them. Two compactors isolating from one block each take some
of its pages and each leave it half migrated, so neither gets a free block out of it.

Mitigation: e380bebe4771 "mm, compaction: keep migration source private to a single
compaction instance" (v5.1): the first isolation under ``lru_lock`` test-and-sets the block's
skip bit as a claim, and a compactor that finds it already set abandons the block
(``mitigation.skip_claim``; off: the bit is set only after a block that yielded nothing, as
before).

Property violated: ``private_migration_source`` — a compactor isolates from a pageblock while
another still holds pages isolated from it.

Set-up: every other page of every zone is free and the rest is anonymous memory on the LRU.
Every CPU runs ``rounds`` rounds of direct compaction for an order-9 GFP_TRANSHUGE request at
the slow path's retry priority (DEF_COMPACT_PRIORITY: MIGRATE_SYNC_LIGHT, which, unlike the
initial async round, does not leave a block at its first isolation failure), CPU N starting
``stagger`` * N after CPU 0, each at the zone's cached scanner positions. With the defaults (two
CPUs, 100 us apart) the default schedule keeps their source blocks apart and the race needs
exploration with ``--perturb``; ``--set cpus=4 --set stagger=0`` makes every schedule show it.
"""

from emulator.explore.properties import PRIVATE_MIGRATION_SOURCE
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import DEF_COMPACT_PRIORITY, CompactResult
from emulator.mm.initstate import free_k_of_n
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    return Workload(
        [Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, cpus=())],
        idle_cpus=tuple(range(p.cpus)),  # the compactors below run on them
    )


def setup(p, ctx):
    pa = ctx.allocator
    for zone in pa.zones:
        free_k_of_n(zone, 1, 2)
    adopt_allocated(pa)


def actors(p, ctx):
    pa = ctx.allocator
    got = ctx.findings.setdefault("compaction", {"success": 0, "other": 0})

    def compactor(cpu):
        async def run():
            ac, alloc_flags, _ = pa.prepare_alloc_pages(cpu, GFP_TRANSHUGE)
            if p["stagger"] and cpu.id:
                await pa.sim.delay(p["stagger"] * cpu.id)
            for _ in range(p["rounds"]):
                result, _page = await try_to_compact_pages(
                    pa, cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, DEF_COMPACT_PRIORITY
                )
                got["success" if result == CompactResult.COMPACT_SUCCESS else "other"] += 1

        return run

    return [(f"cpu{c.id}-compact", compactor(c)) for c in pa.cpus]


SCENARIO = Scenario(
    "shared_migration_source",
    "direct compactors start at the same cached pfn and share source pageblocks",
    build,
    defaults={"memory": "128M", "cpus": 2, "duration": "20ms", "sample": "1ms"},
    params={
        "rounds": Param(2, "direct compaction rounds per CPU", 1, 1000),
        "stagger": Param(
            "100us", "CPU N starts its first round N * stagger after CPU 0", 0, 10**9, "duration"
        ),
    },
    setup=setup,
    actors=actors,
    properties=[PRIVATE_MIGRATION_SOURCE],
)
