"""mm/internal.h's context structs and the zone->lock helper (emulator.mm.internal)."""

from __future__ import annotations

import attrs
import pytest

from emulator.engine import Sim, WaitQueue
from emulator.engine.errors import PrimitiveMisuse
from emulator.mm.internal import (
    MIGRATE_ASYNC,
    MIGRATE_SYNC,
    MIGRATE_SYNC_LIGHT,
    AllocContext,
    CaptureControl,
    CompactControl,
)
from emulator.mm.lockdep import lockdep_assert_held
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.snapshot import NR_PAGE_ORDERS


def test_migrate_mode_values() -> None:
    # include/linux/migrate_mode.h: enum migrate_mode
    assert (MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT, MIGRATE_SYNC) == (0, 1, 2)


def test_structs_have_the_kernels_fields() -> None:
    # the model's own additions (compaction's context: allocator, CPU, proactive inputs)
    model = {"pa", "cpu", "proactiveness", "kswapd_probe"}
    names = {a.name for a in attrs.fields(CompactControl)} - model
    assert names == {
        "freepages", "migratepages", "nr_freepages", "nr_migratepages", "free_pfn",
        "migrate_pfn", "fast_start_pfn", "zone", "total_migrate_scanned",
        "total_free_scanned", "fast_search_fail", "search_order", "gfp_mask", "order",
        "migratetype", "alloc_flags", "highest_zoneidx", "mode", "ignore_skip_hint",
        "no_set_skip_hint", "ignore_block_suitable", "direct_compaction",
        "proactive_compaction", "whole_zone", "contended", "finish_pageblock", "alloc_contig",
    }  # fmt: skip
    assert {a.name for a in attrs.fields(AllocContext)} == {
        "zonelist", "nodemask", "preferred_zoneref", "migratetype", "highest_zoneidx",
        "spread_dirty_pages",
    }  # fmt: skip
    assert {a.name for a in attrs.fields(CaptureControl)} == {"cc", "page"}
    m = Machine.simple(Normal=4096)
    z = m.zone("Normal")
    cc = CompactControl(zone=z, order=9, mode=MIGRATE_SYNC_LIGHT)
    assert len(cc.freepages) == NR_PAGE_ORDERS and cc.freepages[0] is not cc.freepages[1]
    assert CaptureControl(cc).page == -1
    with pytest.raises(AttributeError):
        cc.nonexistent = 1  # type: ignore[attr-defined]


async def test_zone_locked_charges_lock_steps_and_extra() -> None:
    m = Machine.simple(Normal=4096)
    sim = Sim("fifo", strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    zone = pa.zones[0]
    c = pa.costs
    seen: dict[str, int] = {}

    async def first() -> None:
        t0 = sim.now
        async with pa.zone_locked(zone, "test") as hold:
            lockdep_assert_held(zone.lock)
            steps = zone.buddy_steps
            rmqueue_buddy_locked(zone, 0, 1)  # splits an order-10 block: 11 buddy steps
            taken = zone.buddy_steps - steps
            hold.charge += 7
        seen["first"] = sim.now - t0
        seen["steps"] = taken

    async def second() -> None:
        await sim.delay(1)
        # async mode: a trylock while the first CPU holds it fails
        assert await pa.zone_trylock(zone, "test_try") is None
        with pytest.raises(PrimitiveMisuse, match="zone->lock"):
            lockdep_assert_held(zone.lock)
        hold = await pa.zone_lock(zone, "test_sync")  # sync mode waits for it
        seen["second_at"] = sim.now
        await hold.unlock()

    sim.spawn("cpu0", first)
    sim.spawn("cpu1", second)
    await sim.run()
    assert seen["steps"] == 11
    assert seen["first"] == c.zone_lock + 11 * c.buddy_step + 7
    # the waiter gets it when the holder releases; it bounced from the other CPU
    assert seen["second_at"] == seen["first"]
    assert zone.lock.stats.acquisitions == 2 and zone.lock.stats.trylock_failures == 1
    assert zone.lock.stats.acq_bounces == 1


async def test_wake_up_now_wakes_at_the_callers_instant() -> None:
    sim = Sim("fifo", strict=True)
    wq = WaitQueue(sim, "kswapd_wait")
    woken_at: list[int] = []

    async def sleeper() -> None:
        assert await wq.wait()
        woken_at.append(sim.now)

    async def waker() -> None:
        await sim.delay(500)
        await sim.sync()
        assert wq.wake_up_now() == 1

    sim.spawn("kswapd0", sleeper)
    sim.spawn("cpu0", waker)
    await sim.run()
    assert woken_at == [500]


# The zone->lock helper (``pa.zone_locked``, emulator/mm/internal.py): an error raised under the
# lock releases it (spin_unlock_irqrestore on the way out) without charging the hold, so another
# CPU can take the lock and the error reaches the caller.


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
