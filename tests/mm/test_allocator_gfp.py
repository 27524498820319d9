"""GFP flags against Linux 6.12 on x86-64 (include/linux/gfp_types.h without
CONFIG_KASAN_HW_TAGS or CONFIG_LOCKDEP, gfp.h, mm/page_alloc.c, include/trace/events/mmflags.h):
composition, gfp_migratetype, gfp_zone, gfp_to_alloc_flags, the fast path's alloc_flags,
show_gfp_flags rendering and its parser, and what the allocator does with them.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.engine import MemoryRecorder, Sim
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_MOVABLE, OWNER_RECLAIMABLE, OWNER_UNMOVABLE
from emulator.mm.page_alloc import gfp as G
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.pcp import order_to_pindex
from emulator.mm.snapshot import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
)


def test_bit_values() -> None:
    # enum ___GFP_*_BIT: bit 9 unused; ZEROTAGS is 23; the KASAN bits do not exist here
    assert (G.__GFP_DMA, G.__GFP_HIGHMEM, G.__GFP_DMA32, G.__GFP_MOVABLE) == (1, 2, 4, 8)
    assert (G.__GFP_RECLAIMABLE, G.__GFP_HIGH, G.__GFP_IO, G.__GFP_FS) == (0x10, 0x20, 0x40, 0x80)
    assert G.__GFP_ZERO == 0x100
    assert (G.__GFP_DIRECT_RECLAIM, G.__GFP_KSWAPD_RECLAIM, G.__GFP_WRITE) == (0x400, 0x800, 0x1000)
    assert (G.__GFP_NOWARN, G.__GFP_RETRY_MAYFAIL, G.__GFP_NOFAIL) == (0x2000, 0x4000, 0x8000)
    assert (G.__GFP_NORETRY, G.__GFP_MEMALLOC, G.__GFP_COMP) == (0x10000, 0x20000, 0x40000)
    assert (G.__GFP_NOMEMALLOC, G.__GFP_HARDWALL, G.__GFP_THISNODE) == (0x80000, 0x100000, 0x200000)
    assert (G.__GFP_ACCOUNT, G.__GFP_ZEROTAGS) == (0x400000, 0x800000)
    assert G.__GFP_SKIP_ZERO == 0 and G.__GFP_SKIP_KASAN == 0


def test_composites_match_kernel_values() -> None:
    # the hex values x86-64 tracepoints print, e.g. "gfp_flags=0x100cca(GFP_HIGHUSER_MOVABLE)"
    assert G.GFP_KERNEL == 0xCC0  # __GFP_RECLAIM | __GFP_IO | __GFP_FS
    assert G.GFP_KERNEL_ACCOUNT == 0x400CC0
    assert G.GFP_ATOMIC == 0x820  # __GFP_HIGH | __GFP_KSWAPD_RECLAIM
    assert G.GFP_NOWAIT == 0x2800  # __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
    assert G.GFP_NOIO == 0xC00
    assert G.GFP_NOFS == 0xC40
    assert G.GFP_USER == 0x100CC0
    assert G.GFP_HIGHUSER == 0x100CC2
    assert G.GFP_HIGHUSER_MOVABLE == 0x100CCA
    # (GFP_HIGHUSER_MOVABLE | COMP | NOMEMALLOC | NOWARN) & ~__GFP_RECLAIM
    assert G.GFP_TRANSHUGE_LIGHT == 0x1C20CA
    assert G.GFP_TRANSHUGE == 0x1C24CA  # + __GFP_DIRECT_RECLAIM


def test_gfp_migratetype() -> None:
    assert G.gfp_migratetype(G.GFP_KERNEL) == MIGRATE_UNMOVABLE
    assert G.gfp_migratetype(G.GFP_ATOMIC) == MIGRATE_UNMOVABLE
    assert G.gfp_migratetype(G.GFP_HIGHUSER_MOVABLE) == MIGRATE_MOVABLE
    assert G.gfp_migratetype(G.GFP_TRANSHUGE) == MIGRATE_MOVABLE
    assert G.gfp_migratetype(G.GFP_KERNEL | G.__GFP_RECLAIMABLE) == MIGRATE_RECLAIMABLE
    # both bits: the kernel's BUILD_BUG_ON says this is MIGRATE_HIGHATOMIC (and VM_WARNs)
    assert G.gfp_migratetype(G.__GFP_MOVABLE | G.__GFP_RECLAIMABLE) == MIGRATE_HIGHATOMIC


def test_gfp_zone_table() -> None:
    assert G.gfp_zone(G.GFP_KERNEL) == G.ZONE_NORMAL  # 0x0
    assert G.gfp_zone(G.GFP_DMA) == G.ZONE_DMA  # 0x1
    assert G.gfp_zone(G.__GFP_HIGHMEM) == G.ZONE_NORMAL  # 0x2: no HIGHMEM on x86-64
    assert G.gfp_zone(G.GFP_DMA32) == G.ZONE_DMA32  # 0x4
    assert G.gfp_zone(G.__GFP_MOVABLE) == G.ZONE_NORMAL  # 0x8: MOVABLE alone
    assert G.gfp_zone(G.__GFP_MOVABLE | G.__GFP_DMA) == G.ZONE_DMA  # 0x9
    assert G.gfp_zone(G.GFP_HIGHUSER_MOVABLE) == G.ZONE_MOVABLE  # 0xa
    assert G.gfp_zone(G.__GFP_MOVABLE | G.__GFP_DMA32) == G.ZONE_DMA32  # 0xc


@pytest.mark.parametrize(
    ("gfp", "order", "flags"),
    [
        # WMARK_MIN | CPUSET (0x40) | KSWAPD (0x800)
        (G.GFP_KERNEL, 0, 0x840),
        (G.GFP_KERNEL, 3, 0x840),
        # + MIN_RESERVE (__GFP_HIGH = 0x20); can reclaim, so CPUSET stays
        (G.GFP_KERNEL | G.__GFP_HIGH, 0, 0x860),
        # GFP_ATOMIC: HIGH | KSWAPD | NON_BLOCK, CPUSET dropped (non-blocking __GFP_HIGH)
        (G.GFP_ATOMIC, 0, 0x830),
        # ... and HIGHATOMIC for order > 0
        (G.GFP_ATOMIC, 2, 0xA30),
        # __GFP_NOMEMALLOC: no NON_BLOCK / HIGHATOMIC, but CPUSET still dropped
        (G.GFP_ATOMIC | G.__GFP_NOMEMALLOC, 2, 0x820),
        # GFP_NOWAIT: KSWAPD | NON_BLOCK | CPUSET (no __GFP_HIGH), HIGHATOMIC at order > 0
        (G.GFP_NOWAIT, 0, 0x850),
        (G.GFP_NOWAIT, 1, 0xA50),
        # movable requests may use CMA (0x80)
        (G.GFP_HIGHUSER_MOVABLE, 0, 0x8C0),
        # THP light: no reclaim bits at all, NOMEMALLOC: CPUSET | CMA
        (G.GFP_TRANSHUGE_LIGHT, 9, 0xC0),
        (G.GFP_TRANSHUGE, 9, 0xC0),
    ],
)
def test_gfp_to_alloc_flags(gfp: int, order: int, flags: int) -> None:
    assert G.gfp_to_alloc_flags(gfp, order) == flags


def test_alloc_flag_aliases_match_gfp_bits() -> None:
    # BUILD_BUG_ONs in gfp_to_alloc_flags / alloc_flags_nofragment
    assert G.__GFP_HIGH == G.ALLOC_MIN_RESERVE
    assert G.__GFP_KSWAPD_RECLAIM == G.ALLOC_KSWAPD


def test_fast_path_alloc_flags() -> None:
    # ALLOC_WMARK_LOW (1) | KSWAPD (0x800) | NOFRAGMENT (0x100, Normal preferred, DMA32 there)
    assert G.fast_path_alloc_flags(G.GFP_KERNEL, G.ZONE_NORMAL, True) == 0x901
    assert G.fast_path_alloc_flags(G.GFP_HIGHUSER_MOVABLE, G.ZONE_NORMAL, True) == 0x981
    # no NOFRAGMENT when the preferred zone is not Normal, or DMA32 is empty on that node
    assert G.fast_path_alloc_flags(G.GFP_KERNEL | G.GFP_DMA32, G.ZONE_DMA32, True) == 0x801
    assert G.fast_path_alloc_flags(G.GFP_KERNEL, G.ZONE_NORMAL, False) == 0x801
    # THP light cannot wake kswapd
    assert G.fast_path_alloc_flags(G.GFP_TRANSHUGE_LIGHT, G.ZONE_NORMAL, True) == 0x181


@pytest.mark.parametrize(
    ("gfp", "text"),
    [
        (0, "none"),
        (G.GFP_KERNEL, "GFP_KERNEL"),
        (G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO, "GFP_HIGHUSER_MOVABLE|__GFP_ZERO"),
        (G.GFP_TRANSHUGE, "GFP_TRANSHUGE"),
        (G.GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT"),
        # the mmflags.h order: NOWARN before NORETRY before COMP before ZERO
        (
            G.GFP_KERNEL | G.__GFP_ZERO | G.__GFP_COMP | G.__GFP_NORETRY | G.__GFP_NOWARN,
            "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_ZERO",
        ),
        (G.GFP_ATOMIC | G.__GFP_NOWARN, "GFP_ATOMIC|__GFP_NOWARN"),
        (G.GFP_NOWAIT | G.__GFP_ACCOUNT, "GFP_NOWAIT|__GFP_ACCOUNT"),
        (G.GFP_KERNEL | G.__GFP_RECLAIMABLE, "GFP_KERNEL|__GFP_RECLAIMABLE"),
        (G.GFP_DMA32 | G.GFP_KERNEL, "GFP_KERNEL|GFP_DMA32"),
        (G.__GFP_RECLAIM, "GFP_NOIO"),
        (G.__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
        (G.__GFP_KSWAPD_RECLAIM | G.__GFP_IO, "__GFP_IO|__GFP_KSWAPD_RECLAIM"),
        # leftover bits print as one hex number at the end (bit 9 is unused)
        (G.GFP_KERNEL | 0x200, "GFP_KERNEL|0x200"),
        (0x200 | (1 << 27), "0x8000200"),
    ],
)
def test_format_gfp_like_show_gfp_flags(gfp: int, text: str) -> None:
    assert G.format_gfp(gfp) == text
    assert G.parse_gfp(text) == gfp


def test_parse_gfp_spellings_and_errors() -> None:
    assert G.parse_gfp(" GFP_KERNEL | __GFP_NORETRY ") == 0xCC0 | 0x10000
    assert G.parse_gfp("0x100cca") == G.GFP_HIGHUSER_MOVABLE
    assert G.parse_gfp("__GFP_DMA32") == G.GFP_DMA32
    assert G.parse_gfp("GFP_HIGHUSER_MOVABLE|__GFP_SKIP_KASAN") == 0x100CCA  # 0 on x86-64
    with pytest.raises(ValueError, match="unknown gfp flag 'GFP_KERNAL'"):
        G.parse_gfp("GFP_KERNAL")
    with pytest.raises(ValueError, match="empty gfp flag"):
        G.parse_gfp("GFP_KERNEL||__GFP_ZERO")


@given(st.integers(min_value=0, max_value=(1 << 26) - 1))
def test_format_parse_round_trip(gfp: int) -> None:
    text = G.format_gfp(gfp)
    assert G.parse_gfp(text) == gfp
    # greedy matching never prints a name whose bits are all covered by an earlier one
    names = text.split("|")
    assert len(names) == len(set(names))


async def test_allocator_uses_the_gfp_migratetype_and_zone() -> None:
    m = Machine.simple(DMA=4096, DMA32=16384, Normal=16384)
    rec = MemoryRecorder()
    sim = Sim("fifo", recorder=rec)
    pa = PageAllocator(m, sim, cpus_per_node=1)
    cpu = pa.cpus[0]
    dma, dma32, normal = pa.zones
    got = {}

    async def actor() -> None:
        for name, gfp in (
            ("kernel", G.GFP_KERNEL),
            ("movable", G.GFP_HIGHUSER_MOVABLE),
            ("reclaimable", G.GFP_KERNEL | G.__GFP_RECLAIMABLE),
            ("dma32", G.GFP_KERNEL | G.GFP_DMA32),
            ("dma", G.GFP_DMA),
        ):
            pfn = await pa.alloc_pages(cpu, 0, gfp)
            got[name] = (pa.zone_of(pfn), m.memmap.owner[pfn])

    sim.spawn("cpu0", actor)
    await sim.run()
    assert got["kernel"] == (normal, OWNER_UNMOVABLE)
    assert got["movable"] == (normal, OWNER_MOVABLE)
    assert got["reclaimable"] == (normal, OWNER_RECLAIMABLE)
    assert got["dma32"] == (dma32, OWNER_UNMOVABLE)
    assert got["dma"] == (dma, OWNER_UNMOVABLE)
    # each refill filled the list of its migratetype; alloc_factor is per pcp, so the three
    # order-0 refills in a row took 3, 6 and 12 pages (batch 3 << 0, 1, 2)
    mm = m.memmap
    pcp = cpu.pcp[normal.gidx]
    left = [
        len(mm.list_entries(pcp.lists + order_to_pindex(mt, 0)))
        for mt in (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE)
    ]
    assert left == [2, 5, 11]
    assert pcp.count == 18
    events = [e for e in rec.events() if e["event"] == "mm_page_alloc"]
    assert [e["gfp_flags"] for e in events] == [
        "GFP_KERNEL",
        "GFP_HIGHUSER_MOVABLE",
        "GFP_KERNEL|__GFP_RECLAIMABLE",
        "GFP_KERNEL|GFP_DMA32",
        "GFP_DMA",
    ]
    assert [e["migratetype"] for e in events] == [0, 1, 2, 0, 0]
