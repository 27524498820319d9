"""The event recorder: JSON lines stamped with virtual time and actor, written sorted by time
although actors running ahead emit out of order, flushed completely on close (also when an
actor crashes), byte-identical for the same run."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from emulator.engine import (
    NULL_RECORDER,
    ActorCrashed,
    MemoryRecorder,
    Recorder,
    Sim,
    SpinLock,
    WaitQueue,
)


def _small_flushes(rec: Recorder, n: int = 5) -> None:
    # white box: make the sink flush every few lines, so partial flushes against the
    # engine's frontier happen many times in a small run
    rec._sink._flush_at = rec._sink._next_flush = n


async def _run(rec, strategy="random(4)", crash_at: int | None = None):
    sim = Sim(strategy, recorder=rec)
    lock = SpinLock(sim, "zone->lock")
    wq = WaitQueue(sim, "wq")

    async def runner_ahead() -> None:
        # long stretches of pure delays: emits far ahead of the others' clocks
        for i in range(60):
            await sim.delay(37)
            rec.emit("mm_local_work", i=i)
            if i % 20 == 19:
                await lock.acquire("runner")
                rec.emit("lock_taken", i=i)
                lock.release()

    async def cpu(k: int) -> None:
        for i in range(40):
            await sim.delay(5 + k)
            await sim.preempt("window")
            await lock.acquire(f"cpu{k}")
            rec.emit("mm_page_alloc", order=i % 3, cpu=k)
            await sim.delay(3)
            lock.release()
            if crash_at is not None and i == crash_at and k == 1:
                raise RuntimeError("boom")
            if i % 10 == 0:
                await wq.wake_up()

    async def daemon() -> None:
        while True:
            woken = await wq.wait(timeout_ns=50)
            rec.emit("kcompactd_wake", woken=woken)

    sim.spawn("runner", runner_ahead)
    for k in range(3):
        sim.spawn(f"cpu{k}", cpu, k)
    sim.spawn("kcompactd", daemon, daemon=True)
    return await sim.run(until=3_000)


async def test_file_is_time_sorted_and_matches_memory_lines():
    mem = MemoryRecorder()
    await _run(mem)
    buf = io.StringIO()
    rec = Recorder(buf)
    _small_flushes(rec)
    await _run(rec)
    text = buf.getvalue()
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == rec.count > 200
    times = [json.loads(ln)["t"] for ln in lines]
    assert times == sorted(times)
    assert lines == mem.lines
    assert rec.lines == []  # everything was written by close() at the end of the run


async def test_same_seed_byte_identical_file_other_seed_differs():
    outs = []
    for seed in (4, 4, 5):
        buf = io.StringIO()
        rec = Recorder(buf)
        _small_flushes(rec, 3)
        await _run(rec, f"random({seed})")
        outs.append(buf.getvalue().encode())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


async def test_emission_is_out_of_order_but_output_sorted_and_stable():
    mem = MemoryRecorder()
    sim = Sim(recorder=mem)
    emitted: list[int] = []

    async def ahead() -> None:
        for _ in range(3):
            await sim.delay(100)
            mem.emit("ahead")
            emitted.append(sim.now)

    async def behind() -> None:
        await sim.delay(50)
        await sim.sync()
        mem.emit("behind", n=1)
        emitted.append(sim.now)
        mem.emit("behind", n=2)  # same instant: emission order kept

    sim.spawn("A", ahead)
    sim.spawn("B", behind)
    await sim.run()
    assert emitted == [100, 200, 300, 50]  # processing order: A ran ahead
    assert mem.lines == [
        '{"t":50,"actor":"B","event":"behind","n":1}',
        '{"t":50,"actor":"B","event":"behind","n":2}',
        '{"t":100,"actor":"A","event":"ahead"}',
        '{"t":200,"actor":"A","event":"ahead"}',
        '{"t":300,"actor":"A","event":"ahead"}',
    ]
    assert mem.events()[0] == {"t": 50, "actor": "B", "event": "behind", "n": 1}


async def test_close_flushes_everything_when_an_actor_crashes():
    buf = io.StringIO()
    rec = Recorder(buf)
    _small_flushes(rec, 4)
    with pytest.raises(ActorCrashed):
        await _run(rec, "fifo", crash_at=20)
    lines = buf.getvalue().splitlines()
    assert len(lines) == rec.count and rec.lines == []
    times = [json.loads(ln)["t"] for ln in lines]
    assert times == sorted(times)
    assert json.loads(lines[-1])["t"] == max(times)
    # the crashing actor's last event (iteration 20) is in the file
    assert sum(json.loads(ln)["actor"] == "cpu1" for ln in lines) == 21


async def test_many_events_with_a_lagging_frontier_stay_sorted():
    # One actor far ahead of another: the frontier lags for the whole run. Regression: the
    # sink re-sorted its whole buffer for every line past 16384 (80k events took 29 s).
    buf = io.StringIO()
    rec = Recorder(buf)
    sim = Sim(recorder=rec)

    async def fast() -> None:
        for i in range(40_000):
            await sim.delay(1)
            rec.emit("e", i=i)

    async def slow() -> None:
        await sim.delay(50_000)
        await sim.sync()
        rec.emit("slow")

    sim.spawn("fast", fast)
    sim.spawn("slow", slow, start=10)
    await sim.run()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 40_001
    assert json.loads(lines[-1])["event"] == "slow"
    assert json.loads(lines[-2]) == {"t": 40_000, "actor": "fast", "event": "e", "i": 39_999}


async def test_events_outside_actors_use_last_time_and_no_actor():
    mem = MemoryRecorder()
    sim = Sim(recorder=mem)
    mem.emit("before")

    async def a() -> None:
        await sim.delay(9)

    sim.spawn("a", a)
    await sim.run()
    mem.emit("after", ok=True)
    assert mem.lines == [
        '{"t":0,"actor":null,"event":"before"}',
        '{"t":9,"actor":null,"event":"after","ok":true}',
    ]


def test_extra_processors_can_drop_events_and_null_recorder_is_off():
    def drop_debug(_logger, _method, event_dict):
        if event_dict["event"].startswith("debug_"):
            raise structlog.DropEvent
        return event_dict

    mem = MemoryRecorder(extra_processors=[drop_debug])
    mem.emit("debug_x")
    mem.emit("mm_page_free", pfn=3)
    assert mem.lines == ['{"t":0,"actor":null,"event":"mm_page_free","pfn":3}']
    assert NULL_RECORDER.enabled is False and mem.enabled is True
    NULL_RECORDER.emit("anything", x=1)
    NULL_RECORDER.close()
