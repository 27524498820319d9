"""The slow path's decisions against Linux 6.12.0 mm/page_alloc.c: __alloc_pages_slowpath,
__alloc_pages_direct_compact's counters, the costly __GFP_NORETRY fail-fast,
should_compact_retry, should_reclaim_retry and the OOM point; and THP faults (mm/huge_memory.c
do_huge_pmd_anonymous_page, mm/mempolicy.c alloc_pages_mpol) through it.

Compaction is replaced by a scripted ``try_to_compact_pages`` so each test fixes the results
the slow path reacts to (the real compactor is tested with mm/compaction.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from emulator.engine import MemoryRecorder, Sim
from emulator.mm.compaction.control import CompactPriority, CompactResult
from emulator.mm.huge_memory import do_huge_pmd_anonymous_page
from emulator.mm.initstate import allocate_everything, free_pages_mask
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_MOVABLE, PG_ISOLATED
from emulator.mm.page_alloc import gfp as G
from emulator.mm.page_alloc import slowpath
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.page_alloc.gfp import (
    __GFP_NORETRY,
    __GFP_RETRY_MAYFAIL,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    GFP_TRANSHUGE,
)
from emulator.mm.page_alloc.highatomic import reserve_highatomic_pageblock
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.page_alloc.slowpath import SlowpathState, should_compact_retry
from emulator.mm.snapshot import MIGRATE_MOVABLE

R = CompactResult
P = CompactPriority


def fragmented(pages: int = 65536) -> tuple[Machine, PageAllocator, Sim]:
    """A Normal zone whose free memory (half of it, far above the high mark) is all in
    order-8 blocks: an order-9 request fails on every freelist attempt."""
    m = Machine.simple(Normal=pages)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    z = pa.zones[0]
    allocate_everything(z, OWNER_MOVABLE)
    idx = np.arange(z.spanned_pages)
    free_pages_mask(z, (idx // 256) % 2 == 0)
    assert z.nr_free[9] == 0 and z.nr_free_pages > z.high_wmark_pages
    return m, pa, sim


class ScriptedCompaction:
    """try_to_compact_pages returning ``results`` in turn (the last one repeats); records
    (gfp, prio) per call. ``on_call(pa, n)`` may change the zone (free or capture a block)."""

    def __init__(
        self,
        results: list[tuple[CompactResult, int]],
        on_call: Callable[[PageAllocator, int], Awaitable[int]] | None = None,
    ) -> None:
        self.results = results
        self.calls: list[tuple[int, int]] = []
        self.on_call = on_call

    async def __call__(
        self, pa: PageAllocator, cpu: Any, gfp: int, order: int, alloc_flags: int, ac: Any, prio: P
    ) -> tuple[CompactResult, int]:
        n = len(self.calls)
        self.calls.append((gfp, int(prio)))
        result, pfn = self.results[min(n, len(self.results) - 1)]
        if self.on_call is not None:
            pfn = await self.on_call(pa, n)
        return result, pfn


async def alloc(pa: PageAllocator, sim: Sim, order: int, gfp: int) -> int:
    out: list[int] = []

    async def task() -> None:
        out.append(await pa.alloc_pages(pa.cpus[0], order, gfp))

    sim.spawn("cpu0", task)
    await sim.run()
    pa.check()
    return out[0]


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Callable[..., ScriptedCompaction]:
    def make(
        results: list[tuple[CompactResult, int]],
        on_call: Callable[[PageAllocator, int], Awaitable[int]] | None = None,
    ) -> ScriptedCompaction:
        s = ScriptedCompaction(results, on_call)
        monkeypatch.setattr(slowpath, "try_to_compact_pages", s)
        return s

    return make


# -- __alloc_pages_direct_compact: compact_stall / compact_fail / compact_success --------


async def test_skipped_compaction_counts_no_stall(script: Any) -> None:
    m, pa, sim = fragmented()
    s = script([(R.COMPACT_SKIPPED, -1)])
    assert await alloc(pa, sim, 9, GFP_TRANSHUGE) == -1
    ev = m.vm_events
    # initial async compaction, then one reclaim + SYNC_LIGHT compaction round (costly, no
    # RETRY_MAYFAIL): both SKIPPED, so nothing is counted
    assert [p for _, p in s.calls] == [P.COMPACT_PRIO_ASYNC, P.COMPACT_PRIO_SYNC_LIGHT]
    assert ev["compact_stall"] == ev["compact_fail"] == ev["compact_success"] == 0
    st = pa.slowpath_stats[9]
    assert st.entered == 1 and st.failed == {"costly_order": 1}


async def test_deferred_counts_a_stall_and_a_fail(script: Any) -> None:
    m, pa, sim = fragmented()
    script([(R.COMPACT_DEFERRED, -1)])
    assert await alloc(pa, sim, 9, GFP_TRANSHUGE) == -1
    # "At least in one zone compaction wasn't deferred or skipped": an all-DEFERRED result is
    # still counted, as the source does (only SKIPPED returns before count_vm_event)
    assert m.vm_events["compact_stall"] == 2
    assert m.vm_events["compact_fail"] == 2
    assert m.vm_events["compact_success"] == 0


async def test_success_via_freelist_counts_success_and_resets_deferral(script: Any) -> None:
    m, pa, sim = fragmented()
    z = pa.zones[0]
    z.compact_considered, z.compact_defer_shift, z.compact_order_failed = 3, 4, 5
    z.compact_blockskip_flush = True

    async def free_a_block(pa: PageAllocator, n: int) -> int:
        # compaction "moved" pages: the order-8 block next to a free one is freed
        async with pa.zone_locked(z, "test"):
            free_one_page_locked(z, 256, 8)
        return -1

    script([(R.COMPACT_SUCCESS, -1)], free_a_block)
    pfn = await alloc(pa, sim, 9, GFP_TRANSHUGE)
    assert pfn == 0
    ev = m.vm_events
    assert (ev["compact_stall"], ev["compact_success"], ev["compact_fail"]) == (1, 1, 0)
    # compaction_defer_reset(zone, order, true) and compact_blockskip_flush = false
    assert (z.compact_considered, z.compact_defer_shift) == (0, 0)
    assert z.compact_order_failed == 10
    assert z.compact_blockskip_flush is False
    st = pa.slowpath_stats[9]
    assert st.succeeded_after_compaction == 1 and st.captured == 0


async def test_captured_page_is_prepped_without_a_freelist_attempt(script: Any) -> None:
    m, pa, sim = fragmented()
    z = pa.zones[0]

    async def capture(pa: PageAllocator, n: int) -> int:
        async with pa.zone_locked(z, "test"):
            free_one_page_locked(z, 256, 8)
            pfn = rmqueue_buddy_locked(z, 9, MIGRATE_MOVABLE)
        pa.memmap.mark_block(pfn, 9, PG_ISOLATED)  # what capture leaves for the caller
        return pfn

    script([(R.COMPACT_SUCCESS, -1)], capture)
    pfn = await alloc(pa, sim, 9, GFP_TRANSHUGE)
    assert pfn == 0
    assert m.vm_events["compact_success"] == 1
    st = pa.slowpath_stats[9]
    assert st.captured == 1 and st.succeeded_after_compaction == 1


# -- costly __GFP_NORETRY -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "reason"),
    [(R.COMPACT_SKIPPED, "compact_skipped"), (R.COMPACT_DEFERRED, "compact_deferred")],
)
async def test_noretry_costly_fails_fast(script: Any, result: CompactResult, reason: str) -> None:
    m, pa, sim = fragmented()
    s = script([(result, -1)])
    assert await alloc(pa, sim, 9, GFP_TRANSHUGE | __GFP_NORETRY) == -1
    assert len(s.calls) == 1  # the initial async compaction only
    assert sum(m.vm_events[f"allocstall_{z}"] for z in ("dma", "dma32", "normal", "movable")) == 0
    assert pa.slowpath_stats[9].failed == {reason: 1}


async def test_noretry_costly_after_complete_reclaims_once_and_stays_async(script: Any) -> None:
    m, pa, sim = fragmented()
    s = script([(R.COMPACT_COMPLETE, -1)])
    assert await alloc(pa, sim, 9, GFP_TRANSHUGE | __GFP_NORETRY) == -1
    # "sync compaction could be very expensive, so keep using async compaction"
    assert [p for _, p in s.calls] == [P.COMPACT_PRIO_ASYNC, P.COMPACT_PRIO_ASYNC]
    # one direct reclaim: no file pages, so nothing reclaimed; do_try_to_free_pages counts
    # allocstall once per pass and retries once with memcg_full_walk. The index is
    # sc->reclaim_idx = gfp_zone(GFP_TRANSHUGE) = ZONE_MOVABLE, populated or not
    assert m.vm_events["allocstall_movable"] == 2
    assert m.vm_events["allocstall_normal"] == 0
    assert pa.slowpath_stats[9].failed == {"noretry": 1}


@pytest.mark.parametrize(
    ("gfp", "prios"),
    [
        # non-movable order > 0: the initial async compaction first
        (GFP_KERNEL, [P.COMPACT_PRIO_ASYNC, P.COMPACT_PRIO_SYNC_LIGHT]),
        # non-costly movable: straight to reclaim, then compaction at DEF_COMPACT_PRIORITY
        (GFP_HIGHUSER_MOVABLE, [P.COMPACT_PRIO_SYNC_LIGHT]),
    ],
)
async def test_initial_compaction_only_for_costly_or_non_movable(
    script: Any, gfp: int, prios: list[int]
) -> None:
    m = Machine.simple(Normal=65536)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    z = pa.zones[0]
    allocate_everything(z, OWNER_MOVABLE)
    free_pages_mask(z, np.arange(z.spanned_pages) % 2 == 0)  # free memory in single pages
    s = script([(R.COMPACT_COMPLETE, -1)])
    assert await alloc(pa, sim, 2, gfp) == -1
    assert [p for _, p in s.calls] == prios
    # order 2 is not costly: past the round, should_reclaim_retry finds no zone that could
    # pass an order-2 MIN check, and without reclaim progress no compaction retry: the OOM
    # killer would be invoked
    assert pa.slowpath_stats[2].would_oom == 1


# -- should_compact_retry ------------------------------------------------------------------


def state(
    order: int, result: CompactResult, prio: int = P.COMPACT_PRIO_SYNC_LIGHT
) -> SlowpathState:
    st = SlowpathState(0, order, None, -1, True, True, order > 3)  # type: ignore[arg-type]
    st.compact_result = result
    st.compact_priority = prio
    return st


def test_compact_retry_order0_never() -> None:
    assert not should_compact_retry(state(0, R.COMPACT_COMPLETE))


def test_compact_retry_success_non_costly_16_then_escalates_then_stops() -> None:
    st = state(3, R.COMPACT_SUCCESS)
    assert all(should_compact_retry(st) for _ in range(16))
    assert st.compaction_retries == 16
    # the 17th: past MAX_COMPACT_RETRIES, escalate SYNC_LIGHT -> SYNC_FULL, retries reset
    assert should_compact_retry(st)
    assert (st.compact_priority, st.compaction_retries) == (P.COMPACT_PRIO_SYNC_FULL, 0)
    assert all(should_compact_retry(st) for _ in range(16))
    assert not should_compact_retry(st)  # at MIN_COMPACT_PRIORITY: give up


def test_compact_retry_success_costly_is_a_quarter() -> None:
    st = state(9, R.COMPACT_SUCCESS)
    assert all(should_compact_retry(st) for _ in range(4))
    # costly floor is MIN_COMPACT_COSTLY_PRIORITY = SYNC_LIGHT: no escalation from DEF
    assert not should_compact_retry(st)
    assert st.compact_priority == P.COMPACT_PRIO_SYNC_LIGHT


@pytest.mark.parametrize(
    "result",
    [R.COMPACT_COMPLETE, R.COMPACT_PARTIAL_SKIPPED, R.COMPACT_DEFERRED, R.COMPACT_CONTENDED],
)
def test_compact_retry_failure_escalates_priority(result: CompactResult) -> None:
    costly = state(9, result, P.COMPACT_PRIO_ASYNC)
    assert should_compact_retry(costly) and costly.compact_priority == P.COMPACT_PRIO_SYNC_LIGHT
    assert not should_compact_retry(costly)
    small = state(2, result, P.COMPACT_PRIO_SYNC_LIGHT)
    assert should_compact_retry(small) and small.compact_priority == P.COMPACT_PRIO_SYNC_FULL
    assert not should_compact_retry(small)


def test_compact_retry_skipped_asks_whether_reclaim_can_help() -> None:
    st = state(9, R.COMPACT_SKIPPED, P.COMPACT_PRIO_ASYNC)
    assert should_compact_retry(st, lambda: True)
    assert not should_compact_retry(st, lambda: False)
    # SKIPPED never escalates the priority ("Continue if reclaim can help")
    assert st.compact_priority == P.COMPACT_PRIO_ASYNC and st.compaction_retries == 0


def test_compact_retry_tracepoint_fields() -> None:
    rec = MemoryRecorder()
    st = state(9, R.COMPACT_SUCCESS)
    for _ in range(5):
        should_compact_retry(st, rec=rec)
    evs = [e for e in rec.events() if e["event"] == "compact_retry"]
    # include/trace/events/oom.h: the priority and retries it started from, max_retries as
    # used (16 / 4 for costly SUCCESS), result as compact_result_to_feedback prints it
    assert evs[0] == {
        **{k: evs[0][k] for k in ("t", "actor", "event")},
        "order": 9,
        "priority": "COMPACT_PRIO_SYNC_LIGHT",
        "compaction_result": "progress",
        "retries": 0,
        "max_retries": 4,
        "should_retry": 1,
    }
    assert [e["should_retry"] for e in evs] == [1, 1, 1, 1, 0]
    st = state(9, R.COMPACT_COMPLETE, P.COMPACT_PRIO_ASYNC)
    should_compact_retry(st, rec=rec)
    last = rec.events()[-1]
    assert (last["compaction_result"], last["max_retries"]) == ("failed", 16)


# -- should_reclaim_retry and the end ---------------------------------------------------------


async def test_order0_nothing_reclaimable_gives_up_at_once_and_would_oom(script: Any) -> None:
    """Nothing free and nothing reclaimable (anonymous memory, no swap): should_reclaim_retry
    sees no zone that could pass MIN even with everything reclaimed, and the highatomic
    reserve is empty: one round of direct reclaim (allocstall counted twice: the
    memcg_full_walk pass), then the OOM point: GFP_KERNEL order 0 on Normal would invoke the
    OOM killer."""
    m = Machine.simple(Normal=65536)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    allocate_everything(pa.zones[0], OWNER_MOVABLE)
    s = script([(R.COMPACT_SKIPPED, -1)])
    assert await alloc(pa, sim, 0, GFP_KERNEL) == -1
    assert s.calls == []  # order 0 never compacts
    assert m.vm_events["allocstall_normal"] == 2
    assert m.vm_events["pgscan_direct"] == 0
    st = pa.slowpath_stats[0]
    assert st.would_oom == 1 and st.failed == {"oom": 1}


async def run_in_actor(sim: Sim, fn: Callable[[], Any]) -> Any:
    out: list[Any] = []

    async def task() -> None:
        out.append(await fn())

    sim.spawn("cpu0", task)
    await sim.run()
    return out[0]


async def test_should_reclaim_retry_counts_16_loops_without_progress() -> None:
    m = Machine.simple(Normal=65536)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    ac = pa.prepare_alloc_pages(pa.cpus[0], GFP_KERNEL)[0]
    st = SlowpathState(GFP_KERNEL, 0, ac, -1, True, True, False)
    st.alloc_flags = slowpath.gfp_to_alloc_flags(GFP_KERNEL, 0)

    async def loops() -> list[bool]:
        return [await slowpath.should_reclaim_retry(pa, st) for _ in range(18)]

    # the zone is all free: it passes MIN, so each no-progress round retries, until
    # no_progress_loops > MAX_RECLAIM_RETRIES (16)
    assert await run_in_actor(sim, loops) == [True] * 16 + [False, False]
    assert st.no_progress_loops == 18


async def test_should_reclaim_retry_progress_resets_only_non_costly() -> None:
    m = Machine.simple(Normal=65536)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    ac = pa.prepare_alloc_pages(pa.cpus[0], GFP_KERNEL)[0]
    small = SlowpathState(GFP_KERNEL, 3, ac, -1, True, True, False)
    costly = SlowpathState(GFP_KERNEL, 4, ac, -1, True, True, True)
    for st in (small, costly):
        st.no_progress_loops = 5
        st.did_some_progress = 32

    async def both() -> None:
        await slowpath.should_reclaim_retry(pa, small)
        await slowpath.should_reclaim_retry(pa, costly)

    await run_in_actor(sim, both)
    assert small.no_progress_loops == 0
    assert costly.no_progress_loops == 6  # costly orders always count a loop


async def test_should_reclaim_retry_unreserves_highatomic_before_giving_up() -> None:
    """When no zone can pass, unreserve_highatomic_pageblock(ac, true) decides: a reserved
    highatomic block is given back (to ac->migratetype) and the answer is "retry"."""
    m = Machine.simple(Normal=65536)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    z = pa.zones[0]
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_MOVABLE)
    reserve_highatomic_pageblock(z, pfn, 0)
    assert z.nr_reserved_highatomic == 512
    allocate_everything(z, OWNER_MOVABLE)
    z.nr_reserved_highatomic = 512
    free_pages_mask(z, np.arange(z.spanned_pages) == 1)  # one free page, in the reserve
    ac = pa.prepare_alloc_pages(pa.cpus[0], GFP_KERNEL)[0]
    st = SlowpathState(GFP_KERNEL, 0, ac, -1, True, True, False)
    st.alloc_flags = slowpath.gfp_to_alloc_flags(GFP_KERNEL, 0)

    async def twice() -> list[bool]:
        return [await slowpath.should_reclaim_retry(pa, st) for _ in range(2)]

    assert await run_in_actor(sim, twice) == [True, False]
    assert z.nr_reserved_highatomic == 0


async def test_costly_retry_mayfail_stops_without_oom(script: Any) -> None:
    m, pa, sim = fragmented()
    s = script([(R.COMPACT_COMPLETE, -1)])
    assert await alloc(pa, sim, 9, GFP_TRANSHUGE | __GFP_RETRY_MAYFAIL) == -1
    # costly orders always count a no-progress loop; the zone cannot pass an order-9 MIN
    # check even with everything reclaimed (no order-9 block), so should_reclaim_retry says
    # no after the first round; no reclaim progress, so no compaction retry either
    assert [p for _, p in s.calls] == [P.COMPACT_PRIO_ASYNC, P.COMPACT_PRIO_SYNC_LIGHT]
    st = pa.slowpath_stats[9]
    assert st.would_oom == 0 and st.failed == {"reclaim_exhausted": 1}
    assert m.vm_events["compact_stall"] == 2


# -- THP faults (mm/huge_memory.c, mm/mempolicy.c) under defrag=madvise -------------


async def fault(pa: PageAllocator, sim: Sim, madvised: bool) -> tuple[int, int]:
    out: list[tuple[int, int]] = []

    async def task() -> None:
        out.append(await do_huge_pmd_anonymous_page(pa, pa.cpus[0], madvised))

    sim.spawn("cpu0", task)
    await sim.run()
    pa.check()
    return out[0]


async def test_madvise_mode_unmadvised_fault_fails_fast_and_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, pa, sim = fragmented()
    s = ScriptedCompaction([(CompactResult.COMPACT_COMPLETE, -1)])
    monkeypatch.setattr(slowpath, "try_to_compact_pages", s)
    pfn, order = await fault(pa, sim, madvised=False)
    assert pfn >= 0 and order == 0  # a base page
    assert s.calls == []  # no direct reclaim bit: no compaction, no reclaim
    ev = m.vm_events
    assert (ev["thp_fault_alloc"], ev["thp_fault_fallback"]) == (0, 1)
    assert ev["compact_stall"] == 0 and ev["allocstall_movable"] == 0
    # one order-9 request (no __GFP_DIRECT_RECLAIM: no second attempt), failed by reason
    assert pa.slowpath_stats[9].failed == {"watermark_high_order": 1}


async def test_madvise_mode_madvised_fault_compacts_local_node_first_then_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, pa, sim = fragmented()
    s = ScriptedCompaction([(CompactResult.COMPACT_COMPLETE, -1)])
    monkeypatch.setattr(slowpath, "try_to_compact_pages", s)
    pfn, order = await fault(pa, sim, madvised=True)
    assert order == 0 and pfn >= 0
    # alloc_pages_mpol: first GFP_TRANSHUGE | __GFP_THISNODE | __GFP_NORETRY (async
    # compaction, then one reclaim + async compaction: COMPLETE is not SKIPPED/DEFERRED),
    # then the plain mask (async compaction, reclaim, SYNC_LIGHT compaction, stop: costly
    # without __GFP_RETRY_MAYFAIL)
    first = G.GFP_TRANSHUGE | G.__GFP_THISNODE | G.__GFP_NORETRY
    assert s.calls == [(first, 2), (first, 2), (G.GFP_TRANSHUGE, 2), (G.GFP_TRANSHUGE, 1)]
    ev = m.vm_events
    assert (ev["thp_fault_alloc"], ev["thp_fault_fallback"]) == (0, 1)
    assert ev["compact_stall"] == ev["compact_fail"] == 4
    assert pa.slowpath_stats[9].failed == {"noretry": 1, "costly_order": 1}


async def test_madvised_fault_succeeds_after_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    m, pa, sim = fragmented()
    z = pa.zones[0]

    async def free_a_block(pa: PageAllocator, n: int) -> int:
        async with pa.zone_locked(z, "test"):
            free_one_page_locked(z, 256, 8)
        return -1

    s = ScriptedCompaction([(CompactResult.COMPACT_SUCCESS, -1)], free_a_block)
    monkeypatch.setattr(slowpath, "try_to_compact_pages", s)
    pfn, order = await fault(pa, sim, madvised=True)
    assert (pfn, order) == (0, 9)
    ev = m.vm_events
    assert (ev["thp_fault_alloc"], ev["thp_fault_fallback"]) == (1, 0)
    assert (ev["compact_stall"], ev["compact_success"]) == (1, 1)
