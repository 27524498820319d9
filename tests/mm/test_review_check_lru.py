"""Review (mutation testing) of the ``check_lru`` invariant (emulator/mm/invariants.py): each of
its counter and membership checks is pinned by a corruption it must name. Without these, the
per-zone counters, the isolated counters and the lru-add batch check could be switched off and
the suite stayed green."""

from __future__ import annotations

import pytest

from emulator.engine import Sim
from emulator.mm.initstate import every_other_chunk
from emulator.mm.invariants import InvariantViolation
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.reclaim.lru import LRU_INACTIVE_ANON, adopt_allocated


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
