"""The memmap's per-page state stays within 16 bytes a page (the model of struct page).

Structural, not timed: the bytes are read from the arrays themselves, so a new per-pfn array
(or a wider item type) is counted whether or not it is declared in ``PER_PAGE_ARRAYS``.
"""

from __future__ import annotations

from emulator.mm.machine import Machine
from emulator.mm.memmap import MAX_SENTINELS, PER_PAGE_ARRAYS, Memmap, per_page_bytes
from emulator.mm.snapshot import PAGEBLOCK_ORDER

BUDGET = 16


def _per_pfn_arrays(mm: Memmap) -> dict[str, int]:
    """Every buffer attribute of ``mm`` with one item per pfn (list stores also hold their
    heads past end_pfn): name -> item size."""
    out = {}
    for name in dir(mm):
        if name.startswith("__"):
            continue
        value = getattr(mm, name)
        try:
            view = memoryview(value)
        except TypeError:
            continue  # not a buffer: a count
        if len(value) in (mm.end_pfn, mm.end_pfn + MAX_SENTINELS):
            out[name] = view.itemsize
    return out


def test_per_page_state_is_at_most_16_bytes() -> None:
    m = Machine.x86_64(1024, thp_enabled=False)
    mm = m.memmap
    arrays = _per_pfn_arrays(mm)
    assert set(arrays) == set(PER_PAGE_ARRAYS)
    assert sum(arrays.values()) == per_page_bytes(mm)
    assert per_page_bytes(mm) <= BUDGET


def test_per_page_bytes_count_every_byte_of_the_arrays() -> None:
    mm = Memmap(4096)
    per_block = len(mm.pb_mt) + len(mm.pb_skip)
    assert mm.nr_pageblocks == 4096 >> PAGEBLOCK_ORDER
    sentinels = MAX_SENTINELS * (mm.nxt.itemsize + mm.prv.itemsize)
    assert mm.nbytes() == per_page_bytes(mm) * mm.end_pfn + sentinels + per_block
