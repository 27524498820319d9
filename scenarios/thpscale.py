"""thpscale: mmtests' thpscale (configs/config-workload-thpscale, shellpack_src/src/thpscale),
the benchmark behind the capture commit (5e1f0f098b46, "mm, compaction: capture a page under
direct compaction").

thpscale maps ``THPSCALE_MAPSIZE`` = 80% of memory split over the threads, each thread: an
anonymous mapping of its share, written (faulted in), then the first half of every 2 MiB of it
unmapped; a file mapping of a quarter of its share read in (the page cache fills the holes: the
allocator takes the smallest free blocks first); then, after a barrier, a second anonymous
mapping of half its share, ``MADV_HUGEPAGE`` in the capture runs, faulted one 2 MiB region at a
time (``nr_hpages = mapsize / threads / 2 MiB / 2``).

The machine's past (the set-up), in DMA32 and Normal: ``mapsize`` of the pageblocks (a seeded
random choice) hold the first mapping: their first half free (the hole), their second half
anonymous memory on the LRU; the page cache (a quarter of the mapped size) fills whole holes,
smallest free blocks first, i.e. the first half of every other mapped block; the other blocks
are free. The run: ``cpus`` threads (one per CPU; mmtests steps 1..4*NUMCPUS) fault the second
mapping back to back (do_huge_pmd_anonymous_page with ``madvise``; a failed THP fault falls
back to a base page). So about half the faults find a free 2 MiB block and the rest need
direct compaction: migrating a block's anonymous half into another block's hole frees it.

Compare capture on and off (``mitigation.capture=off``)::

    mmemu run thpscale
    mmemu run thpscale --set mitigation.capture=off

``findings``: the compaction counters (``compact_stall``, ``_success``, ``_fail``,
``compact_migrate_scanned``, ``compact_free_scanned``, ``compact_isolated``), the THP fault
results (``thp_fault_alloc`` / ``_fallback`` and the success share) and the fault latencies.
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

COUNTERS = (
    "compact_stall",
    "compact_success",
    "compact_fail",
    "compact_migrate_scanned",
    "compact_free_scanned",
    "compact_isolated",
    "pgmigrate_success",
    "thp_fault_alloc",
    "thp_fault_fallback",
)


def build(p):
    trickle = AllocClass(0, "GFP_KERNEL", lifetime="exp(1ms)")
    return Workload([Phase("trickle", [trickle], rate=10.0)])


def setup(p, ctx):
    rng = np.random.default_rng(p.seed)
    half = PAGEBLOCK_NR_PAGES // 2
    for zone in ctx.allocator.zones:
        if zone.name == "DMA":
            continue
        allocate_everything(zone, OWNER_MOVABLE)
        lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
        pfns = np.arange(lo, hi)
        block = pfns // PAGEBLOCK_NR_PAGES
        first = block.min()
        nblocks = int(block.max() - first + 1)
        mapped_blocks = rng.random(nblocks) < p["mapsize"]
        mapped = mapped_blocks[block - first]
        # the page cache (a quarter of the mapped size) fills the holes of every other mapped
        # block, whole (the smallest free blocks go first)
        cache_blocks = mapped_blocks & (np.cumsum(mapped_blocks) % 2 == 0)
        cache = cache_blocks[block - first]
        first_half = (pfns & (PAGEBLOCK_NR_PAGES - 1)) < half
        owner = np.frombuffer(zone.memmap.owner, dtype=np.uint8)[lo:hi]
        owner[cache & first_half & (owner == OWNER_MOVABLE)] = OWNER_FILE
        free_pages_mask(zone, ~mapped | (first_half & ~cache))
    adopt_allocated(ctx.allocator)  # on the LRU lists, with holders (page cache, processes)


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim
    mapped_pages = int(p["mapsize"] * pa.machine.managed_pages)
    # nr_hpages per thread = mapsize / threads / 2 MiB / 2
    per_thread = max(1, mapped_pages // p.cpus // PAGEBLOCK_NR_PAGES // 2)
    lat = ctx.findings.setdefault("_fault_latencies_ns", [])

    return thp_fault_threads(pa, sim, "thpscale", per_thread, p["madvise"], lat)


def report(p, ctx):
    pa = ctx.allocator
    lat = ctx.findings.pop("_fault_latencies_ns", [])
    ev = pa.machine.vm_events
    start = ctx.vm_events_at_start
    d = {name: ev[name] - start.get(name, 0) for name in COUNTERS}
    stall = d["compact_stall"]
    return {
        "threads": p.cpus,
        "faults": len(lat),
        **d,
        "thp_success_pct": round(100 * d["thp_fault_alloc"] / max(len(lat), 1), 1),
        "compact_success_pct": round(100 * d["compact_success"] / max(stall, 1), 1),
        "fault_latency_ns": {
            "p50": percentile(lat, 50),
            "p90": percentile(lat, 90),
            "p99": percentile(lat, 99),
        },
    }


SCENARIO = Scenario(
    "thpscale",
    "mmtests thpscale: threads fault THPs into memory 80% mapped with half-pageblock holes",
    build,
    defaults={"memory": "1G", "cpus": 4, "duration": "5s", "sample": "50ms"},
    params={
        "mapsize": Param(
            0.8, "share of memory the first mapping covers (THPSCALE_MAPSIZE)", 0.01, 1.0
        ),
        "madvise": (True, "the faulted region is MADV_HUGEPAGE (THPSCALE_MADV_HUGEPAGE)"),
    },
    setup=setup,
    actors=actors,
    report=report,
)
