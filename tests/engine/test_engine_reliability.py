"""The engine's reliability: daemons do not hide a deadlock (named by its lock cycle), the
virtual-time watchdog names an actor stuck in one instant, and a run that stops early keeps no
event after the instant it stopped at. Also the fast driver's own edges (an actor awaiting
something that is not an engine primitive) and the idle wait that sleeps through."""

from __future__ import annotations

import io
import json

import pytest
import trio

from emulator.engine import (
    ActorCrashed,
    DeadlockError,
    MemoryRecorder,
    PrimitiveMisuse,
    Recorder,
    Sim,
    SpinLock,
    WaitQueue,
    WatchdogError,
)

# -- daemons do not hide a deadlock --------------------------------------------------------


def _abba(sim: Sim, rec=None) -> None:
    l1, l2 = SpinLock(sim, "L1"), SpinLock(sim, "L2")

    async def a() -> None:
        await l1.acquire("a_path")
        await sim.delay(10)
        await l2.acquire("a_path")

    async def b() -> None:
        await sim.delay(3)
        await l2.acquire("b_path")
        await sim.delay(7)
        await l1.acquire("b_path")

    async def sampler() -> None:  # a daemon with a timer, like the runner's time-series sampler
        while True:
            await sim.delay(4)
            await sim.sync()
            if rec is not None:
                rec.emit("sample")

    sim.spawn("A", a)
    sim.spawn("B", b)
    sim.spawn("sampler", sampler, daemon=True)


async def test_a_polling_daemon_does_not_hide_a_lock_cycle():
    rec = MemoryRecorder()
    sim = Sim(recorder=rec)
    _abba(sim, rec)
    with pytest.raises(DeadlockError) as info:
        await sim.run(until=1_000_000)
    err = info.value
    assert err.now == 10 and sim.now == 10
    assert err.cycle == ["A", "B"]
    assert str(err).splitlines()[0] == "deadlock at t=10 ns: lock cycle A -> B -> A"
    assert err.waiting == {
        "A": "spinlock L2 (held by B) since t=10 ns",
        "B": "spinlock L1 (held by A) since t=10 ns",
    }
    # the sampler ran until the deadlock and not after it
    assert [e["t"] for e in rec.events()] == [4, 8]
    assert sim.lock_cycles() == err.waiting


async def test_a_lock_left_held_by_a_returned_actor_is_a_deadlock_despite_daemons():
    sim = Sim()
    lock = SpinLock(sim, "L")
    wq = WaitQueue(sim, "kcompactd_wait")

    async def leaver() -> None:
        await lock.acquire("leaver")  # and returns without releasing

    async def waiter() -> None:
        await sim.delay(5)
        await lock.acquire("waiter")

    async def kcompactd() -> None:
        while True:
            await wq.wait(timeout_ns=500_000_000)

    sim.spawn("leaver", leaver)
    sim.spawn("waiter", waiter)
    sim.spawn("kcompactd", kcompactd, daemon=True)
    with pytest.raises(DeadlockError) as info:
        await sim.run(until=10_000_000_000)
    assert info.value.now == 5 and info.value.cycle == []
    assert info.value.waiting == {"waiter": "spinlock L (held by leaver) since t=5 ns"}


async def test_a_waiter_a_daemon_may_still_wake_is_not_a_deadlock():
    # every non-daemon actor is blocked, but on a wait queue: the daemon wakes it later
    sim = Sim()
    wq = WaitQueue(sim, "pfmemalloc_wait")
    out = []

    async def cpu() -> None:
        out.append(await wq.wait())
        out.append(sim.now)

    async def kswapd() -> None:
        await sim.delay(1_000)
        await wq.wake_up()

    sim.spawn("cpu0", cpu)
    sim.spawn("kswapd", kswapd, daemon=True)
    result = await sim.run(until=5_000)
    assert out == [True, 1_000] and result.reason == "done"


async def test_a_contended_lock_with_a_running_holder_is_not_a_deadlock():
    sim = Sim()
    lock = SpinLock(sim, "L")

    async def holder() -> None:
        await lock.acquire("h")
        await sim.delay(100)
        lock.release()

    async def waiter() -> None:
        await sim.delay(1)
        await lock.acquire("w")
        lock.release()

    async def daemon() -> None:
        while True:
            await sim.delay(7)
            await sim.sync()

    sim.spawn("h", holder)
    sim.spawn("w", waiter)
    sim.spawn("d", daemon, daemon=True)
    result = await sim.run(until=1_000)
    assert result.reason == "deadline" and sim.actors[1].now == 100


# -- the virtual-time watchdog -------------------------------------------------------------


async def test_watchdog_names_an_actor_looping_on_delay_zero():
    sim = Sim(watchdog_steps=1_000)

    async def worker() -> None:
        await sim.delay(100)

    async def spinner() -> None:
        await sim.delay(42)
        while True:
            await sim.delay(0)

    sim.spawn("worker", worker)
    sim.spawn("kcompactd", spinner, daemon=True)
    with pytest.raises(WatchdogError) as info:
        await sim.run()
    err = info.value
    assert (err.actor, err.now, err.steps) == ("kcompactd", 42, 1_000)
    assert "'kcompactd' made no progress in virtual time" in str(err)
    assert "t=42 ns" in str(err)


async def test_watchdog_catches_two_actors_ping_ponging_in_one_instant():
    sim = Sim(watchdog_steps=500)

    async def poller() -> None:
        while True:
            await sim.sync()  # e.g. a trylock loop that never waits

    sim.spawn("a", poller)
    sim.spawn("b", poller)
    with pytest.raises(WatchdogError) as info:
        await sim.run()
    assert info.value.actor in ("a", "b") and info.value.now == 0


async def test_watchdog_leaves_progress_alone_and_can_be_off():
    sim = Sim(watchdog_steps=10)

    async def steady() -> None:
        for _ in range(1_000):
            await sim.delay(0)  # a few zero-cost steps between progress are fine
            await sim.sync()
            await sim.delay(1)

    sim.spawn("s", steady)
    assert (await sim.run()).now == 1_000
    off = Sim(watchdog_steps=0)

    async def many() -> None:
        for _ in range(20_000):
            await off.delay(0)

    off.spawn("m", many)
    assert (await off.run()).reason == "done"
    with pytest.raises(PrimitiveMisuse, match="watchdog_steps"):
        Sim(watchdog_steps=-1)


# -- nothing after the stop instant --------------------------------------------------------


async def _ahead_and_crash(rec, exc: BaseException) -> Sim:
    sim = Sim(recorder=rec)

    async def ahead() -> None:
        for i in range(100):
            await sim.delay(10)
            rec.emit("ahead", i=i)  # runs far ahead of the other actor's clock

    async def crasher() -> None:
        await sim.delay(50)
        await sim.sync()
        rec.emit("last")
        raise exc

    sim.spawn("ahead", ahead)
    sim.spawn("crasher", crasher)
    return sim


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("boom")])
async def test_no_event_after_the_instant_the_run_stopped_at(exc):
    buf = io.StringIO()
    rec = Recorder(buf)
    sim = await _ahead_and_crash(rec, exc)
    with pytest.raises((KeyboardInterrupt, ActorCrashed)):
        await sim.run()
    times = [json.loads(ln)["t"] for ln in buf.getvalue().splitlines()]
    assert sim.now == 50 and max(times) == 50
    assert times == [10, 20, 30, 40, 50, 50]
    assert rec.count == 6 and rec.after_stop > 0


async def test_a_cancelled_run_keeps_nothing_after_its_stop_instant():
    buf = io.StringIO()
    rec = Recorder(buf)
    sim = Sim(recorder=rec)

    async def worker(step: int) -> None:
        while True:
            await sim.delay(step)
            rec.emit("tick")
            await sim.sync()

    sim.spawn("a", worker, 3)
    sim.spawn("b", worker, 1000)
    with trio.move_on_after(0.05):
        await sim.run()
    times = [json.loads(ln)["t"] for ln in buf.getvalue().splitlines()]
    assert times and max(times) <= sim.now


# -- the fast driver's edges and the idle wait ---------------------------------------------


async def test_an_actor_awaiting_a_trio_primitive_is_named(driver):
    if driver != "fast":
        pytest.skip("under the trio driver an actor is a trio task")
    sim = Sim()

    async def bad() -> None:
        await sim.delay(7)
        await trio.sleep(0)

    sim.spawn("bad", bad)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    assert isinstance(info.value.exc, PrimitiveMisuse)
    assert "actor 'bad' at t=7 ns awaited" in str(info.value)


async def test_an_idle_wait_with_nothing_pending_sleeps_through_without_switching():
    sim = Sim()
    wq = WaitQueue(sim, "inbox")
    out = []

    async def idle() -> None:
        for _ in range(100):
            out.append(await wq.wait(timeout_ns=10))

    sim.spawn("cpu0", idle)
    result = await sim.run()
    assert out == [False] * 100 and result.now == 1_000
    assert sim.actors[0].sleep_ns == 1_000 and result.switches == 1


async def test_an_idle_wait_with_a_waker_before_its_timeout_is_still_woken():
    sim = Sim()
    wq = WaitQueue(sim, "inbox")
    out = []

    async def idle() -> None:
        out.append((await wq.wait(timeout_ns=10), sim.now))
        out.append((await wq.wait(timeout_ns=10), sim.now))

    async def waker() -> None:
        await sim.delay(5)
        await wq.wake_up()

    sim.spawn("cpu0", idle)
    sim.spawn("peer", waker)
    await sim.run()
    assert out == [(True, 5), (False, 15)]


@pytest.mark.parametrize("stop", [False, True])
async def test_a_lock_cycle_among_some_actors_while_others_run(stop):
    # the CPUs keep running: by default the run goes on (the cycle is named by lock_cycles()
    # at the end); with stop_on_lock_cycle it stops the instant the cycle forms
    sim = Sim(stop_on_lock_cycle=stop)
    _abba(sim)

    async def cpu() -> None:
        while True:
            await sim.delay(5)
            await sim.sync()

    sim.spawn("cpu0", cpu)
    if not stop:
        result = await sim.run(until=1_000)
        assert result.reason == "deadline"
        assert set(sim.lock_cycles()) == {"A", "B"}
        return
    with pytest.raises(DeadlockError) as info:
        await sim.run(until=1_000)
    assert info.value.now == 10 and sim.now == 10 and info.value.cycle == ["A", "B"]
    assert set(info.value.waiting) == {"A", "B"}


async def test_an_actor_function_that_fails_when_called_crashes_like_any_actor():
    sim = Sim()

    def not_async(x: int) -> None:
        raise ValueError(f"bad {x}")

    sim.spawn("cpu3", not_async, 7)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    assert info.value.actor == "cpu3" and isinstance(info.value.exc, ValueError)


# The live-actor count that decides when a lock deadlock is declared despite daemons, the
# watchdog's reset on progress, and the stop instant.


def _abba_pair(sim: Sim) -> None:
    """A and B form a lock cycle at t = 10 (A holds L1 wants L2, B holds L2 wants L1)."""
    l1, l2 = SpinLock(sim, "L1"), SpinLock(sim, "L2")

    async def a() -> None:
        await l1.acquire("a_path")
        await sim.delay(10)
        await l2.acquire("a_path")

    async def b() -> None:
        await sim.delay(3)
        await l2.acquire("b_path")
        await sim.delay(7)
        await l1.acquire("b_path")

    sim.spawn("A", a)
    sim.spawn("B", b)


def _sampler(sim: Sim, period: int = 3) -> None:
    """A polling daemon, so that waits with a timeout cannot sleep through."""

    async def sampler() -> None:
        while True:
            await sim.delay(period)
            await sim.sync()

    sim.spawn("sampler", sampler, daemon=True)


async def test_a_cpu_in_timed_waits_keeps_the_run_going_past_a_lock_cycle():
    # C is a non-daemon actor sleeping in wait_event_timeout-style waits: each has a wake-up
    # coming, so C can still act. The cycle A <-> B forms at t = 10 but the run is declared
    # deadlocked only when C returns (t = 250), not when C first blocks with its timer.
    sim = Sim()
    _abba_pair(sim)
    _sampler(sim)
    wq = WaitQueue(sim, "kswapd_wait")
    done: list[int] = []

    async def c() -> None:
        for _ in range(50):
            assert not await wq.wait(timeout_ns=5)
        done.append(sim.now)

    sim.spawn("C", c)
    with pytest.raises(DeadlockError) as info:
        await sim.run(until=10_000)
    assert done == [250]
    assert info.value.now == 250 and sim.now == 250
    assert info.value.cycle == ["A", "B"]


async def test_a_daemon_woken_from_an_untimed_wait_does_not_hide_a_lock_cycle():
    # kcompactd (a daemon) sleeps on its wait queue with no timeout; a CPU wakes it once at
    # t = 1 and returns. The daemon then polls forever. Waking a daemon must not count it as
    # a live non-daemon actor: the A <-> B cycle still stops the run at t = 10.
    sim = Sim()
    _abba_pair(sim)
    wq = WaitQueue(sim, "kcompactd_wait")

    async def kcompactd() -> None:
        assert await wq.wait()
        while True:
            await sim.delay(4)
            await sim.sync()

    async def waker() -> None:
        await sim.delay(1)
        assert await wq.wake_up() == 1

    sim.spawn("kcompactd", kcompactd, daemon=True)
    sim.spawn("cpu0", waker)
    with pytest.raises(DeadlockError) as info:
        await sim.run(until=10_000)
    assert info.value.now == 10 and info.value.cycle == ["A", "B"]


async def test_a_daemon_that_returns_does_not_end_a_run_other_cpus_still_drive():
    # A <-> B deadlock at t = 10 while cpu0 (non-daemon) keeps running until t = 100; a daemon
    # returns at t = 20. Only cpu0's return leaves no non-daemon actor able to run.
    sim = Sim()
    _abba_pair(sim)

    async def cpu() -> None:
        for _ in range(20):
            await sim.delay(5)
            await sim.sync()

    async def short_daemon() -> None:
        await sim.delay(20)
        await sim.sync()

    sim.spawn("cpu0", cpu)
    sim.spawn("oneshot", short_daemon, daemon=True)
    with pytest.raises(DeadlockError) as info:
        await sim.run(until=10_000)
    assert info.value.now == 100 and sim.now == 100
    assert info.value.cycle == ["A", "B"]


async def test_watchdog_counts_steps_at_one_instant_not_steps_ever():
    # Two syncs per instant, then progress: never more than 2 steps at one instant, so a
    # watchdog of 3 must never fire, however many instants the actor goes through.
    sim = Sim(watchdog_steps=3)
    _sampler(sim, period=2)

    async def poller() -> None:
        for _ in range(200):
            await sim.sync()
            await sim.sync()
            await sim.sync()
            await sim.delay(1)

    p = sim.spawn("p", poller)
    result = await sim.run(until=1_000)  # the sampler (a daemon) polls on to the deadline
    assert result.reason == "deadline"
    assert (p.state, p.now) == ("done", 200)


async def test_a_cancelled_run_stops_within_one_checkin_of_an_actor_doing_only_delays():
    # An actor that only spends its own time (delays, no shared state) never switches; the
    # engine still checks in with trio every CHECKIN_EVERY steps, so a cancellation (Ctrl-C, a
    # timeout around run()) reaches the run within that many steps, whatever the driver.
    # Counted in engine steps, not wall time: the scope is cancelled before the run starts.
    from emulator.engine._drivers import CHECKIN_EVERY

    sim = Sim()
    steps = [0]

    async def busy() -> None:
        for _ in range(50 * CHECKIN_EVERY):
            await sim.delay(1)
            steps[0] += 1

    sim.spawn("cpu0", busy)
    with trio.CancelScope() as scope:
        scope.cancel()
        await sim.run()
    assert scope.cancelled_caught
    assert steps[0] <= 2 * CHECKIN_EVERY  # (0 under the trio driver: cancelled at start)


async def test_two_timeouts_at_one_instant_fire_in_the_order_they_were_armed():
    # A arms its wait (timeout at t = 10) first, B second, both at t = 0. The idle-wait
    # shortcut (sleep_through) must give B the full wait's outcome: B's timer is behind A's
    # at the same instant, so A acts at t = 10 before B does.
    sim = Sim()
    wa, wb = WaitQueue(sim, "a_wait"), WaitQueue(sim, "b_wait")
    order: list[tuple[str, int]] = []

    async def waiter(name: str, wq: WaitQueue) -> None:
        assert not await wq.wait(timeout_ns=10)
        await sim.sync()
        order.append((name, sim.now))
        await sim.sync()
        order.append((name, sim.now))

    sim.spawn("A", waiter, "A", wa)
    sim.spawn("B", waiter, "B", wb)
    await sim.run()
    assert order == [("A", 10), ("A", 10), ("B", 10), ("B", 10)]


async def test_an_actor_tied_with_another_at_its_instant_is_synchronised():
    # After sync(), actors tied at the same instant are all "synchronised": the strategy
    # picked an order among them, none of them is earlier. Strict mode must not object.
    sim = Sim(strict=True)
    seen: list[tuple[str, bool]] = []

    async def cpu(name: str) -> None:
        await sim.delay(5)
        await sim.sync()
        seen.append((name, sim.is_synchronised()))
        sim.assert_synchronised("zone->lock")

    sim.spawn("cpu0", cpu, "cpu0")
    sim.spawn("cpu1", cpu, "cpu1")
    await sim.run()
    assert seen == [("cpu0", True), ("cpu1", True)]
