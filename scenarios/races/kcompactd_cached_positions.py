"""kcompactd_cached_positions: kcompactd and a direct compactor meet through the zone's cached
scanner positions and skip bits.

Kernel mechanism (mm/compaction.c, 6.12): every compactor of a zone that is not ``whole_zone``
starts its migration scanner at ``zone->compact_cached_migrate_pfn[sync]`` and its free scanner
at ``zone->compact_cached_free_pfn`` (``compact_zone``). kcompactd runs MIGRATE_SYNC_LIGHT and
starts at index 1; a direct compactor's first round is MIGRATE_ASYNC and starts at index 0.
The two indexes move only forward (``update_cached_migrate``: index 0 always, index 1 for sync
modes), are kept equal by ``compact_zone`` (``update_cached``) while the async round isolates
nothing, and are reset to the zone edges when a compactor's scanners meet
(``reset_cached_positions``); the free scanner's ``compact_cached_free_pfn`` only moves down
while scanning (``update_pageblock_skip``). So kcompactd, woken for order 9, and a CPU that
faults a THP a little later begin at the same pfns and scan the same pageblocks; the skip bit
(``PB_migrate_skip``), a hint read without a lock, is all that separates them. Without the claim
they isolate from the same source block and each leaves it half migrated; with it one abandons
the block the other claimed (and a block skipped that way stays skipped until
``__reset_isolation_suitable``, run only when kswapd goes to sleep with
``compact_blockskip_flush`` set by a direct compactor whose scanners met, or when
``compaction_restarting``).

Mitigation: e380bebe4771 "mm, compaction: keep migration source private to a single compaction
instance" (v5.1), ``mitigation.skip_claim``, closes the shared source block. No commit makes the
cached positions private to a compactor: kcompactd and direct compactors share them by design
(``kcompactd_do_work`` uses the zone's positions like any non-whole-zone compaction).

Property violated: ``private_migration_source`` — kcompactd and the direct compactor isolate
from one pageblock at once.

Set-up: every other page of every zone is free and the rest is anonymous memory on the LRU
(ZONE_DMA and ZONE_NORMAL of a 128M machine). At ``wake`` kcompactd is woken for order 9
(``wakeup_kcompactd``, as kswapd does before it sleeps); it compacts ZONE_DMA, then ZONE_NORMAL.
``lag`` later CPU 0 faults ``thp`` THPs (GFP_TRANSHUGE: async, then sync direct compaction) in
ZONE_NORMAL. With the defaults the default schedule has kcompactd reach ZONE_NORMAL's cached
pfn after CPU 0 moved past it, and the race needs exploration with ``--perturb``.
"""

from emulator.explore.properties import PRIVATE_MIGRATION_SOURCE
from emulator.mm.initstate import free_k_of_n
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    return Workload(
        [Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, cpus=())],
        idle_cpus=tuple(range(p.cpus)),  # the THP fault below runs on CPU 0
    )


def setup(p, ctx):
    pa = ctx.allocator
    for zone in pa.zones:
        free_k_of_n(zone, 1, 2)
    adopt_allocated(pa)


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim
    got = ctx.findings.setdefault("thp", {"ok": 0, "failed": 0})

    async def waker():
        await sim.delay(p["wake"])
        await sim.sync()  # wakeup_kcompactd runs at the caller's synchronised instant
        kc = pa.kthreads.kcompactd[0]
        kc.wakeup_kcompactd(9, kc.nr_zones - 1, "scenario")

    async def fault():
        await sim.delay(p["wake"] + p["lag"])
        for _ in range(p["thp"]):
            pfn = await pa.alloc_pages(pa.cpus[0], 9, GFP_TRANSHUGE)
            got["ok" if pfn >= 0 else "failed"] += 1

    return [("wake-kcompactd", waker), ("cpu0-thp", fault)]


SCENARIO = Scenario(
    "kcompactd_cached_positions",
    "kcompactd and a direct compactor start at the zone's cached scanner positions",
    build,
    defaults={"memory": "128M", "cpus": 2, "duration": "5ms", "sample": "1ms"},
    params={
        "wake": Param("10us", "when kcompactd is woken for order 9", 0, 10**9, "duration"),
        "lag": Param("300us", "how long after the wake-up CPU 0 faults", 0, 10**9, "duration"),
        "thp": Param(2, "THPs CPU 0 faults", 1, 1000),
    },
    setup=setup,
    actors=actors,
    properties=[PRIVATE_MIGRATION_SOURCE],
)
