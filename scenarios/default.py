"""default: a mixed server workload on a 4 GiB, 8-CPU machine that has been up for a while.

The machine boots, then a background of long-lived memory (page cache, anonymous memory, some
kernel objects) is laid down with :func:`emulator.mm.initstate.random_alloc_free` until only
``free_after_setup`` of each zone is free, mixing orders and migratetypes so that pageblocks are
shared and steal decisions happen. Then every CPU serves a mix at ``rate`` allocations per
second:

* user page faults: order 0, GFP_HIGHUSER_MOVABLE, lognormal lifetimes around 2 ms;
* slab growth: order 0 and 1 GFP_KERNEL, and order 3 (SLUB's high-order slabs), shorter lived;
* network receive: order 0 GFP_ATOMIC, 100 us, a third freed on another CPU (the skb is
  consumed elsewhere, as with RPS);
* transparent huge pages: order 9 GFP_TRANSHUGE_LIGHT, tens of ms;
* long-term pins (e.g. RDMA or vfio): order 0, never freed, pinned.

What to look at: pcp hit rates per order (order 0 hits, order 3 refills), zone->lock contention
from refills and drains, order-9 failures once the background has split the large blocks (the
slow path is not modelled yet, so these fail with their reason), and the fragmentation score.
"""

import numpy as np

from emulator.mm.snapshot import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
from emulator.scenario import Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    mix = [
        AllocClass(0, "GFP_HIGHUSER_MOVABLE", weight=60, lifetime="lognormal(2ms,1.0)"),
        AllocClass(0, "GFP_KERNEL", weight=15, lifetime="exp(5ms)"),
        AllocClass(1, "GFP_KERNEL", weight=5, lifetime="exp(5ms)"),
        AllocClass(3, "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY", weight=4, lifetime="exp(2ms)"),
        AllocClass(0, "GFP_ATOMIC", weight=14, lifetime="exp(100us)", remote_free=0.33),
        AllocClass(9, "GFP_TRANSHUGE_LIGHT", weight=p["thp_weight"], lifetime="exp(20ms)"),
        AllocClass(0, "GFP_KERNEL", weight=0.5, pinned=1.0),
    ]
    return Workload([Phase("steady", mix, rate=p["rate"])])


def setup(p, ctx):
    rng = np.random.default_rng(p.seed)
    from emulator.mm.initstate import random_alloc_free

    for zone in ctx.allocator.zones:
        if zone.name == "DMA":
            continue
        random_alloc_free(
            zone,
            p["free_after_setup"],
            rng,
            orders=(0, 0, 1, 2, 3, 9),
            migratetypes=(MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE),
            mt_weights=(0.8, 0.15, 0.05),
            churn=0.2,
        )


SCENARIO = Scenario(
    "default",
    "mixed server workload (faults, slab, network, THP, pins) on a used 4 GiB 8-CPU machine",
    build,
    defaults={"memory": "4G", "cpus": 8, "duration": "500ms"},
    params={
        "rate": (40_000.0, "allocations per second per CPU"),
        "thp_weight": (0.3, "weight of order-9 THP allocations in the mix"),
        "free_after_setup": (0.35, "fraction of each zone left free by the background set-up"),
    },
    setup=setup,
)
