"""Exact /proc and debugfs text for a hand-built two-node machine.

The expected strings are written by hand from the seq_printf formats in mm/vmstat.c (v6.12);
every buddyinfo/pagetypeinfo/debugfs line ends with a space, zoneinfo lines do not.
"""

# Kernel output lines are kept verbatim, one per source line, so some are long:
# ruff: noqa: E501

from __future__ import annotations

import attrs
import pytest

from emulator.mm.procfs.parse import (
    combine_snapshots,
    parse_buddyinfo,
    parse_pagetypeinfo,
    parse_zoneinfo,
)
from emulator.mm.procfs.render import (
    format_index,
    render_buddyinfo,
    render_extfrag_index,
    render_pagetypeinfo,
    render_unusable_index,
    render_zoneinfo,
)
from emulator.mm.snapshot import MachineSnapshot, NodeSnapshot, PcpSnapshot, ZoneSnapshot

Z = (0,) * 11


def sample() -> MachineSnapshot:
    """Node 0: DMA (one order-8 block), Normal, an unpopulated Movable; node 1: Normal, Movable."""
    dma = ZoneSnapshot(
        node=0, name="DMA", nr_free=(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
        nr_free_by_mt=((0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0), Z, Z, Z, Z, Z),
        pageblocks_by_mt=(1, 7, 0, 0, 0, 0),
        start_pfn=1, spanned=4095, present=3998, managed=3840, cma=0,
        wmark_min=66, wmark_low=82, wmark_high=98, wmark_promo=114, boost=0,
        lowmem_reserve=(0, 1837, 15861, 15861), nr_free_pages=256,
        pcp=(PcpSnapshot(0, 0, 0, 1, 4), PcpSnapshot(1, 0, 0, 1, 4)),
        zone_stats=(("nr_zone_inactive_anon", 0), ("nr_mlock", 0), ("nr_free_cma", 0)),
    )  # fmt: skip
    normal0 = ZoneSnapshot(
        node=0, name="Normal", nr_free=(120, 64, 33, 12, 9, 4, 2, 1, 0, 1, 3),
        nr_free_by_mt=(
            (20, 4, 3, 2, 0, 0, 0, 0, 0, 0, 0),
            (100, 60, 30, 10, 9, 4, 2, 1, 0, 1, 3),
            Z, Z, Z, Z,
        ),
        pageblocks_by_mt=(10, 50, 2, 0, 0, 0),
        start_pfn=1048576, spanned=3670016, present=3670016, managed=3590000,
        wmark_min=11000, wmark_low=13750, wmark_high=16500, wmark_promo=19250, boost=1200,
        lowmem_reserve=(0, 0, 0, 0), nr_free_pages=4588,
        pcp=(PcpSnapshot(0, 31, 2132, 63, 16),), zone_stats=(("nr_mlock", 5),),
    )  # fmt: skip
    movable0 = ZoneSnapshot(
        node=0, name="Movable", nr_free=Z, lowmem_reserve=(0, 0, 0, 0), nr_free_pages=0,
        populated=False,
    )  # fmt: skip
    normal1 = ZoneSnapshot(
        node=1, name="Normal", nr_free=(5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        nr_free_by_mt=(Z, (5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0), Z, Z, Z, Z),
        pageblocks_by_mt=(0, 8192, 0, 0, 0, 0),
        start_pfn=4718592, spanned=4194304, present=4194304, managed=4100000,
        wmark_min=12000, wmark_low=15000, wmark_high=18000, wmark_promo=21000,
        lowmem_reserve=(0, 0, 0, 0), nr_free_pages=11,
        pcp=(PcpSnapshot(0, 0, 2500, 63, 16), PcpSnapshot(1, 7, 2500, 63, 16)),
    )  # fmt: skip
    movable1 = attrs.evolve(movable0, node=1)
    return MachineSnapshot(
        nodes=(
            NodeSnapshot(
                0,
                (dma, normal0, movable0),
                node_stats=(("nr_inactive_anon", 946), ("nr_mapped", 2675)),
            ),
            NodeSnapshot(1, (normal1, movable1), node_unreclaimable=True),
        )
    )


BUDDYINFO = (
    "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      0      0 \n"
    "Node 0, zone   Normal    120     64     33     12      9      4      2      1      0      1      3 \n"
    "Node 1, zone   Normal      5      3      0      0      0      0      0      0      0      0      0 \n"
)  # fmt: skip

PT_HEADER = (
    "Page block order: 9\n"
    "Pages per block:  512\n"
    "\n"
    "Free pages count per migrate type at order       0      1      2      3      4      5      6      7      8      9     10 \n"
)  # fmt: skip
PT_BLOCKS_HEADER = (
    "\n"
    "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic          CMA      Isolate \n"
)  # fmt: skip
ZERO_ROW = "      0      0      0      0      0      0      0      0      0      0      0 \n"
PAGETYPEINFO = (
    PT_HEADER
    + "Node    0, zone      DMA, type    Unmovable      0      0      0      0      0      0      0      0      1      0      0 \n"
    + "Node    0, zone      DMA, type      Movable" + ZERO_ROW
    + "Node    0, zone      DMA, type  Reclaimable" + ZERO_ROW
    + "Node    0, zone      DMA, type   HighAtomic" + ZERO_ROW
    + "Node    0, zone      DMA, type          CMA" + ZERO_ROW
    + "Node    0, zone      DMA, type      Isolate" + ZERO_ROW
    + "Node    0, zone   Normal, type    Unmovable     20      4      3      2      0      0      0      0      0      0      0 \n"
    + "Node    0, zone   Normal, type      Movable    100     60     30     10      9      4      2      1      0      1      3 \n"
    + "Node    0, zone   Normal, type  Reclaimable" + ZERO_ROW
    + "Node    0, zone   Normal, type   HighAtomic" + ZERO_ROW
    + "Node    0, zone   Normal, type          CMA" + ZERO_ROW
    + "Node    0, zone   Normal, type      Isolate" + ZERO_ROW
    + PT_BLOCKS_HEADER
    + "Node 0, zone      DMA            1            7            0            0            0            0 \n"
    + "Node 0, zone   Normal           10           50            2            0            0            0 \n"
    + PT_HEADER
    + "Node    1, zone   Normal, type    Unmovable" + ZERO_ROW
    + "Node    1, zone   Normal, type      Movable      5      3      0      0      0      0      0      0      0      0      0 \n"
    + "Node    1, zone   Normal, type  Reclaimable" + ZERO_ROW
    + "Node    1, zone   Normal, type   HighAtomic" + ZERO_ROW
    + "Node    1, zone   Normal, type          CMA" + ZERO_ROW
    + "Node    1, zone   Normal, type      Isolate" + ZERO_ROW
    + PT_BLOCKS_HEADER
    + "Node 1, zone   Normal            0         8192            0            0            0            0 \n"
)  # fmt: skip

UNPOPULATED = """\
  pages free     0
        boost    0
        min      0
        low      0
        high     0
        promo    0
        spanned  0
        present  0
        managed  0
        cma      0
        protection: (0, 0, 0, 0)
"""
ZONEINFO = (
    """\
Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 946
      nr_mapped    2675
  pages free     256
        boost    0
        min      66
        low      82
        high     98
        promo    114
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 1837, 15861, 15861)
      nr_free_pages 256
      nr_zone_inactive_anon 0
      nr_mlock     0
      nr_free_cma  0
  pagesets
    cpu: 0
              count: 0
              high:  0
              batch: 1
  vm stats threshold: 4
    cpu: 1
              count: 0
              high:  0
              batch: 1
  vm stats threshold: 4
  node_unreclaimable:  0
  start_pfn:           1
Node 0, zone   Normal
  pages free     4588
        boost    1200
        min      11000
        low      13750
        high     16500
        promo    19250
        spanned  3670016
        present  3670016
        managed  3590000
        cma      0
        protection: (0, 0, 0, 0)
      nr_free_pages 4588
      nr_mlock     5
  pagesets
    cpu: 0
              count: 31
              high:  2132
              batch: 63
  vm stats threshold: 16
  node_unreclaimable:  0
  start_pfn:           1048576
Node 0, zone  Movable
"""
    + UNPOPULATED
    + """\
Node 1, zone   Normal
  pages free     11
        boost    0
        min      12000
        low      15000
        high     18000
        promo    21000
        spanned  4194304
        present  4194304
        managed  4100000
        cma      0
        protection: (0, 0, 0, 0)
      nr_free_pages 11
  pagesets
    cpu: 0
              count: 0
              high:  2500
              batch: 63
  vm stats threshold: 16
    cpu: 1
              count: 7
              high:  2500
              batch: 63
  vm stats threshold: 16
  node_unreclaimable:  1
  start_pfn:           4718592
Node 1, zone  Movable
"""
    + UNPOPULATED
)

# DMA: -1000 while the order-8 block is large enough; order 9: 1000 - (1000 + 256000/512) = -500;
# order 10: 1000 - (1000 + 256000/1024) = -250. Normal (node 0) has order-10 blocks: -1000.
# Node 1 Normal (5 order-0 + 3 order-1 = 11 pages, 8 blocks), e.g. order 2:
# 1000 - (1000 + 11000/4)/8 = 1000 - 3750/8 = 1000 - 468 = 532
EXTFRAG = (
    "Node 0, zone      DMA -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000  0.-500  0.-250 \n"
    "Node 0, zone   Normal -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 \n"
    "Node 1, zone   Normal -1.000 -1.000  0.532  0.704  0.790  0.833  0.854  0.865  0.870  0.873  0.874 \n"
)  # fmt: skip

# Node 0 Normal: 4588 free pages; order 1 leaves the 120 order-0 pages unusable:
# 120000 / 4588 = 26; order 10: 1516 unusable -> 330. Node 1 order 1: 5000 / 11 = 454.
UNUSABLE = (
    "Node 0, zone      DMA 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 1.000 1.000 \n"
    "Node 0, zone   Normal 0.000 0.026 0.054 0.082 0.103 0.135 0.163 0.190 0.218 0.218 0.330 \n"
    "Node 1, zone   Normal 0.000 0.454 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 \n"
)  # fmt: skip


def test_buddyinfo_exact_text() -> None:
    assert render_buddyinfo(sample()) == BUDDYINFO


def test_pagetypeinfo_exact_text_repeats_per_node() -> None:
    assert render_pagetypeinfo(sample()) == PAGETYPEINFO


def test_zoneinfo_exact_text_including_unpopulated_zones() -> None:
    assert render_zoneinfo(sample()) == ZONEINFO


def test_extfrag_index_exact_text_with_negative_indexes() -> None:
    assert render_extfrag_index(sample()) == EXTFRAG


def test_unusable_index_exact_text() -> None:
    assert render_unusable_index(sample()) == UNUSABLE


@pytest.mark.parametrize(
    ("index", "extfrag", "unusable"),
    [
        (-1000, "-1.000 ", "-1.000 "),
        (954, " 0.954 ", "0.954 "),
        (-500, " 0.-500 ", "0.-500 "),
        (-5, " 0.-05 ", "0.-05 "),
        (0, " 0.000 ", "0.000 "),
        (1000, " 1.000 ", "1.000 "),
    ],
)
def test_index_formatting_follows_c_division(index: int, extfrag: str, unusable: str) -> None:
    assert format_index(index, 2) == extfrag
    assert format_index(index, 0) == unusable


def test_pagetypeinfo_cap_prints_greater_than_100000() -> None:
    big = ZoneSnapshot(
        node=0, name="Normal", nr_free=(250000, 100000, 99999, 0, 0, 0, 0, 0, 0, 0, 0),
        nr_free_by_mt=(Z, (250000, 100000, 99999, 0, 0, 0, 0, 0, 0, 0, 0), Z, Z, Z, Z),
        pageblocks_by_mt=(0, 2048, 0, 0, 0, 0),
    )  # fmt: skip
    text = render_pagetypeinfo(MachineSnapshot((NodeSnapshot(0, (big,)),)))
    assert (
        "Node    0, zone   Normal, type      Movable >100000 >100000  99999      0      0"
        "      0      0      0      0      0      0 \n"
    ) in text
    parsed = parse_pagetypeinfo(text)
    assert parsed.zones[0].nr_free_by_mt[1][:3] == (100000, 100000, 99999)


def test_pagetypeinfo_without_cma_column() -> None:
    m = sample()
    text = render_pagetypeinfo(m, migratetypes=(0, 1, 2, 3, 5))
    assert "CMA" not in text
    assert (
        "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      Isolate \n"
        in text
    )
    assert "Node 0, zone      DMA            1            7            0            0            0 \n" in text  # fmt: skip
    assert parse_pagetypeinfo(text).zones == parse_pagetypeinfo(PAGETYPEINFO).zones


def test_pagetypeinfo_needs_per_migratetype_counts() -> None:
    bare = MachineSnapshot((NodeSnapshot(0, (ZoneSnapshot(0, "Normal", Z),)),))
    with pytest.raises(ValueError, match="nr_free_by_mt"):
        render_pagetypeinfo(bare)


def test_round_trip_render_parse_combine_gives_the_same_snapshot() -> None:
    m = sample()
    again = combine_snapshots(
        parse_buddyinfo(render_buddyinfo(m)),
        parse_pagetypeinfo(render_pagetypeinfo(m)),
        parse_zoneinfo(render_zoneinfo(m)),
    )
    assert again == m
    # and each parsed text renders back byte for byte
    assert render_buddyinfo(again) == BUDDYINFO
    assert render_pagetypeinfo(again) == PAGETYPEINFO
    assert render_zoneinfo(again) == ZONEINFO


def test_buddyinfo_alone_round_trips() -> None:
    parsed = parse_buddyinfo(BUDDYINFO)
    assert [(z.node, z.name, z.nr_free) for z in parsed.zones] == [
        (z.node, z.name, z.nr_free) for z in sample().zones if z.populated
    ]
    assert render_buddyinfo(parsed) == BUDDYINFO
