"""__free_one_page merging, list placement, expand and __rmqueue_smallest on hand-built zones."""

from __future__ import annotations

import pytest

from emulator.engine.recorder import MemoryRecorder
from emulator.mm.invariants import check_machine
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_MOVABLE, PG_ALLOC, PG_BUDDY, PG_ISOLATED, PG_TAIL
from emulator.mm.page_alloc.alloc_flags import FPI_TO_TAIL
from emulator.mm.page_alloc.buddy import free_one_page_locked, free_to_buddy
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
)


def bare(pages: int = 4096, **kw):
    """A zone with every page allocated (order 0): free blocks are then placed by hand."""
    m = Machine.simple(Normal=pages, thp_enabled=False, boot=False, **kw)
    return m, m.zone("Normal")


def free(z, pfn: int, order: int, fpi: int = 0) -> None:
    free_to_buddy(z, pfn, order, z.memmap.pb_mt[pfn >> 9], fpi)


def test_two_order0_buddies_merge_into_order1():
    m, z = bare()
    free(z, 6, 0)
    assert z.nr_free[0] == 1
    free(z, 7, 0)
    assert z.nr_free[:2] == [0, 1]
    assert z.free_list_pfns(1, MIGRATE_MOVABLE) == [6]
    assert z.memmap.state[6] == PG_BUDDY and z.memmap.state[7] == PG_BUDDY | PG_TAIL
    assert z.nr_free_pages == 2
    check_machine(m)


def test_freeing_a_whole_max_block_page_by_page_merges_to_order10():
    m, z = bare()
    for pfn in range(1024, 2048):
        free(z, pfn, 0)
    assert z.nr_free == [0] * 10 + [1]
    assert z.free_list_pfns(10, MIGRATE_MOVABLE) == [1024]
    assert z.buddy_steps == 1024 + 1023  # one list insertion per free, one step per merge
    check_machine(m)


def test_no_merge_with_allocated_or_different_order_buddy():
    m, z = bare()
    free(z, 4, 1)  # pfn 4-5; its order-1 buddy 6-7 is allocated
    free(z, 6, 0)  # buddy 7 allocated: stays order 0; order-1 buddy (4) is not its buddy
    assert z.nr_free[:3] == [1, 1, 0]
    check_machine(m)


def test_cross_pageblock_merge_refused_for_non_mergeable_type():
    m, z = bare()
    z.memmap.pb_mt[1] = MIGRATE_HIGHATOMIC
    free(z, 0, 9)
    free(z, 512, 9)
    assert z.nr_free[9] == 2 and z.nr_free[10] == 0
    assert z.free_list_pfns(9, MIGRATE_MOVABLE) == [0]
    assert z.free_list_pfns(9, MIGRATE_HIGHATOMIC) == [512]
    assert z.nr_free_highatomic == 512
    check_machine(m)


@pytest.mark.parametrize("other", [MIGRATE_CMA, MIGRATE_ISOLATE])
def test_cma_and_isolate_never_merge_across_pageblocks(other):
    m, z = bare()
    z.memmap.pb_mt[0] = other
    free(z, 512, 9)
    free(z, 0, 9)
    assert z.nr_free[9] == 2
    # ISOLATE pages are not in NR_FREE_PAGES; CMA pages are, and in NR_FREE_CMA_PAGES
    assert z.nr_free_pages == (512 if other == MIGRATE_ISOLATE else 1024)
    assert z.nr_free_cma == (512 if other == MIGRATE_CMA else 0)
    check_machine(m)


def test_mergeable_types_merge_and_buddy_block_takes_our_type():
    m, z = bare()
    z.memmap.pb_mt[0] = MIGRATE_UNMOVABLE  # pb1 stays MOVABLE
    free(z, 512, 9)
    free(z, 0, 9)  # freed as UNMOVABLE: merges, rewrites pageblock 1 to UNMOVABLE
    assert z.nr_free[10] == 1
    assert z.free_list_pfns(10, MIGRATE_UNMOVABLE) == [0]
    assert list(z.memmap.pb_mt[0:2]) == [MIGRATE_UNMOVABLE, MIGRATE_UNMOVABLE]
    check_machine(m)


def test_no_merge_across_zone_boundary():
    m = Machine.simple(DMA32=512, Normal=1536, thp_enabled=False, boot=False)
    dma32, normal = m.zone("DMA32"), m.zone("Normal")
    free_to_buddy(dma32, 0, 9, MIGRATE_MOVABLE)
    free_to_buddy(normal, 512, 9, MIGRATE_MOVABLE)  # buddy pfn 0 is free, order 9, other zone
    assert dma32.nr_free[9] == 1 and normal.nr_free[9] == 1
    assert normal.nr_free[10] == 0
    check_machine(m)


def test_head_insertion_by_default_and_tail_when_merge_likely():
    m, z = bare()
    # pfn 9 (buddy 8 allocated, parent's buddy 10-11 allocated): plain head insertion
    free(z, 9, 0)
    free(z, 33, 0)
    assert z.free_list_pfns(0, MIGRATE_MOVABLE) == [33, 9]
    # pfn 2-3 free (order 1); freeing pfn 1 (buddy 0 allocated): parent [0,2)'s order-1 buddy
    # [2,4) is free, so buddy_merge_likely puts pfn 1 at the tail
    free(z, 2, 1)
    free(z, 1, 0)
    assert z.free_list_pfns(0, MIGRATE_MOVABLE) == [33, 9, 1]
    check_machine(m)


def test_fpi_to_tail_forces_tail_insertion():
    _m, z = bare()
    free(z, 9, 0)
    free(z, 33, 0, FPI_TO_TAIL)
    assert z.free_list_pfns(0, MIGRATE_MOVABLE) == [9, 33]


def test_expand_puts_upper_halves_at_list_heads_and_caller_keeps_lowest():
    m, z = bare()
    free(z, 16, 3)  # 16..23
    pfn = rmqueue_buddy_locked(z, 0, MIGRATE_MOVABLE)
    assert pfn == 16
    assert z.free_list_pfns(2, MIGRATE_MOVABLE) == [20]
    assert z.free_list_pfns(1, MIGRATE_MOVABLE) == [18]
    assert z.free_list_pfns(0, MIGRATE_MOVABLE) == [17]
    assert z.memmap.state[16] == PG_ALLOC
    assert z.nr_free_pages == 8 - 1
    check_machine(m)


def test_rmqueue_smallest_takes_the_smallest_order_then_the_list_head():
    m, z = bare()
    free(z, 128, 4)
    free(z, 8, 1)
    free(z, 32, 1)  # most recent order-1 free is the head
    assert rmqueue_buddy_locked(z, 1, MIGRATE_MOVABLE) == 32
    assert rmqueue_buddy_locked(z, 1, MIGRATE_MOVABLE) == 8
    assert rmqueue_buddy_locked(z, 1, MIGRATE_MOVABLE) == 128  # now splits the order-4 block
    assert z.nr_free[1:5] == [1, 1, 1, 0]
    check_machine(m)


def test_allocation_fails_when_nothing_large_enough():
    _m, z = bare()
    free(z, 8, 2)
    assert rmqueue_buddy_locked(z, 3, MIGRATE_MOVABLE) == -1
    assert z.nr_free_pages == 4


def test_split_large_buddy_frees_pageblocks_with_their_own_types():
    m, z = bare()
    z.memmap.mark_block(0, 10, PG_ALLOC, OWNER_MOVABLE)
    z.memmap.pb_mt[1] = MIGRATE_HIGHATOMIC
    free_one_page_locked(z, 0, 10)
    assert z.free_list_pfns(9, MIGRATE_MOVABLE) == [0]
    assert z.free_list_pfns(9, MIGRATE_HIGHATOMIC) == [512]
    assert m.vm_events["pgfree"] == 1024
    check_machine(m)


def test_vm_events_and_zone_locked_tracepoint():
    rec = MemoryRecorder()
    m = Machine.simple(Normal=4096, thp_enabled=False, recorder=rec)
    z = m.zone("Normal")
    pfn = rmqueue_buddy_locked(z, 2, MIGRATE_MOVABLE)
    assert m.vm_events["pgalloc_normal"] == 4
    free_one_page_locked(z, pfn, 2)
    assert m.vm_events["pgfree"] == 4
    (ev,) = rec.events()
    assert ev["event"] == "mm_page_alloc_zone_locked"
    assert (ev["pfn"], ev["order"], ev["migratetype"], ev["percpu_refill"]) == (pfn, 2, 1, 1)


def test_capture_hook_takes_the_merged_block():
    m, z = bare()
    seen = []

    def capture(pfn: int, order: int, mt: int) -> bool:
        seen.append((pfn, order))
        return order == 2

    free(z, 4, 0)
    free(z, 5, 0)  # [4,6) order 1
    free(z, 6, 0)  # buddy 7 allocated
    z.capture = capture
    free(z, 7, 0)
    z.capture = None
    # 7 merges with 6 into [6,8), then with [4,6) into [4,8): captured at order 2
    assert seen == [(7, 0), (6, 1), (4, 2)]
    assert z.memmap.state[4] == PG_ISOLATED and z.memmap.order[4] == 2
    assert z.nr_free_pages == 0 and sum(z.nr_free) == 0
    check_machine(m)
