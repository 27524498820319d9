"""__zone_watermark_ok / zone_watermark_fast: reserve cuts, lowmem_reserve, the order>0 rule."""

from __future__ import annotations

import pytest

from emulator.mm.initstate import free_k_of_n
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_CMA,
    ALLOC_HIGHATOMIC,
    ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_WMARK_LOW,
)
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.page_alloc.fallback import move_freepages_block
from emulator.mm.page_alloc.rmqueue import rmqueue_bulk
from emulator.mm.page_alloc.watermark import (
    zone_watermark_fast,
    zone_watermark_ok,
    zone_watermark_ok_free,
)
from emulator.mm.snapshot import MIGRATE_CMA, MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE
from emulator.mm.zone import WMARK_MIN, ZONE_DMA32, ZONE_NORMAL


@pytest.fixture(scope="module")
def two_zones():
    # watermarks worked out in test_watermark_setup: DMA32 min 512, Normal min 1536,
    # DMA32 lowmem_reserve[Normal] = 3072
    return Machine.simple(DMA32=262144, Normal=786432, thp_enabled=False)


@pytest.mark.parametrize(
    ("flags", "threshold"),
    [
        (0, 1536),  # no reduction
        (ALLOC_NON_BLOCK, 1536),  # GFP_NOWAIT-like: non-blocking alone gets nothing
        (ALLOC_MIN_RESERVE, 768),  # 1536 - 1536/2
        (ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK, 576),  # 768 - 768/4 = 576 (GFP_ATOMIC, 37.5%)
        (ALLOC_OOM, 768),  # 1536 - 1536/2
        (ALLOC_OOM | ALLOC_MIN_RESERVE, 384),  # 768, then - 768/2
    ],
)
def test_order0_reserve_cuts_strictly_greater(two_zones, flags, threshold):
    z = two_zones.zone("Normal")
    mark = z._watermark[WMARK_MIN]
    assert zone_watermark_ok_free(z, 0, mark, ZONE_NORMAL, flags, threshold + 1)
    assert not zone_watermark_ok_free(z, 0, mark, ZONE_NORMAL, flags, threshold)


def test_lowmem_reserve_protects_lower_zone(two_zones):
    z = two_zones.zone("DMA32")
    # a Normal-capable request (highest_zoneidx Normal) must leave 512 + 3072 pages
    assert not zone_watermark_ok_free(z, 0, 512, ZONE_NORMAL, 0, 3584)
    assert zone_watermark_ok_free(z, 0, 512, ZONE_NORMAL, 0, 3585)
    assert zone_watermark_ok_free(z, 0, 512, ZONE_DMA32, 0, 513)


def test_high_order_subtracts_its_own_size(two_zones):
    z = two_zones.zone("Normal")  # fresh: order-10 blocks exist
    # unusable = 2^3 - 1 = 7: free 1544 - 7 = 1537 > 1536
    assert zone_watermark_ok_free(z, 3, 1536, ZONE_NORMAL, 0, 1544)
    assert not zone_watermark_ok_free(z, 3, 1536, ZONE_NORMAL, 0, 1543)


def fragmented():
    # 8192 pages, min_free_kbytes int_sqrt(32768*16) = 724 -> min 181, low 226, high 271
    m = Machine.simple(Normal=8192, thp_enabled=False)
    z = m.zone("Normal")
    free_k_of_n(z, 1, 2)  # every even page free: 4096 order-0 blocks, nothing larger
    return m, z


def test_order_above_zero_needs_a_free_block_of_that_order():
    _m, z = fragmented()
    low = z.low_wmark_pages
    assert low == 226 and z.nr_free_pages == 4096
    assert zone_watermark_ok(z, 0, low, ZONE_NORMAL)
    assert not zone_watermark_ok(z, 1, low, ZONE_NORMAL)  # plenty of pages, no order-1 block
    free_one_page_locked(z, 4097, 0)  # merges with 4096 into an order-1 MOVABLE block
    assert zone_watermark_ok(z, 1, low, ZONE_NORMAL)
    assert not zone_watermark_ok(z, 2, low, ZONE_NORMAL)


def test_highatomic_blocks_count_only_for_highatomic_or_oom():
    _m, z = fragmented()
    move_freepages_block(z, 0, MIGRATE_MOVABLE, MIGRATE_HIGHATOMIC)
    z.nr_reserved_highatomic = 512
    free_one_page_locked(z, 1, 0)  # order-1 block on the HIGHATOMIC list
    low = z.low_wmark_pages
    assert z.nr_free_highatomic == 257
    assert not zone_watermark_ok(z, 1, low, ZONE_NORMAL, ALLOC_WMARK_LOW)
    assert zone_watermark_ok(z, 1, low, ZONE_NORMAL, ALLOC_HIGHATOMIC)
    assert zone_watermark_ok(z, 1, low, ZONE_NORMAL, ALLOC_OOM)
    # and the 257 highatomic pages are not usable free pages for normal callers
    free = z.nr_free_pages
    assert free == 4096 + 1
    assert not zone_watermark_ok_free(z, 0, free - 257, ZONE_NORMAL, 0, free)
    assert zone_watermark_ok_free(z, 0, free - 257, ZONE_NORMAL, ALLOC_HIGHATOMIC, free)


def test_cma_blocks_count_only_with_alloc_cma():
    _m, z = fragmented()
    move_freepages_block(z, 0, MIGRATE_MOVABLE, MIGRATE_CMA)
    free_one_page_locked(z, 1, 0)
    low = z.low_wmark_pages
    assert z.nr_free_cma == 257
    assert not zone_watermark_ok(z, 1, low, ZONE_NORMAL)
    assert zone_watermark_ok(z, 1, low, ZONE_NORMAL, ALLOC_CMA)


def test_pcp_pages_are_invisible_to_the_watermark():
    _m, z = fragmented()
    taken = rmqueue_bulk(z, 0, 4096 - 200, MIGRATE_MOVABLE)
    assert len(taken) == 3896 and z.nr_free_pages == 200
    assert not zone_watermark_ok(z, 0, 200, ZONE_NORMAL)


def test_zone_watermark_fast_ignores_boost_for_min_reserve_order0():
    m = Machine.simple(Normal=8192, thp_enabled=False, boot=False)
    z = m.zone("Normal")
    for pfn, order in ((0, 7), (128, 6), (256, 3)):  # 200 free pages
        free_one_page_locked(z, pfn, order)
    z.watermark_boost = 300
    mark = z.min_wmark_pages  # 181 + 300 = 481
    assert mark == 481
    # 200 > 481/2 = 241? no. Retry without boost: 200 > 181 - 90 = 91: yes
    assert not zone_watermark_ok(z, 0, mark, ZONE_NORMAL, ALLOC_MIN_RESERVE)
    assert zone_watermark_fast(z, 0, mark, ZONE_NORMAL, ALLOC_MIN_RESERVE)
    assert not zone_watermark_fast(z, 0, mark, ZONE_NORMAL, 0)
    assert not zone_watermark_fast(z, 1, mark, ZONE_NORMAL, ALLOC_MIN_RESERVE)
