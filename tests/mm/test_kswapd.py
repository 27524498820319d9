"""kswapd (mm/vmscan.c, Linux 6.12): wakeup_kswapd's conditions, balance_pgdat at the requested
order dropping to order 0 after compact_gap(order), the hand-over to kcompactd when it goes to
sleep, boosted reclaim, ZONE_RECLAIM_ACTIVE, kswapd_failures and the *_wmark_hit_quickly
counters.

The reclaim and compaction bodies are the fakes of test_kcompactd_fakes (acting on the real
zone state); what is asserted is kswapd's own behaviour."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import trio

from emulator.engine import MemoryRecorder, Sim
from emulator.mm.compaction.control import compact_gap
from emulator.mm.initstate import allocate_everything, free_pages_mask
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_ATOMIC, GFP_KERNEL, GFP_TRANSHUGE_LIGHT
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.page_alloc.watermark import zone_watermark_ok
from emulator.mm.reclaim.kswapd import KSWAPD_SHORT_SLEEP_NS, Kthreads
from emulator.mm.reclaim.vmscan import MAX_RECLAIM_RETRIES
from emulator.mm.snapshot import MIGRATE_MOVABLE, PAGEBLOCK_ORDER
from emulator.mm.zone import ZONE_BOOSTED_WATERMARK, ZONE_RECLAIM_ACTIVE, Zone


def _fakes():  # the suite runs with --import-mode=importlib: load the sibling by path
    name = "mmemu_test_kcompactd_fakes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("test_kcompactd_fakes.py")
        )
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


MS = 1_000_000
S = 1_000_000_000


def build(
    *, fresh: bool = False, reclaim_cost: int = 1 * MS, seed: int = 0
) -> tuple[Sim, PageAllocator, Kthreads, object, object, Zone]:
    """256 MiB, one Normal zone; unless ``fresh``, everything allocated but the odd pfns of
    the lower half (16384 free order-0 pages: balanced at order 0, not at any higher order)."""
    from emulator.mm.reclaim.kswapd import start_kthreads

    f = _fakes()
    rec = MemoryRecorder()
    m = Machine.simple(Normal=65536, recorder=rec)
    m.sysctl.set("vm.compaction_proactiveness", 0)  # no proactive passes in these tests
    sim = Sim("fifo", seed=seed, recorder=rec, strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    zone = pa.zones[0]
    if not fresh:
        allocate_everything(zone)
        rel = np.arange(zone.spanned_pages)
        free_pages_mask(zone, (rel & 1).astype(bool) & (rel < zone.spanned_pages // 2))
    fc = f.FakeCompaction(pa)
    fr = f.FakeReclaim(pa, cost_ns=reclaim_cost)
    kt = start_kthreads(pa, fc.ops(), fr.ops())
    return sim, pa, kt, fc, fr, zone


async def take_until(pa: PageAllocator, zone: Zone, free_pages: int) -> None:
    """Allocate order-0 pages from the buddy lists (under zone->lock, in one hold) until the
    zone has ``free_pages`` free."""
    async with pa.zone_locked(zone, "take_until"):
        while zone.nr_free_pages > free_pages:
            assert rmqueue_buddy_locked(zone, 0, MIGRATE_MOVABLE) >= 0
    await pa.sim.sync()


def names(sim: Sim, *wanted: str) -> list[tuple[int, str, dict]]:
    return [(e["t"], e["event"], e) for e in sim.recorder.events() if e["event"] in wanted]


async def test_kswapd_reclaims_compact_gap_then_sleeps_and_wakes_kcompactd_at_alloc_order() -> None:
    sim, pa, kt, fc, fr, zone = build()
    ks = kt.kswapd[0]

    async def cpu() -> None:
        await sim.delay(200 * MS)
        await sim.sync()
        assert not ks.is_running()  # asleep since t=100 ms
        await take_until(pa, zone, zone.low_wmark_pages - 1)
        ks.wakeup_kswapd(zone, GFP_KERNEL, 3, zone.zone_idx)

    sim.spawn("cpu", cpu)
    await sim.run(until=1 * S)
    evs = names(
        sim,
        "mm_vmscan_wakeup_kswapd",
        "mm_vmscan_kswapd_wake",
        "mm_compaction_wakeup_kcompactd",
        "mm_compaction_kcompactd_wake",
        "mm_vmscan_kswapd_sleep",
    )
    seq = [(n, e.get("order")) for _t, n, e in evs]
    assert seq == [
        ("mm_vmscan_kswapd_sleep", None),  # at start: balanced, 100 ms short sleep, then asleep
        ("mm_vmscan_wakeup_kswapd", 3),
        ("mm_vmscan_kswapd_wake", 3),
        ("mm_compaction_wakeup_kcompactd", 3),  # going to sleep: kcompactd for the alloc order
        ("mm_compaction_kcompactd_wake", 3),
        ("mm_vmscan_kswapd_sleep", None),
    ]
    t_wake_kc = evs[3][0]
    assert evs[5][0] == t_wake_kc + KSWAPD_SHORT_SLEEP_NS  # after the 100 ms short sleep
    # one balance_pgdat run: it reclaimed at least compact_gap(3), then balanced at order 0
    assert ks.runs == 1 and pa.vm_events["pageoutrun"] == 1
    assert ks.pages_reclaimed >= compact_gap(3) == 16
    assert zone_watermark_ok(zone, 0, zone.high_wmark_pages, zone.zone_idx)
    assert not zone_watermark_ok(zone, 3, zone.high_wmark_pages, zone.zone_idx)
    # ZONE_RECLAIM_ACTIVE while reclaiming, cleared afterwards; skip bits reset at each sleep
    assert fr.reclaim_active_seen == [True]
    assert not zone.flags & (1 << ZONE_RECLAIM_ACTIVE)
    assert fc.resets == 2
    assert ks.wakeups == 1 and kt.kcompactd[0].wakeups == {"kswapd_sleep": 1}
    assert pa.vm_events["kswapd_low_wmark_hit_quickly"] == 0
    assert pa.vm_events["kswapd_high_wmark_hit_quickly"] == 0


async def test_boosted_reclaim_ends_with_kcompactd_at_pageblock_order() -> None:
    sim, _pa, kt, _fc, fr, zone = build()
    ks = kt.kswapd[0]
    fr.boost_during = 100  # a fallback boosts the zone again while kswapd reclaims

    async def cpu() -> None:
        await sim.delay(200 * MS)
        await sim.sync()
        # a fragmenting fallback boosted the watermark (boost_watermark), and rmqueue saw
        # ZONE_BOOSTED_WATERMARK: wakeup_kswapd(zone, 0, 0, zone_idx)
        zone.watermark_boost = 512
        zone.flags |= 1 << ZONE_BOOSTED_WATERMARK
        assert ks.pgdat_balanced(0, zone.zone_idx)  # balanced even with the boost
        ks.wakeup_kswapd(zone, 0, 0, zone.zone_idx)

    sim.spawn("cpu", cpu)
    await sim.run(until=1 * S)
    assert ks.wakeups == 1 and ks.runs == 1
    # boosted reclaim: no writeback, no swap
    assert fr.writes_seen[0] == (False, False)
    assert ks.pages_reclaimed >= 512
    # only the boost seen at entry is removed: the one added during the run survives
    assert zone.watermark_boost == 100
    wakes = names(sim, "mm_compaction_wakeup_kcompactd", "mm_compaction_kcompactd_wake")
    assert [(n, e["order"]) for _t, n, e in wakes] == [
        ("mm_compaction_wakeup_kcompactd", PAGEBLOCK_ORDER),
        ("mm_compaction_kcompactd_wake", PAGEBLOCK_ORDER),
    ]
    assert kt.kcompactd[0].wakeups == {"kswapd_boost": 1}


async def test_wakeup_kswapd_on_balanced_node_wakes_kcompactd_only_without_direct_reclaim() -> None:
    sim, _pa, kt, _fc, _fr, zone = build(fresh=True)
    ks, kc = kt.kswapd[0], kt.kcompactd[0]
    out: list[tuple[int, int]] = []

    async def cpu() -> None:
        await sim.delay(200 * MS)
        await sim.sync()
        assert ks.pgdat_balanced(PAGEBLOCK_ORDER, zone.zone_idx)
        ks.wakeup_kswapd(zone, GFP_TRANSHUGE_LIGHT | GFP_KERNEL, PAGEBLOCK_ORDER, 2)
        out.append((ks.wakeups, len(kc.kcompactd_wait.wq)))  # direct reclaim: nobody woken
        ks.wakeup_kswapd(zone, GFP_ATOMIC, PAGEBLOCK_ORDER, 2)
        out.append((ks.wakeups, len(kc.kcompactd_wait.wq)))  # atomic: kcompactd woken

    sim.spawn("cpu", cpu)
    await sim.run(until=300 * MS)
    assert out == [(0, 1), (0, 0)]
    assert kc.wakeups == {"wakeup_kswapd": 1}


async def test_hopeless_node_kswapd_failures() -> None:
    sim, pa, kt, _fc, fr, zone = build(reclaim_cost=100_000)
    ks, kc = kt.kswapd[0], kt.kcompactd[0]
    fr.limit = 0  # nothing reclaimable

    async def cpu() -> None:
        await sim.delay(200 * MS)
        await sim.sync()
        await take_until(pa, zone, zone.min_wmark_pages - 1)
        ks.wakeup_kswapd(zone, GFP_KERNEL, 0, zone.zone_idx)
        await sim.delay(300 * MS)
        await sim.sync()
        # hopeless: left to direct reclaim; a non-direct-reclaim caller wakes kcompactd
        assert ks.kswapd_failures == MAX_RECLAIM_RETRIES
        ks.wakeup_kswapd(zone, GFP_KERNEL, 0, zone.zone_idx)
        ks.wakeup_kswapd(zone, GFP_ATOMIC, 2, zone.zone_idx)

    sim.spawn("cpu", cpu)
    await sim.run(until=1 * S)
    # every run went through all priorities without reclaiming a page
    assert ks.runs == MAX_RECLAIM_RETRIES and ks.pages_reclaimed == 0
    assert ks.wakeups == 1
    # between runs kswapd found the node unbalanced right away (no short sleep)
    assert pa.vm_events["kswapd_high_wmark_hit_quickly"] == MAX_RECLAIM_RETRIES - 1
    assert kc.wakeups == {"wakeup_kswapd": 1}


async def test_woken_during_the_short_sleep_counts_low_wmark_hit_quickly() -> None:
    sim, pa, kt, _fc, _fr, zone = build()
    ks = kt.kswapd[0]

    async def cpu() -> None:
        await sim.delay(200 * MS)
        await sim.sync()
        await take_until(pa, zone, zone.low_wmark_pages - 1)
        ks.wakeup_kswapd(zone, GFP_KERNEL, 0, zone.zone_idx)
        await sim.delay(50 * MS)  # kswapd is back in its short sleep by now
        await sim.sync()
        assert ks.kswapd_wait.active()
        await take_until(pa, zone, zone.low_wmark_pages - 1)
        ks.wakeup_kswapd(zone, GFP_KERNEL, 0, zone.zone_idx)

    sim.spawn("cpu", cpu)
    await sim.run(until=1 * S)
    assert ks.wakeups == 2 and ks.runs == 2
    assert pa.vm_events["kswapd_low_wmark_hit_quickly"] == 1
    assert pa.vm_events["kswapd_high_wmark_hit_quickly"] == 0


def test_kswapd_runs_are_deterministic() -> None:
    def once() -> list[str]:
        sim, pa, kt, _fc, _fr, zone = build(seed=5)
        ks = kt.kswapd[0]

        async def cpu() -> None:
            await sim.delay(200 * MS)
            await sim.sync()
            await take_until(pa, zone, zone.low_wmark_pages - 1)
            ks.wakeup_kswapd(zone, GFP_KERNEL, 3, zone.zone_idx)

        sim.spawn("cpu", cpu)
        trio.run(sim.run, 1 * S)
        return list(sim.recorder.lines)

    assert once() == once()


async def test_kswapd_reclaims_page_cache_with_the_real_shrink_node() -> None:
    """kswapd on mm/vmscan.c's shrink_node: a node below its low mark, full of clean page cache,
    is reclaimed to its HIGH mark under the node's lru_lock (pgscan_kswapd, pgsteal_kswapd),
    then kswapd sleeps; compaction is the real one."""
    from emulator.mm.compaction.kcompactd import compaction_ops
    from emulator.mm.memmap import OWNER_FILE
    from emulator.mm.reclaim.kswapd import start_kthreads
    from emulator.mm.reclaim.lru import adopt_allocated

    rec = MemoryRecorder()
    m = Machine.simple(Normal=65536, recorder=rec)
    m.sysctl.set("vm.compaction_proactiveness", 0)
    sim = Sim("fifo", recorder=rec, strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    zone = pa.zones[0]
    allocate_everything(zone, OWNER_FILE)
    rel = np.arange(zone.spanned_pages)
    free_pages_mask(zone, (rel & 1).astype(bool) & (rel < 2 * (zone.min_wmark_pages + 8)))
    assert zone.min_wmark_pages < zone.nr_free_pages < zone.low_wmark_pages
    adopt_allocated(pa)  # the page cache is on the file LRU, held by the cache
    kt = start_kthreads(pa, compaction_ops(pa))
    ks = kt.kswapd[0]
    await sim.run(until=200 * MS)
    ev = pa.vm_events
    # at start the node is unbalanced: no short sleep, one run straight away
    assert ev["kswapd_high_wmark_hit_quickly"] >= 1 and ks.runs >= 1
    assert ev["pgsteal_kswapd"] == ks.pages_reclaimed > 0
    assert ev["pgscan_kswapd"] >= ev["pgsteal_kswapd"]
    assert ev["pgscan_direct"] == ev["pgsteal_direct"] == 0
    assert ks.pgdat_balanced(0, zone.zone_idx)
    assert ks.kswapd_wait.active() and ks.kswapd_failures == 0  # asleep again
    lru = pa.lruvecs[0].lru_lock.stats
    assert lru.acquisitions > 0
    assert names(sim, "mm_vmscan_kswapd_sleep")
    pa.check()
