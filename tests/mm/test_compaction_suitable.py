"""compaction_suitable and compaction_suit_allocation_order against mm/compaction.c (6.12):
the order-0 watermark plus compact_gap, and for costly orders the fragmentation-index test:
a zone whose index for the order is in [0, vm.extfrag_threshold] is not suitable (lack of
memory, not fragmentation), traced as COMPACT_NOT_SUITABLE_ZONE; negative indexes and
non-costly orders pass; an allocation that would already succeed gives COMPACT_SUCCESS.
"""

from __future__ import annotations

from emulator.engine import MemoryRecorder
from emulator.mm.compaction.control import CompactResult, compact_gap
from emulator.mm.compaction.suitable import compaction_suit_allocation_order, compaction_suitable
from emulator.mm.initstate import free_k_of_n
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.alloc_flags import ALLOC_WMARK_LOW
from emulator.mm.vmstat import fragmentation_index
from emulator.mm.zone import ZONE_NORMAL


def zone_with(k: int, n: int, recorder: MemoryRecorder | None = None):
    m = Machine.simple(Normal=65536, **({"recorder": recorder} if recorder else {}))
    z = m.populated_zones()[0]
    if recorder is not None:
        z.rec = recorder
    free_k_of_n(z, k, n)
    return z


def test_fragindex_in_range_refuses_a_costly_order() -> None:
    # every pageblock: first 256 pages free -> one order-8 block per pageblock
    rec = MemoryRecorder()
    z = zone_with(256, 512, rec)
    idx = fragmentation_index(z, 9)
    # 1000 - (1000 + free*1000/512) / blocks = 1000 - 1000/128 - 500 -> 493 (integer steps)
    assert 0 <= idx <= 500
    assert not compaction_suitable(z, 9, ZONE_NORMAL, 500)
    ev = [e for e in rec.events() if e["event"] == "mm_compaction_suitable"]
    assert ev[-1]["ret"] == "not_suitable_zone" and ev[-1]["order"] == 9
    # the same zone with the threshold below the index: fragmentation, so compact
    assert compaction_suitable(z, 9, ZONE_NORMAL, idx - 1)
    assert compaction_suitable(z, 9, ZONE_NORMAL, 0) is (idx > 0)
    # the boundary is inclusive: index == threshold refuses
    assert not compaction_suitable(z, 9, ZONE_NORMAL, idx)
    assert compaction_suit_allocation_order(z, 9, ZONE_NORMAL, ALLOC_WMARK_LOW, 500) == (
        CompactResult.COMPACT_SKIPPED
    )


def test_high_fragindex_and_non_costly_orders_are_suitable() -> None:
    z = zone_with(1, 2)  # order-0 holes only: index near 1000
    assert fragmentation_index(z, 9) > 900
    assert compaction_suitable(z, 9, ZONE_NORMAL, 500)
    z8 = zone_with(256, 512)
    # order 3 is not costly: the index (in range for order 9) is not consulted
    assert compaction_suitable(z8, 3, ZONE_NORMAL, 1000)
    # order 9 with threshold 1000 (maximum): every non-negative index refuses
    assert not compaction_suitable(z8, 9, ZONE_NORMAL, 1000)


def test_order0_watermark_plus_gap() -> None:
    z = zone_with(1, 2)
    low = z.low_wmark_pages
    # just below low + compact_gap(9) free pages: SKIPPED before any fragindex test
    z.nr_free_pages = low + compact_gap(9) - 1 + z.lowmem_reserve[ZONE_NORMAL]
    assert not compaction_suitable(z, 9, ZONE_NORMAL, 500)
    z.nr_free_pages = low + compact_gap(9) + 1
    assert compaction_suitable(z, 9, ZONE_NORMAL, 500)
    # non-costly orders use the MIN mark
    z.nr_free_pages = z.min_wmark_pages + compact_gap(2) + 1
    assert compaction_suitable(z, 2, ZONE_NORMAL, 500)
    assert not compaction_suitable(z, 4, ZONE_NORMAL, 500)


def test_would_already_succeed_is_success() -> None:
    z = zone_with(512, 512)  # everything free, order-10 blocks
    assert compaction_suit_allocation_order(z, 9, ZONE_NORMAL, ALLOC_WMARK_LOW, 500) == (
        CompactResult.COMPACT_SUCCESS
    )
    z1 = zone_with(1, 2)
    assert compaction_suit_allocation_order(z1, 9, ZONE_NORMAL, ALLOC_WMARK_LOW, 500) == (
        CompactResult.COMPACT_CONTINUE
    )
