"""Direct reclaim against Linux 6.12.0 mm/vmscan.c: clean page cache is freed, anonymous
memory is not (no swap), the counters (pgscan_direct, pgsteal_direct, allocstall_<zone>,
slabs_scanned), the SWAP_CLUSTER_MAX goal and the priority loop, the reclaim/compaction stop
at compact_gap(order) for costly orders, the lru_lock as a contended lock, and determinism.
"""

from __future__ import annotations

import numpy as np
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.engine import MemoryRecorder, Sim
from emulator.mm.compaction.control import compact_gap
from emulator.mm.compaction.suitable import compaction_suitable
from emulator.mm.initstate import allocate_everything, free_pages_mask
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_FILE, OWNER_MOVABLE, OWNER_RECLAIMABLE, PG_ALLOC
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import (
    __GFP_NORETRY,
    GFP_ATOMIC,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    GFP_TRANSHUGE,
)
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.reclaim.lru import adopt_allocated, charge_folio
from emulator.mm.reclaim.lruvec import LRU_INACTIVE_ANON
from emulator.mm.reclaim.vmscan import (
    SWAP_CLUSTER_MAX,
    ScanControl,
    compaction_ready,
    try_to_free_pages,
    zone_reclaimable_pages,
)

PRESSURE_GFPS = (
    GFP_KERNEL,
    GFP_HIGHUSER_MOVABLE,
    GFP_ATOMIC,
    GFP_TRANSHUGE,
    GFP_TRANSHUGE | __GFP_NORETRY,
)


def owners(m: Machine) -> np.ndarray:
    return np.frombuffer(m.memmap.owner, dtype=np.uint8)


def full_machine(
    file_share: float,
    pages: int = 65536,
    record: bool = False,
    interleave: bool = False,
    free_tail: int = 0,
    slab: int = 0,
):
    """Every page allocated at order 0; the first ``file_share`` of them clean page cache,
    the rest anonymous (``interleave``: every other page is page cache instead, so freeing
    cache never makes a free block above order 0); ``free_tail`` pages at the top are free; the
    first ``slab`` pages are reclaimable slab instead (not on the LRU)."""
    rec = MemoryRecorder() if record else None
    m = Machine.simple(Normal=pages)
    sim = Sim("fifo", strict=True, **({"recorder": rec} if rec else {}))
    pa = PageAllocator(m, sim, cpus_per_node=2)
    z = pa.zones[0]
    allocate_everything(z, OWNER_MOVABLE)
    if free_tail:
        free_pages_mask(z, np.arange(z.spanned_pages) >= z.spanned_pages - free_tail)
    if interleave:
        owners(m)[z.zone_start_pfn : z.zone_end_pfn : 2] = OWNER_FILE
    else:
        n_file = int(z.spanned_pages * file_share)
        owners(m)[z.zone_start_pfn : z.zone_start_pfn + n_file] = OWNER_FILE
    owners(m)[z.zone_start_pfn : z.zone_start_pfn + slab] = OWNER_RECLAIMABLE
    adopt_allocated(pa)  # mapped by a holder (-1), on the LRU lists, oldest pfn at the tail
    return m, pa, sim, rec


async def run(sim: Sim, *fns) -> list:
    out: list = [None] * len(fns)

    def task(i, fn):
        async def body() -> None:
            out[i] = await fn()

        return body

    for i, fn in enumerate(fns):
        sim.spawn(f"cpu{i}", task(i, fn))
    await sim.run()
    return out


async def test_one_direct_reclaim_pass_counts() -> None:
    m, pa, sim, _ = full_machine(0.5)
    ac = pa.prepare_alloc_pages(pa.cpus[0], GFP_KERNEL)[0]
    (n,) = await run(sim, lambda: try_to_free_pages(pa, pa.cpus[0], ac, 0, GFP_KERNEL))
    pa.check()
    ev = m.vm_events
    # 32768 file pages. DEF_PRIORITY scans lru >> 12 = 8 (direct reclaim at DEF_PRIORITY
    # scans its whole target), priority 11 32760 >> 11 = 15, priority 10 32745 >> 10 = 31:
    # 54 >= nr_to_reclaim (SWAP_CLUSTER_MAX), so do_try_to_free_pages stops
    assert n == 54
    assert ev["pgscan_direct"] == ev["pgsteal_direct"] == 54
    assert ev["pgscan_file"] == ev["pgsteal_file"] == 54
    assert ev["pgscan_anon"] == ev["pgsteal_anon"] == 0
    assert ev["pgscan_kswapd"] == ev["pgsteal_kswapd"] == 0
    assert ev["allocstall_normal"] == 1


async def test_reclaim_frees_clean_file_pages_not_anon() -> None:
    """An order-0 GFP_KERNEL request on a full machine: direct reclaim frees page cache, round
    after round (should_reclaim_retry: progress resets the loop count) until the zone passes
    its MIN mark; no anonymous page is touched."""
    m, pa, sim, rec = full_machine(0.5, record=True)
    z = pa.zones[0]
    anon_before = int(np.count_nonzero(owners(m) == OWNER_MOVABLE))
    file_before = int(np.count_nonzero(owners(m) == OWNER_FILE))
    (pfn,) = await run(sim, lambda: pa.alloc_pages(pa.cpus[0], 0, GFP_KERNEL))
    pa.check()
    assert pfn >= 0
    ev = m.vm_events
    stolen = ev["pgsteal_direct"]
    assert ev["pgscan_direct"] == stolen > 0
    assert int(np.count_nonzero(owners(m) == OWNER_MOVABLE)) == anon_before
    assert int(np.count_nonzero(owners(m) == OWNER_FILE)) == file_before - stolen
    # the holder was told of every eviction (the reverse map's notices)
    assert len(m.rmap.evicted[-1]) == stolen
    assert z.nr_free_pages + pa.pcp_pages() + 1 > z.min_wmark_pages
    assert rec is not None
    rounds = [e for e in rec.events() if e["event"] == "mm_vmscan_direct_reclaim_end"]
    assert ev["allocstall_normal"] == len(rounds)
    assert all(e["nr_reclaimed"] >= SWAP_CLUSTER_MAX for e in rounds)
    assert pa.slowpath_stats[0].succeeded_after_reclaim == 1


async def test_no_swap_anon_only_reclaims_nothing() -> None:
    m, pa, sim, _ = full_machine(0.0)
    ac = pa.prepare_alloc_pages(pa.cpus[0], GFP_KERNEL)[0]
    (n,) = await run(sim, lambda: try_to_free_pages(pa, pa.cpus[0], ac, 0, GFP_KERNEL))
    assert n == 0
    assert m.vm_events["pgscan_direct"] == 0
    assert m.vm_events["allocstall_normal"] == 2  # the memcg_full_walk retry counts again


async def test_slab_shrinker_frees_registered_reclaimable_pages() -> None:
    m, pa, sim, _ = full_machine(0.0, slab=8192)
    z = pa.zones[0]
    slab = np.arange(z.zone_start_pfn, z.zone_start_pfn + 8192)
    for pfn in slab.tolist():
        pa.shrinkers[0].register(pfn)
        charge_folio(pa, pfn)
    ac = pa.prepare_alloc_pages(pa.cpus[0], GFP_KERNEL)[0]
    (n,) = await run(sim, lambda: try_to_free_pages(pa, pa.cpus[0], ac, 0, GFP_KERNEL))
    pa.check()
    # do_shrink_slab at priority 12: delta = (8192 >> 12) * 4 / 2 = 4 (< SHRINK_BATCH 128:
    # deferred); priority 11: (8192 >> 11) * 4 / 2 = 8 plus 4 deferred >> 11 = 0, ... until a
    # pass scans a batch: the reclaimed slab pages are progress (reclaim_state->reclaimed)
    assert n >= SWAP_CLUSTER_MAX
    assert m.vm_events["slabs_scanned"] == n
    assert m.vm_events["pgsteal_direct"] == 0  # slab pages are not LRU steals
    assert pa.shrinkers[0].count_objects() == 8192 - n
    assert pa.lruvecs[0].nr_slab_reclaimable == 8192 - n


def test_compaction_ready_decisions() -> None:
    """compaction_ready: true when the allocation would succeed at MIN, or when compaction is
    suitable and the zone is above HIGH + compact_gap(order); false when compaction is not
    yet suitable."""
    m = Machine.simple(Normal=65536)
    z = m.zone("Normal")
    sc = ScanControl(nr_to_reclaim=32, gfp_mask=GFP_TRANSHUGE, reclaim_idx=3, order=9)
    # all free: an order-9 block is there -> the allocation can already succeed
    assert compaction_ready(z, sc)
    allocate_everything(z, OWNER_MOVABLE)
    assert not compaction_ready(z, sc)  # nothing free: not suitable, reclaim first
    # free single pages up to HIGH + gap + a margin: suitable and above the target
    target = z.high_wmark_pages + compact_gap(9) + 64
    idx = np.arange(z.spanned_pages)
    free_pages_mask(z, (idx % 2 == 0) & (idx < 2 * target))
    assert compaction_suitable(z, 9, 3) and compaction_ready(z, sc)


async def test_costly_reclaim_stops_at_compact_gap() -> None:
    """For a costly order, shrink_node goes on past nr_to_reclaim (should_continue_reclaim)
    until compaction would be suitable: free >= LOW + compact_gap(order); it does not
    reclaim the whole cache. (Cache interleaved with anon: freeing it makes no order-9 block,
    which would stop reclaim earlier: "Allocation can already succeed".)"""
    _m, pa, sim, _ = full_machine(0.5, interleave=True)
    z = pa.zones[0]
    ac = pa.prepare_alloc_pages(pa.cpus[0], GFP_TRANSHUGE)[0]
    (n,) = await run(sim, lambda: try_to_free_pages(pa, pa.cpus[0], ac, 9, GFP_TRANSHUGE))
    pa.check()
    assert n > SWAP_CLUSTER_MAX
    assert n < 32768 // 4
    gap_mark = z.low_wmark_pages + compact_gap(9)
    # __compaction_suitable reads NR_FREE_PAGES: reclaim went on until the buddy lists held
    # LOW + compact_gap(9) pages (what it freed onto the pcp lists does not count there)...
    assert z.nr_free_pages >= gap_mark
    assert compaction_suitable(z, 9, 3)
    # ... and stopped there: past the mark by less than one pcp drain (free_pcppages_bulk
    # moves a batch to the buddy lists at once), far short of the 32768 cache pages
    assert z.nr_free_pages - gap_mark < pa.cpus[0].pcp[0].high_max
    assert n == z.nr_free_pages + pa.pcp_pages()


async def test_direct_reclaim_events_and_lru_lock() -> None:
    m, pa, sim, rec = full_machine(0.5, record=True)
    cpu0, cpu1 = pa.cpus
    await run(
        sim,
        lambda: pa.alloc_pages(cpu0, 0, GFP_KERNEL),
        lambda: pa.alloc_pages(cpu1, 0, GFP_KERNEL),
    )
    pa.check()
    assert rec is not None
    begins = [e for e in rec.events() if e["event"] == "mm_vmscan_direct_reclaim_begin"]
    ends = [e for e in rec.events() if e["event"] == "mm_vmscan_direct_reclaim_end"]
    assert len(begins) == len(ends) >= 2
    assert {e["actor"] for e in begins} == {"cpu0", "cpu1"}
    assert begins[0]["order"] == 0 and begins[0]["gfp_flags"] == "GFP_KERNEL"
    assert sum(e["nr_reclaimed"] for e in ends) == m.vm_events["pgsteal_direct"]
    # two reclaimers on one node interleave on its lru_lock: one waits while the other
    # isolates a batch
    stats = pa.lruvecs[0].lru_lock.stats
    assert stats.acquisitions > 0
    assert stats.contentions > 0


def test_zone_reclaimable_pages_counts_the_file_lru_only() -> None:
    m = Machine.simple(Normal=4096)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    z = pa.zones[0]
    allocate_everything(z, OWNER_MOVABLE)
    owners(m)[z.zone_start_pfn : z.zone_start_pfn + 100] = OWNER_FILE
    adopt_allocated(pa)
    # file LRU pages only: anonymous memory is not reclaimable without swap
    assert zone_reclaimable_pages(pa, z) == 100
    assert pa.lruvecs[0].nr_pages[LRU_INACTIVE_ANON] == z.managed_pages - 100
    assert m.memmap.state[z.zone_start_pfn] == PG_ALLOC


async def test_reclaim_is_deterministic() -> None:
    async def once() -> dict[str, int]:
        m, pa, sim, _ = full_machine(0.5)
        await run(
            sim,
            lambda: pa.alloc_pages(pa.cpus[0], 0, GFP_KERNEL),
            lambda: pa.alloc_pages(pa.cpus[1], 0, GFP_KERNEL),
        )
        return {**m.vm_events, "now": sim.now}

    assert await once() == await once()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    file_share=st.floats(0.1, 0.9),
    ops=st.lists(
        st.tuples(st.sampled_from((0, 0, 1, 2, 3, 9)), st.sampled_from(range(len(PRESSURE_GFPS)))),
        min_size=4,
        max_size=24,
    ),
)
def test_reclaim_under_pressure_keeps_invariants(
    seed: int, file_share: float, ops: list[tuple[int, int]]
) -> None:
    """Random allocations on a full machine (page cache + anon), two CPUs through the whole
    slow path (reclaim, the real compactor, retries): the allocator's invariants hold after
    every run, anonymous pages are never freed by reclaim, and every page cache page that left
    was counted as stolen."""
    rng = np.random.default_rng(seed)
    m = Machine.simple(Normal=16384)
    sim = Sim("random", seed=seed, strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    z = pa.zones[0]
    allocate_everything(z, OWNER_MOVABLE)
    own = owners(m)
    own[z.zone_start_pfn : z.zone_end_pfn][rng.random(z.spanned_pages) < file_share] = OWNER_FILE
    adopt_allocated(pa)
    anon = int(np.count_nonzero(own == OWNER_MOVABLE))
    files = int(np.count_nonzero(own == OWNER_FILE))
    got: dict[int, int] = {}  # unmapped and off the LRU: compaction does not move them

    def cpu_ops(i: int):
        async def body() -> None:
            for order, g in ops[i::2]:
                pfn = await pa.alloc_pages(pa.cpus[i], order, PRESSURE_GFPS[g])
                if pfn >= 0:
                    got[pfn] = order

        return body

    sim.spawn("cpu0", cpu_ops(0))
    sim.spawn("cpu1", cpu_ops(1))
    trio.run(sim.run)
    pa.check()
    # anonymous memory is never reclaimed: pages only leave it by migration (same kind)
    # or never; the new allocations are counted by their own owner kinds
    new_movable = sum(1 << o for p, o in got.items() if own[p] == OWNER_MOVABLE)
    assert int(np.count_nonzero(own == OWNER_MOVABLE)) == anon + new_movable
    assert int(np.count_nonzero(own == OWNER_FILE)) == files - m.vm_events["pgsteal_direct"]


async def test_reclaim_takes_virtual_time_and_other_cpus_run_meanwhile() -> None:
    """Reclaim is the allocating actor's own work in virtual time: while CPU 0 reclaims, CPU 1
    (on a zone above its watermarks) keeps allocating and freeing, and its events fall inside
    CPU 0's reclaim window; the reclaim lasts at least its per-page cost."""
    _m, pa, sim, rec = full_machine(0.5, record=True, free_tail=8192)
    cpu0, cpu1 = pa.cpus
    ac = pa.prepare_alloc_pages(cpu0, GFP_KERNEL)[0]

    async def reclaimer() -> int:
        return await try_to_free_pages(pa, cpu0, ac, 0, GFP_KERNEL)

    async def busy() -> None:
        for _ in range(200):
            pfn = await pa.alloc_pages(cpu1, 0, GFP_KERNEL)
            await sim.delay(100)
            await free_pages(pa, cpu1, pfn, 0)

    (n, _) = await run(sim, reclaimer, busy)
    pa.check()
    assert rec is not None
    evs = rec.events()
    begins = [e["t"] for e in evs if e["event"] == "mm_vmscan_direct_reclaim_begin"]
    ends = [e["t"] for e in evs if e["event"] == "mm_vmscan_direct_reclaim_end"]
    assert len(begins) == len(ends) == 1  # CPU 1 never needed reclaim
    assert ends[0] - begins[0] >= n * pa.costs.shrink_folio
    inside = [
        e
        for e in evs
        if e["actor"] == "cpu1" and e["event"] == "mm_page_alloc" and begins[0] < e["t"] < ends[0]
    ]
    assert inside
