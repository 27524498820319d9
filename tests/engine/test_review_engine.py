"""Review (mutation testing) of the engine: the live-actor count that decides when a lock
deadlock is declared despite daemons, the watchdog's reset on progress, and the stop instant.

Each test pins behaviour a plausible one-line mutation of emulator/engine/sim.py changed while
the rest of the suite stayed green (see the review report). Run under both drivers (conftest).
"""

from __future__ import annotations

import pytest
import trio

from emulator.engine import DeadlockError, Sim, SpinLock, WaitQueue


def _abba(sim: Sim) -> None:
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
    _abba(sim)
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
    _abba(sim)
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
    _abba(sim)

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
