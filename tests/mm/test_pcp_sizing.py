"""pcp batch and high sizing against mm/page_alloc.c of Linux 6.12 (zone_batchsize,
zone_highsize, zone_set_pageset_high_and_batch, pageset_update), for several zone sizes and CPU
counts. Expected values are worked out by hand in the comments:

    zone_batchsize:  b = min(managed >> 10, 256); b //= 4 (at least 1);
                     batch = rounddown_pow_of_two(b + b/2) - 1; the pageset takes max(1, batch)
    zone_highsize:   total = low_wmark (fraction 0) or managed / fraction;
                     high = max(total / node_cpus, batch * 4)
    high_min = zone_highsize(fraction 0); high_max = zone_highsize(fraction 8) when
    vm.percpu_pagelist_high_fraction is 0, else both = zone_highsize(fraction).
"""

from __future__ import annotations

import pytest

from emulator.engine import Sim
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.pcp import (
    NR_PCP_LISTS,
    order_to_pindex,
    pageset_high_and_batch,
    pcp_allowed_order,
    pindex_to_order,
    zone_batchsize,
    zone_highsize,
)
from emulator.mm.procfs.render import render_zoneinfo
from emulator.mm.snapshot import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE


@pytest.mark.parametrize(
    ("managed", "batch"),
    [
        (1023, 0),  # 0 -> 0 -> 1 (min) -> rounddown(1 + 0) - 1 = 0
        (2048, 0),  # 2 -> 0 -> 1 -> 0
        (3840, 0),  # x86-64 ZONE_DMA: 3 -> 0 -> 1 -> 0
        (4096, 0),  # 4 -> 1 -> rounddown(1 + 0) - 1 = 0
        (8192, 1),  # 8 -> 2 -> rounddown(2 + 1 = 3) = 2 -> 1
        (12288, 3),  # 12 -> 3 -> rounddown(3 + 1 = 4) = 4 -> 3
        (16384, 3),  # 16 -> 4 -> rounddown(4 + 2 = 6) = 4 -> 3
        (32768, 7),  # 32 -> 8 -> rounddown(8 + 4 = 12) = 8 -> 7
        (65536, 15),  # 64 -> 16 -> rounddown(16 + 8 = 24) = 16 -> 15
        (131072, 31),  # 128 -> 32 -> rounddown(32 + 16 = 48) = 32 -> 31
        (262144, 63),  # 256 -> 64 -> rounddown(64 + 32 = 96) = 64 -> 63 (1 GiB)
        (245761, 63),  # 240 -> 60 -> rounddown(60 + 30 = 90) = 64 -> 63
        (1 << 24, 63),  # min(16384, 256) = 256 -> 63: capped at 1 MiB of pages
    ],
)
def test_zone_batchsize_formula(managed: int, batch: int) -> None:
    assert zone_batchsize(managed) == batch


def test_zone_highsize_formula() -> None:
    # low watermark split across the node's CPUs
    assert zone_highsize(7040, 262144, 63, 8, 0) == 880  # 7040 / 8
    # 4 * batch wins when the split is small: 7040 / 32 = 220 < 252
    assert zone_highsize(7040, 262144, 63, 32, 0) == 252
    # fraction: managed / fraction / cpus = 262144 / 8 / 8 = 4096
    assert zone_highsize(7040, 262144, 63, 8, 8) == 4096
    # cpu_online is added to the node's CPUs (hotplug): 7040 / (8 + 1) = 782
    assert zone_highsize(7040, 262144, 63, 8, 0, cpu_online=1) == 782
    # a node without CPUs splits across all online CPUs: 7040 / 16 = 440
    assert zone_highsize(7040, 262144, 63, 0, 0, online_cpus=16) == 440


def test_pageset_high_and_batch_fraction_disables_autotuning() -> None:
    # fraction 0: (high_min from low, high_max from managed/8, batch)
    assert pageset_high_and_batch(7040, 262144, 4, 0) == (1760, 8192, 63)
    # fraction 100: both managed/100/cpus = 2621 / 4 = 655
    assert pageset_high_and_batch(7040, 262144, 4, 100) == (655, 655, 63)
    # a tiny zone: batch max(1, 0) = 1, high at least 4
    assert pageset_high_and_batch(2, 2048, 4, 0) == (4, 64, 1)


def _pcp_limits(machine: Machine, cpus_per_node: int) -> dict[str, tuple[int, int, int, int]]:
    pa = PageAllocator(machine, Sim("fifo"), cpus_per_node=cpus_per_node)
    out = {}
    for z in pa.zones:
        vals = {
            (c.pcp[z.gidx].batch, c.pcp[z.gidx].high_min, c.pcp[z.gidx].high_max) for c in pa.cpus
        }
        assert len(vals) == 1, "every CPU's pcp of a zone has the same limits"
        batch, high_min, high_max = vals.pop()
        out[z.name] = (z.low_wmark_pages, batch, high_min, high_max)
    return out


# (zone pages, node CPUs) -> (low watermark, batch, high_min, high_max)
SINGLE_ZONE_CASES = [
    # 16384 pages: low 1000 (min 800 + max(800/4 = 200, 16384*10/10000 = 16)), batch 3
    (16384, 1, (1000, 3, 1000, 2048)),  # 1000/1; 16384/8 = 2048
    (16384, 2, (1000, 3, 500, 1024)),
    (16384, 4, (1000, 3, 250, 512)),
    (16384, 8, (1000, 3, 125, 256)),
    # 65536 pages: low 4047 (min 3238 + 809), batch 15
    (65536, 1, (4047, 15, 4047, 8192)),
    (65536, 2, (4047, 15, 2023, 4096)),  # 4047 / 2 = 2023
    (65536, 8, (4047, 15, 505, 1024)),  # 4047 / 8 = 505; 65536/8/8 = 1024
    # 262144 pages (1 GiB): low 7040 (min 5632 + 1408), batch 63
    (262144, 2, (7040, 63, 3520, 16384)),
    (262144, 8, (7040, 63, 880, 4096)),
    (262144, 32, (7040, 63, 252, 1024)),  # 7040/32 = 220 < 4*63 = 252
]


@pytest.mark.parametrize(("pages", "cpus", "expected"), SINGLE_ZONE_CASES)
def test_allocator_sets_kernel_limits(pages: int, cpus: int, expected: tuple) -> None:
    m = Machine.simple(Normal=pages)
    assert _pcp_limits(m, cpus)["Normal"] == expected


def test_three_zone_machine_limits_per_zone() -> None:
    m = Machine.simple(DMA=4096, DMA32=32768, Normal=131072)
    # 4 CPUs on the node
    assert _pcp_limits(m, 4) == {
        # DMA: batch max(1, 0) = 1; high_min = max(253/4 = 63, 4); high_max = 4096/8/4 = 128
        "DMA": (253, 1, 63, 128),
        # DMA32: batch 7; 2032/4 = 508; 32768/8/4 = 1024
        "DMA32": (2032, 7, 508, 1024),
        # Normal: batch 31; 8131/4 = 2032; 131072/8/4 = 4096
        "Normal": (8131, 31, 2032, 4096),
    }
    # 8 CPUs: DMA 253/8 = 31, 4096/64 = 64; DMA32 254, 512; Normal 1016, 2048
    assert _pcp_limits(m, 8) == {
        "DMA": (253, 1, 31, 64),
        "DMA32": (2032, 7, 254, 512),
        "Normal": (8131, 31, 1016, 2048),
    }


def test_x86_64_4g_limits() -> None:
    m = Machine.x86_64(4096)
    lim = _pcp_limits(m, 4)
    # DMA: 3840 managed pages -> batch 1; low 78: max(78/4 = 19, 4) = 19; 3840/8/4 = 120
    assert lim["DMA"] == (78, 1, 19, 120)
    # DMA32: 774144 managed -> batch 63; 15970/4 = 3992; 774144/8/4 = 24192
    assert lim["DMA32"] == (15970, 63, 3992, 24192)
    # Normal: 245761 managed -> batch 63; 5070/4 = 1267; 245761/8 = 30720, /4 = 7680
    assert lim["Normal"] == (5070, 63, 1267, 7680)


def test_sysctl_percpu_pagelist_high_fraction_recomputes_and_pins_high() -> None:
    m = Machine.simple(Normal=262144)
    pa = PageAllocator(m, Sim("fifo"), cpus_per_node=4)
    pcp = pa.cpus[0].pcp[0]
    assert (pcp.batch, pcp.high_min, pcp.high_max) == (63, 1760, 8192)
    m.sysctl.set("vm.percpu_pagelist_high_fraction", 100)
    # 262144 / 100 = 2621, / 4 CPUs = 655 for both: auto-tuning off
    assert (pcp.batch, pcp.high_min, pcp.high_max) == (63, 655, 655)
    m.sysctl.set("vm.percpu_pagelist_high_fraction", 8)
    assert (pcp.high_min, pcp.high_max) == (8192, 8192)  # 262144/8/4
    m.sysctl.set("vm.percpu_pagelist_high_fraction", 0)
    assert (pcp.high_min, pcp.high_max) == (1760, 8192)
    with pytest.raises(ValueError):
        m.sysctl.set("vm.percpu_pagelist_high_fraction", 7)  # minimum non-zero value is 8


def test_min_free_kbytes_change_updates_high_min() -> None:
    m = Machine.simple(Normal=262144)
    pa = PageAllocator(m, Sim("fifo"), cpus_per_node=2)
    pcp = pa.cpus[1].pcp[0]
    m.sysctl.set("vm.min_free_kbytes", 65536)
    # min = 65536 kB / 4 = 16384 pages; low = 16384 + max(4096, 262) = 20480; / 2 CPUs
    z = pa.zones[0]
    assert z.low_wmark_pages == 20480
    assert (pcp.high_min, pcp.high_max) == (10240, 16384)


def test_pageset_update_leaves_high_until_next_use() -> None:
    """pageset_update writes batch/high_min/high_max only; pcp->high is 0 (memset) until the
    first allocation or free clamps it, which is why /proc/zoneinfo shows ``high: 0`` for a
    CPU that never used the zone (tests/mm/data has real 6.18 output with such lines)."""
    m = Machine.simple(Normal=16384)
    pa = PageAllocator(m, Sim("fifo"), cpus_per_node=2)
    pcp = pa.cpus[0].pcp[0]
    assert pcp.high == 0
    assert pcp.nr_pcp_high(pcp.batch, False, False, False) == 500  # clamp(0, 500, 1024)
    assert pcp.high == 500
    pcp.high = 900  # as auto-tuning left it
    m.sysctl.set("vm.percpu_pagelist_high_fraction", 64)  # 16384/64/2 = 128 for both
    assert pcp.high == 900  # untouched by the update ...
    assert pcp.nr_pcp_alloc(0, False) == 3
    assert pcp.high == 128  # ... and clamped at the next use
    text = render_zoneinfo(_snapshot_with_pcp(pa, m))
    assert "              count: 0\n              high:  0\n              batch: 3" in text


def _snapshot_with_pcp(pa: PageAllocator, m: Machine):
    import attrs

    snap = m.snapshot()
    node = snap.nodes[0]
    zones = tuple(
        attrs.evolve(zs, pcp=tuple(c.pcp[0].snapshot() for c in pa.cpus)) for zs in node.zones
    )
    return attrs.evolve(snap, nodes=(attrs.evolve(node, zones=zones),))


def test_pcp_list_indexing() -> None:
    assert [o for o in range(11) if pcp_allowed_order(o)] == [0, 1, 2, 3, 9]
    assert NR_PCP_LISTS == 14
    # 3 * order + migratetype for orders 0..3
    assert order_to_pindex(MIGRATE_UNMOVABLE, 0) == 0
    assert order_to_pindex(MIGRATE_MOVABLE, 0) == 1
    assert order_to_pindex(MIGRATE_RECLAIMABLE, 3) == 11
    # THP: one list for unmovable and reclaimable (12), one for movable (13)
    assert order_to_pindex(MIGRATE_UNMOVABLE, 9) == 12
    assert order_to_pindex(MIGRATE_RECLAIMABLE, 9) == 12
    assert order_to_pindex(MIGRATE_MOVABLE, 9) == 13
    assert [pindex_to_order(i) for i in range(14)] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [
        9,
        9,
    ]
