"""The scheduler: wake-vs-timeout rule, deadlines, deadlocks, daemons, crashes, bad input,
Completion, start_actor and cancellation from trio."""

from __future__ import annotations

import pytest
import trio

from emulator.engine import (
    ActorCrashed,
    Completion,
    DeadlockError,
    MemoryRecorder,
    PrimitiveMisuse,
    Sim,
    SpinLock,
    WaitQueue,
    make_strategy,
)

# -- wake-up at exactly the timeout instant ----------------------------------------------------


@pytest.mark.parametrize("strategy", ["fifo", "random(1)", "random(2)", "pct(3, 3)"])
async def test_wake_at_exact_timeout_instant_is_a_wake(strategy):
    # W sleeps at t=0 with timeout 100 (timer at 100); K wakes the queue at exactly t=100.
    # Documented rule: timers sort after every actor step of the same instant -> woken wins.
    # X sleeps with timeout 99: its timer fires at 99, before K's wake-up.
    sim = Sim(strategy)
    wq = WaitQueue(sim, "wq")
    out: dict[str, tuple[bool, int]] = {}

    async def sleeper(timeout: int) -> None:
        woken = await wq.wait(timeout_ns=timeout)
        out[sim.current.name] = (woken, sim.now)

    async def waker() -> None:
        await sim.delay(100)
        out["K"] = (bool(await wq.wake_up_all()), sim.now)

    sim.spawn("W", sleeper, 100)
    sim.spawn("X", sleeper, 99)
    sim.spawn("K", waker)
    await sim.run()
    assert out == {"X": (False, 99), "W": (True, 100), "K": (True, 100)}
    w, x = sim.actors[0], sim.actors[1]
    assert (w.sleep_ns, x.sleep_ns) == (100, 99)


async def test_wake_one_instant_after_timeout_is_too_late():
    sim = Sim()
    wq = WaitQueue(sim, "wq")
    out = []

    async def sleeper() -> None:
        out.append((await wq.wait(timeout_ns=100), sim.now))

    async def waker() -> None:
        await sim.delay(101)
        out.append((await wq.wake_up(), sim.now))

    sim.spawn("W", sleeper)
    sim.spawn("K", waker)
    await sim.run()
    assert out == [(False, 100), (0, 101)]
    assert len(wq) == 0


async def test_wait_queue_wakes_fifo_and_counts():
    sim = Sim()
    wq = WaitQueue(sim, "wq")
    order: list[tuple[str, int]] = []

    async def sleeper() -> None:
        assert await wq.wait()
        order.append((sim.current.name, sim.now))

    async def waker() -> None:
        await sim.delay(10)
        await sim.sync()  # read shared state only after synchronising (lookahead)
        assert len(wq) == 3
        assert await wq.wake_up(2) == 2
        await sim.delay(10)
        assert await wq.wake_up_all() == 1
        assert await wq.wake_up() == 0

    for name, start in (("c", 3), ("a", 1), ("b", 2)):
        sim.spawn(name, sleeper, start=start)
    sim.spawn("K", waker)
    await sim.run()
    assert order == [("a", 10), ("b", 10), ("c", 20)]


# -- deadline ----------------------------------------------------------------------------------


async def test_deadline_events_at_until_happen_later_ones_do_not():
    rec = MemoryRecorder()
    sim = Sim(recorder=rec)
    wq = WaitQueue(sim, "wq")

    async def ticker() -> None:
        while True:
            await sim.sync()
            rec.emit("tick")
            await sim.delay(50)

    async def sleeper() -> None:
        rec.emit("sleep")
        woken = await wq.wait(timeout_ns=100)  # timer exactly at until
        rec.emit("timeout", woken=woken)
        await sim.delay(1)
        rec.emit("never")

    async def spinner() -> None:  # only delays: must stop too
        while True:
            await sim.delay(7)

    sim.spawn("ticker", ticker)
    sim.spawn("sleeper", sleeper)
    spin = sim.spawn("spinner", spinner)
    result = await sim.run(until=100)
    assert result.reason == "deadline"
    assert result.now == 100
    got = [(e["t"], e["actor"], e["event"]) for e in rec.events()]
    # at t=0 the ticker is spawned first but yields at its sync to the tied actors, so the
    # sleeper's "sleep" (emitted before any sync) is recorded first
    assert got == [
        (0, "sleeper", "sleep"),
        (0, "ticker", "tick"),
        (50, "ticker", "tick"),
        (100, "ticker", "tick"),
        (100, "sleeper", "timeout"),
    ]
    assert spin.now == 105  # its clock crossed the deadline; it never ran past it
    assert sim.now == 100


async def test_run_that_ends_before_deadline_is_done():
    sim = Sim()

    async def a() -> None:
        await sim.delay(30)

    async def b() -> None:
        await sim.delay(10)

    sim.spawn("a", a)
    sim.spawn("b", b)
    result = await sim.run(until=1000)
    assert result.reason == "done"
    assert result.now == 30  # the latest clock, although "b" ended last in processing order


async def test_deadline_zero_runs_only_time_zero():
    sim = Sim()
    seen = []

    async def a() -> None:
        seen.append(sim.now)
        await sim.delay(1)
        seen.append(sim.now)

    sim.spawn("a", a)
    sim.spawn("late", a, start=1)
    result = await sim.run(until=0)
    assert result.reason == "deadline" and seen == [0]


# -- deadlock ----------------------------------------------------------------------------------


def _abba(sim: Sim):
    l1, l2 = SpinLock(sim, "L1"), SpinLock(sim, "L2")

    async def a() -> None:
        await l1.acquire("a_path")
        await sim.delay(10)
        await l2.acquire("a_path")

    async def b() -> None:
        await l2.acquire("b_path")
        await sim.delay(10)
        await l1.acquire("b_path")

    sim.spawn("A", a)
    sim.spawn("B", b)


async def test_abba_deadlock_report_names_actors_and_locks():
    sim = Sim()
    _abba(sim)
    with pytest.raises(DeadlockError) as info:
        await sim.run()
    err = info.value
    assert err.waiting == {
        "A": "spinlock L2 (held by B) since t=10 ns",
        "B": "spinlock L1 (held by A) since t=10 ns",
    }
    assert err.now == 10 and err.cycle == ["A", "B"]
    assert str(err).splitlines() == [
        "deadlock at t=10 ns: lock cycle A -> B -> A",
        "  A waits on spinlock L2 (held by B) since t=10 ns",
        "  B waits on spinlock L1 (held by A) since t=10 ns",
    ]


async def test_deadlock_is_found_before_the_deadline_despite_a_stale_timer():
    # "A" first sleeps with a 10 µs timeout but is woken at t=1: its timer stays in the heap,
    # inactive, beyond the deadline. It must not turn the ABBA deadlock into a "deadline" end.
    sim = Sim()
    wq = WaitQueue(sim, "wq")
    l1, l2 = SpinLock(sim, "L1"), SpinLock(sim, "L2")

    async def a() -> None:
        assert await wq.wait(timeout_ns=10_000)
        await l1.acquire()
        await sim.delay(10)
        await l2.acquire()

    async def b() -> None:
        await sim.delay(1)
        await wq.wake_up()
        await l2.acquire()
        await sim.delay(10)
        await l1.acquire()

    sim.spawn("A", a)
    sim.spawn("B", b)
    with pytest.raises(DeadlockError) as info:
        await sim.run(until=5_000)
    assert set(info.value.waiting) == {"A", "B"}


async def test_daemon_blocked_forever_is_not_a_deadlock():
    sim = Sim()
    wq = WaitQueue(sim, "kswapd_wait")
    comp = Completion(sim, "never")

    async def kswapd() -> None:
        await wq.wait()

    async def kcompactd() -> None:
        await comp.wait()

    async def cpu() -> None:
        await sim.delay(500)

    sim.spawn("kswapd", kswapd, daemon=True)
    sim.spawn("kcompactd", kcompactd, daemon=True)
    sim.spawn("cpu0", cpu)
    result = await sim.run()
    assert result.reason == "done" and result.now == 500


async def test_blocked_non_daemon_with_daemon_is_deadlock_naming_only_it():
    sim = Sim()
    wq = WaitQueue(sim, "wq")
    comp = Completion(sim, "c")

    async def daemon() -> None:
        await wq.wait()

    async def cpu() -> None:
        await sim.delay(5)
        await comp.wait()

    sim.spawn("kswapd", daemon, daemon=True)
    sim.spawn("cpu0", cpu)
    with pytest.raises(DeadlockError) as info:
        await sim.run()
    assert info.value.waiting == {"cpu0": "completion c since t=5 ns"}


# -- crashes -----------------------------------------------------------------------------------


async def test_actor_crash_names_actor_and_time_and_keeps_cause():
    rec = MemoryRecorder()
    sim = Sim(recorder=rec)
    lock = SpinLock(sim, "L")

    async def victim() -> None:
        await sim.delay(42)
        await sim.sync()
        rec.emit("about_to_crash")
        raise ValueError("bad page state")

    async def other() -> None:
        await lock.acquire()
        while True:
            await sim.delay(10)
            await sim.sync()
            rec.emit("other_step")

    sim.spawn("victim", victim)
    sim.spawn("other", other)
    with pytest.raises(ActorCrashed) as info:
        await sim.run(until=10_000)
    err = info.value
    assert err.actor == "victim" and err.now == 42
    assert isinstance(err.__cause__, ValueError) and err.exc is err.__cause__
    assert str(err) == "actor 'victim' crashed at t=42 ns: ValueError: bad page state"
    # nothing after the crash instant ran
    assert max(e["t"] for e in rec.events()) == 42
    assert sum(e["event"] == "other_step" for e in rec.events()) == 4  # t=10, 20, 30, 40


async def test_crash_after_running_ahead_happens_at_its_virtual_time():
    # "bomb" is dispatched first and crashes at t=1000 after pure delays (no sync): the crash
    # must still be ordered in virtual time, so "ticker" gets to run up to t=900 first
    # (regression: the run stopped at the processing frontier, with no ticker event at all).
    # At t=1000 the crash was queued first and wins the tie.
    rec = MemoryRecorder()
    sim = Sim(recorder=rec)

    async def bomb() -> None:
        await sim.delay(1000)
        raise RuntimeError("bang")

    async def ticker() -> None:
        while True:
            await sim.sync()
            rec.emit("tick")
            await sim.delay(100)

    sim.spawn("bomb", bomb)
    sim.spawn("ticker", ticker)
    with pytest.raises(ActorCrashed) as info:
        await sim.run(until=5000)
    assert (info.value.actor, info.value.now) == ("bomb", 1000)
    assert [e["t"] for e in rec.events()] == list(range(0, 1000, 100))


async def test_earlier_crash_wins_over_a_later_one_processed_first():
    sim = Sim()

    async def late() -> None:
        await sim.delay(500)
        raise RuntimeError("late")

    async def early() -> None:
        await sim.delay(100)
        await sim.sync()
        raise RuntimeError("early")

    sim.spawn("late", late)
    sim.spawn("early", early)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    assert (info.value.actor, info.value.now) == ("early", 100)


async def test_crash_of_a_started_actor_propagates():
    sim = Sim()

    async def child() -> None:
        await sim.delay(3)
        raise KeyError("x")

    async def parent() -> None:
        await sim.delay(7)
        a = await sim.start_actor("child", child)
        assert a.now == 7
        await sim.delay(100)
        await sim.sync()

    sim.spawn("parent", parent)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    assert (info.value.actor, info.value.now) == ("child", 10)
    assert isinstance(info.value.__cause__, KeyError)


async def test_start_actor_starts_at_caller_time_and_is_ordered():
    sim = Sim()
    log: list[tuple[str, int]] = []

    async def child(tag: str) -> None:
        await sim.sync()
        log.append((tag, sim.now))

    async def parent() -> None:
        await sim.delay(20)
        await sim.start_actor("c1", child, "c1", data=1)
        await sim.delay(5)
        await sim.sync()
        log.append(("parent", sim.now))

    sim.spawn("parent", parent)
    result = await sim.run()
    assert log == [("c1", 20), ("parent", 25)]
    assert [a.name for a in sim.actors] == ["parent", "c1"] and sim.actors[1].data == 1
    assert result.reason == "done"


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 1.5, 2.0, True, None])
async def test_bad_delay_is_named(bad):
    sim = Sim()

    async def cpu() -> None:
        await sim.delay(3)
        await sim.delay(bad)

    sim.spawn("cpu7", cpu)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    cause = info.value.__cause__
    assert isinstance(cause, PrimitiveMisuse)
    assert str(cause).startswith(f"actor 'cpu7': delay({bad!r}) at t=3 ns")


@pytest.mark.parametrize("bad", [-5, 0.5])
async def test_bad_timeout_is_named(bad):
    sim = Sim()
    wq = WaitQueue(sim, "kcompactd_wait")

    async def cpu() -> None:
        await wq.wait(timeout_ns=bad)

    sim.spawn("kcompactd0", cpu)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    msg = str(info.value.__cause__)
    assert "'kcompactd0'" in msg and "kcompactd_wait.wait(timeout_ns=" in msg


@pytest.mark.parametrize(
    "spec", ["lifo", "random(x)", "pct(1, 2, 3)", "fifo(1)", "random(1", "", "round robin"]
)
def test_unknown_strategy_is_rejected(spec):
    with pytest.raises(PrimitiveMisuse) as info:
        Sim(spec)
    assert repr(spec) in str(info.value)


def test_strategy_specs():
    assert make_strategy("fifo").name == "fifo"
    r = make_strategy("random(7)")
    assert (r.name, r.seed) == ("random", 7)
    assert make_strategy("random", seed=9).seed == 9
    p = make_strategy(" PCT( 7 , 3 ) ")
    assert (p.name, p.seed, p.depth) == ("pct", 7, 3)


async def test_primitives_outside_an_actor_are_misuse():
    sim = Sim()
    lock = SpinLock(sim, "L")
    wq = WaitQueue(sim, "wq")
    for coro in (
        sim.delay(1),
        sim.sync(),
        sim.preempt("p"),
        lock.acquire(),
        lock.try_acquire(),
        wq.wait(),
        wq.wake_up(),
    ):
        with pytest.raises(PrimitiveMisuse):
            await coro
    with pytest.raises(PrimitiveMisuse):
        lock.release()
    with pytest.raises(PrimitiveMisuse):
        sim.current  # noqa: B018


async def test_bad_spawn_and_run_arguments():
    sim = Sim()

    async def a() -> None:
        sim.spawn("late", a)

    with pytest.raises(PrimitiveMisuse):
        sim.spawn("neg", a, start=-1)
    with pytest.raises(PrimitiveMisuse):
        sim.spawn("float", a, start=1.0)
    with pytest.raises(PrimitiveMisuse):
        await sim.run(until=-1)
    with pytest.raises(PrimitiveMisuse):
        await sim.run(until=10.0)
    sim.spawn("a", a)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    assert "spawn('late') during a run" in str(info.value.__cause__)


# -- Completion --------------------------------------------------------------------------------


async def test_completion_semantics():
    sim = Sim()
    c = Completion(sim, "compact_done")
    log: list[tuple[str, bool, int]] = []

    async def waiter(timeout: int | None) -> None:
        ok = await c.wait(timeout)
        log.append((sim.current.name, ok, sim.now))

    async def driver() -> None:
        await c.complete()  # t=0: nobody waits -> banked
        await sim.delay(10)
        await c.complete()  # t=10: wakes w1 (first waiter, FIFO), not w2
        await sim.delay(10)
        await c.complete_all()  # t=20: wakes w2 and every later waiter
        await sim.delay(10)
        await c.complete()  # no effect after complete_all
        c.reinit()
        ok = await c.wait(5)  # t=30 -> times out at 35
        log.append(("driver", ok, sim.now))

    sim.spawn("driver", driver)
    sim.spawn("banked", waiter, None, start=1)  # consumes the banked completion at t=1
    sim.spawn("w1", waiter, None, start=2)
    sim.spawn("w2", waiter, 1000, start=3)
    sim.spawn("late", waiter, None, start=25)  # after complete_all: passes at once
    await sim.run()
    assert log == [
        ("banked", True, 1),
        ("w1", True, 10),
        ("w2", True, 20),
        ("late", True, 25),
        ("driver", False, 35),
    ]


# -- cancellation by trio ----------------------------------------------------------------------


async def test_cancel_from_trio_with_switching_actors_is_clean():
    # Regression: a trio cancel of a run whose actors hand over to each other made the engine
    # reschedule tasks that trio had already woken (TrioInternalError).
    for _ in range(3):
        sim = Sim()

        async def pingpong(sim=sim) -> None:
            while True:
                await sim.delay(1)
                await sim.sync()

        for name in ("a", "b", "c"):
            sim.spawn(name, pingpong)
        with trio.move_on_after(0.05) as scope:
            await sim.run()
        assert scope.cancelled_caught
        assert sim.switches > 10
        assert min(a.now for a in sim.actors) > 0


async def test_cancel_from_trio_reaches_an_actor_doing_only_delays():
    sim = Sim()

    async def busy() -> None:
        while True:
            await sim.delay(1)

    sim.spawn("busy", busy)
    with trio.move_on_after(0.05) as scope:
        await sim.run()
    assert scope.cancelled_caught and sim.actors[0].now > 0


async def test_run_twice_is_refused_while_running():
    sim = Sim()

    async def a() -> None:
        with pytest.raises(PrimitiveMisuse):
            await sim.run()

    sim.spawn("a", a)
    assert (await sim.run()).reason == "done"


# -- sync quantum ------------------------------------------------------------------------------


async def test_quantum_wake_processed_before_waiter_clock_keeps_sleep_non_negative():
    # Q = 40: W (t=30) runs ahead to 60 and sleeps there while K (t=40) is still in the heap,
    # then K wakes it "at 40". The waiter cannot go back in time: it resumes at 60 and has
    # slept 0 ns (regression: sleep_ns became -20).
    sim = Sim(quantum_ns=40)
    wq = WaitQueue(sim, "wq")
    out = []

    async def w() -> None:
        await sim.delay(30)
        out.append((await wq.wait(), sim.now))

    async def k() -> None:
        out.append((await wq.wake_up(), sim.now))

    waiter = sim.spawn("W", w, start=30)
    sim.spawn("K", k, start=40)
    await sim.run()
    assert out == [(1, 40), (True, 60)]
    assert waiter.sleep_ns == 0


async def test_quantum_zero_is_exact_and_larger_quantum_switches_less():
    async def run(q: int):
        sim = Sim(quantum_ns=q)
        lock = SpinLock(sim, "L")

        async def cpu(k: int) -> None:
            for i in range(200):
                await sim.delay(3 + (i * 7 + k) % 11)
                await lock.acquire()
                await sim.delay(2)
                lock.release()

        for k in range(4):
            sim.spawn(f"cpu{k}", cpu, k)
        result = await sim.run()
        return result, lock.stats

    exact, s0 = await run(0)
    loose, s1 = await run(1000)
    assert loose.switches < exact.switches
    assert s0.acquisitions == s1.acquisitions == 800
    again, _ = await run(1000)
    assert again == loose  # a quantum is still deterministic
    with pytest.raises(PrimitiveMisuse):
        Sim(quantum_ns=-1)


async def test_run_again_after_done_continues_and_after_deadline_is_refused():
    sim = Sim()
    log: list[tuple[str, int]] = []

    async def a(tag: str) -> None:
        await sim.delay(10)
        await sim.sync()
        log.append((tag, sim.now))

    sim.spawn("first", a, "first")
    end = await sim.run()
    assert (end.reason, end.now) == ("done", 10)
    sim.spawn("second", a, "second", start=end.now)
    end2 = await sim.run(until=100)
    assert (end2.reason, end2.now) == ("done", 20)
    assert log == [("first", 10), ("second", 20)]
    with pytest.raises(PrimitiveMisuse, match="already reached t=20 ns"):
        sim.spawn("past", a, "past", start=19)

    # regression: after a deadline the actors' tasks are gone; a second run returned the
    # first one's result without running anything
    sim = Sim()

    async def forever() -> None:
        while True:
            await sim.delay(10)
            await sim.sync()

    sim.spawn("loop", forever)
    assert (await sim.run(until=100)).now == 100
    sim.spawn("new", a, "new", start=100)
    with pytest.raises(PrimitiveMisuse, match=r"actors \['loop'\] did not return"):
        await sim.run(until=200)


async def test_empty_run_and_immediate_return():
    assert (await Sim().run()).reason == "done"
    sim = Sim()

    async def a() -> int:
        return 5

    sim.spawn("a", a, start=7)
    result = await sim.run()
    assert (result.reason, result.now, sim.actors[0].state) == ("done", 7, "done")


async def test_timed_out_waiters_leave_the_queue():
    sim = Sim()
    wq = WaitQueue(sim, "inbox")

    async def poller() -> None:
        for _ in range(1000):
            assert not await wq.wait(timeout_ns=5)

    async def sleeper() -> None:
        assert await wq.wait()

    async def waker() -> None:
        await sim.delay(10_000)
        assert await wq.wake_up() == 1

    sim.spawn("sleeper", sleeper)
    sim.spawn("poller", poller)
    sim.spawn("waker", waker)
    await sim.run()
    assert sim.actors[1].now == 5000
    assert len(wq._waiters) == 0 and len(wq) == 0
