"""The invariant checker accepts real states and names the invariant and pfn of corrupted ones."""

from __future__ import annotations

import numpy as np
import pytest

from emulator.engine import Sim
from emulator.mm.initstate import every_other_chunk, random_alloc_free
from emulator.mm.invariants import (
    InvariantViolation,
    _walk_lru_lists,
    check_lru,
    check_machine,
    check_zone,
)
from emulator.mm.machine import Machine
from emulator.mm.memmap import (
    PF_ACTIVE,
    PF_ISOLATED,
    PG_ALLOC,
    PG_BUDDY,
    PG_RESERVED,
    PG_TAIL,
)
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.buddy import free_to_buddy
from emulator.mm.page_alloc.rmqueue import rmqueue_bulk
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.mm.reclaim.lruvec import LRU_ACTIVE_ANON, LRU_INACTIVE_ANON
from emulator.mm.snapshot import MIGRATE_CMA, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE


def fragmented():
    m = Machine.simple(Normal=8192, thp_enabled=False)
    z = m.zone("Normal")
    held = random_alloc_free(
        z, 0.5, np.random.default_rng(7), orders=(0, 1, 2, 3), migratetypes=(0, 1, 2), churn=1.0
    )
    check_machine(m)
    return m, z, held


def first_free(z, order):
    for mt in range(6):
        pfns = z.free_list_pfns(order, mt)
        if pfns:
            return pfns[0], mt
    raise AssertionError(f"no free order-{order} block")


def violation(z, **kw) -> InvariantViolation:
    with pytest.raises(InvariantViolation) as exc:
        check_zone(z, **kw)
    return exc.value


def test_nr_free_counter_off():
    _, z, _ = fragmented()
    z.nr_free[2] += 1
    v = violation(z)
    assert v.invariant == "nr_free" and "free_area[2].nr_free" in str(v)


def test_nr_free_pages_off():
    _, z, _ = fragmented()
    z.nr_free_pages -= 3
    v = violation(z)
    assert v.invariant == "NR_FREE_PAGES"
    assert "node 0 zone Normal" in str(v)


def test_cma_counter_off():
    _, z, _ = fragmented()
    z.nr_free_cma = 1
    assert violation(z).invariant == "NR_FREE_CMA_PAGES"


def test_allocated_page_inside_a_free_block():
    _, z, _ = fragmented()
    pfn, _ = first_free(z, 2)
    z.memmap.state[pfn + 2] = PG_ALLOC
    v = violation(z)
    assert v.invariant == "free-block-head" and v.pfn == pfn + 2
    assert f"at pfn {pfn + 2:#x}" in str(v)


def test_list_entry_not_a_buddy_head():
    _, z, _ = fragmented()
    pfn, _ = first_free(z, 1)
    z.memmap.order[pfn] = 3
    v = violation(z)
    assert v.invariant == "free-block-head" and v.pfn == pfn


def test_misaligned_block_on_a_list():
    m = Machine.simple(Normal=4096, thp_enabled=False, boot=False)
    z = m.zone("Normal")
    z.memmap.mark_block(2, 0, PG_BUDDY)
    z.memmap.state[3] = PG_BUDDY | PG_TAIL
    z.add_to_free_list(2, 1, MIGRATE_MOVABLE, tail=False)  # order 1 at pfn 2 is fine...
    z.account_freepages(2, MIGRATE_MOVABLE)
    check_zone(z)
    z.del_from_free_list(2, 1, MIGRATE_MOVABLE)
    z.memmap.state[4] = PG_BUDDY | PG_TAIL
    z.add_to_free_list(3, 1, MIGRATE_MOVABLE, tail=False)  # ...order 1 at pfn 3 is not
    z.memmap.state[2] = PG_ALLOC
    v = violation(z)
    assert v.invariant == "free-block-head" and v.pfn == 3 and "not aligned" in str(v)


def test_pageblock_type_changed_without_moving_free_pages():
    _, z, _ = fragmented()
    pfn, _mt = first_free(z, 0)
    z.memmap.pb_mt[pfn >> 9] = MIGRATE_CMA
    v = violation(z)
    assert v.invariant == "free-block-type"


def test_unmerged_buddies_detected():
    m = Machine.simple(Normal=4096, thp_enabled=False, boot=False)
    z = m.zone("Normal")
    for pfn in (8, 9):  # two free order-0 buddies put on the list without merging
        z.add_to_free_list(pfn, 0, MIGRATE_MOVABLE, tail=False)
        z.account_freepages(1, MIGRATE_MOVABLE)
    v = violation(z)
    assert v.invariant == "unmerged-buddies" and v.pfn == 8


def test_unmerged_across_pageblocks_is_fine_for_non_mergeable_types():
    m = Machine.simple(Normal=4096, thp_enabled=False, boot=False)
    z = m.zone("Normal")
    z.memmap.pb_mt[1] = MIGRATE_CMA
    free_to_buddy(z, 0, 9, MIGRATE_MOVABLE)
    free_to_buddy(z, 512, 9, MIGRATE_CMA)
    check_zone(z)
    z.memmap.pb_mt[0] = MIGRATE_UNMOVABLE  # now both mergeable but on the wrong list
    assert violation(z).invariant == "free-block-type"


def test_buddy_head_on_no_list():
    _, z, held = fragmented()
    pfn, _order = next((p, o) for p, o in held if o == 0)
    z.memmap.state[pfn] = PG_BUDDY
    v = violation(z)
    assert v.invariant == "buddy-on-list" and v.pfn == pfn


def test_orphan_tail_page():
    _, z, held = fragmented()
    pfn, _ = next((p, o) for p, o in held if o == 0)
    z.memmap.state[pfn] = PG_ALLOC | PG_TAIL
    v = violation(z)
    assert v.invariant == "block-marking" and v.pfn == pfn


def test_allocated_block_with_a_foreign_page():
    _, z, held = fragmented()
    pfn, _order = next((p, o) for p, o in held if o == 3)
    z.memmap.state[pfn + 5] = PG_RESERVED
    v = violation(z)
    assert v.invariant == "block-marking" and v.pfn == pfn + 5


def test_page_lost_from_conservation():
    _, z, held = fragmented()
    pfn, _ = next((p, o) for p, o in held if o == 0)
    z.memmap.state[pfn] = PG_RESERVED  # neither free, pcp, allocated nor isolated
    v = violation(z)
    assert v.invariant == "conservation" and "!= managed 8192" in str(v)


def test_broken_list_links():
    _, z, _ = fragmented()
    pfn, _ = first_free(z, 0)
    z.memmap.prv[z.memmap.nxt[pfn]] = 12345
    assert violation(z).invariant == "list-links"


def test_pcp_count_cross_check():
    m, z, _ = fragmented()
    pages = rmqueue_bulk(z, 0, 5, MIGRATE_MOVABLE)
    assert len(pages) == 5
    check_zone(z, pcp_pages=5)
    v = violation(z, pcp_pages=4)
    assert v.invariant == "conservation" and "pcp lists hold 4" in str(v)
    check_machine(m, pcp_pages={(0, 2): 5})


# The ``check_lru`` invariant (emulator/mm/invariants.py): each of its counter and membership
# checks (per-zone counters, isolated counters, the lru-add batch) names the corruption it finds.


def _adopted() -> PageAllocator:
    m = Machine.simple(Normal=8192)
    every_other_chunk(m.zone("Normal"), 1)
    pa = PageAllocator(m, Sim("fifo"), cpus_per_node=1)
    assert adopt_allocated(pa) == 4096
    pa.check()
    return pa


def _violation(pa: PageAllocator) -> str:
    with pytest.raises(InvariantViolation) as info:
        pa.check()
    return info.value.invariant


def test_check_lru_names_a_wrong_per_zone_counter() -> None:
    # nr_zone_inactive_anon off by one while the node's nr_inactive_anon is right
    pa = _adopted()
    zidx = pa.zones[0].zone_idx
    pa.lruvecs[0].nr_zone_pages[zidx][LRU_INACTIVE_ANON] += 1
    assert _violation(pa) == "lru-count"


@pytest.mark.parametrize("which", ["nr_isolated_anon", "nr_isolated_file"])
def test_check_lru_names_an_isolated_counter_with_no_isolated_folio(which: str) -> None:
    pa = _adopted()
    setattr(pa.lruvecs[0], which, 1)
    assert _violation(pa) == "lru-isolated"


def test_check_lru_names_a_batch_entry_without_pf_lru_batch() -> None:
    # a pfn in a CPU's lru-add batch must carry PF_LRU_BATCH (folio_add_lru sets it)
    pa = _adopted()
    pfn = pa.lruvecs[0].folios(LRU_INACTIVE_ANON)[0]
    pa.cpus[0].lru_add.append(pfn)
    assert _violation(pa) == "lru-batch"


def test_check_lru_names_a_wrong_nr_mlock() -> None:
    pa = _adopted()
    pa.lruvecs[0].nr_mlock[pa.zones[0].zone_idx] += 1
    assert _violation(pa) == "lru-mlock"


def test_check_lru_names_a_handle_that_points_elsewhere() -> None:
    pa = _adopted()
    rmap = pa.machine.rmap
    pfn = pa.lruvecs[0].folios(LRU_INACTIVE_ANON)[0]
    h = rmap.holder(pfn)
    rmap.handle_pfn[h] = pfn + 1  # the handle says another page
    assert _violation(pa) == "rmap"


# The LRU lists are checked in bulk (no walk); a corruption found that way is reported as the
# entry-by-entry walk reports it: the same invariant, pfn and message.


def _corrupt_lru(pa: PageAllocator, how: str) -> None:
    mm = pa.memmap
    lv = pa.lruvecs[0]
    folios = lv.folios(LRU_INACTIVE_ANON)
    a, b, c = folios[3], folios[4], folios[5]
    if how == "broken-prv":
        mm.prv[b] = c  # nxt[a] == b but prv[b] != a
    elif how == "unlinked-entry":
        mm.nxt[a] = c  # b is skipped: PF_LRU, on no list
        mm.prv[c] = a
    elif how == "detached-cycle":
        mm.nxt[a] = c  # b alone on a cycle of its own
        mm.prv[c] = a
        mm.nxt[b] = b
        mm.prv[b] = b
    elif how == "not-allocated":
        mm.state[b] = PG_BUDDY
    elif how == "isolated-flag":
        mm.pflags[b] |= PF_ISOLATED
    elif how == "wrong-list":
        mm.pflags[b] |= PF_ACTIVE  # belongs on the active list
    elif how == "flag-not-lru":
        mm.pflags[b] = 0  # on a list without PG_lru
    elif how == "two-heads-one-cycle":
        active = lv.lists + LRU_ACTIVE_ANON  # an empty list: splice its head into this one
        mm.nxt[a] = active
        mm.prv[active] = a
        mm.nxt[active] = b
        mm.prv[b] = active
    elif how == "count":
        lv.nr_pages[LRU_INACTIVE_ANON] += 1
    else:
        raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "invariant"),
    [
        ("broken-prv", "lru-links"),
        ("unlinked-entry", "lru-count"),
        ("detached-cycle", "lru-count"),
        ("not-allocated", "lru-entry"),
        ("isolated-flag", "lru-entry"),
        ("wrong-list", "lru-entry"),
        ("flag-not-lru", "lru-entry"),
        ("two-heads-one-cycle", "lru-links"),
        ("count", "lru-count"),
    ],
)
def test_check_lru_reports_list_corruption_as_the_walk_does(how: str, invariant: str) -> None:
    pa = _adopted()
    _corrupt_lru(pa, how)
    with pytest.raises(InvariantViolation) as bulk:
        check_lru(pa)
    with pytest.raises(InvariantViolation) as walk:
        _walk_lru_lists(pa)
    assert bulk.value.invariant == invariant
    assert str(bulk.value) == str(walk.value)
