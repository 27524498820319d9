"""Review (mutation testing) of the zone->lock helper (``pa.zone_locked``, emulator/mm/internal.py):
an error raised under the lock releases it (spin_unlock_irqrestore on the way out) without
charging the hold, so another CPU can take the lock and the error reaches the caller."""

from __future__ import annotations

import pytest

from emulator.engine import Sim
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator


async def test_an_error_under_zone_lock_releases_it_and_charges_nothing() -> None:
    m = Machine.simple(Normal=4096)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    zone = pa.zones[0]
    seen: dict[str, int] = {}

    async def failing() -> None:
        t0 = sim.now
        with pytest.raises(ValueError, match="bad pfn"):
            async with pa.zone_locked(zone, "failing"):
                assert zone.lock.holder is sim.current
                raise ValueError("bad pfn")
        assert zone.lock.holder is None
        seen["failing_spent"] = sim.now - t0

    async def other() -> None:
        await sim.delay(1)
        hold = await pa.zone_lock(zone, "other")
        seen["other_at"] = sim.now
        await hold.unlock()

    sim.spawn("cpu0", failing)
    sim.spawn("cpu1", other)
    await sim.run()
    assert seen["failing_spent"] == 0
    assert seen["other_at"] == 1  # free again at once: no wait, no contention
    assert zone.lock.stats.acquisitions == 2
    assert dict(zone.lock.stats.contention_points) == {}
