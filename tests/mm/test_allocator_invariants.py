"""Machine invariants and pcp bookkeeping hold through random multi-CPU allocator runs.

``check_machine`` (emulator.mm.invariants) proves the buddy side and counts PG_PCP pages per
zone against the number it is given; ``check_pcp_lists`` walks every pcp list (links intact,
every entry a PG_PCP head of the list's order inside the pcp's zone, no block on two lists,
``count`` equal to the list contents, no PG_PCP head on no list) and returns the pages it found,
which is the number handed to ``check_machine`` (not the pcps' own ``count``).
"""

from __future__ import annotations

import random

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.engine import Sim
from emulator.mm.invariants import InvariantViolation, check_machine, check_pcp_lists
from emulator.mm.machine import Machine
from emulator.mm.memmap import PG_ALLOC, PG_PCP, PG_TAIL
from emulator.mm.migrate import register_rmap_holder
from emulator.mm.page_alloc import gfp as G
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.page_alloc.drain import decay_pcp_high, drain_all_pages
from emulator.mm.page_alloc.isolation import isolate_free_block
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.page_alloc.pcp import NR_PCP_LISTS

GFPS = (
    G.GFP_KERNEL,
    G.GFP_HIGHUSER_MOVABLE,
    G.GFP_KERNEL | G.__GFP_RECLAIMABLE,
    G.GFP_ATOMIC,
    G.GFP_NOWAIT,
    G.GFP_KERNEL | G.__GFP_ZERO,
    G.GFP_KERNEL | G.GFP_DMA32,
)


def check_all(m: Machine, pa: PageAllocator, live: dict[int, int]) -> None:
    check_machine(m, check_pcp_lists(pa))
    st_, od = m.memmap.state, m.memmap.order
    for pfn, order in live.items():
        assert st_[pfn] == PG_ALLOC and od[pfn] == order, f"live block {pfn:#x} not allocated"
        if order:
            assert st_[pfn + (1 << order) - 1] == PG_ALLOC | PG_TAIL


def test_check_pcp_lists_catches_a_miscount_and_a_stray_page() -> None:
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=2)
    pcp = pa.cpus[0].pcp[0]

    async def actor() -> None:
        await pa.alloc_pages(pa.cpus[0], 0, G.GFP_KERNEL)

    sim.spawn("cpu0", actor)
    trio.run(sim.run)
    check_all(m, pa, {})
    pcp.count += 1
    with pytest.raises(InvariantViolation, match="cpu 0: pcp->count is 3 but its lists hold 2"):
        check_pcp_lists(pa)
    pcp.count -= 1
    # a PG_PCP page on no list (as a lost list_add would leave it)
    z = pa.zones[0]
    free_head = next(
        h for h in (m.memmap.list_first(z.free_list(0, mt)) for mt in range(3)) if h >= 0
    )
    isolate_free_block(z, free_head)
    m.memmap.mark_block(free_head, 0, PG_PCP)
    with pytest.raises(InvariantViolation) as exc:
        check_pcp_lists(pa)
    assert exc.value.invariant == "pcp-stray" and exc.value.pfn == free_head
    assert "zone Normal" in str(exc.value)


def test_check_pcp_lists_catches_bad_entries_and_links() -> None:
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=2)

    async def actor() -> None:
        await pa.alloc_pages(pa.cpus[1], 0, G.GFP_KERNEL)

    sim.spawn("cpu1", actor)
    trio.run(sim.run)
    assert check_pcp_lists(pa) == {(0, 2): pa.cpus[1].pcp[0].count}
    mm = m.memmap
    pcp = pa.cpus[1].pcp[0]
    head = next(
        pcp.lists + i for i in range(NR_PCP_LISTS) if mm.nxt[pcp.lists + i] != pcp.lists + i
    )
    first = mm.nxt[head]
    # an entry whose page was marked allocated while still on the list
    mm.state[first] = PG_ALLOC
    with pytest.raises(InvariantViolation) as exc:
        check_pcp_lists(pa)
    v = exc.value
    assert v.invariant == "pcp-entry" and v.pfn == first and "cpu 1's order-0" in str(v)
    mm.state[first] = PG_PCP
    check_pcp_lists(pa)
    # a broken back link
    mm.prv[first] = first
    with pytest.raises(InvariantViolation) as exc:
        check_pcp_lists(pa)
    assert exc.value.invariant == "pcp-list-links"


def random_run(seed: int, cpus: int, ops: int, strategy: str, check_every_ns: int) -> tuple:
    m = Machine.simple(DMA32=8192, Normal=16384)
    sim = Sim(strategy, seed=seed)
    pa = PageAllocator(m, sim, cpus_per_node=cpus)
    live: dict[int, int] = {}
    pool: list[int] = []
    checks = [0]
    rng = random.Random(seed)
    plans = {
        c.id: [
            (
                rng.random(),
                rng.choice((0, 0, 0, 0, 1, 2, 3, 9, 4, 5, 8, 10)),
                rng.choice(GFPS),
                rng.random(),
                rng.randrange(1, 2000),
            )
            for _ in range(ops)
        ]
        for c in pa.cpus
    }
    done = [0]

    def moved(old: int, new: int, order: int) -> None:
        # compaction migrated a block the test holds: follow it (the rmap)
        if old in live:
            live[new] = live.pop(old)
            pool[pool.index(old)] = new

    register_rmap_holder(pa, moved)

    async def cpu_actor(cpu) -> None:
        for r, order, gfp, pick, think in plans[cpu.id]:
            if r < 0.52 or not pool:
                if order == 9:
                    gfp = G.GFP_TRANSHUGE_LIGHT if pick < 0.5 else gfp
                pfn = await pa.alloc_pages(cpu, order, gfp)
                if pfn >= 0:
                    assert pfn not in live
                    live[pfn] = order
                    pool.append(pfn)
            elif r < 0.97:
                # free any live block, often one another CPU allocated
                i = int(pick * len(pool))
                pool[i], pool[-1] = pool[-1], pool[i]
                pfn = pool.pop()
                await free_pages(pa, cpu, pfn, live.pop(pfn))
            elif r < 0.985:
                await drain_all_pages(pa, cpu, None if pick < 0.5 else pa.zones[-1])
            else:
                await decay_pcp_high(pa, cpu)
            await sim.delay(think)
        done[0] += 1

    async def checker() -> None:
        while done[0] < cpus:
            await sim.delay(check_every_ns)
            await sim.sync()
            check_all(m, pa, live)
            checks[0] += 1

    for c in pa.cpus:
        sim.spawn(f"cpu{c.id}", cpu_actor, c)
    sim.spawn("checker", checker)
    trio.run(sim.run)
    check_all(m, pa, live)
    return m, pa, live, checks[0]


def test_random_multi_cpu_runs_keep_invariants() -> None:
    for seed, strategy in ((1, "fifo"), (2, "random"), (3, "random"), (4, "pct")):
        m, pa, live, checks = random_run(
            seed, cpus=4, ops=400, strategy=strategy, check_every_ns=20_000
        )
        assert checks > 10
        # the run exercised the paths that matter
        assert sum(c.stats[o].pcp_hits for c in pa.cpus for o in (0, 1, 2, 3, 9)) > 100
        assert sum(z.lock.stats.contentions for z in pa.zones) > 0
        # free everything, drain: every zone is whole again
        for pfn, order in list(live.items()):
            free_one_page_locked(pa.zone_of(pfn), pfn, order)
        for c in pa.cpus:
            for pcp in c.pcp:
                pcp.free_bulk(pcp.count, 0)
        check_machine(m, check_pcp_lists(pa))
        for z in pa.zones:
            assert z.nr_free_pages == z.managed_pages


def test_random_run_is_deterministic_per_seed() -> None:
    a = random_run(7, cpus=3, ops=150, strategy="random", check_every_ns=50_000)
    b = random_run(7, cpus=3, ops=150, strategy="random", check_every_ns=50_000)
    assert a[2] == b[2]
    assert bytes(a[0].memmap.state) == bytes(b[0].memmap.state)
    assert [c.pcp[0].count for c in a[1].cpus] == [c.pcp[0].count for c in b[1].cpus]


ORDERS = st.sampled_from((0, 0, 0, 1, 2, 3, 9, 4, 5, 6, 7, 8))
OP = st.tuples(
    st.sampled_from(("alloc", "alloc", "free", "free_other")),
    ORDERS,
    st.sampled_from(GFPS),
    st.integers(0, 10_000),
    st.integers(0, 1000),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(OP, max_size=80), min_size=1, max_size=3), st.sampled_from((0, 500)))
def test_property_random_per_cpu_sequences(per_cpu: list[list[tuple]], quantum: int) -> None:
    m = Machine.simple(DMA32=4096, Normal=8192)
    sim = Sim("fifo", quantum_ns=quantum)
    pa = PageAllocator(m, sim, cpus_per_node=len(per_cpu))
    live: dict[int, int] = {}
    mine: dict[int, list[int]] = {c.id: [] for c in pa.cpus}

    async def cpu_actor(cpu, ops) -> None:
        for kind, order, gfp, think, pick in ops:
            if kind == "alloc":
                if order == 9:
                    gfp = G.GFP_TRANSHUGE_LIGHT
                pfn = await pa.alloc_pages(cpu, order, gfp)
                if pfn >= 0:
                    live[pfn] = order
                    mine[cpu.id].append(pfn)
            else:
                # free one of mine, or (free_other) one another CPU allocated
                src = mine[cpu.id]
                if kind == "free_other":
                    others = [c for c in mine if c != cpu.id and mine[c]]
                    if others:
                        src = mine[others[pick % len(others)]]
                if src:
                    pfn = src.pop(pick % len(src))
                    await free_pages(pa, cpu, pfn, live.pop(pfn))
            await sim.delay(think)
            # between operations this CPU holds no lock: the state must be consistent
            pcp_pages = check_pcp_lists(pa)
            assert sum(pcp_pages.values()) == pa.pcp_pages()

    for c, ops in zip(pa.cpus, per_cpu, strict=True):
        sim.spawn(f"cpu{c.id}", cpu_actor, c, ops)
    trio.run(sim.run)
    check_all(m, pa, live)
    # every allocation attempt is accounted for
    attempts = sum(s.attempts for c in pa.cpus for s in c.stats)
    assert attempts == sum(1 for ops in per_cpu for op in ops if op[0] == "alloc")
