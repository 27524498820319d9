"""zone_lock_storm: will-it-scale page_fault style order-0 churn; zone->lock contention vs CPUs.

Every CPU allocates order-0 movable pages back to back (``rate`` per second, fixed arrivals)
and frees each one ``hold`` later, in allocation order: the shape of will-it-scale's
page_fault tests (touch a large mapping page by page, then unmap it). Each CPU therefore holds
``rate * hold`` pages, far more than its pcp ``high``, so its frees keep draining batches to the
buddy lists (free_pcppages_bulk) while its allocations keep refilling (rmqueue_bulk): every batch
is one zone->lock hold, and with more CPUs the holds overlap.

Try::

    mmemu run zone_lock_storm --set cpus=1     # no contention: one CPU
    mmemu run zone_lock_storm --set cpus=8     # contention rises with CPUs
    mmemu run zone_lock_storm --set cpus=8 --set vm.percpu_pagelist_high_fraction=8
                                               # larger pcp high: fewer, bigger batches

docs/scenarios.md has the measured table. The ``findings`` in summary.json give the zone->lock
contention ratio, mean wait and the share of allocations that refilled.
"""

from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    cls = AllocClass(0, "GFP_HIGHUSER_MOVABLE", lifetime=f"fixed({p['hold']}ns)")
    return Workload([Phase("storm", [cls], rate=p["rate"], arrival="fixed")])


def report(p, ctx):
    pa = ctx.allocator
    acq = sum(z.lock.stats.acquisitions for z in pa.zones)
    con = sum(z.lock.stats.contentions for z in pa.zones)
    wait = sum(z.lock.stats.wait_total for z in pa.zones)
    o0 = pa.order_summary().get(0, {})
    return {
        "zone_lock_acquisitions": acq,
        "zone_lock_contended_pct": round(100 * con / acq, 2) if acq else 0.0,
        "zone_lock_wait_avg_ns": wait // con if con else 0,
        "refills_per_1000_allocs": round(
            1000 * o0.get("pcp_refills", 0) / max(o0.get("attempts", 1), 1), 2
        ),
        "pcp_high_cpu0": {z.name: pa.cpus[0].pcp[z.gidx].high for z in pa.zones},
    }


SCENARIO = Scenario(
    "zone_lock_storm",
    "will-it-scale page_fault style order-0 churn: zone->lock contention vs CPUs and pcp high",
    build,
    defaults={"memory": "4G", "cpus": 8, "duration": "10ms"},
    params={
        "rate": Param(2_000_000.0, "allocations per second per CPU", 1.0, 100_000_000.0),
        "hold": Param(
            "2ms", "how long each page is held before it is freed", 1, 3600 * 10**9, "duration"
        ),
    },
    report=report,
)
