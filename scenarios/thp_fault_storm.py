"""thp_fault_storm: thpscale-like THP faults from N threads on memory fragmented by page cache.

Modelled on mmtests' thpscale. The machine's past (the set-up), in DMA32 and Normal: memory was
faulted in with anonymous base pages, the first half of every 2 MiB region was unmapped, and
the holes were filled with clean page cache. Then a random ``free`` share of the anonymous
pages was unmapped again. Free memory is scattered base pages, no free 2 MiB block; every
pageblock holds reclaimable cache (first half) and movable anonymous memory (second half).

The run: ``cpus`` threads (one per CPU) each take ``faults // cpus`` anonymous THP faults back
to back (do_huge_pmd_anonymous_page: ``vma_thp_gfp_mask`` for the machine's
``transparent_hugepage.defrag`` and whether the region is MADV_HUGEPAGE (``madvise``); a
failed fault falls back to a base page). The CPUs' own workload is a trickle of order-0 kernel
allocations. kswapd and kcompactd run as in every scenario.

What each defrag mode does with a THP fault (mm/huge_memory.c: vma_thp_gfp_mask):

* ``always``: direct reclaim and compaction in the faulting thread (``__GFP_NORETRY`` unless
  madvised);
* ``defer``: no direct work; wake kswapd and kcompactd, fall back at once;
* ``defer+madvise``: direct for MADV_HUGEPAGE regions, else like defer;
* ``madvise`` (the default): direct for MADV_HUGEPAGE regions, else fall back without waking;
* ``never``: GFP_TRANSHUGE_LIGHT, no reclaim, no compaction, no wake-ups.

``start`` delays the storm: with ``--set start=600ms`` it begins after kcompactd's first
proactive check (500 ms), so ``vm.compaction_proactiveness`` 0 and 20 give different machines
to fault on.

Try::

    mmemu run thp_fault_storm --set transparent_hugepage.defrag=always --set cpus=4
    mmemu run thp_fault_storm --set transparent_hugepage.defrag=defer --set cpus=4

``findings``: huge pages obtained (``thp_fault_alloc``) out of the faults, the fault latency
percentiles (the whole fault: THP attempts plus the fallback), direct compaction and reclaim
counts, and what kswapd and kcompactd did.
"""

import numpy as np

from emulator.engine.percentile import percentile
from emulator.mm.initstate import allocate_everything, free_pages_mask
from emulator.mm.memmap import OWNER_FILE, OWNER_MOVABLE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.mm.snapshot import PAGEBLOCK_NR_PAGES
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload
from emulator.workload.thp_faults import thp_fault_threads


def build(p):
    trickle = AllocClass(0, "GFP_KERNEL", lifetime="exp(1ms)")
    return Workload([Phase("trickle", [trickle], rate=10.0)])


def setup(p, ctx):
    rng = np.random.default_rng(p.seed)
    for zone in ctx.allocator.zones:
        if zone.name == "DMA":
            continue
        allocate_everything(zone, OWNER_MOVABLE)
        lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
        pfns = np.arange(lo, hi)
        first_half = (pfns & (PAGEBLOCK_NR_PAGES - 1)) < PAGEBLOCK_NR_PAGES // 2
        owner = np.frombuffer(zone.memmap.owner, dtype=np.uint8)[lo:hi]
        owner[first_half & (owner == OWNER_MOVABLE)] = OWNER_FILE
        free_pages_mask(zone, ~first_half & (rng.random(hi - lo) < p["free"]))
    adopt_allocated(ctx.allocator)  # on the LRU lists, with holders (page cache, processes)


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim
    per_thread = p["faults"] // p.cpus
    lat = ctx.findings.setdefault("_fault_latencies_ns", [])

    return thp_fault_threads(pa, sim, "thp", per_thread, p["madvise"], lat, p["start"])


def report(p, ctx):
    pa = ctx.allocator
    lat = ctx.findings.pop("_fault_latencies_ns", [])
    ev = pa.machine.vm_events
    start = ctx.vm_events_at_start

    def d(name):
        return ev[name] - start.get(name, 0)

    kt = pa.kthreads
    return {
        "defrag": pa.machine.transparent_hugepage_defrag,
        "threads": p.cpus,
        "faults": len(lat),
        "thp_fault_alloc": d("thp_fault_alloc"),
        "thp_fault_fallback": d("thp_fault_fallback"),
        "huge_page_success_pct": round(100 * d("thp_fault_alloc") / max(len(lat), 1), 1),
        "fault_latency_ns": {
            "p50": percentile(lat, 50),
            "p90": percentile(lat, 90),
            "p99": percentile(lat, 99),
        },
        "compact_stall": d("compact_stall"),
        "compact_success": d("compact_success"),
        "pgsteal_direct": d("pgsteal_direct"),
        "pgsteal_kswapd": d("pgsteal_kswapd"),
        "kswapd_runs": sum(k.runs for k in kt.kswapd),
        "compact_daemon_wake": d("compact_daemon_wake"),
    }


SCENARIO = Scenario(
    "thp_fault_storm",
    "thpscale-like THP faults from N threads on cache-fragmented memory, per defrag mode",
    build,
    defaults={"memory": "1G", "cpus": 4, "duration": "2s", "sample": "20ms"},
    params={
        "faults": Param(
            128, "THP faults in total, split evenly over the threads (one per CPU)", 1, 1 << 20
        ),
        "madvise": Param(True, "the faulting region is MADV_HUGEPAGE"),
        "free": Param(
            0.1, "share of the anonymous base pages unmapped again before the run", 0.0, 1.0
        ),
        "start": Param(
            "0ms",
            "when the threads start faulting (after kcompactd's first proactive check at "
            "500 ms: 600ms)",
            0,
            3600 * 10**9,
            "duration",
        ),
    },
    setup=setup,
    actors=actors,
    report=report,
)
