"""default: a mixed server workload on a 4 GiB, 8-CPU machine that has been up for a while.

The machine's past is the set-up: memory is filled with a background of page cache, anonymous
memory and kernel objects (orders 0-3, 80% movable, 15% unmovable, 5% reclaimable) through the
buddy allocator with :func:`emulator.mm.initstate.random_alloc_free` until only 5% is free,
then a random ``released`` share of those blocks is freed again (a workload that ended, page
cache dropped). Free memory is then plentiful but scattered: the fragmentation score starts in
the 80s, above kcompactd's proactive low mark. Then every CPU serves a mix at ``rate``
allocations per second:

* user page faults: order 0, GFP_HIGHUSER_MOVABLE, lognormal lifetimes around 2 ms;
* slab growth: order 0 and 1 GFP_KERNEL, and order 3 (SLUB's high-order slabs), shorter lived;
* network receive: order 0 GFP_ATOMIC, 100 us, a third freed on another CPU (the skb is
  consumed elsewhere, as with RPS);
* transparent huge pages: order 9 GFP_TRANSHUGE_LIGHT, living ~200 ms;
* long-term pins (e.g. RDMA or vfio): order 0, never freed, pinned.

What to look at: pcp hit rates per order (order 0 hits, order 3 refills), zone->lock contention
from refills and drains, order-9 failures once the background has split the large blocks (the
slow path is not modelled yet, so these fail with their reason), and the fragmentation score.
"""

import numpy as np

from emulator.mm.initstate import random_alloc_free
from emulator.mm.snapshot import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    mix = [
        AllocClass(0, "GFP_HIGHUSER_MOVABLE", weight=60, lifetime="lognormal(2ms,1.0)"),
        AllocClass(0, "GFP_KERNEL", weight=15, lifetime="exp(5ms)"),
        AllocClass(1, "GFP_KERNEL", weight=5, lifetime="exp(5ms)"),
        AllocClass(3, "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY", weight=4, lifetime="exp(2ms)"),
        AllocClass(0, "GFP_ATOMIC", weight=14, lifetime="exp(100us)", remote_free=0.33),
        AllocClass(9, "GFP_TRANSHUGE_LIGHT", weight=p["thp_weight"], lifetime="exp(200ms)"),
        AllocClass(0, "GFP_KERNEL", weight=0.5, pinned=1.0),
    ]
    return Workload([Phase("steady", mix, rate=p["rate"])])


def setup(p, ctx):
    rng = np.random.default_rng(p.seed)
    for zone in ctx.allocator.zones:
        if zone.name == "DMA":
            continue
        held = random_alloc_free(
            zone,
            0.05,
            rng,
            orders=(0, 0, 0, 1, 2, 3),
            migratetypes=(MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE),
            mt_weights=(0.8, 0.15, 0.05),
            churn=0.0,
        )
        for i in rng.permutation(len(held))[: int(p["released"] * len(held))].tolist():
            pfn, order = held[i]
            zone.free_one_page(pfn, order)


SCENARIO = Scenario(
    "default",
    "mixed server workload (faults, slab, network, THP, pins) on a used 4 GiB 8-CPU machine",
    build,
    defaults={"memory": "4G", "cpus": 8, "duration": "500ms"},
    params={
        "rate": Param(40_000.0, "allocations per second per CPU", 1.0, 10_000_000.0),
        "thp_weight": Param(0.3, "weight of order-9 THP allocations in the mix", 0.0, 1000.0),
        "released": Param(
            0.35, "share of the background's blocks freed again before the run", 0.0, 1.0
        ),
    },
    setup=setup,
)
