"""min_free_kbytes, __setup_per_zone_wmarks, lowmem_reserve and the sysctl handlers, against
worked examples computed by hand from the kernel formulas (arithmetic in the comments)."""

from __future__ import annotations

import pytest

from emulator.mm.machine import Machine
from emulator.mm.mitigations import MITIGATIONS
from emulator.mm.page_alloc.watermark import min_free_kbytes_for, setup_per_zone_wmarks
from emulator.mm.sysctl import Sysctl
from emulator.mm.zone import WMARK_HIGH, WMARK_LOW, WMARK_MIN, WMARK_PROMO


def marks(z) -> list[int]:
    return [z._watermark[w] for w in (WMARK_MIN, WMARK_LOW, WMARK_HIGH, WMARK_PROMO)]


@pytest.mark.parametrize(
    ("lowmem_kbytes", "expected"),
    [
        (50, 128),  # int_sqrt(800) = 28 -> clamped up to 128
        (1024, 128),  # int_sqrt(16384) = 128 exactly
        (8 * 1024, 362),  # int_sqrt(131072) = 362 (362^2 = 131044, 363^2 = 131769)
        (16 * 1024, 512),  # the kernel comment's table: 16MB -> 512k
        (128 * 1024, 1448),  # 128MB -> 1448k
        (1024 * 1024, 4096),  # 1GB -> 4096k
        (4096 * 1024, 8192),  # 4GB -> 8192k
        (16384 * 1024, 16384),  # 16GB -> 16384k
        (64 * 1024 * 1024, 32768),  # 64GB: int_sqrt(2^30) = 2^15
        (2**33, 262144),  # 8 TB: int_sqrt(2^37) = 370727 -> clamped to 262144
    ],
)
def test_boot_min_free_kbytes_formula(lowmem_kbytes, expected):
    assert min_free_kbytes_for(lowmem_kbytes) == expected


@pytest.mark.parametrize(("mib", "expected"), [(64, 1024), (1024, 4096), (4096, 8192)])
def test_boot_min_free_kbytes_of_machines_without_thp(mib, expected):
    # one Normal zone of mib MiB: lowmem_kbytes = mib * 1024 (watermarks still 0 at boot)
    m = Machine.simple(Normal=mib * 256, thp_enabled=False)
    assert m.min_free_kbytes == expected


def test_two_zone_machine_without_thp():
    m = Machine.simple(DMA32=262144, Normal=786432, thp_enabled=False)
    # lowmem 1048576 pages = 4194304 kB; int_sqrt(4194304*16) = 8192 kB -> pages_min 2048
    assert m.min_free_kbytes == 8192
    dma32, normal = m.zone("DMA32"), m.zone("Normal")
    # DMA32: min = 2048*262144/1048576 = 512; delta = max(512/4, 262144*10/10000 = 262) = 262
    assert marks(dma32) == [512, 774, 1036, 1298]
    # Normal: min = 1536; delta = max(384, 786) = 786
    assert marks(normal) == [1536, 2322, 3108, 3894]
    # lowmem_reserve: DMA32[Normal] = 786432/256 = 3072; Movable is empty -> 0 (v6.12.0)
    assert dma32.lowmem_reserve == [0, 0, 3072, 0]
    assert normal.lowmem_reserve == [0, 0, 0, 0]


def test_two_zone_machine_with_khugepaged_minimum():
    m = Machine.simple(DMA32=262144, Normal=786432, thp_enabled=True)
    # recommended = 512*2*2 + 512*2*9 = 11264 pages; cap nr_free_buffer_pages/20 =
    # ((262144-1036) + (786432-3108))/20 = 52221; 11264 pages = 45056 kB > 8192
    assert m.min_free_kbytes == 45056
    # pages_min 11264: DMA32 min 2816, delta max(704, 262) = 704
    assert marks(m.zone("DMA32")) == [2816, 3520, 4224, 4928]
    # Normal min 8448, delta max(2112, 786) = 2112
    assert marks(m.zone("Normal")) == [8448, 10560, 12672, 14784]


def test_khugepaged_minimum_capped_at_5_percent_of_lowmem():
    m = Machine.simple(Normal=16384, thp_enabled=True)
    # boot: int_sqrt(65536*16) = 1024 kB -> min 256, delta max(64, 16) = 64 -> high 384
    # cap: (16384 - 384)/20 = 800 pages < 512*1*11 = 5632 -> 800 pages = 3200 kB
    assert m.min_free_kbytes == 3200
    # min 800, delta max(200, 16) = 200
    assert marks(m.zone("Normal")) == [800, 1000, 1200, 1400]


def test_realistic_x86_64_16g_gets_the_khugepaged_value():
    m = Machine.x86_64(16384)
    # 3 populated zones x 512 x 11 = 16896 pages = 67584 kB (kernel-reference.md section 3)
    assert m.min_free_kbytes == 67584
    dma = m.zone("DMA")
    assert (dma.zone_start_pfn, dma.spanned_pages, dma.present_pages, dma.managed_pages) == (
        1,
        4095,
        3998,
        3840,
    )


def test_watermark_scale_factor_sysctl_recomputes():
    m = Machine.simple(DMA32=262144, Normal=786432, thp_enabled=False)
    m.zone("Normal").watermark_boost = 700
    m.sysctl.set("vm.watermark_scale_factor", 100)
    # DMA32 delta = max(128, 262144*100/10000 = 2621); Normal delta = max(384, 7864)
    assert marks(m.zone("DMA32")) == [512, 3133, 5754, 8375]
    assert marks(m.zone("Normal")) == [1536, 9400, 17264, 25128]
    assert m.zone("Normal").watermark_boost == 0  # __setup_per_zone_wmarks resets the boost


def test_min_free_kbytes_sysctl_sets_user_value_and_recomputes():
    m = Machine.simple(DMA32=262144, Normal=786432, thp_enabled=False)
    m.sysctl["vm.min_free_kbytes"] = 16384
    assert m.user_min_free_kbytes == 16384
    # pages_min 4096: DMA32 1024, delta max(256, 262); Normal 3072, delta max(768, 786)
    assert marks(m.zone("DMA32")) == [1024, 1286, 1548, 1810]
    assert marks(m.zone("Normal")) == [3072, 3858, 4644, 5430]
    setup_per_zone_wmarks(m)  # idempotent
    assert marks(m.zone("Normal")) == [3072, 3858, 4644, 5430]


def test_lowmem_reserve_ratio_sysctl():
    m = Machine.simple(DMA32=262144, Normal=786432, thp_enabled=False)
    m.sysctl.set("vm.lowmem_reserve_ratio", "256 128 32 0")
    assert m.zone("DMA32").lowmem_reserve == [0, 0, 786432 // 128, 0]
    m.sysctl.set("vm.lowmem_reserve_ratio", [256, -5, 32, 0])  # < 1 means 0: no reserve
    assert m.sysctl.get("vm.lowmem_reserve_ratio") == (256, 0, 32, 0)
    assert m.zone("DMA32").lowmem_reserve == [0, 0, 0, 0]


def test_sysctl_defaults_and_names():
    m = Machine.simple(Normal=8192, thp_enabled=False)
    d = m.sysctl.as_dict()
    assert d == {
        "transparent_hugepage.defrag": "madvise",  # /sys/kernel/mm/transparent_hugepage
        "vm.compact_unevictable_allowed": 1,
        "vm.compaction_proactiveness": 20,
        "vm.extfrag_threshold": 500,
        "vm.lowmem_reserve_ratio": (256, 256, 32, 0),
        "vm.min_free_kbytes": 724,  # int_sqrt(32768*16) = 724
        "vm.percpu_pagelist_high_fraction": 0,
        "vm.watermark_boost_factor": 15000,
        "vm.watermark_scale_factor": 10,
        **{f"mitigation.{name}": True for name in MITIGATIONS},  # all on: 6.12
    }
    assert m.sysctl.get("compaction_proactiveness") == 20  # the "vm." prefix is optional
    assert Sysctl.names() == sorted(d)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "vm.watermark_scale_factor",
            0,
            r"vm.watermark_scale_factor=0 is out of range: valid 1..3000",
        ),
        ("vm.watermark_scale_factor", 3001, r"valid 1\.\.3000"),
        ("vm.extfrag_threshold", 1001, r"vm.extfrag_threshold=1001 .* valid 0\.\.1000"),
        ("vm.compaction_proactiveness", -1, r"valid 0\.\.100"),
        ("vm.compact_unevictable_allowed", 2, r"valid 0\.\.1"),
        ("vm.min_free_kbytes", -1, r"valid 0\.\.2147483647"),
        ("vm.percpu_pagelist_high_fraction", 5, r"valid 0 or 8\.\.2147483647"),
        (
            "vm.watermark_boost_factor",
            "lots",
            r"vm.watermark_boost_factor='lots' is not an integer: valid 0\.\.2147483647",
        ),
        ("vm.lowmem_reserve_ratio", "", r"valid up to 4 integers, each"),
        ("vm.lowmem_reserve_ratio", "1 x", r"valid up to 4 integers, each"),
        (
            "transparent_hugepage.defrag",
            "sometimes",
            r"transparent_hugepage.defrag='sometimes' is invalid: valid always, defer, "
            r"defer\+madvise, madvise, never",
        ),
    ],
)
def test_sysctl_range_errors_name_the_sysctl_and_range(name, value, message):
    m = Machine.simple(Normal=8192, thp_enabled=False)
    before = m.sysctl.as_dict()
    with pytest.raises(ValueError, match=message):
        m.sysctl.set(name, value)
    assert m.sysctl.as_dict() == before


def test_unknown_sysctl_lists_valid_names():
    m = Machine.simple(Normal=8192, thp_enabled=False)
    with pytest.raises(KeyError, match=r"unknown sysctl 'vm.swappiness'.*vm.min_free_kbytes"):
        m.sysctl.get("vm.swappiness")


def test_sysctl_handlers_and_accepted_edge_values():
    m = Machine.simple(Normal=8192, thp_enabled=False)
    seen = []
    m.wmark_observers.append(lambda mm: seen.append(mm.percpu_pagelist_high_fraction))
    m.sysctl.set("vm.percpu_pagelist_high_fraction", 8)
    m.sysctl.set("vm.percpu_pagelist_high_fraction", "8")  # no change: no pcp update
    m.sysctl.set("vm.percpu_pagelist_high_fraction", "0")
    assert seen == [8, 0]
    m.sysctl.set("vm.watermark_boost_factor", 0)
    assert m.zone("Normal").watermark_boost_factor == 0
