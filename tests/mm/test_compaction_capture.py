"""Capture (struct capture_control, page_alloc.c: compaction_capture) against 6.12: a block of
exactly the requested order formed by the direct compactor's own frees (its pcp drain at
check_drain) goes straight to it, never onto a free list, and the result is COMPACT_SUCCESS
with the page; the same schedule without capture puts the block on the free list, where a
CPU allocating at the same time takes it. Frees by other tasks are never captured, and
manual compaction (no capture_control) captures nothing.
"""

from __future__ import annotations

import pytest

from emulator.engine import Sim
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import CaptureHook, CompactPriority, CompactResult
from emulator.mm.initstate import free_k_of_n
from emulator.mm.machine import Machine
from emulator.mm.memmap import PG_ISOLATED
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE, GFP_TRANSHUGE_LIGHT
from emulator.mm.reclaim.lru import adopt_allocated


def setup(strategy: str = "fifo", seed: int = 0):
    # zones start above pfn 0, as real ones do (struct zone's compaction fields start zeroed,
    # and a cached pfn of 0 inside the zone would be taken at face value)
    m = Machine.simple(DMA32=4096, Normal=65536)
    sim = Sim(strategy, seed=seed, strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    for z in pa.zones:
        free_k_of_n(z, 1, 2)  # every other page free: no free block above order 0
    adopt_allocated(pa)  # the allocated pages are anonymous memory on the LRU, with holders
    z = m.zone("Normal")
    return m, sim, pa, z


async def race(capture: bool, monkeypatch: pytest.MonkeyPatch):
    if not capture:
        monkeypatch.setattr(CaptureHook, "__call__", lambda self, pfn, order, mt: False)
    m, sim, pa, _ = setup()
    compactor_cpu, other_cpu = pa.cpus
    ac, alloc_flags, _ = pa.prepare_alloc_pages(compactor_cpu, GFP_TRANSHUGE)
    out: dict[str, object] = {"other": []}
    done = False

    async def compactor() -> None:
        nonlocal done
        r, page = await try_to_compact_pages(
            pa,
            compactor_cpu,
            GFP_TRANSHUGE,
            9,
            alloc_flags,
            ac,
            CompactPriority.COMPACT_PRIO_ASYNC,
        )
        out["result"], out["page"] = r, page
        done = True

    async def other() -> None:
        # another CPU faulting THPs without direct reclaim: fast path only, every 2 us
        while not done:
            pfn = await pa.alloc_pages(other_cpu, 9, GFP_TRANSHUGE_LIGHT)
            if pfn >= 0:
                out["other"].append(pfn)  # type: ignore[attr-defined]
            await sim.delay(2_000)

    sim.spawn("compactor", compactor)
    sim.spawn("other", other)
    await sim.run()
    pa.check()
    return m, pa, out


async def test_capture_gives_the_block_to_the_compactor(monkeypatch: pytest.MonkeyPatch) -> None:
    m, _, out = await race(True, monkeypatch)
    assert out["result"] == CompactResult.COMPACT_SUCCESS
    page = out["page"]
    assert isinstance(page, int) and page >= 0
    assert page % (1 << 9) == 0 and m.memmap.state[page] == PG_ISOLATED
    assert m.memmap.order[page] == 9
    assert page not in out["other"]

    # the same schedule without capture: the block reaches the free list and the racing CPU,
    # faulting THPs at the same time, takes exactly that block
    monkeypatch.undo()
    _, _, out2 = await race(False, monkeypatch)
    assert out2["page"] == -1
    assert out2["result"] == CompactResult.COMPACT_SUCCESS  # a suitable block was there...
    assert page in out2["other"]  # ... and the other CPU got it


async def test_no_capture_for_manual_compaction() -> None:
    from emulator.mm.compaction.compact import compact_nodes

    m, sim, pa, z = setup()

    async def writer() -> None:
        await compact_nodes(pa, pa.cpus[0])

    sim.spawn("writer", writer)
    await sim.run()
    pa.check()
    assert z.capture is None
    assert not any(s == PG_ISOLATED for s in m.memmap.state)  # nothing held back
    assert z.nr_free[9] + z.nr_free[10] > 0
