"""Fresh boot layout, the fragmentation generators, and machines built from /proc snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emulator.mm.initstate import (
    _Draws,
    every_other_chunk,
    free_k_of_n,
    fresh_boot,
    machine_from_snapshot,
    random_alloc_free,
)
from emulator.mm.invariants import check_machine
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.highatomic import reserve_highatomic_pageblock
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked, rmqueue_bulk
from emulator.mm.procfs.parse import (
    combine_snapshots,
    parse_buddyinfo,
    parse_pagetypeinfo,
    parse_zoneinfo,
)
from emulator.mm.snapshot import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    ZoneSnapshot,
)

LIVE = Path(__file__).parent / "data" / "live-6.18"


def test_fresh_boot_x86_64_4g_layout():
    m = fresh_boot(4096)
    dma, dma32, normal = m.zone("DMA"), m.zone("DMA32"), m.zone("Normal")
    # DMA: pfn 1..4095, hole 0x9f..0xff, first 1 MiB reserved: managed [256, 4096)
    assert (dma.zone_start_pfn, dma.spanned_pages, dma.present_pages, dma.managed_pages) == (
        1,
        4095,
        3998,
        3840,
    )
    # [256,512) order 8, [512,1024) order 9, [1024,4096) three order-10 blocks
    assert dma.nr_free == [0] * 8 + [1, 1, 3]
    # DMA32: RAM to 3 GiB (786432), the 32 MiB kernel reserved at 16 MiB
    assert dma32.managed_pages == 786432 - 4096 - 8192
    assert dma32.nr_free[10] == dma32.managed_pages // 1024
    # Normal: 1 GiB above 4 GiB minus the memmap (64 B per present page) at the top
    present = 158 + (786432 - 256) + 262144
    assert normal.managed_pages == 262144 - (-(-present * 64 // 4096))
    for z in (dma, dma32, normal):
        assert z.nr_free_pages == z.managed_pages
        assert set(z.pageblocks_by_mt()[2:]) == {0}  # all MOVABLE
    # lists in ascending pfn order (memblock frees upwards, each block to the tail)
    heads = dma32.free_list_pfns(10, MIGRATE_MOVABLE)
    assert heads == sorted(heads)
    check_machine(m)


def test_two_nodes_and_zonelist():
    m = Machine.x86_64(8192, nodes=2, thp_enabled=False)
    assert [z.name for z in m.nodes[1].populated_zones] == ["Normal"]
    zl = m.zonelist(1, 2)
    assert [(z.node, z.name) for z in zl] == [
        (1, "Normal"),
        (0, "Normal"),
        (0, "DMA32"),
        (0, "DMA"),
    ]
    check_machine(m)


def test_random_alloc_free_reaches_target_and_is_seeded():
    def run(seed):
        m = Machine.simple(Normal=16384, thp_enabled=False)
        z = m.zone("Normal")
        held = random_alloc_free(
            z,
            0.4,
            np.random.default_rng(seed),
            orders=(0, 1, 3, 9),
            migratetypes=(0, 1, 2),
            churn=1.0,
        )
        check_machine(m)
        return m, z, held

    _m1, z1, h1 = run(5)
    _m2, z2, h2 = run(5)
    _, z3, _ = run(6)
    # stops at the first allocation that brings free <= 40%; churn replaces like for like
    assert z1.nr_free_pages <= 0.4 * 16384 + 512
    assert sum(1 << o for _, o in h1) + z1.nr_free_pages == 16384
    assert h1 == h2 and z1.snapshot() == z2.snapshot()
    assert z1.snapshot() != z3.snapshot()
    # all three migratetypes' pageblocks were used (fallbacks and claims happened)
    assert all(n > 0 for n in z1.pageblocks_by_mt()[:3])


def test_free_k_of_n_exact_structures():
    m = Machine.simple(Normal=8192, thp_enabled=False)
    z = m.zone("Normal")
    free_k_of_n(z, 1, 2)
    assert z.nr_free[:2] == [4096, 0]
    free_k_of_n(z, 2, 4)  # pages 0-1 of every 4: aligned order-1 blocks
    assert z.nr_free[:3] == [0, 2048, 0]
    free_k_of_n(z, 3, 8)  # pages 0,1,2 of every 8: one order-1 and one order-0 block
    assert z.nr_free[:3] == [1024, 1024, 0]
    free_k_of_n(z, 10, 100)  # groups 0,100,..,500 per pageblock; last group 12 pages
    assert z.nr_free_pages == 16 * 6 * 10
    check_machine(m)


def test_free_k_of_n_random_frees_exactly_k_per_group():
    m = Machine.simple(Normal=8192, thp_enabled=False)
    z = m.zone("Normal")
    free_k_of_n(z, 3, 8, rng=np.random.default_rng(3))
    assert z.nr_free_pages == 3072
    st = np.frombuffer(z.memmap.state, dtype=np.uint8)[:8192].reshape(-1, 8)
    assert ((st & 7) == 2).sum(axis=1).tolist() == [3] * 1024
    check_machine(m)


def test_every_other_chunk():
    m = Machine.simple(Normal=16384, thp_enabled=False)
    z = m.zone("Normal")
    every_other_chunk(z, 8)  # 8 MiB = 2048 pages: chunks 0 and 2 and 4 and 6 free
    assert z.nr_free == [0] * 10 + [8]
    assert z.free_list_pfns(10, MIGRATE_MOVABLE) == [0, 1024, 4096, 5120, 8192, 9216, 12288, 13312]
    with pytest.raises(ValueError, match="chunk_mib must be positive"):
        every_other_chunk(z, 0)
    check_machine(m)


def test_generators_refuse_pcp_pages():
    m = Machine.simple(Normal=4096, thp_enabled=False)
    z = m.zone("Normal")
    rmqueue_bulk(z, 0, 4, MIGRATE_MOVABLE)
    with pytest.raises(ValueError, match="pcp"):
        free_k_of_n(z, 1, 2)


def test_round_trip_buddyinfo_only():
    zs = ZoneSnapshot(
        node=0, name="Normal", nr_free=(1200, 800, 400, 200, 100, 50, 20, 10, 5, 2, 30)
    )
    dma = ZoneSnapshot(node=0, name="DMA", nr_free=(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3))
    m = machine_from_snapshot([dma, zs])
    check_machine(m)
    snap = m.snapshot()
    assert [z.nr_free for z in snap.zones] == [dma.nr_free, zs.nr_free]
    # no pagetypeinfo: every free block is MOVABLE
    assert snap.zones[1].nr_free_by_mt[MIGRATE_MOVABLE] == zs.nr_free


def test_round_trip_of_a_fragmented_model_machine_with_types():
    m = Machine.simple(DMA32=16384, Normal=65536, thp_enabled=False)
    for z in m.populated_zones():
        random_alloc_free(
            z,
            0.3,
            np.random.default_rng(z.zone_idx),
            orders=(0, 1, 2, 3, 9),
            order_weights=(5, 2, 1, 1, 1),
            migratetypes=(0, 1, 2),
            churn=1.0,
        )
    z = m.zone("Normal")
    reserve_highatomic_pageblock(z, rmqueue_buddy_locked(z, 1, MIGRATE_MOVABLE), 1)
    assert z.nr_reserved_highatomic == 512 and z.nr_free_highatomic > 0
    snap = m.snapshot()
    m2 = machine_from_snapshot(snap)
    check_machine(m2)
    snap2 = m2.snapshot()
    for a, b in zip(snap.zones, snap2.zones, strict=True):
        assert b.nr_free == a.nr_free
        assert b.nr_free_by_mt == a.nr_free_by_mt
        assert b.pageblocks_by_mt == a.pageblocks_by_mt
        assert (b.spanned, b.present, b.managed) == (a.spanned, a.present, a.managed)
        assert (b.wmark_min, b.wmark_low, b.wmark_high, b.lowmem_reserve) == (
            a.wmark_min,
            a.wmark_low,
            a.wmark_high,
            a.lowmem_reserve,
        )
    assert m2.zone("Normal").nr_reserved_highatomic == 512
    assert m2.zone("Normal").nr_free_highatomic == z.nr_free_highatomic


def test_round_trip_of_a_real_6_18_machine():
    snap = combine_snapshots(
        parse_buddyinfo((LIVE / "buddyinfo").read_text()),
        parse_pagetypeinfo((LIVE / "pagetypeinfo").read_text()),
        parse_zoneinfo((LIVE / "zoneinfo").read_text()),
    )
    m = machine_from_snapshot(snap)
    check_machine(m)
    got = {z.name: z for z in m.snapshot().zones}
    for a in snap.zones:
        if not a.spanned:
            continue
        b = got[a.name]
        assert b.nr_free == a.nr_free
        assert b.nr_free_by_mt == a.nr_free_by_mt
        assert (b.start_pfn, b.spanned, b.present, b.managed) == (
            a.start_pfn,
            a.spanned,
            a.present,
            a.managed,
        )
        assert (b.wmark_min, b.wmark_low, b.wmark_high, b.boost) == (
            a.wmark_min,
            a.wmark_low,
            a.wmark_high,
            a.boost,
        )
    # DMA and DMA32 pageblock types are matched exactly (Normal has offline memory sections,
    # which the kernel does not count and the model does not have)
    assert got["DMA"].pageblocks_by_mt[:3] == (1, 7, 0)
    assert got["DMA32"].pageblocks_by_mt[:3] == (0, 1528, 0)
    assert got["Normal"].nr_free_by_mt[MIGRATE_UNMOVABLE][:3] == (92, 336, 172)
    assert got["Normal"].nr_free_by_mt[MIGRATE_RECLAIMABLE][:2] == (415, 112)
    assert got["Normal"].nr_free_by_mt[MIGRATE_HIGHATOMIC] == (0,) * 11


def test_snapshot_that_cannot_fit_is_rejected():
    zs = ZoneSnapshot(
        node=0, name="Normal", nr_free=(0,) * 10 + (5,), spanned=4096, present=4096, managed=4096
    )
    with pytest.raises(ValueError, match="do not fit"):
        machine_from_snapshot([zs])


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_batched_draws_are_numpys_own_draws_and_leave_the_same_state(seed):
    # the calls random_alloc_free makes, interleaved as it makes them, against numpy's calls
    weights = np.asarray([0.8, 0.15, 0.05])
    ref = np.random.default_rng(seed)
    ref.integers(5)  # start with a buffered 32-bit half, as after an odd number of draws
    rng = np.random.default_rng(seed)
    rng.integers(5)
    draws = _Draws(rng)
    choose6 = draws.chooser(6, None)
    choose3 = draws.chooser(3, weights)
    got, want = [], []
    for i in range(3000):
        want.append(int(ref.choice(6)))
        want.append(int(ref.choice(3, p=weights)))
        got.append(choose6())
        got.append(choose3())
        if i % 7 == 0:
            n = 1 + (i * 7919) % 100_003
            want.append(int(ref.integers(n)))
            got.append(draws.integers(n))
    draws.finish()
    assert got == want
    assert rng.bit_generator.state == ref.bit_generator.state
    assert rng.permutation(50).tolist() == ref.permutation(50).tolist()


def test_random_alloc_free_batched_equals_per_call_draws(monkeypatch):
    def run():
        m = Machine.simple(Normal=16384, thp_enabled=False)
        z = m.zone("Normal")
        rng = np.random.default_rng(11)
        held = random_alloc_free(
            z, 0.3, rng, orders=(0, 0, 1, 3), migratetypes=(0, 1, 2), mt_weights=(5, 3, 2)
        )
        return held, z.snapshot(), rng.random()

    batched = run()
    monkeypatch.setattr(_Draws, "supports", staticmethod(lambda rng: False))
    assert run() == batched


def _numpy_draw(rng: np.random.Generator, n: int, p: np.ndarray | None) -> int:
    """What ``_Draws.chooser(n, p)`` stands for: numpy's own call."""
    if p is not None:
        return int(rng.choice(n, p=p))
    return int(rng.integers(n)) if n > 1 else 0


_SPECS = [
    [(6, None), (3, np.asarray([0.8, 0.15, 0.05]))],
    [(3, np.asarray([0.5, 0.25, 0.25])), (7, None)],
    [(5, None), (9, None)],
    [(1, None), (4, np.asarray([0.25, 0.25, 0.25, 0.25]))],
    # a bound just above 2**31: about half the 32-bit draws are retried (Lemire's rejection)
    [(2**31 + 1, None), (3, np.asarray([0.5, 0.25, 0.25]))],
]


@pytest.mark.parametrize("specs", _SPECS)
@pytest.mark.parametrize("seed", [0, 3, 12345])
@pytest.mark.parametrize("odd_start", [False, True])
def test_draws_made_ahead_are_numpys_own_and_leave_the_same_state(specs, seed, odd_start):
    # rounds of draws made ahead, partly used, mixed with single draws, against numpy's calls
    ref = np.random.default_rng(seed)
    rng = np.random.default_rng(seed)
    if odd_start:  # a buffered 32-bit half to begin with
        ref.integers(5)
        rng.integers(5)
    draws = _Draws(rng)
    choosers = [draws.chooser(n, p) for n, p in specs]
    plan = np.random.default_rng(seed + 1)
    got: list[int] = []
    want: list[int] = []
    for step in range(40):
        ahead = draws.rounds(specs, int(plan.integers(1, 2000)))
        if ahead is None:  # the first round needs a retry: drawn one call at a time
            got.extend(c() for c in choosers)
            want.extend(_numpy_draw(ref, n, p) for n, p in specs)
            continue
        used = int(plan.integers(0, len(ahead.values[0]) + 1))
        for r in range(used):
            got.extend(col[r] for col in ahead.values)
            want.extend(_numpy_draw(ref, n, p) for n, p in specs)
        ahead.commit(used)
        if step % 3 == 0:
            got.append(choosers[0]())
            want.append(_numpy_draw(ref, *specs[0]))
    draws.finish()
    assert got == want
    assert rng.bit_generator.state == ref.bit_generator.state
    assert rng.random(3).tolist() == ref.random(3).tolist()
