"""The hugetlb pool as ``vm.nr_hugepages`` grows and shrinks it: Models mm/hugetlb.c:
set_max_huge_pages, alloc_pool_huge_folio, alloc_buddy_hugetlb_folio (the buddy-allocator
path of 2 MiB huge pages) and update_and_free_hugetlb_folio; include/linux/hugetlb.h:
htlb_alloc_mask.

Growing the pool allocates one order-9 folio at a time from the buddy allocator, through the
full allocation path (fast path, then ``__alloc_pages_slowpath`` with reclaim and direct
compaction), with ``htlb_alloc_mask`` = ``GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOWARN``
(2 MiB pages are migratable, ``hugepage_movable_supported``) plus ``__GFP_THISNODE`` and, while
the node has not failed yet, ``__GFP_RETRY_MAYFAIL``. Nodes are tried round-robin; the first
allocation that fails on every node ends the growth (``goto out``), so the pool ends up with as
many pages as the allocator could find at that moment. ``htlb_buddy_alloc_success`` /
``htlb_buddy_alloc_fail`` count each attempt. Shrinking frees pool pages back to the buddy
allocator.

The pool is per allocator (one hstate, 2 MiB). Pool pages are allocated blocks owned by
"unmovable" (not on the LRU: compaction skips them, as it skips PageHuge). Simplified: no
surplus or reserved pages, no per-node sysfs counts, no gigantic pages, no demotion, no
``hugetlb_lock`` (one task changes the pool at a time).
"""

from __future__ import annotations

from emulator.mm.internal import Allocator
from emulator.mm.memmap import OWNER_UNMOVABLE
from emulator.mm.page_alloc.gfp import (
    __GFP_COMP,
    __GFP_NOWARN,
    __GFP_RETRY_MAYFAIL,
    __GFP_THISNODE,
    GFP_HIGHUSER_MOVABLE,
)
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.snapshot import PAGEBLOCK_ORDER

__all__ = [
    "HPAGE_ORDER",
    "HugetlbPool",
    "htlb_alloc_mask",
    "hugetlb_pool",
    "set_max_huge_pages",
]

#: huge_page_order(default hstate): 2 MiB on x86-64
HPAGE_ORDER = PAGEBLOCK_ORDER
#: the owner kind of a pool page: allocated, not on any LRU
OWNER_HUGETLB = OWNER_UNMOVABLE


def htlb_alloc_mask() -> int:
    """include/linux/hugetlb.h: htlb_alloc_mask for the 2 MiB hstate (movable supported)."""
    return __GFP_COMP | __GFP_NOWARN | GFP_HIGHUSER_MOVABLE


class HugetlbPool:
    """The default hstate's pool: the pfns of its free huge pages, per node."""

    __slots__ = ("next_nid_to_alloc", "pages")

    def __init__(self, nr_nodes: int) -> None:
        self.pages: list[list[int]] = [[] for _ in range(nr_nodes)]
        self.next_nid_to_alloc = 0

    @property
    def nr_huge_pages(self) -> int:
        return sum(len(p) for p in self.pages)


def hugetlb_pool(pa: Allocator) -> HugetlbPool:
    """The allocator's hugetlb pool (empty until ``vm.nr_hugepages`` is written), kept in
    ``pa.extensions["hugetlb_pool"]``."""
    pool = pa.extensions.get("hugetlb_pool")
    if pool is None:
        pool = pa.extensions["hugetlb_pool"] = HugetlbPool(pa.nr_nodes)
    assert isinstance(pool, HugetlbPool)
    return pool


async def alloc_buddy_hugetlb_folio(pa: Allocator, cpu: Cpu, nid: int, noretry: set[int]) -> int:
    """Models mm/hugetlb.c: alloc_buddy_hugetlb_folio — one order-9 allocation from ``nid``
    (``__GFP_THISNODE``), trying hard (``__GFP_RETRY_MAYFAIL``) unless the node already failed
    in this resize; counts ``htlb_buddy_alloc_success`` / ``_fail``. Returns the pfn or -1."""
    gfp = htlb_alloc_mask() | __GFP_THISNODE
    try_hard = nid not in noretry
    if try_hard:
        gfp |= __GFP_RETRY_MAYFAIL
    target = pa.cpus[0]
    for c in pa.cpus:
        if c.node == nid:
            target = c if cpu.node != nid else cpu
            break
    pfn = await pa.alloc_pages(target, HPAGE_ORDER, gfp, OWNER_HUGETLB)
    if pfn >= 0 and not try_hard:
        noretry.discard(nid)
    if pfn < 0 and try_hard:
        noretry.add(nid)
    ev = pa.vm_events
    ev["htlb_buddy_alloc_fail" if pfn < 0 else "htlb_buddy_alloc_success"] += 1
    return pfn


async def set_max_huge_pages(pa: Allocator, cpu: Cpu, count: int) -> int:
    """Models mm/hugetlb.c: set_max_huge_pages (``echo count > /proc/sys/vm/nr_hugepages``) —
    grow the pool one page at a time (``alloc_pool_huge_folio``: each node in turn until one
    succeeds; none: stop) or shrink it by freeing pool pages. Runs in the writing task
    (``cpu``). Returns the pool size afterwards (what reading nr_hugepages shows)."""
    pool = hugetlb_pool(pa)
    noretry: set[int] = set()
    nr_nodes = pa.nr_nodes
    while count > pool.nr_huge_pages:
        await pa.sim.sync()  # cond_resched between allocations
        pfn = -1
        for _ in range(nr_nodes):
            nid = pool.next_nid_to_alloc
            pool.next_nid_to_alloc = (nid + 1) % nr_nodes
            pfn = await alloc_buddy_hugetlb_folio(pa, cpu, nid, noretry)
            if pfn >= 0:
                pool.pages[nid].append(pfn)
                break
        if pfn < 0:
            break
    while count < pool.nr_huge_pages:
        node_pages = max(pool.pages, key=len)
        pfn = node_pages.pop()
        await free_pages(pa, cpu, pfn, HPAGE_ORDER)  # update_and_free_hugetlb_folio
    return pool.nr_huge_pages
