"""compaction_herd: a thundering herd of direct compactors on a zone that has nothing to give.

Kernel mechanism: nothing serialises direct compactors. Every CPU whose high-order allocation
fails enters direct compaction of the same zones (``compact_stall``); when the zone has no
block to give (its free pages scattered between pages compaction cannot move), each of them
scans the zone to the end and fails (``compact_fail``), again and again: wasted scanning that
grows with the number of CPUs.

Mitigation: 4f92e2586b43 "mm: compaction: defer compaction using an exponential backoff when
compaction fails" (v2.6.35): a sync failure (COMPLETE or PARTIAL_SKIPPED) defers the zone, and
the next 1, 2, 4 .. 64 attempts at that order skip it (COMPACT_DEFERRED) instead of scanning
(``mitigation.compaction_deferral``; off: every attempt scans).

Property violated: ``compaction_herd_bounded`` — more than ``limit`` direct compactions of one
zone scan it to the end and fail.

Set-up: every other page of every zone is free and the rest is unmovable kernel memory (off the
LRU: compaction can move nothing). Every CPU faults THPs with GFP_TRANSHUGE
(the slow path: async compaction, one reclaim and sync compaction round, then failure) every
``interval``.
"""

from emulator.explore.properties import failed_compactions_within
from emulator.mm.initstate import free_k_of_n
from emulator.mm.memmap import OWNER_UNMOVABLE
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload

LIMIT = 16


def build(p):
    return Workload(
        [Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, cpus=())],
        idle_cpus=tuple(range(p.cpus)),
    )


def setup(p, ctx):
    for zone in ctx.allocator.zones:
        free_k_of_n(zone, 1, 2, owner=OWNER_UNMOVABLE)


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim
    got = ctx.findings.setdefault("thp", {"ok": 0, "failed": 0})

    def faulter(cpu):
        async def run():
            for _ in range(p["thp"]):
                pfn = await pa.alloc_pages(cpu, 9, GFP_TRANSHUGE)
                got["ok" if pfn >= 0 else "failed"] += 1
                await sim.delay(p["interval"])

        return run

    return [(f"cpu{c.id}-thp", faulter(c)) for c in pa.cpus]


SCENARIO = Scenario(
    "compaction_herd",
    "every CPU compacts a zone that has no block to give, over and over",
    build,
    defaults={"memory": "128M", "cpus": 4, "duration": "5ms", "sample": "1ms"},
    params={
        "thp": Param(4, "THP faults per CPU", 1, 10_000),
        "interval": Param("100us", "time between two faults of a CPU", 0, 10**9, "duration"),
    },
    setup=setup,
    actors=actors,
    properties=[failed_compactions_within(LIMIT)],
)
