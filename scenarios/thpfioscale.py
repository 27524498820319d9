"""thpfioscale: page cache streaming, slab and THP faults together, after mmtests'
thpfioscale (fio reading files while thpscale faults THPs): the workload of the watermark
boost commit (1c30844d2dfe, "mm: reclaim small amounts of memory when an external fragmentation
event occurs", Mel Gorman 2018: fragmenting fallbacks fell 94-98% with
``vm.watermark_boost_factor`` 15000 against 0, and 99.5% of them were MOVABLE requests).

The run starts on a booted machine (memory free). Every CPU runs the same mix at ``rate``:

* page cache streaming (fio reading): order-0 ``GFP_HIGHUSER_MOVABLE`` clean page cache kept
  until reclaim evicts it (a read-ahead stream never lets go on its own);
* slab: order-0 ``GFP_KERNEL | __GFP_RECLAIMABLE`` reclaimable slab (dentries, inodes) with
  lifetimes of ~50 ms, and order-1 ``GFP_KERNEL`` unmovable kernel memory;
* THP faults (thpscale's threads) into a MADV_HUGEPAGE region, each kept ~20 ms.

Memory fills with page cache within the first few hundred ms (start-up); then kswapd keeps
reclaiming it (steady state). A fallback that takes less than a pageblock from another
migratetype's block mixes that block (``mm_page_alloc_extfrag`` with fallback_order <
pageblock_order): with boosting, such an event raises the zone's watermarks by
``watermark_boost_factor`` and kswapd reclaims (then wakes kcompactd) until the boost is gone,
so free pages of the right type are there next time. Compare::

    mmemu run thpfioscale
    mmemu run thpfioscale --set vm.watermark_boost_factor=0

``findings``: fragmenting fallbacks by requesting migratetype, in the start-up window
(``startup``) and after it (steady state), the MOVABLE share, and the THP results.
"""

from emulator.mm.snapshot import MIGRATE_TYPES, MIGRATETYPE_NAMES, PAGEBLOCK_ORDER
from emulator.params import parse_duration_text
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    cache = AllocClass(0, "GFP_HIGHUSER_MOVABLE", weight=80, owner="file", refault=False)
    slab = AllocClass(
        0, "GFP_KERNEL|__GFP_RECLAIMABLE", weight=12, lifetime="exp(50ms)", owner="slab_reclaimable"
    )
    kernel = AllocClass(1, "GFP_KERNEL", weight=6, lifetime="exp(20ms)")
    thp = AllocClass(9, 0, weight=0.2, lifetime="exp(20ms)", thp_fault=True, madv_hugepage=True)
    return Workload([Phase("thpfioscale", [cache, slab, kernel, thp], rate=p["rate"])])


def _fragmenting(pa):
    return [sum(z.extfrag_fragmenting[mt] for z in pa.zones) for mt in range(MIGRATE_TYPES)]


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim
    marks = ctx.findings.setdefault("_extfrag_at", {})

    async def watch():
        # a probe, not a kernel actor: reads the counters at the end of the start-up window
        await sim.delay(parse_duration_text(p["startup"]))
        await sim.sync()
        marks["startup"] = _fragmenting(pa)

    return [("extfrag_probe", watch)]


def report(p, ctx):
    pa = ctx.allocator
    marks = ctx.findings.pop("_extfrag_at", {})
    end = _fragmenting(pa)
    start = marks.get("startup", end)
    steady = [e - s for e, s in zip(end, start, strict=True)]
    ev = pa.machine.vm_events
    at0 = ctx.vm_events_at_start

    def named(counts):
        return {MIGRATETYPE_NAMES[mt]: n for mt, n in enumerate(counts) if n}

    total = sum(end)
    return {
        "watermark_boost_factor": pa.machine.sysctl.get("vm.watermark_boost_factor"),
        "pageblock_order": PAGEBLOCK_ORDER,
        "fragmenting_fallbacks": total,
        "startup": {
            "until_ns": parse_duration_text(p["startup"]),
            "by_migratetype": named(start),
            "total": sum(start),
        },
        "steady": {"by_migratetype": named(steady), "total": sum(steady)},
        "movable_pct": round(100 * end[1] / max(total, 1), 1),
        "thp_fault_alloc": ev["thp_fault_alloc"] - at0.get("thp_fault_alloc", 0),
        "thp_fault_fallback": ev["thp_fault_fallback"] - at0.get("thp_fault_fallback", 0),
        "pgsteal_kswapd": ev["pgsteal_kswapd"] - at0.get("pgsteal_kswapd", 0),
    }


SCENARIO = Scenario(
    "thpfioscale",
    "page cache streaming + slab + THP faults: fragmenting fallbacks with and without boost",
    build,
    defaults={"memory": "64M", "cpus": 2, "duration": "1s", "sample": "50ms"},
    params={
        "rate": Param(15000.0, "allocations per second per CPU (all classes together)", 1.0, 1e9),
        "startup": ("400ms", "the start-up window: fragmenting fallbacks before it are start-up"),
    },
    actors=actors,
    report=report,
)
