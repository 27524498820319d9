"""proactive: proactive compaction (vm.compaction_proactiveness) against a steady demand for
huge pages, the experiment of commit facdaa917c4d ("mm: proactive compaction", v5.9).

The machine's past (the set-up): in every 2 MiB pageblock of DMA32 and Normal, 3 of every 4
base pages were freed again (random ones) and the quarter still allocated is movable (anonymous
memory on the LRU). Three quarters of memory are free, but not one free 2 MiB block: the node's
fragmentation score is ~99.

The run: for ``warmup`` the CPUs do light order-0 work only; then every CPU asks for huge pages
(order 9, ``GFP_TRANSHUGE``: a THP fault in a MADV_HUGEPAGE region, which may direct-compact)
at ``thp_rate`` per second and keeps them. Run it twice::

    mmemu run proactive                                   # vm.compaction_proactiveness=20
    mmemu run proactive --set vm.compaction_proactiveness=0

With proactiveness 20 (low mark 80, high mark 90), kcompactd's 500 ms timer finds the score
above 90 and compacts the node down to 80 before the demand starts; the huge-page allocations
then take free 2 MiB blocks from the buddy lists, each one raising the score, and every time it
crosses 90 the next timer pulls it back to 80. Huge pages rarely need direct compaction. With
proactiveness 0 kcompactd never wakes by timer: the same allocations find no free block and pay
direct compaction (``compact_stall``) in the allocating task.

summary.json: ``kcompactd[0].proactive_passes`` (time, score before/after, pages migrated),
``timeseries.fragmentation_score`` (the node score at every sample), and ``findings`` with the
huge pages obtained, their allocation latency percentiles, the compaction counters and the score
range during the demand.
"""

import numpy as np

from emulator.engine.percentile import percentile
from emulator.mm.initstate import free_k_of_n
from emulator.mm.memmap import OWNER_MOVABLE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    work = AllocClass(0, "GFP_KERNEL", lifetime="exp(1ms)")
    thp = AllocClass(9, "GFP_TRANSHUGE", lifetime="forever")
    return Workload(
        [
            Phase("warmup", [work], rate=200.0, duration=p["warmup"]),
            Phase("thp_demand", [thp], rate=p["thp_rate"]),
        ]
    )


def setup(p, ctx):
    rng = np.random.default_rng(p.seed)
    for zone in ctx.allocator.zones:
        if zone.name != "DMA":
            free_k_of_n(zone, 3, 4, owner=OWNER_MOVABLE, rng=rng)
    adopt_allocated(ctx.allocator)  # on the LRU lists, with holders (page cache, processes)


def report(p, ctx):
    pa = ctx.allocator
    lat = [x for c in pa.cpus for x in c.stats[9].latencies]
    attempts = sum(c.stats[9].attempts for c in pa.cpus)
    failures = sum(c.stats[9].failures for c in pa.cpus)
    ev = pa.machine.vm_events
    start = ctx.vm_events_at_start
    t = ctx.samples["t_ns"]
    scores = [
        s[0]
        for s, ts in zip(ctx.samples["fragmentation_score"], t, strict=True)
        if ts >= p["warmup"]
    ]
    kc = pa.kthreads.kcompactd[0]
    return {
        "huge_pages_obtained": attempts - failures,
        "huge_page_attempts": attempts,
        "latency_ns": {
            "p50": percentile(lat, 50),
            "p90": percentile(lat, 90),
            "p99": percentile(lat, 99),
            "max": max(lat) if lat else 0,
        },
        "compact_stall": ev["compact_stall"] - start.get("compact_stall", 0),
        "compact_daemon_wake": ev["compact_daemon_wake"] - start.get("compact_daemon_wake", 0),
        "pgmigrate_success": ev["pgmigrate_success"] - start.get("pgmigrate_success", 0),
        "proactive_passes": len(kc.proactive_passes),
        "score_during_demand": [min(scores), max(scores)] if scores else [],
    }


SCENARIO = Scenario(
    "proactive",
    "proactive compaction vs a steady huge-page demand (run with proactiveness 20 and 0)",
    build,
    defaults={"memory": "1G", "cpus": 4, "duration": "4s", "sample": "50ms"},
    params={
        "thp_rate": Param(
            10.0, "huge-page allocations per second per CPU after the warm-up", 0.001, 1_000_000.0
        ),
        "warmup": Param(
            "600ms", "light order-0 work before the demand starts", 0, 3600 * 10**9, "duration"
        ),
    },
    setup=setup,
    report=report,
)
