"""default: a mixed server workload on a 4 GiB, 8-CPU machine that has been up for a while.

The machine's past is the set-up: memory is filled with a background of page cache, anonymous
memory and kernel objects (orders 0-3, 80% movable, 15% unmovable, 5% reclaimable) through the
buddy allocator with :func:`emulator.mm.initstate.random_alloc_free_blocks` until only 5% is
free, then a random ``released`` share of those blocks is freed again (a workload that ended, page
cache dropped). Free memory is then plentiful but scattered: the fragmentation score starts in
the 80s, above kcompactd's proactive low mark. Then every CPU serves a mix at ``rate``
allocations per second:

* user page faults: order 0, GFP_HIGHUSER_MOVABLE, lognormal lifetimes around 2 ms;
* slab growth: order 0 and 1 GFP_KERNEL, and order 3 (SLUB's high-order slabs), shorter lived;
* network receive: order 0 GFP_ATOMIC, 100 us, a third freed on another CPU (the skb is
  consumed elsewhere, as with RPS);
* transparent huge page faults, living ~200 ms, half of them (``thp_madvise``) in
  MADV_HUGEPAGE regions: under the kernel's default ``transparent_hugepage/defrag=madvise``
  (``--set transparent_hugepage.defrag=...`` to change it) those may reclaim and compact
  directly (GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM: the slow path's async compaction,
  then one reclaim + compaction round), the others get GFP_TRANSHUGE_LIGHT and fail fast; a
  failed fault falls back to a base page (``thp_fault_fallback``);
* long-term pins (e.g. RDMA or vfio): order 0, never freed, pinned.

The background's movable blocks that survive the release are split between anonymous memory
and clean page cache (``page_cache``, the share that is cache): direct reclaim frees cache,
never anonymous memory (no swap). Its reclaimable blocks belong to a slab cache whose
shrinker reclaim may call.

What to look at: pcp hit rates per order (order 0 hits, order 3 refills), zone->lock contention
from refills and drains, the THP faults both ways (``thp_fault_alloc``/``thp_fault_fallback``,
``compact_stall``/``compact_success``/``compact_fail``, ``pgmigrate_success``, ``slowpath`` in
summary.json), direct reclaim (``allocstall_*``, ``pgscan_direct``, ``pgsteal_direct``) and
the fragmentation score.
"""

import numpy as np

from emulator.mm.initstate import random_alloc_free_blocks
from emulator.mm.memmap import OWNER_ANON, OWNER_FILE, OWNER_RECLAIMABLE
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.reclaim.lru import adopt_allocated, charge_folio
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
        AllocClass(
            9,
            "GFP_TRANSHUGE_LIGHT",
            weight=p["thp_weight"] * p["thp_madvise"],
            lifetime="exp(200ms)",
            thp_fault=True,
            madv_hugepage=True,
        ),
        AllocClass(
            9,
            "GFP_TRANSHUGE_LIGHT",
            weight=p["thp_weight"] * (1 - p["thp_madvise"]),
            lifetime="exp(200ms)",
            thp_fault=True,
        ),
        AllocClass(0, "GFP_KERNEL", weight=0.5, pinned=1.0),
    ]
    return Workload([Phase("steady", mix, rate=p["rate"])])


def setup(p, ctx):
    rng = np.random.default_rng(p.seed)
    for zone in ctx.allocator.zones:
        if zone.name != "DMA":
            _background(p, ctx, zone, rng)
    # the past's anonymous memory and page cache: mapped (holder handles), on the LRU lists
    adopt_allocated(ctx.allocator)


def _background(p, ctx, zone, rng):
    """Fill ``zone`` with the background, release a share of it, label the survivors (its
    temporary arrays are gone when it returns, before the LRU adoption)."""
    pa = ctx.allocator
    owner = np.frombuffer(ctx.machine.memmap.owner, dtype=np.uint8)
    # the held blocks as arrays (pfns, orders): a list of tuples would take ~100 bytes a
    # block, most of the set-up's memory on a large machine
    pfn_arr, order_arr = random_alloc_free_blocks(
        zone,
        0.05,
        rng,
        orders=_ORDERS,
        migratetypes=(MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE),
        mt_weights=(0.8, 0.15, 0.05),
        churn=0.0,
    )
    pfns = np.frombuffer(pfn_arr, dtype=np.int64)
    orders = np.frombuffer(order_arr, dtype=np.uint8)
    n = len(pfns)
    released = rng.permutation(n)[: int(p["released"] * n)].copy()
    keep = np.ones(n, dtype=bool)
    keep[released] = False
    for lo in range(0, len(released), _CHUNK):
        part = released[lo : lo + _CHUNK]
        for pfn, order in zip(pfns[part].tolist(), orders[part].tolist(), strict=True):
            free_one_page_locked(zone, pfn, order)
    del released
    # rng.random(n) < page_cache, drawn in chunks (one word a double: the same draws)
    cache = np.concatenate(
        [rng.random(min(_CHUNK, n - lo)) < p["page_cache"] for lo in range(0, n, _CHUNK)]
        or [np.zeros(0, dtype=bool)]
    )
    # the surviving anonymous blocks drawn as cache become clean page cache
    kinds = owner[pfns]
    to_file = keep & cache & (kinds == OWNER_ANON)
    for order in sorted(set(_ORDERS)):
        heads = pfns[to_file & (orders == order)]
        if heads.size:
            owner[(heads[:, None] + np.arange(1 << order)).ravel()] = OWNER_FILE
    # the reclaimable ones belong to a slab cache with a shrinker (nr_slab_reclaimable)
    shrinker = pa.shrinkers[zone.node]
    for pfn in pfns[keep & (kinds == OWNER_RECLAIMABLE)].tolist():
        shrinker.register(pfn)
        charge_folio(pa, pfn)


#: the background's block orders (drawn uniformly from these)
_ORDERS = (0, 0, 0, 1, 2, 3)
#: blocks freed per batch of the release (bounds the temporary lists)
_CHUNK = 1 << 16


SCENARIO = Scenario(
    "default",
    "mixed server workload (faults, slab, network, THP, pins) on a used 4 GiB 8-CPU machine",
    build,
    defaults={"memory": "4G", "cpus": 8, "duration": "500ms"},
    params={
        "rate": Param(40_000.0, "allocations per second per CPU", 1.0, 10_000_000.0),
        "thp_weight": Param(0.3, "weight of order-9 THP faults in the mix", 0.0, 1000.0),
        "thp_madvise": Param(0.5, "share of THP faults in MADV_HUGEPAGE regions", 0.0, 1.0),
        "page_cache": Param(
            0.5, "share of the surviving background movable blocks that is clean cache", 0.0, 1.0
        ),
        "released": Param(
            0.35, "share of the background's blocks freed again before the run", 0.0, 1.0
        ),
    },
    setup=setup,
)
