"""Fragmentation index, unusable index, extfrag_for_order and the proactive compaction score,
checked against values worked out by hand from mm/vmstat.c and mm/compaction.c."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.mm import vmstat
from emulator.mm.compaction.suitable import (
    fragmentation_score_node,
    fragmentation_score_wmark,
    fragmentation_score_zone,
    fragmentation_score_zone_weighted,
    should_proactive_compact_node,
)
from emulator.mm.snapshot import NR_PAGE_ORDERS, NodeSnapshot, ZoneSnapshot
from emulator.mm.vmstat import (
    ContigPageInfo,
    extfrag_for_order,
    fill_contig_page_info,
    fragindex_allows_compaction,
    fragmentation_index,
    fragmentation_index_info,
    unusable_free_index,
    unusable_index,
)


def nr_free(**orders: int) -> tuple[int, ...]:
    """nr_free(o3=2, o9=1) -> an 11-order block-count tuple."""
    counts = [0] * NR_PAGE_ORDERS
    for key, value in orders.items():
        counts[int(key[1:])] = value
    return tuple(counts)


# ------------------------------------------------------------------ fill_contig_page_info


def test_fill_contig_page_info_counts_blocks_pages_and_suitable_blocks() -> None:
    # 4 order-0, 2 order-1, 1 order-2, 1 order-3 blocks: 8 blocks, 4+4+4+8 = 20 pages;
    # blocks of order 2 they make: 1 (the order-2 block) + 1<<1 (the order-3 block) = 3
    info = fill_contig_page_info(nr_free(o0=4, o1=2, o2=1, o3=1), 2)
    assert info == ContigPageInfo(free_pages=20, free_blocks_total=8, free_blocks_suitable=3)


def test_fill_contig_page_info_accepts_a_zone_snapshot() -> None:
    zone = ZoneSnapshot(node=0, name="Normal", nr_free=nr_free(o10=2))
    assert fill_contig_page_info(zone, 9) == ContigPageInfo(2048, 2, 4)


def test_wrong_number_of_orders_is_rejected() -> None:
    with pytest.raises(ValueError, match="11 orders"):
        fragmentation_index([1, 2, 3], 1)


# ---------------------------------------------------------------------- fragmentation index


def test_empty_zone_has_index_zero_at_every_order() -> None:
    assert [fragmentation_index(nr_free(), o) for o in range(NR_PAGE_ORDERS)] == [0] * 11


def test_a_suitable_block_gives_minus_1000() -> None:
    zone = nr_free(o0=500, o9=1)
    assert [fragmentation_index(zone, o) for o in range(10)] == [-1000] * 10
    # no order-10 block: 501 blocks, 500 + 512 = 1012 pages, requested 1024
    # 1000 - (1000 + 1012*1000/1024) / 501 = 1000 - (1000 + 988) / 501 = 1000 - 3 = 997
    assert fragmentation_index(zone, 10) == 997


def test_one_order8_block_asked_for_order9_is_minus_500() -> None:
    # 1000 - (1000 + 256*1000/512) / 1 = 1000 - 1500 = -500 (u64 wrap, then int)
    assert fragmentation_index(nr_free(o8=1), 9) == -500


@pytest.mark.parametrize(
    ("order_of_block", "expected"),
    [
        (0, -1),  # 1000 - (1000 + 1*1000/512) = -(1000 // 512) = -1
        (1, -3),  # 2000 // 512 = 3
        (3, -15),  # 8000 // 512 = 15
        (6, -125),  # 64000 // 512 = 125
        (8, -500),
    ],
)
def test_small_zone_negatives_other_than_minus_1000(order_of_block: int, expected: int) -> None:
    assert fragmentation_index(nr_free(**{f"o{order_of_block}": 1}), 9) == expected


def test_index_integer_arithmetic_truncates_at_each_step() -> None:
    # 10 order-0 + 5 order-1 blocks = 15 blocks, 20 pages; order 2 (requested 4):
    # 1000 - (1000 + 20*1000/4) / 15 = 1000 - 6000/15 = 1000 - 400 = 600
    assert fragmentation_index(nr_free(o0=10, o1=5), 2) == 600
    # 3 order-0 blocks, order 1: 1000 - (1000 + 3000/2) / 3 = 1000 - 2500/3 = 1000 - 833 = 167
    assert fragmentation_index(nr_free(o0=3), 1) == 167


def test_many_tiny_blocks_reach_1000() -> None:
    # 50000 order-0 blocks, order 10: (1000 + 50000000/1024) / 50000 = 49828 / 50000 = 0
    assert fragmentation_index(nr_free(o0=50000), 10) == 1000


def test_order_above_max_is_zero_like_the_kernel_warn() -> None:
    info = fill_contig_page_info(nr_free(o0=5), 10)
    assert fragmentation_index_info(11, info) == 0


@given(
    st.lists(st.integers(0, 5000), min_size=11, max_size=11),
    st.integers(0, 10),
)
def test_fragmentation_index_range_and_special_values(counts: list[int], order: int) -> None:
    index = fragmentation_index(counts, order)
    assert -1000 <= index <= 1000
    if sum(counts) == 0:
        assert index == 0
    elif any(counts[order:]):
        assert index == -1000
    else:
        assert index > -1000


# --------------------------------------------------------------- unusable and extfrag_for_order


def test_unusable_index_worked_example() -> None:
    # 20 free pages (4 order-0, 2 order-1, 1 order-2, 1 order-3)
    zone = nr_free(o0=4, o1=2, o2=1, o3=1)
    assert unusable_index(zone, 0) == 0  # every page usable
    # order 2: 3 suitable blocks = 12 pages usable, (20 - 12) * 1000 / 20 = 400
    assert unusable_index(zone, 2) == 400
    # order 3: 1 block = 8 pages, 12 * 1000 / 20 = 600
    assert unusable_index(zone, 3) == 600
    assert unusable_index(zone, 4) == 1000  # nothing that large


def test_unusable_index_of_empty_zone_is_1000() -> None:
    assert unusable_free_index(3, ContigPageInfo(0, 0, 0)) == 1000


def test_extfrag_for_order_worked_example() -> None:
    zone = nr_free(o0=4, o1=2, o2=1, o3=1)
    assert extfrag_for_order(zone, 2) == 40  # 8 * 100 / 20
    assert extfrag_for_order(zone, 3) == 60  # 12 * 100 / 20
    # 1 of 3 pages unusable for order 1: 100/3 = 33 (truncated)
    assert extfrag_for_order(nr_free(o0=1, o1=1), 1) == 33
    assert extfrag_for_order(nr_free(), 9) == 0  # nothing free: 0, unlike the unusable index


@given(st.lists(st.integers(0, 3000), min_size=11, max_size=11), st.integers(0, 10))
def test_unusable_and_extfrag_agree_and_stay_in_range(counts: list[int], order: int) -> None:
    u = unusable_index(counts, order)
    e = extfrag_for_order(counts, order)
    assert 0 <= u <= 1000 and 0 <= e <= 100
    if sum(counts):
        assert e == u // 10  # floor(floor(10x) / 10) == floor(x)
    else:
        assert (u, e) == (1000, 0)


# --------------------------------------------------------------------- fragmentation score


def zone(name: str, present: int, counts: tuple[int, ...], populated: bool = True) -> ZoneSnapshot:
    return ZoneSnapshot(node=0, name=name, nr_free=counts, present=present, populated=populated)


def test_fragmentation_score_worked_example() -> None:
    # DMA: one order-8, one order-9, three order-10 blocks: 256+512+3072 = 3840 pages,
    # order-9 usable: 1 + 3*2 = 7 blocks = 3584 pages; (3840-3584)*100/3840 = 6 (6.67)
    dma = zone("DMA", 3998, nr_free(o8=1, o9=1, o10=3))
    # Normal: 1000 order-0, 500 order-1, 10 order-9: 1000+1000+5120 = 7120 pages;
    # unusable 2000 -> 200000 / 7120 = 28 (28.09)
    normal = zone("Normal", 1_000_000, nr_free(o0=1000, o1=500, o9=10))
    movable = zone("Movable", 0, nr_free(), populated=False)
    node = NodeSnapshot(node=0, zones=(dma, normal, movable))
    assert fragmentation_score_zone(dma) == 6
    assert fragmentation_score_zone(normal) == 28
    assert node.present_pages == 1_003_998
    # weighted by present pages over node present + 1:
    # DMA: 3998 * 6 / 1003999 = 0; Normal: 1000000 * 28 / 1003999 = 27 (27.89)
    assert fragmentation_score_zone_weighted(dma, 1_003_998) == 0
    assert fragmentation_score_zone_weighted(normal, 1_003_998) == 27
    assert fragmentation_score_node(node) == 27
    assert not should_proactive_compact_node(node)


def test_unpopulated_zones_do_not_count() -> None:
    # an unpopulated zone with (inconsistent) free blocks must be skipped, as populated_zone() does
    ghost = zone("Movable", 0, nr_free(o0=7), populated=False)
    normal = zone("Normal", 1000, nr_free(o0=10))  # score 100
    assert fragmentation_score_node(NodeSnapshot(0, (normal, ghost))) == 1000 * 100 // 1001


def test_proactive_compaction_starts_above_the_high_mark_only() -> None:
    # all free memory in order-0..8 blocks: zone score 100, weighted 100000*100/100001 = 99
    frag = NodeSnapshot(0, (zone("Normal", 100_000, nr_free(o0=100, o8=3)),))
    assert fragmentation_score_node(frag) == 99
    assert should_proactive_compact_node(frag, proactiveness=20)  # 99 > 90
    assert not should_proactive_compact_node(frag, proactiveness=0)  # disabled
    assert not should_proactive_compact_node(frag, proactiveness=20, kswapd_running=True)
    assert not should_proactive_compact_node(frag, proactiveness=5)  # high mark 100
    # exactly at the high mark does not start: score 90 (9 of 10 pages unusable)
    at_mark = NodeSnapshot(0, (zone("Normal", 10**9, nr_free(o0=4608, o9=1)),))
    # free 4608+512 = 5120, unusable 4608 -> 4608*100/5120 = 90; weighted 10^9*90/(10^9+1) = 89
    assert fragmentation_score_node(at_mark) == 89
    assert not should_proactive_compact_node(at_mark)


@pytest.mark.parametrize(
    ("proactiveness", "low", "high"),
    [(20, 80, 90), (0, 100, 100), (50, 50, 60), (95, 5, 15), (100, 5, 15), (92, 8, 18)],
)
def test_score_watermarks(proactiveness: int, low: int, high: int) -> None:
    assert fragmentation_score_wmark(True, proactiveness) == low
    assert fragmentation_score_wmark(False, proactiveness) == high


def test_score_watermark_rejects_out_of_range_proactiveness() -> None:
    with pytest.raises(ValueError):
        fragmentation_score_wmark(True, 101)


@pytest.mark.parametrize(
    ("order", "index", "threshold", "allowed"),
    [
        (3, 0, 500, True),  # non-costly orders ignore the index
        (9, 0, 500, False),  # lack of memory
        (9, 500, 500, False),  # at the threshold: still reclaim
        (9, 501, 500, True),
        (9, -500, 500, True),  # small-zone negatives pass
        (9, -1000, 500, True),
        (4, 900, 1000, False),
    ],
)
def test_fragindex_half_of_compaction_suitable(
    order: int, index: int, threshold: int, allowed: bool
) -> None:
    assert fragindex_allows_compaction(order, index, threshold) is allowed


def test_module_exports_the_kernel_named_function() -> None:
    assert getattr(vmstat, "__fragmentation_index") is fragmentation_index_info


@given(
    st.lists(
        st.tuples(st.lists(st.integers(0, 2000), min_size=11, max_size=11), st.integers(0, 10**8)),
        min_size=1,
        max_size=4,
    )
)
def test_node_score_is_below_100_and_bounded_by_the_worst_zone(
    zones: list[tuple[list[int], int]],
) -> None:
    node = NodeSnapshot(
        0, tuple(zone(f"Z{i}", present, tuple(c)) for i, (c, present) in enumerate(zones))
    )
    score = fragmentation_score_node(node)
    # sum(present_i * s_i) / (P + 1) < 100 * P / (P + 1) < 100, and never above the worst zone
    assert 0 <= score < 100
    assert score <= max(fragmentation_score_zone(z) for z in node.zones)
