"""The per-CPU lru-add batch while it drains (mm/swap.c: folio_batch_move_lru).

In the kernel a folio stays in its CPU's ``cpu_fbatches.lru_add`` (PG_lru clear) until it moves
onto its LRU list under ``lruvec->lru_lock``; the batch is reset (folio_batch_reinit) only after
the move. So "the PF_LRU_BATCH heads are exactly the batch contents" holds at every instant,
including while a drain waits for ``lru_lock``, and ``lru_add_drain_all`` (which waits for
every CPU's drain work) returns with every batched folio on the LRU.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.engine import Sim
from emulator.mm.machine import Machine
from emulator.mm.memmap import PF_LRU, PF_LRU_BATCH
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.reclaim.lru import PAGEVEC_SIZE, lru_add_drain_all
from emulator.mm.reclaim.lruvec import LRU_INACTIVE_ANON
from emulator.workload import AllocClass, Phase, Workload
from emulator.workload.cpu import CpuProgram

ANON = AllocClass(0, "GFP_HIGHUSER_MOVABLE")
FILE = AllocClass(0, "GFP_HIGHUSER_MOVABLE", owner="file")
MLOCK = AllocClass(0, "GFP_HIGHUSER_MOVABLE", owner="mlocked")
#: how long the "other" actor holds lru_lock: far longer than 31 faults take
HOLD_NS = 2_000_000


def setup(
    cpus: int, strategy: str = "fifo", seed: int = 0
) -> tuple[Sim, PageAllocator, list[CpuProgram]]:
    m = Machine.simple(Normal=16384)
    sim = Sim(strategy, seed=seed, strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=cpus)
    wl = Workload([Phase("p", [ANON])])
    progs = [CpuProgram(pa, c, wl, seed=7 + c.id, use_inbox=False) for c in pa.cpus]
    return sim, pa, progs


def _lock_holder(sim: Sim, pa: PageAllocator) -> None:
    """An actor that takes node 0's lru_lock at t=0 and keeps it for HOLD_NS."""
    lock = pa.lruvecs[0].lru_lock

    async def hold() -> None:
        await lock.acquire("test")
        await sim.delay(HOLD_NS)
        await sim.sync()  # let go at our instant: observers at earlier times act first
        lock.release()

    sim.spawn("lru-lock-holder", hold)


async def test_batch_stays_whole_and_flagged_while_its_drain_waits_for_lru_lock() -> None:
    # cpu0 fills its batch (31 folios) while another actor holds lru_lock: the drain waits,
    # and meanwhile the folios are still in cpu0's batch with PF_LRU_BATCH, not PF_LRU
    # (before the fix the drain emptied the batch before waiting: lru-batch violated)
    sim, pa, (prog,) = setup(1)
    lv = pa.lruvecs[0]
    _lock_holder(sim, pa)
    seen: list[int] = []

    async def faults() -> None:
        await sim.delay(10)  # the holder has the lock first
        for _ in range(PAGEVEC_SIZE):
            await prog._allocate(ANON)

    async def observer() -> None:
        await sim.delay(HOLD_NS // 2)
        await sim.sync()
        assert lv.lru_lock.waiters == 1  # cpu0's folio_batch_move_lru
        batch = list(pa.cpus[0].lru_add)
        seen.extend(batch)
        assert len(batch) == PAGEVEC_SIZE
        assert all(pa.memmap.pflags[p] & (PF_LRU | PF_LRU_BATCH) == PF_LRU_BATCH for p in batch)
        pa.check()  # every invariant, lru-batch included, mid-drain

    sim.spawn("cpu0", faults)
    sim.spawn("observer", observer)
    await sim.run()
    assert len(seen) == PAGEVEC_SIZE
    assert pa.cpus[0].lru_add == [] and lv.nr_pages[LRU_INACTIVE_ANON] == PAGEVEC_SIZE
    assert all(pa.memmap.pflags[p] & (PF_LRU | PF_LRU_BATCH) == PF_LRU for p in seen)
    pa.check()


async def test_lru_add_drain_all_returns_with_a_draining_batch_on_the_lru() -> None:
    # lru_add_drain_all waits for every CPU's drain (flush_work): when it returns on cpu1,
    # cpu0's folios, whose drain was waiting for lru_lock, are on the LRU (before the fix it
    # saw cpu0's batch already emptied and returned at once, the folios still off the LRU)
    sim, pa, (prog0, _prog1) = setup(2)
    lv = pa.lruvecs[0]
    _lock_holder(sim, pa)
    done: list[int] = []

    async def faults() -> None:
        await sim.delay(10)
        for _ in range(PAGEVEC_SIZE):
            await prog0._allocate(ANON)

    async def drainer() -> None:
        await sim.delay(HOLD_NS // 2)
        await lru_add_drain_all(pa, pa.cpus[1])
        done.append(sim.now)
        pfns = [pa.machine.rmap.pfn(h) for h, _ in prog0.held]
        assert len(pfns) == PAGEVEC_SIZE
        assert all(pa.memmap.pflags[p] & (PF_LRU | PF_LRU_BATCH) == PF_LRU for p in pfns)
        assert all(c.lru_add == [] for c in pa.cpus)
        pa.check()

    sim.spawn("cpu0", faults)
    sim.spawn("cpu1", drainer)
    await sim.run()
    assert done and done[0] >= HOLD_NS  # it waited for the lock holder, then cpu0's move
    assert lv.nr_pages[LRU_INACTIVE_ANON] == PAGEVEC_SIZE


@settings(max_examples=25, deadline=None)
@given(
    cpus=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    strategy=st.sampled_from(["fifo", "random", "pct"]),
    ops=st.lists(st.integers(0, 9), min_size=20, max_size=120),
)
async def test_lru_batch_invariant_holds_at_every_check_under_contention(
    cpus: int, seed: int, strategy: str, ops: list[int]
) -> None:
    # CPUs fault and free folios of every LRU kind and drain every CPU's batch now and then,
    # while a checker runs every invariant at each synchronised instant (locks held or awaited
    # or not); at the end, lru_add_drain_all leaves every held folio on the LRU
    sim, pa, progs = setup(cpus, strategy, seed)
    classes = (ANON, FILE, MLOCK)
    checks = [0]
    running = [cpus]

    def cpu_body(prog: CpuProgram) -> object:
        async def body() -> None:
            for k, op in enumerate(ops[prog.cpu.id :] + ops[: prog.cpu.id]):
                if op < 6:
                    await prog._allocate(classes[(op + k) % 3])
                elif op < 9 and prog.held:
                    handle, order = prog.held.pop((op * 7 + k) % len(prog.held))
                    await prog._free(handle, order)
                else:
                    await lru_add_drain_all(pa, prog.cpu)
            running[0] -= 1
            if not running[0]:  # the last one out: every CPU's batch onto the LRU
                await lru_add_drain_all(pa, prog.cpu)

        return body

    async def checker() -> None:
        while running[0]:
            await sim.delay(997)
            await sim.sync()
            pa.check()
            checks[0] += 1

    for prog in progs:
        sim.spawn(f"cpu{prog.cpu.id}", cpu_body(prog))
    sim.spawn("checker", checker, daemon=True)
    await sim.run()
    assert checks[0] > 0
    pa.check()
    assert all(c.lru_add == [] for c in pa.cpus)
    for prog in progs:
        for h, _order in prog.held:
            pfn = pa.machine.rmap.pfn(h)
            assert pa.memmap.pflags[pfn] & (PF_LRU | PF_LRU_BATCH) == PF_LRU
