"""Review (mutation testing) of PCPF_FREE_HIGH_BATCH in free_unref_page_commit
(mm/page_alloc.c:2620): with the flag set, free_high also needs ``pcp->count >= batch`` --
at count == batch it is free_high, one page short it is not."""

from __future__ import annotations

import pytest

from emulator.engine import Sim, SpinLock
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.pcp import PCPF_FREE_HIGH_BATCH, PCPF_PREV_FREE_HIGH_ORDER, PerCpuPages


def _pcp(batch: int, count: int, flags: int) -> PerCpuPages:
    zone = Machine.simple(Normal=4096).zone("Normal")
    pcp = PerCpuPages(zone, 0, SpinLock(Sim(), "&pcp->lock"))
    pcp.set_high_and_batch(500, 2048, batch)
    pcp.count = count
    pcp.free_count = batch  # free_count >= batch
    pcp.flags |= flags | PCPF_PREV_FREE_HIGH_ORDER  # the previous free was high-order
    return pcp


@pytest.mark.parametrize(
    ("flag", "count", "want"),
    [
        (PCPF_FREE_HIGH_BATCH, 63, True),  # count == batch: free_high
        (PCPF_FREE_HIGH_BATCH, 62, False),  # one short of batch: kept
        (PCPF_FREE_HIGH_BATCH, 64, True),
        (0, 0, True),  # no flag: count does not matter
    ],
)
def test_free_high_batch_needs_count_at_least_batch(flag: int, count: int, want: bool) -> None:
    pcp = _pcp(63, count, flag)
    assert pcp.commit_free_flags(1) is want
    assert pcp.flags & PCPF_PREV_FREE_HIGH_ORDER
