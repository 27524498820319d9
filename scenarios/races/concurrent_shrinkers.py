"""concurrent_shrinkers: direct reclaimers on several CPUs (and kswapd) shrink one slab cache.

Kernel mechanism: ``shrink_slab`` -> ``do_shrink_slab`` (mm/shrinker.c) reads the cache's object
count once (``count_objects``), takes the deferred work (``xchg_nr_deferred``), and then calls
``scan_objects`` in SHRINK_BATCH batches. Nothing serialises shrinkers: every direct reclaimer
and kswapd may scan the same cache at once, so the count it started from is stale while it
scans. ``scan_objects`` walks the cache's list under the list's own lock, takes what is still
there, and returns SHRINK_STOP when it can make no progress; ``do_shrink_slab`` stops at
SHRINK_STOP and hands the unused work back with ``add_nr_deferred``.

Mitigation: none to switch: this is how shrinkers are written (the contract of
``struct shrinker``'s ``scan_objects``, include/linux/shrinker.h). A model that trusted the
stale count popped from an empty list and crashed (``vm.min_free_kbytes`` near the memory
size); the model now walks the list as ``scan_objects`` does.

Property checked: ``no_crash`` (no actor crashes) and ``invariants`` (page conservation, the
slab accounting among them) under every schedule explored.

Set-up: every other page of every zone is free, the others are reclaimable slab, of which
``slab_pages`` are objects of a cache with a shrinker (a small cache, so that the reclaimers
empty it between them); ``vm.min_free_kbytes`` is set so high that every allocation is below
the MIN mark: every CPU allocating order-0 GFP_KERNEL pages enters direct reclaim, and all of
them shrink the one cache at the same time as kswapd.
"""

from emulator.explore.properties import INVARIANTS, NO_CRASH
from emulator.mm.initstate import free_k_of_n
from emulator.mm.memmap import OWNER_RECLAIMABLE, PG_ALLOC
from emulator.mm.reclaim.lru import charge_folio
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    return Workload(
        [Phase("pressure", [AllocClass(0, "GFP_KERNEL", lifetime="exp(50us)")], rate=200_000.0)]
    )


def setup(p, ctx):
    pa = ctx.allocator
    mm = ctx.machine.memmap
    slab = p["slab_pages"]
    for zone in pa.zones:
        free_k_of_n(zone, 1, 2, owner=OWNER_RECLAIMABLE)
        shrinker = pa.shrinkers[zone.node]
        for pfn in range(zone.zone_start_pfn, zone.zone_end_pfn):
            if slab and mm.state[pfn] == PG_ALLOC and mm.owner[pfn] == OWNER_RECLAIMABLE:
                shrinker.register(pfn)
                charge_folio(pa, pfn)
                slab -= 1


SCENARIO = Scenario(
    "concurrent_shrinkers",
    "every CPU in direct reclaim shrinks the same slab cache at once, with kswapd",
    build,
    defaults={
        "memory": "128M",
        "cpus": 4,
        "duration": "2ms",
        "sample": "500us",
        "vm.min_free_kbytes": 80000,
    },
    params={"slab_pages": Param(300, "objects (pages) of the shrinkable slab cache", 0, 1 << 30)},
    setup=setup,
    properties=[NO_CRASH, INVARIANTS],
)
