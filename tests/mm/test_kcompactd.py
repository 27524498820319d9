"""kcompactd (mm/compaction.c, Linux 6.12): the 500 ms timer, wake-ups (including the ones
refused while it is busy), kcompactd_do_work, proactive compaction's marks, its skip while
kswapd runs, the 32 s back-off, and the proactiveness sysctl trigger.

The compaction and reclaim bodies are the fakes of test_kcompactd_fakes (they act on the real
zone state); what is asserted is kcompactd's own behaviour."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.engine import MemoryRecorder, Sim
from emulator.mm.compaction.control import COMPACT_MAX_DEFER_SHIFT, CompactResult
from emulator.mm.compaction.kcompactd import HPAGE_FRAG_CHECK_INTERVAL_NS, compaction_ops
from emulator.mm.compaction.suitable import should_proactive_compact_node
from emulator.mm.initstate import free_k_of_n
from emulator.mm.internal import MIGRATE_SYNC_LIGHT
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_MOVABLE, OWNER_UNMOVABLE
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_KERNEL
from emulator.mm.reclaim.kswapd import Kthreads, start_kthreads
from emulator.mm.reclaim.lru import adopt_allocated


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


FakeCompaction = _fakes().FakeCompaction
FakeReclaim = _fakes().FakeReclaim
node_score = _fakes().node_score

MS = 1_000_000
S = 1_000_000_000


def build(
    proactiveness: int = 20,
    fragmented: bool = False,
    movable: bool = True,
    compact_cost: int = 1 * MS,
    reclaim_cost: int = 1 * MS,
    seed: int = 0,
    real: bool = False,
) -> tuple[Machine, Sim, PageAllocator, Kthreads, FakeCompaction, FakeReclaim]:
    """256 MiB, one Normal zone, 2 CPUs; ``fragmented``: 3 of every 4 pages free in every
    pageblock (random ones), the rest ``movable`` or unmovable; ``real``: kcompactd drives
    the real mm/compaction.c (else the fake)."""
    rec = MemoryRecorder()
    m = Machine.simple(Normal=65536, recorder=rec)
    m.sysctl.set("vm.compaction_proactiveness", proactiveness)
    sim = Sim("fifo", seed=seed, recorder=rec, strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    if fragmented:
        # every 2 MiB block keeps 1/4 of its pages allocated, spread out: score 100
        free_k_of_n(
            pa.zones[0],
            3,
            4,
            owner=OWNER_MOVABLE if movable else OWNER_UNMOVABLE,
            rng=np.random.default_rng(seed),
        )
        adopt_allocated(pa)  # the allocated quarter is on the LRU, with holders
    fc = FakeCompaction(pa, movable=movable, cost_ns=compact_cost)
    fr = FakeReclaim(pa, cost_ns=reclaim_cost)
    kt = start_kthreads(pa, compaction_ops(pa) if real else fc.ops(), fr.ops())
    return m, sim, pa, kt, fc, fr


def events(sim: Sim, name: str) -> list[dict]:
    return [e for e in sim.recorder.events() if e["event"] == name]


async def test_kcompactd_wakes_every_500ms_with_proactiveness() -> None:
    _m, sim, _pa, kt, fc, _fr = build(proactiveness=20)
    await sim.run(until=2 * S + 200 * MS)
    sleeps = [e["t"] for e in events(sim, "mm_compaction_kcompactd_sleep")]
    assert sleeps == [0, 500 * MS, 1000 * MS, 1500 * MS, 2000 * MS]
    assert kt.kcompactd[0].wakeups == {"timer": 4}
    # a balanced, unfragmented node: the timer finds nothing to do
    assert fc.calls == [] and kt.kcompactd[0].proactive_passes == []
    assert HPAGE_FRAG_CHECK_INTERVAL_NS == 500 * MS


async def test_kcompactd_never_wakes_by_timer_when_proactiveness_is_0() -> None:
    _m, sim, _pa, kt, fc, _fr = build(proactiveness=0, fragmented=True)
    await sim.run(until=10 * S)
    assert [e["t"] for e in events(sim, "mm_compaction_kcompactd_sleep")] == [0]
    assert kt.kcompactd[0].wakeups == {}
    assert kt.kcompactd[0].timeout_ns is None
    assert fc.calls == []


async def test_wakeup_refused_while_busy_is_served_at_next_loop() -> None:
    _m, sim, pa, kt, fc, _fr = build(proactiveness=0, compact_cost=50 * MS)
    kc = kt.kcompactd[0]
    refused: list[bool] = []

    async def waker() -> None:
        await sim.delay(1 * MS)
        await sim.sync()
        assert kc.wakeup_kcompactd(2, 2, "test")  # kcompactd sleeps: woken
        await sim.delay(9 * MS)
        await sim.sync()
        assert not kc.kcompactd_wait.active()  # busy in kcompactd_do_work
        refused.append(kc.wakeup_kcompactd(9, 2, "test"))

    sim.spawn("waker", waker)
    await sim.run(until=1 * S)
    assert refused == [False]
    # one mm_compaction_wakeup_kcompactd (the refused one fires none) ...
    wakes = events(sim, "mm_compaction_wakeup_kcompactd")
    assert [(e["t"], e["order"]) for e in wakes] == [(1 * MS, 2)]
    # ... but two runs: order 2, then order 9 straight after, without sleeping in between
    runs = events(sim, "mm_compaction_kcompactd_wake")
    assert [e["order"] for e in runs] == [2, 9]
    assert runs[1]["t"] == runs[0]["t"] + 50 * MS
    assert [c.order for c in fc.calls] == [2, 9]
    assert all(c.mode == MIGRATE_SYNC_LIGHT and not c.proactive for c in fc.calls)
    assert kc.wakeups == {"test": 1, "deferred_request": 1}
    assert pa.vm_events["compact_daemon_wake"] == 2
    # after both, the request is cleared: the last wait is forever (proactiveness 0)
    assert kc.kcompactd_max_order == 0 and kc.kcompactd_highest_zoneidx == kc.nr_zones - 1


async def test_do_work_defers_and_drains_after_complete() -> None:
    _m, sim, pa, kt, fc, _fr = build(proactiveness=0)
    kc = kt.kcompactd[0]
    fc.status = CompactResult.COMPACT_COMPLETE

    async def waker() -> None:
        await sim.delay(1 * MS)
        await sim.sync()
        kc.wakeup_kcompactd(9, 2, "test")

    sim.spawn("waker", waker)
    await sim.run(until=1 * S)
    assert fc.defers == [("Normal", 9)]
    assert pa.vm_events["compact_daemon_wake"] == 1
    assert pa.vm_events["compact_daemon_migrate_scanned"] > 0


async def test_wakeup_kcompactd_needs_a_suitable_node_and_order() -> None:
    _m, sim, _pa, kt, fc, _fr = build(proactiveness=0)
    kc = kt.kcompactd[0]
    out: list[bool] = []

    async def waker() -> None:
        await sim.delay(1 * MS)
        await sim.sync()
        out.append(kc.wakeup_kcompactd(0, 2, "test"))  # order 0: nothing
        fc.suitable_answer = False
        out.append(kc.wakeup_kcompactd(9, 2, "test"))  # not suitable: not woken
        assert kc.kcompactd_max_order == 9  # but the request is recorded

    sim.spawn("waker", waker)
    await sim.run(until=100 * MS)
    assert out == [False, False]
    assert events(sim, "mm_compaction_wakeup_kcompactd") == []


async def test_proactive_pass_takes_score_from_above_high_to_low_mark() -> None:
    _m, sim, pa, kt, _fc, _fr = build(proactiveness=20, fragmented=True, real=True)
    kc = kt.kcompactd[0]
    assert node_score(pa) > 90 and kc.wmarks() == (80, 90)
    await sim.run(until=1200 * MS)
    passes = kc.proactive_passes
    assert len(passes) == 1  # at 500 ms; at 1 s the score is at or below the high mark
    p = passes[0]
    assert p.t_ns == 500 * MS
    # __compact_finished stops the zone as soon as its score is at or below the low mark
    assert p.score_before > 90 and 70 < p.score_after <= 80 and p.pages_migrated > 0
    assert pa.vm_events["compact_daemon_migrate_scanned"] > 0
    assert pa.vm_events["compact_daemon_wake"] == 0  # counted for woken runs only
    assert kc.wakeups == {"timer": 2}
    pa.check()


async def test_proactive_pass_arguments() -> None:
    _m, sim, _pa, kt, fc, _fr = build(proactiveness=20, fragmented=True)
    await sim.run(until=600 * MS)
    assert len(kt.kcompactd[0].proactive_passes) == 1
    # compact_node(proactive): order -1, SYNC_LIGHT, whole zone, skip hints ignored
    c = fc.calls[0]
    assert (c.order, c.mode, c.whole_zone, c.proactive, c.ignore_skip_hint) == (
        -1,
        MIGRATE_SYNC_LIGHT,
        True,
        True,
        True,
    )


async def test_proactive_starts_only_strictly_above_the_high_mark() -> None:
    # the node score of this state is 99 (65536 * 100 // 65537): proactiveness 11 puts the
    # high mark at 99 (not above it: no pass), 12 at 98 (a pass)
    for proactiveness, expect in ((11, 0), (12, 1)):
        _m, sim, pa, kt, _fc, _fr = build(proactiveness=proactiveness, fragmented=True)
        kc = kt.kcompactd[0]
        assert node_score(pa) == 99
        assert kc.wmarks()[1] == 110 - proactiveness
        await sim.run(until=600 * MS)
        assert len(kc.proactive_passes) == expect, proactiveness


async def test_proactive_compaction_skipped_while_kswapd_runs() -> None:
    _m, sim, pa, kt, fc, fr = build(proactiveness=20, fragmented=True, reclaim_cost=1400 * MS)
    kc, ks = kt.kcompactd[0], kt.kswapd[0]
    fr.limit = 0  # reclaim scans but frees nothing: kswapd keeps running
    seen: list[tuple[bool, bool]] = []

    async def waker() -> None:
        await sim.delay(200 * MS)
        await sim.sync()
        zone = pa.zones[0]
        ks.wakeup_kswapd(zone, GFP_KERNEL, 9, zone.zone_idx)  # node not balanced at order 9
        await sim.delay(400 * MS)
        await sim.sync()
        proactive = should_proactive_compact_node(kc.node, 20, kc.kswapd_is_running())
        seen.append((ks.is_running(), proactive))

    sim.spawn("waker", waker)
    await sim.run(until=1200 * MS)
    assert seen == [(True, False)]
    assert node_score(pa) > 90  # would qualify, but kswapd is running
    assert kc.wakeups["timer"] == 2 and kc.proactive_passes == [] and fc.calls == []


async def test_no_progress_backs_off_to_32s() -> None:
    # unmovable memory: the real compaction cannot move it, the score does not go down
    _m, sim, pa, kt, _fc, _fr = build(proactiveness=20, fragmented=True, movable=False, real=True)
    kc = kt.kcompactd[0]
    await sim.run(until=70 * S)
    passes = kc.proactive_passes
    backoff = HPAGE_FRAG_CHECK_INTERVAL_NS << COMPACT_MAX_DEFER_SHIFT
    assert backoff == 32 * S
    assert [p.t_ns for p in passes][:1] == [500 * MS] and len(passes) == 3
    assert all(p.score_after >= p.score_before and p.pages_migrated == 0 for p in passes)
    # each wait after a pass is 32 s (the pass itself takes the rest)
    sleeps = [e["t"] for e in events(sim, "mm_compaction_kcompactd_sleep")]
    assert len(sleeps) == 4
    for p, nxt in zip(passes, [q.t_ns for q in passes[1:]] + [None], strict=True):
        after = min(t for t in sleeps if t > p.t_ns)  # the sleep that follows the pass
        if nxt is not None:
            assert nxt - after == backoff
    assert kc.wakeups == {"timer": 3}
    pa.check()


async def test_writing_proactiveness_triggers_a_pass() -> None:
    m, sim, _pa, kt, _fc, _fr = build(proactiveness=0, fragmented=True)
    kc = kt.kcompactd[0]

    async def admin() -> None:
        await sim.delay(1 * S)
        await sim.sync()
        m.sysctl.set("vm.compaction_proactiveness", 0)  # zero: no trigger
        await sim.delay(1 * S)
        await sim.sync()
        m.sysctl.set("vm.compaction_proactiveness", 20)

    sim.spawn("admin", admin)
    await sim.run(until=2 * S + 100 * MS)
    wakes = events(sim, "mm_compaction_wakeup_kcompactd")
    assert [(e["t"], e["order"]) for e in wakes] == [(2 * S, -1)]
    assert [p.t_ns for p in kc.proactive_passes] == [2 * S]
    assert kc.wakeups == {"sysctl": 1}
    assert not kc.proactive_compact_trigger


def test_kcompactd_runs_are_deterministic() -> None:
    def once() -> list[str]:
        _m, sim, _pa, _kt, _fc, _fr = build(proactiveness=20, fragmented=True, seed=3, real=True)
        trio.run(sim.run, 3 * S)
        return list(sim.recorder.lines)

    assert once() == once()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(
        st.tuples(st.integers(0, 60 * MS), st.integers(1, 10), st.integers(2, 3)),
        min_size=1,
        max_size=12,
    ),
    cost=st.integers(1 * MS, 40 * MS),
)
def test_no_wakeup_request_is_lost(requests: list[tuple[int, int, int]], cost: int) -> None:
    """Whatever the timing against kcompactd's runs, every wakeup_kcompactd(order) is served by
    a kcompactd_do_work at that order or higher, running or later (wakeup_kcompactd records the
    request before its early returns, and the wait re-tests it); the request state ends
    cleared. (Zone index 2 is the only populated zone; 3 is Movable, empty: it never lowers
    the index.)"""
    _m, sim, _pa, kt, fc, _fr = build(proactiveness=0, compact_cost=cost)
    kc = kt.kcompactd[0]
    asked: list[tuple[int, int]] = []

    async def waker() -> None:
        for gap, order, hz in sorted(requests):
            await sim.delay(gap)
            await sim.sync()
            kc.wakeup_kcompactd(order, hz, "test")
            asked.append((sim.current.now, order))

    sim.spawn("waker", waker)
    trio.run(sim.run, 2 * S)
    runs = [(e["t"], e["order"]) for e in events(sim, "mm_compaction_kcompactd_wake")]
    for t, order in asked:
        # served by a run at that order or higher that had not finished yet (a run in progress
        # absorbs a request no larger than its own order: kcompactd_do_work's final reset)
        assert any(rt + cost >= t and ro >= order for rt, ro in runs), (t, order, runs)
    assert kc.kcompactd_max_order == 0
    assert kc.kcompactd_highest_zoneidx == kc.nr_zones - 1
    assert sum(kc.wakeups.values()) == len(runs) == len(fc.calls)
