"""Strict mode: touching shared state without synchronising first is caught, not silent."""

from __future__ import annotations

import pytest

from emulator.engine import ActorCrashed, Sim, SpinLock


async def test_try_acquire_now_after_running_ahead_is_refused_in_strict_mode() -> None:
    sim = Sim("fifo", strict=True)
    lock = SpinLock(sim, "L")

    async def ahead() -> None:
        await sim.sync()
        await sim.delay(1_000)  # runs ahead of `late` without synchronising
        lock.try_acquire_now("ahead")

    async def late() -> None:
        await sim.delay(500)
        await lock.acquire("late")

    sim.spawn("ahead", ahead)
    sim.spawn("late", late)
    with pytest.raises(ActorCrashed, match="without synchronising") as info:
        await sim.run()
    assert "t=500 ns" in str(info.value.__cause__)


async def test_the_same_program_synchronising_first_is_accepted() -> None:
    sim = Sim("fifo", strict=True)
    lock = SpinLock(sim, "L")
    got: list[tuple[str, int]] = []

    async def ahead() -> None:
        await sim.delay(1_000)
        await sim.sync()
        assert sim.is_synchronised()
        if lock.try_acquire_now("ahead"):
            got.append(("ahead", sim.now))
            lock.release()
        else:
            got.append(("ahead-failed", sim.now))

    async def late() -> None:
        await sim.delay(500)
        await lock.acquire("late")
        got.append(("late", sim.now))
        await sim.delay(600)  # held until 1100: ahead's trylock at 1000 must fail
        lock.release()

    sim.spawn("ahead", ahead)
    sim.spawn("late", late)
    await sim.run()
    assert got == [("late", 500), ("ahead-failed", 1000)]
