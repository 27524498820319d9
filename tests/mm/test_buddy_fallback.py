"""__rmqueue_fallback / steal_suitable_fallback decisions, highatomic and CMA on hand-built blocks.

The zone has 4096 pages (8 pageblocks), every page allocated (owner unmovable) until freed by
hand. Its watermarks (vm.min_free_kbytes from 16 MiB: int_sqrt(16384*16) = 512 kB -> 128
pages; delta = max(128/4, 4096*10/10000) = 32) are min 128, low 160, high 192, so
boost_watermark gives max(512, 192*15000/10000 = 288) = 512.
"""

from __future__ import annotations

from emulator.engine.recorder import MemoryRecorder
from emulator.mm.invariants import check_machine
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_MOVABLE, PG_ALLOC
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_CMA,
    ALLOC_HIGHATOMIC,
    ALLOC_KSWAPD,
    ALLOC_NOFRAGMENT,
    ALLOC_NON_BLOCK,
)
from emulator.mm.page_alloc.buddy import free_one_page_locked, free_to_buddy
from emulator.mm.page_alloc.fallback import can_steal_fallback, find_suitable_fallback
from emulator.mm.page_alloc.highatomic import (
    reserve_highatomic_pageblock,
    unreserve_highatomic_pageblock_locked,
)
from emulator.mm.page_alloc.isolation import move_freepages_block_isolate, unset_migratetype_isolate
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.page_alloc.watermark import zone_watermark_unusable_free
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
)
from emulator.mm.zone import ZONE_BOOSTED_WATERMARK


def bare(pages: int = 4096):
    rec = MemoryRecorder()
    m = Machine.simple(Normal=pages, thp_enabled=False, boot=False, recorder=rec)
    return m, m.zone("Normal"), rec


def free(z, pfn: int, order: int) -> None:
    free_to_buddy(z, pfn, order, z.memmap.pb_mt[pfn >> 9])


def extfrag(rec):
    return [e for e in rec.events() if e["event"] == "mm_page_alloc_extfrag"]


def test_can_steal_fallback_uses_found_order_and_request_type():
    assert can_steal_fallback(9, MIGRATE_MOVABLE)
    assert can_steal_fallback(4, MIGRATE_MOVABLE)  # pageblock_order / 2
    assert not can_steal_fallback(3, MIGRATE_MOVABLE)
    assert can_steal_fallback(0, MIGRATE_UNMOVABLE)
    assert can_steal_fallback(0, MIGRATE_RECLAIMABLE)
    assert can_steal_fallback(0, MIGRATE_MOVABLE, mobility_disabled=True)


def test_order10_fallback_is_claimed_outright_without_boost():
    m, z, rec = bare()
    free(z, 0, 10)  # pageblocks 0 and 1, MOVABLE
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE)
    assert pfn == 0
    assert list(z.memmap.pb_mt[0:2]) == [MIGRATE_UNMOVABLE] * 2
    assert [z.nr_free_mt[o * 6 + MIGRATE_UNMOVABLE] for o in range(10)] == [1] * 10
    assert z.watermark_boost == 0
    (ev,) = extfrag(rec)
    assert ev["pfn"] == 0 and ev["alloc_order"] == 0 and ev["fallback_order"] == 10
    assert ev["alloc_migratetype"] == 0 and ev["fallback_migratetype"] == 1
    assert ev["change_ownership"] == 1
    check_machine(m)


def test_unmovable_claims_movable_block_when_free_plus_alike_reaches_half():
    m, z, rec = bare()
    free(z, 256, 8)  # 256 free pages in pageblock 0; the other 256 are unmovable-owned
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE, ALLOC_KSWAPD)
    # free 256 + alike (512 - 256 free - 0 movable) = 512 >= 256: whole block claimed
    assert z.memmap.pb_mt[0] == MIGRATE_UNMOVABLE
    assert pfn == 256
    assert z.nr_free_mt[7 * 6 + MIGRATE_UNMOVABLE] == 1  # split remainder on UNMOVABLE lists
    assert z.watermark_boost == 512
    assert z.flags & (1 << ZONE_BOOSTED_WATERMARK)
    assert extfrag(rec)[0]["change_ownership"] == 1
    check_machine(m)


def test_unmovable_takes_single_page_from_block_full_of_movable_pages():
    m, z, rec = bare()
    z.memmap.set_owner(0, 9, OWNER_MOVABLE)  # everything in pageblock 0 is LRU
    free(z, 8, 3)
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE)  # no ALLOC_KSWAPD: no flag
    # free 8 + alike (512 - 8 - 504) = 8 < 256: exactly one page cut out of the fallback buddy
    assert pfn == 8
    assert z.memmap.pb_mt[0] == MIGRATE_MOVABLE
    assert [z.free_list_pfns(o, MIGRATE_MOVABLE) for o in range(3)] == [[9], [10], [12]]
    assert z.watermark_boost == 512 and not z.flags
    assert extfrag(rec)[0]["change_ownership"] == 0
    check_machine(m)


def test_unmovable_from_reclaimable_counts_no_alike_pages():
    m, z, _rec = bare()
    z.memmap.pb_mt[0] = MIGRATE_RECLAIMABLE
    free(z, 64, 6)
    free(z, 128, 7)  # 192 free pages < 256 and alike = 0 for UNMOVABLE <- RECLAIMABLE
    rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE)
    assert z.memmap.pb_mt[0] == MIGRATE_RECLAIMABLE
    check_machine(m)


def test_fallback_table_order_reclaimable_before_movable():
    _m, z, rec = bare()
    z.memmap.pb_mt[2] = MIGRATE_RECLAIMABLE
    free(z, 0, 3)  # MOVABLE block, pageblock 0
    free(z, 1024, 3)  # RECLAIMABLE block, pageblock 2
    pfn = rmqueue_buddy_locked(z, 3, MIGRATE_UNMOVABLE)
    assert pfn == 1024
    assert extfrag(rec)[0]["fallback_migratetype"] == MIGRATE_RECLAIMABLE


def test_unmovable_splits_the_largest_fallback_block():
    _m, z, rec = bare()
    z.memmap.set_owner(512, 9, OWNER_MOVABLE)
    free(z, 2, 1)
    free(z, 576, 6)
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE)
    assert pfn == 576  # order 6 chosen over order 1
    assert z.free_list_pfns(1, MIGRATE_MOVABLE)[0] == 578  # remainder at the head
    assert extfrag(rec)[0]["fallback_order"] == 6


def test_movable_that_cannot_steal_takes_the_smallest_fallback():
    m, z, rec = bare()
    z.memmap.pb_mt[0] = MIGRATE_UNMOVABLE
    z.memmap.pb_mt[1] = MIGRATE_UNMOVABLE
    free(z, 4, 2)
    free(z, 520, 3)
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_MOVABLE)
    # largest is order 3 but can_steal(3, MOVABLE) is false: smallest (order 2) is used instead
    assert pfn == 4
    assert z.free_list_pfns(3, MIGRATE_UNMOVABLE) == [520]
    assert list(z.memmap.pb_mt[0:2]) == [MIGRATE_UNMOVABLE] * 2
    ev = extfrag(rec)[0]
    assert ev["fallback_order"] == 2 and ev["change_ownership"] == 0
    check_machine(m)


def test_movable_claims_unmovable_block_full_of_movable_pages():
    m, z, _rec = bare()
    z.memmap.pb_mt[1] = MIGRATE_UNMOVABLE
    z.memmap.set_owner(512, 9, OWNER_MOVABLE)
    free(z, 512 + 32, 5)  # order 5 >= 4: can_steal; alike = movable pages = 480
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_MOVABLE)
    assert pfn == 544
    assert z.memmap.pb_mt[1] == MIGRATE_MOVABLE
    check_machine(m)


def test_nofragment_only_takes_whole_pageblocks():
    m, z, rec = bare()
    free(z, 64, 6)
    assert rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE, ALLOC_NOFRAGMENT) == -1
    assert extfrag(rec) == []
    free(z, 1024, 9)
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE, ALLOC_NOFRAGMENT)
    assert pfn == 1024 and z.memmap.pb_mt[2] == MIGRATE_UNMOVABLE
    assert z.memmap.pb_mt[0] == MIGRATE_MOVABLE
    assert rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE, 0) == 1025  # now from its own list
    check_machine(m)


def test_boost_is_capped_at_max_boost():
    _m, z, _rec = bare()
    z.memmap.set_owner(0, 9, OWNER_MOVABLE)
    for pfn in (8, 16, 32):
        free(z, pfn, 3)
    for _ in range(3):
        assert rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE) >= 0
    assert z.watermark_boost == 512  # min(boost + 512, max(512, 288))


def test_no_boost_in_small_zone_or_with_factor_zero():
    _m, z, _rec = bare(pages=1024)  # 4 * pageblock_nr_pages > managed
    free(z, 8, 3)
    rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE)
    assert z.watermark_boost == 0
    m, z, _rec = bare()
    m.sysctl.set("vm.watermark_boost_factor", 0)
    z.memmap.set_owner(0, 9, OWNER_MOVABLE)
    free(z, 8, 3)
    rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE)
    assert z.watermark_boost == 0


def test_highatomic_reserve_use_and_unreserve():
    m, z, _rec = bare(pages=65536)  # managed/100 = 655 -> max reserve ALIGN(655, 512) = 1024
    for b in range(3):
        free(z, b * 512 + 256, 8)
    pfn = rmqueue_buddy_locked(z, 1, MIGRATE_MOVABLE)
    reserve_highatomic_pageblock(z, pfn, 1)
    assert z.memmap.pb_mt[pfn >> 9] == MIGRATE_HIGHATOMIC
    assert z.nr_reserved_highatomic == 512
    assert z.nr_free_highatomic == 254  # the block's other free pages moved to HIGHATOMIC
    # watermark: highatomic pages are unusable without ALLOC_RESERVES
    assert zone_watermark_unusable_free(z, 0, 0) == 254
    assert zone_watermark_unusable_free(z, 0, ALLOC_HIGHATOMIC) == 0
    # ALLOC_HIGHATOMIC allocations come from the reserve first
    p2 = rmqueue_buddy_locked(z, 1, MIGRATE_MOVABLE, ALLOC_HIGHATOMIC)
    assert p2 >> 9 == pfn >> 9
    # freed pages of the block go back to the HIGHATOMIC lists
    free_one_page_locked(z, p2, 1)
    assert z.nr_free_highatomic == 254
    q = rmqueue_buddy_locked(z, 1, MIGRATE_MOVABLE)
    reserve_highatomic_pageblock(z, q, 1)
    r = rmqueue_buddy_locked(z, 1, MIGRATE_MOVABLE)
    reserve_highatomic_pageblock(z, r, 1)  # limit of 1024 reached: no third block
    assert z.nr_reserved_highatomic == 1024
    assert z.memmap.pb_mt[r >> 9] == MIGRATE_MOVABLE
    check_machine(m)
    # unreserve: not forced keeps one pageblock
    assert unreserve_highatomic_pageblock_locked(z, MIGRATE_MOVABLE, force=False) > 0
    assert z.nr_reserved_highatomic == 512
    assert unreserve_highatomic_pageblock_locked(z, MIGRATE_MOVABLE, force=False) == 0
    assert unreserve_highatomic_pageblock_locked(z, MIGRATE_MOVABLE, force=True) > 0
    assert z.nr_reserved_highatomic == 0 and z.nr_free_highatomic == 0
    check_machine(m)


def test_highatomic_is_last_resort_for_non_blocking_requests():
    _m, z, _rec = bare(pages=65536)
    z.memmap.pb_mt[0] = MIGRATE_HIGHATOMIC
    free(z, 0, 3)
    assert rmqueue_buddy_locked(z, 0, MIGRATE_MOVABLE) == -1
    assert rmqueue_buddy_locked(z, 0, MIGRATE_MOVABLE, ALLOC_NON_BLOCK) == 0


def test_cma_only_with_alloc_cma_and_balancing():
    m, z, _rec = bare()
    z.memmap.pb_mt[1] = MIGRATE_CMA
    free(z, 512, 9)
    assert z.nr_free_cma == 512 and z.nr_free_pages == 512
    assert rmqueue_buddy_locked(z, 0, MIGRATE_MOVABLE) == -1  # CMA is no fallback type
    assert zone_watermark_unusable_free(z, 0, 0) == 512
    assert zone_watermark_unusable_free(z, 0, ALLOC_CMA) == 0
    # CMA free (512) > half of free (512 + 8) / 2: ALLOC_CMA movable requests use CMA first
    free(z, 8, 3)
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_MOVABLE, ALLOC_CMA)
    assert pfn == 512 and z.memmap.state[512] == PG_ALLOC
    assert z.nr_free_cma == 511
    check_machine(m)


def test_migratetype_of_highatomic_list_is_never_a_fallback():
    _m, z, _rec = bare()
    z.memmap.pb_mt[0] = MIGRATE_HIGHATOMIC
    free(z, 0, 9)
    assert rmqueue_buddy_locked(z, 0, MIGRATE_UNMOVABLE) == -1
    assert find_suitable_fallback(z, 9, MIGRATE_UNMOVABLE, False) == (-1, False)


def test_isolating_a_pageblock_inside_an_order10_buddy_splits_it():
    m, z, _rec = bare()
    free(z, 1024, 10)  # pageblocks 2 and 3
    assert move_freepages_block_isolate(z, 1536, MIGRATE_ISOLATE)  # the tail pageblock
    assert z.free_list_pfns(9, MIGRATE_MOVABLE) == [1024]
    assert z.free_list_pfns(9, MIGRATE_ISOLATE) == [1536]
    assert z.nr_free_pages == 512  # ISOLATE pages leave NR_FREE_PAGES
    check_machine(m)
    # moving it back alone would leave two order-9 buddies; unset_migratetype_isolate re-merges
    unset_migratetype_isolate(z, 1536, MIGRATE_MOVABLE)
    assert z.nr_free[10] == 1 and z.nr_free_pages == 1024
    assert z.free_list_pfns(10, MIGRATE_MOVABLE) == [1024]
    check_machine(m)
    # the head pageblock of a max-order buddy
    assert move_freepages_block_isolate(z, 1024, MIGRATE_ISOLATE)
    assert z.free_list_pfns(9, MIGRATE_ISOLATE) == [1024]
    assert z.free_list_pfns(9, MIGRATE_MOVABLE) == [1536]
    check_machine(m)


def test_isolating_a_mixed_pageblock_moves_its_free_pages():
    m, z, _rec = bare()
    free(z, 8, 3)
    free(z, 64, 6)
    assert move_freepages_block_isolate(z, 0, MIGRATE_ISOLATE)
    assert z.nr_free_pages == 0 and z.nr_free_mt[6 * 6 + MIGRATE_ISOLATE] == 1
    # freeing into an isolated block keeps the pages out of NR_FREE_PAGES
    free_one_page_locked(z, 16, 0)
    assert z.nr_free_pages == 0
    check_machine(m)
    unset_migratetype_isolate(z, 0, MIGRATE_MOVABLE)
    assert z.nr_free_pages == 8 + 64 + 1 and z.memmap.pb_mt[0] == MIGRATE_MOVABLE
    check_machine(m)


def test_unreserve_leaves_order9_buddies_unmerged_like_the_kernel():
    m, z, _rec = bare(pages=65536)
    z.memmap.mark_block(1024, 9, PG_ALLOC, OWNER_MOVABLE)
    reserve_highatomic_pageblock(z, 1024, 9)  # an order-9 ALLOC_HIGHATOMIC allocation
    free(z, 1536, 9)
    free_one_page_locked(z, 1024, 9)  # HIGHATOMIC next to MOVABLE: no merge
    assert z.nr_free[9] == 2
    assert unreserve_highatomic_pageblock_locked(z, MIGRATE_MOVABLE, force=True) == 1
    # both halves are MOVABLE now, yet nothing re-merges them until one is allocated or freed
    assert z.nr_free[9] == 2 and z.nr_free[10] == 0
    assert list(z.memmap.pb_mt[2:4]) == [MIGRATE_MOVABLE] * 2
    check_machine(m)
