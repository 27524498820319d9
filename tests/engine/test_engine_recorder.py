"""The event recorder: JSON lines stamped with virtual time and actor, written sorted by time
although actors running ahead emit out of order, flushed completely on close (also when an
actor crashes), byte-identical for the same run."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.engine import (
    NULL_RECORDER,
    ActorCrashed,
    MemoryRecorder,
    Recorder,
    Sim,
    SpinLock,
    WaitQueue,
)
from emulator.engine.recorder import (
    _render_all,
    compile_event_filter,
    render_event,
    render_json_line,
    stamp,
)


def _small_flushes(rec: Recorder, n: int = 5) -> None:
    # white box: make the sink flush every few lines, so partial flushes against the
    # engine's frontier happen many times in a small run
    rec._sink._flush_at = rec._sink._next_flush = n


async def _run(rec, strategy="random(4)", crash_at: int | None = None):
    sim = Sim(strategy, recorder=rec, perturb=True)
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


# -- the hot path renders exactly what the structlog pipeline renders ---------------------------

_json_scalars = (
    st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.booleans()
    | st.none()
    | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    t=st.integers(min_value=0, max_value=1 << 64),
    actor=st.none() | st.text(max_size=8),
    event=st.text(min_size=1, max_size=12),
    fields=st.dictionaries(st.text(max_size=8), _json_values, max_size=5),
)
def test_hot_path_line_is_byte_identical_to_the_structlog_pipeline(t, actor, event, fields):
    fields.pop("event", None)  # emit(event, **fields): "event" is the positional name
    old = render_json_line(
        None, "msg", stamp(lambda: t, lambda: actor)(None, "msg", {"event": event, **fields})
    )
    assert render_event(t, actor, event, fields) == old
    assert _render_all([(t, 1, actor, event, fields)]) == [old]  # the batch renderer


async def test_hot_path_and_structlog_pipeline_write_the_same_file():
    def keep(_logger, _method, event_dict):
        return event_dict

    outs = []
    for extra in ((), (keep,)):
        buf = io.StringIO()
        rec = Recorder(buf, extra_processors=extra)
        _small_flushes(rec, 7)
        await _run(rec, "random(9)")
        outs.append(buf.getvalue())
        assert rec.count == len(buf.getvalue().splitlines()) > 100
    assert outs[0] == outs[1]


async def test_event_filter_records_only_matching_tracepoints_and_counts_the_rest():
    full = MemoryRecorder()
    await _run(full, "random(2)")
    rec = MemoryRecorder(events="mm_page_*,kcompactd_wake")
    await _run(rec, "random(2)")
    want = [
        ln for ln in full.lines if json.loads(ln)["event"] in ("mm_page_alloc", "kcompactd_wake")
    ]
    assert rec.lines == want and rec.count == len(want) > 0
    assert rec.count + rec.dropped == full.count
    assert rec.wants("mm_page_alloc") and not rec.wants("mm_local_work")


@pytest.mark.parametrize(
    "spec", ["", "mm_page_alloc,", "mm page", "a;b", ["x", ""], "[", "mm_page_[af", "mm]"]
)
def test_event_filter_refuses_malformed_globs(spec):
    with pytest.raises(ValueError, match="events"):
        compile_event_filter(spec)


def test_event_filter_accepts_paired_brackets():
    keep = compile_event_filter("mm_page_[af]*,mm_compaction_[!k]*")
    assert keep is not None
    assert keep("mm_page_alloc") and keep("mm_page_free") and not keep("mm_page_pcpu_drain")
    assert keep("mm_compaction_begin") and not keep("mm_compaction_kcompactd_wake")


def test_close_until_drops_events_after_the_stop_instant():
    t = [0]
    mem = MemoryRecorder(clock=lambda: t[0])
    for t[0] in (5, 10, 11, 3):
        mem.emit("e", at=t[0])
    mem.close(until=10)
    assert [json.loads(ln)["t"] for ln in mem.lines] == [3, 5, 10]
    assert mem.count == 3 and mem.after_stop == 1


# The --events filter takes whole tracepoint names as ``trace-cmd record -e`` does
# (a glob matches the entire name, not a substring), and the hot-path renderer agrees with the
# structlog pipeline for any stamp, not only int ones.


@pytest.mark.parametrize(
    ("spec", "name", "want"),
    [
        ("compaction_*", "mm_compaction_begin", False),  # a glob is anchored at the start
        ("mm_compaction_*", "mm_compaction_begin", True),
        ("page_alloc", "mm_page_alloc", False),
        ("mm_page_alloc", "mm_page_alloc_zone_locked", False),  # and at the end
        ("mm_page_alloc*", "mm_page_alloc_zone_locked", True),
        ("*_alloc", "mm_page_alloc", True),
        ("mm_page_?ree", "mm_page_free", True),
        ("kcompactd_wake,mm_page_free", "mm_page_free_batched", False),
    ],
)
def test_event_glob_matches_the_whole_tracepoint_name(spec: str, name: str, want: bool) -> None:
    pred = compile_event_filter(spec)
    assert pred is not None
    assert pred(name) is want
    rec = MemoryRecorder(events=spec)
    rec.emit(name, pfn=1)
    assert (rec.count, rec.dropped) == ((1, 0) if want else (0, 1))


@pytest.mark.parametrize("t", [1.5, 7.0, None])
def test_hot_path_renders_a_non_int_stamp_as_the_pipeline_does(t: object) -> None:
    fields = {"pfn": 3, "order": 0}
    old = render_json_line(
        None, "msg", stamp(lambda: t, lambda: "cpu0")(None, "msg", {"event": "e", **fields})
    )
    assert render_event(t, "cpu0", "e", fields) == old  # type: ignore[arg-type]
