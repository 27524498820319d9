"""SpinLock / Mutex: FIFO hand-off, try_acquire against the unsynchronised release, spin vs
sleep accounting, and /proc/lock_stat figures against a hand-computed schedule."""

from __future__ import annotations

import pytest

from emulator.engine import ActorCrashed, Mutex, PrimitiveMisuse, Sim, SpinLock
from emulator.engine.lockstat import render_lock_stat, snprint_time


async def test_fifo_handoff_to_queued_waiters_in_arrival_order():
    # holder takes the lock at 0 and parks inside its critical section at t=100 (sync), so
    # the waiters arriving at 40, 10, 30, 20 are processed while it is held and queue up
    sim = Sim()
    lock = SpinLock(sim, "L")
    got: list[tuple[str, int]] = []

    async def holder() -> None:
        await lock.acquire()
        await sim.delay(100)
        await sim.sync()
        lock.release()

    async def waiter() -> None:
        await lock.acquire()
        got.append((sim.current.name, sim.now))
        await sim.delay(10)
        lock.release()

    sim.spawn("holder", holder)
    for name, start in (("w40", 40), ("w10", 10), ("w30", 30), ("w20", 20)):
        sim.spawn(name, waiter, start=start)
    await sim.run()
    assert got == [("w10", 100), ("w20", 110), ("w30", 120), ("w40", 130)]
    # each waiter spun from its arrival to its hand-off
    spins = {a.name: a.spin_ns for a in sim.actors}
    assert spins == {"holder": 0, "w10": 90, "w20": 90, "w30": 90, "w40": 90}
    assert lock.stats.contentions == 4 and lock.stats.wait_total == 360


async def test_fifo_among_same_instant_arrivals_follows_processing_order():
    sim = Sim()
    lock = SpinLock(sim, "L")
    got: list[str] = []

    async def holder() -> None:
        await lock.acquire()
        await sim.delay(50)
        await sim.sync()
        lock.release()

    async def waiter() -> None:
        await lock.acquire()
        got.append(sim.current.name)
        lock.release()

    sim.spawn("holder", holder)
    for name in ("d", "c", "b", "a"):  # all arrive at t=5; fifo processes in spawn order
        sim.spawn(name, waiter, start=5)
    await sim.run()
    assert got == ["d", "c", "b", "a"]


async def test_unsynchronised_release_makes_later_processed_earlier_clocks_spin():
    # H acquires at 0 and releases at 100 *without* synchronising (it never parks in its
    # critical section), then runs ahead to 1000. W1 (t=10) and W2 (t=20) are processed after
    # the release, but their clocks are earlier: they must queue behind H exactly as if the
    # release had been ordered, i.e. W1 gets the lock at 100, W2 at 100 + 10.
    sim = Sim()
    lock = SpinLock(sim, "L")
    got: dict[str, int] = {}

    async def h() -> None:
        await lock.acquire()
        await sim.delay(100)
        lock.release()
        await sim.delay(900)
        await sim.sync()

    async def w() -> None:
        await lock.acquire()
        got[sim.current.name] = sim.now
        await sim.delay(10)
        lock.release()

    sim.spawn("H", h)
    sim.spawn("W1", w, start=10)
    sim.spawn("W2", w, start=20)
    await sim.run()
    assert got == {"W1": 100, "W2": 110}
    assert [a.spin_ns for a in sim.actors] == [0, 90, 90]
    s = lock.stats
    assert (s.contentions, s.wait_min, s.wait_max, s.wait_total) == (2, 90, 90, 180)
    assert lock.free_at == 120 and lock.holder is None


async def test_try_acquire_fails_while_held_and_when_released_in_the_future():
    sim = Sim()
    lock = SpinLock(sim, "L")
    results: list[tuple[int, bool]] = []

    async def h() -> None:
        await lock.acquire()
        await sim.delay(100)
        lock.release()  # unsynchronised: free_at = 100, processed before T runs
        await sim.delay(1000)
        await sim.sync()

    async def t() -> None:
        # t=50: the lock is free in processing order but not at the caller's time
        results.append((sim.now, await lock.try_acquire("compact_trylock")))
        await sim.delay(49)
        results.append((sim.now, await lock.try_acquire("compact_trylock")))  # t=99
        await sim.delay(1)
        ok = await lock.try_acquire("compact_trylock")  # t=100: exactly free_at
        results.append((sim.now, ok))
        assert lock.holder is sim.current
        lock.release()

    sim.spawn("H", h)
    sim.spawn("T", t, start=50)
    await sim.run()
    assert results == [(50, False), (99, False), (100, True)]
    assert lock.stats.trylock_failures == 2
    assert lock.stats.contentions == 0  # failed trylocks are not contentions
    assert lock.stats.acquisitions == 2


async def test_try_acquire_fails_against_a_parked_holder():
    sim = Sim()
    lock = SpinLock(sim, "L")
    out: list[bool] = []

    async def h() -> None:
        await lock.acquire()
        await sim.delay(100)
        await sim.sync()  # T (t=10) runs while H holds
        lock.release()

    async def t() -> None:
        out.append(await lock.try_acquire())
        assert lock.is_locked()
        await sim.delay(200)
        out.append(await lock.try_acquire())
        lock.release()
        assert not lock.is_locked()

    sim.spawn("H", h)
    sim.spawn("T", t, start=10)
    await sim.run()
    assert out == [False, True]


async def test_mutex_wait_is_sleep_not_spin():
    for cls, spin, sleep in ((SpinLock, 90, 0), (Mutex, 0, 90)):
        sim = Sim()
        lock = cls(sim, "L")

        async def h(lock=lock, sim=sim) -> None:
            await lock.acquire()
            await sim.delay(100)
            await sim.sync()
            lock.release()

        async def w(lock=lock, sim=sim) -> None:
            await lock.acquire()
            lock.release()

        sim.spawn("H", h)
        waiter = sim.spawn("W", w, start=10)
        await sim.run()
        assert (waiter.spin_ns, waiter.sleep_ns) == (spin, sleep), cls.__name__
        assert lock.stats.wait_total == 90


async def test_mutex_fast_path_wait_is_sleep_too():
    sim = Sim()
    m = Mutex(sim, "pcpu_drain_mutex")

    async def h() -> None:
        await m.acquire()
        await sim.delay(100)
        m.release()  # unsynchronised: W (t=30) waits via free_at
        await sim.delay(500)

    async def w() -> None:
        await m.acquire()
        m.release()

    sim.spawn("H", h)
    waiter = sim.spawn("W", w, start=30)
    await sim.run()
    assert (waiter.spin_ns, waiter.sleep_ns, waiter.now) == (0, 70, 100)
    assert m.describe_wait(waiter).startswith("mutex pcpu_drain_mutex")


async def test_lock_stat_against_hand_computed_schedule():
    # Schedule (virtual ns), lock "zone->lock", fifo:
    #   A  t=0     acquire (site rmqueue_bulk), free            -> holds from 0
    #   A  t=300   parks inside its critical section (sync): B and C run first
    #   B  t=100   acquire (free_pcppages_bulk): held by A      -> queued, contending site
    #                                                              rmqueue_bulk (A's)
    #   C  t=200   acquire (rmqueue_bulk): held by A            -> queued behind B
    #   A  t=300   release -> hand-off to B                     A held 300
    #   B  t=300   acquired after waiting 200, holds 50, releases at 350 -> hand-off to C
    #   C  t=350   acquired after waiting 150, holds 1000, releases at 1350
    #   D  t=2000  acquire (compact_zone), free, holds 5, releases at 2005
    # => contentions 2, wait min 150 max 200 total 350 avg 175;
    #    acquisitions 4, hold min 5 max 1000 total 1355 avg 1355 // 4 = 338;
    #    con-bounces 2; acq-bounces 3 (B, C, D each take it from another actor);
    #    contention points: free_pcppages_bulk 1, rmqueue_bulk 1; contending: rmqueue_bulk 2.
    sim = Sim()
    lock = SpinLock(sim, "zone->lock")
    idle = SpinLock(sim, "never_taken")

    async def a() -> None:
        await lock.acquire("rmqueue_bulk")
        await sim.delay(300)
        await sim.sync()
        lock.release()

    async def user(site: str, hold: int) -> None:
        await lock.acquire(site)
        await sim.delay(hold)
        lock.release()

    sim.spawn("A", a)
    sim.spawn("B", user, "free_pcppages_bulk", 50, start=100)
    sim.spawn("C", user, "rmqueue_bulk", 1000, start=200)
    sim.spawn("D", user, "compact_zone", 5, start=2000)
    result = await sim.run()
    assert result.now == 2005
    s = lock.stats
    assert (s.contentions, s.wait_min, s.wait_max, s.wait_total, s.wait_avg) == (
        2,
        150,
        200,
        350,
        175,
    )
    assert (s.acquisitions, s.hold_min, s.hold_max, s.hold_total, s.hold_avg) == (
        4,
        5,
        1000,
        1355,
        338,
    )
    assert (s.con_bounces, s.acq_bounces) == (2, 3)
    assert dict(s.contention_points) == {"free_pcppages_bulk": 1, "rmqueue_bulk": 1}
    assert dict(s.contending_points) == {"rmqueue_bulk": 2}
    assert s.as_dict()["waittime-avg"] == 175

    # /proc/lock_stat text: µs with two decimals after adding 5 ns (snprint_time):
    # 150 -> 0.15, 200 -> 0.20, 350 -> 0.35, 175 -> 0.18, 5 -> 0.01, 1000 -> 1.00,
    # 1355 -> 1.36, 338 -> 0.34
    text = render_lock_stat([idle.stats, s])
    lines = text.split("\n")
    dashes = "-" * 221
    assert lines[0] == "lock_stat version 0.4"
    assert lines[1] == dashes and lines[3] == dashes and lines[4] == ""
    assert lines[2].split() == [
        "class",
        "name",
        "con-bounces",
        "contentions",
        "waittime-min",
        "waittime-max",
        "waittime-total",
        "waittime-avg",
        "acq-bounces",
        "acquisitions",
        "holdtime-min",
        "holdtime-max",
        "holdtime-total",
        "holdtime-avg",
    ]
    assert lines[2].index("class name") == 30 and len(lines[2]) == 220
    assert lines[5] == (
        "                              zone->lock:"
        "             2              2           0.15           0.20           0.35"
        "           0.18              3              4           0.01           1.00"
        "           1.36           0.34"
    )
    pad = " " * 30
    ptr = "         [<0000000000000000>]"
    assert lines[6] == pad + "-" * 10
    assert sorted(lines[7:9]) == sorted(
        [
            f"{pad}zone->lock              1 {ptr} free_pcppages_bulk",
            f"{pad}zone->lock              1 {ptr} rmqueue_bulk",
        ]
    )
    assert lines[9] == pad + "-" * 10
    assert lines[10] == f"{pad}zone->lock              2 {ptr} rmqueue_bulk"
    assert lines[11] == "" and lines[12] == "." * 221 and lines[13] == ""
    # a class never acquired prints nothing
    assert "never_taken" not in text
    assert lines[14:] == [""]


def test_snprint_time_rounding():
    assert [snprint_time(n) for n in (0, 4, 5, 994, 995, 1000, 123_456_789)] == [
        "0.00",
        "0.00",
        "0.01",
        "0.99",
        "1.00",
        "1.00",
        "123456.79",
    ]


async def test_lock_stat_sorts_by_contentions_and_truncates_names():
    sim = Sim()
    quiet = SpinLock(sim, "quiet")
    busy = SpinLock(sim, "a_very_long_lock_class_name_that_goes_on_and_on")

    async def h() -> None:
        await busy.acquire()
        await quiet.acquire()
        quiet.release()
        await sim.delay(10)
        busy.release()

    async def w() -> None:
        await busy.acquire()
        busy.release()

    sim.spawn("H", h)
    sim.spawn("W", w, start=1)
    await sim.run()
    text = render_lock_stat([quiet.stats, busy.stats])
    rows = [ln for ln in text.split("\n") if ln.endswith(":") or ":" in ln[:41]]
    assert rows[0].startswith("   a_very_long_lock_class_name_that_goes:")  # 37 chars kept
    assert "_on_and_on" not in text
    assert rows[1].startswith(" " * 35 + "quiet:")


async def test_lock_misuse_is_named():
    sim = Sim()
    lock = SpinLock(sim, "zone->lock")

    async def double() -> None:
        await lock.acquire("rmqueue")
        await lock.acquire("rmqueue")

    sim.spawn("cpu3", double)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    cause = info.value.__cause__
    assert isinstance(cause, PrimitiveMisuse)
    assert "'cpu3'" in str(cause) and "zone->lock" in str(cause) and "already holds" in str(cause)

    sim = Sim()
    lock = SpinLock(sim, "zone->lock")

    async def stray() -> None:
        lock.release()

    sim.spawn("cpu1", stray)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    assert isinstance(info.value.__cause__, PrimitiveMisuse)
    assert "'cpu1' releases zone->lock" in str(info.value.__cause__)
    assert "held by nobody" in str(info.value.__cause__)


async def test_release_of_a_lock_held_by_another_actor():
    sim = Sim()
    lock = SpinLock(sim, "L")

    async def owner() -> None:
        await lock.acquire()
        await sim.delay(10)
        await sim.sync()
        lock.release()

    async def thief() -> None:
        lock.release()

    sim.spawn("owner", owner)
    sim.spawn("thief", thief, start=5)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    assert info.value.actor == "thief" and info.value.now == 5
    assert "held by owner" in str(info.value.__cause__)


async def test_try_acquire_of_held_lock_by_holder_is_misuse():
    sim = Sim()
    lock = SpinLock(sim, "L")

    async def a() -> None:
        await lock.acquire()
        await lock.try_acquire()

    sim.spawn("a", a)
    with pytest.raises(ActorCrashed) as info:
        await sim.run()
    assert "'a' try_acquires L" in str(info.value.__cause__)


async def test_lock_as_async_context_manager():
    sim = Sim()
    lock = SpinLock(sim, "L")

    async def a() -> None:
        async with lock:
            assert lock.holder is sim.current
            await sim.delay(7)
        assert lock.holder is None

    sim.spawn("a", a)
    await sim.run()
    assert lock.stats.acquisitions == 1 and lock.stats.hold_total == 7


async def test_try_acquire_now_matches_try_acquire_without_a_second_sync():
    sim = Sim()
    lock = SpinLock(sim, "L")
    out: list[tuple[int, bool]] = []

    async def h() -> None:
        await lock.acquire()
        await sim.delay(100)
        lock.release()
        await sim.delay(1000)
        await sim.sync()

    async def t() -> None:
        await sim.sync()
        syncs = sim.syncs
        out.append((sim.now, lock.try_acquire_now("alloc")))  # t=50 < free_at
        await sim.delay(50)
        await sim.sync()
        out.append((sim.now, lock.try_acquire_now("alloc")))  # t=100 == free_at
        assert sim.syncs == syncs + 1  # only the explicit sync
        with pytest.raises(PrimitiveMisuse, match="already holds"):
            lock.try_acquire_now()
        lock.release()

    sim.spawn("H", h)
    sim.spawn("T", t, start=50)
    await sim.run()
    assert out == [(50, False), (100, True)]
    assert lock.stats.trylock_failures == 1


async def test_merge_lock_stats_of_one_class():
    from emulator.engine.lockstat import merge_lock_stats

    sim = Sim()
    a, b = SpinLock(sim, "zone0"), SpinLock(sim, "zone1")

    async def user(lock: SpinLock, hold: int) -> None:
        await lock.acquire("rmqueue")
        await sim.delay(hold)
        await sim.sync()
        lock.release()

    sim.spawn("x", user, a, 10)
    sim.spawn("y", user, a, 30, start=5)  # waits 5 on zone0
    sim.spawn("z", user, b, 7)
    await sim.run()
    m = merge_lock_stats("&zone->lock", [a.stats, b.stats])
    assert (m.name, m.acquisitions, m.contentions) == ("&zone->lock", 3, 1)
    assert (m.hold_min, m.hold_max, m.hold_total) == (7, 30, 47)
    assert (m.wait_min, m.wait_max, m.wait_total) == (5, 5, 5)
    assert dict(m.contention_points) == {"rmqueue": 1}
