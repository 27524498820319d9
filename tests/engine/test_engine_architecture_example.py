"""The worked timeline of docs/architecture.md, run exactly as printed there."""

from __future__ import annotations

from emulator.engine import MemoryRecorder, RunResult, Sim, SpinLock, WaitQueue


class TracingSim(Sim):
    """Logs each synchronisation as it is requested and as it returns."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trace: list[tuple[str, str, int]] = []

    def _sync_step(self):
        # every synchronisation goes through here (Sim.sync and the primitives' inline sync)
        me = self.current
        self.trace.append(("sync", me.name, me.now))
        aw = super()._sync_step()
        if aw is None:
            self.trace.append(("pass", me.name, me.now))
            return None
        return self._passed(me, aw)

    async def _passed(self, me, aw) -> None:
        await aw
        self.trace.append(("pass", me.name, me.now))


async def test_worked_timeline():
    rec = MemoryRecorder()
    sim = TracingSim(recorder=rec)
    lock = SpinLock(sim, "zone->lock")
    wq = WaitQueue(sim, "kcompactd_wait")

    async def cpu0() -> None:
        await sim.delay(30)
        await lock.acquire("rmqueue_bulk")
        rec.emit("lock_acquired")
        await sim.delay(50)
        lock.release()
        rec.emit("lock_released")
        await sim.delay(100)
        await wq.wake_up()
        rec.emit("wake_kcompactd")

    async def cpu1() -> None:
        await sim.delay(60)
        await lock.acquire("free_pcppages_bulk")
        rec.emit("lock_acquired")
        await sim.delay(20)
        lock.release()
        rec.emit("lock_released")

    async def kcompactd() -> None:
        while True:
            woken = await wq.wait(timeout_ns=100)
            rec.emit("kcompactd_wake", woken=woken)

    sim.spawn("cpu0", cpu0)
    sim.spawn("cpu1", cpu1)
    kc = sim.spawn("kcompactd", kcompactd, daemon=True)
    result = await sim.run(until=250)
    assert result == RunResult("deadline", 250, ((3, 0), (2, 0)), 8, 6)
    assert rec.lines == [
        '{"t":30,"actor":"cpu0","event":"lock_acquired"}',
        '{"t":80,"actor":"cpu0","event":"lock_released"}',
        '{"t":80,"actor":"cpu1","event":"lock_acquired"}',
        '{"t":100,"actor":"cpu1","event":"lock_released"}',
        '{"t":100,"actor":"kcompactd","event":"kcompactd_wake","woken":false}',
        '{"t":180,"actor":"cpu0","event":"wake_kcompactd"}',
        '{"t":180,"actor":"kcompactd","event":"kcompactd_wake","woken":true}',
    ]
    # processing order of the synchronisations (rows 2-9 of the table)
    assert sim.trace == [
        ("sync", "cpu0", 30),
        ("sync", "cpu1", 60),
        ("sync", "kcompactd", 0),
        ("pass", "kcompactd", 0),
        ("pass", "cpu0", 30),
        ("sync", "cpu0", 180),
        ("pass", "cpu1", 60),
        ("sync", "kcompactd", 100),
        ("pass", "kcompactd", 100),
        ("pass", "cpu0", 180),
        ("sync", "kcompactd", 180),
        ("pass", "kcompactd", 180),
    ]
    s = lock.stats
    assert (s.contentions, s.wait_min, s.wait_max, s.wait_total) == (1, 20, 20, 20)
    assert (s.acquisitions, s.hold_min, s.hold_max, s.hold_total) == (2, 20, 50, 70)
    assert dict(s.contention_points) == {"free_pcppages_bulk": 1}
    assert dict(s.contending_points) == {"rmqueue_bulk": 1}
    assert sim.actors[1].spin_ns == 20
    assert kc.sleep_ns == 100 + 80 and kc.now == 180
