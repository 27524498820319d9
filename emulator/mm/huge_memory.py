"""Transparent huge page faults: the gfp mask per ``transparent_hugepage/defrag`` mode, the
allocation and its fallback.

Models mm/huge_memory.c (Linux 6.12.0): vma_thp_gfp_mask (1231), defrag_show / defrag_store
(354-409) and the allocation half of do_huge_pmd_anonymous_page (THP_FAULT_ALLOC /
THP_FAULT_FALLBACK); and mm/mempolicy.c: alloc_pages_mpol's hugepage rule (2232) for the
default (local) policy: first ``gfp | __GFP_THISNODE | __GFP_NORETRY`` on the local node,
then, if the mask allows direct reclaim, the plain mask.

Simplifies: the VMA is one flag (``madvised``: VM_HUGEPAGE from MADV_HUGEPAGE); no memcg
charge (THP_FAULT_FALLBACK_CHARGE never counts), no huge zero page (every fault writes), no
mTHP orders, no khugepaged. ``transparent_hugepage/enabled`` is taken as ``always`` for
MADV_HUGEPAGE regions and others alike. A failed THP fault falls back to one base page
(``do_anonymous_page``: GFP_HIGHUSER_MOVABLE | __GFP_ZERO, order 0).
"""

from __future__ import annotations

from emulator.mm.huge_memory_sysctl import DEFRAG_MODES, THP_DEFRAG
from emulator.mm.internal import Allocator
from emulator.mm.page_alloc.gfp import (
    __GFP_DIRECT_RECLAIM,
    __GFP_KSWAPD_RECLAIM,
    __GFP_NORETRY,
    __GFP_THISNODE,
    __GFP_ZERO,
    GFP_HIGHUSER_MOVABLE,
    GFP_TRANSHUGE,
    GFP_TRANSHUGE_LIGHT,
)
from emulator.mm.page_alloc.pcp import Cpu

__all__ = [
    "HPAGE_PMD_ORDER",
    "defrag_show",
    "do_huge_pmd_anonymous_page",
    "vma_thp_gfp_mask",
]

HPAGE_PMD_ORDER = 9


def vma_thp_gfp_mask(defrag: str, madvised: bool) -> int:
    """Models mm/huge_memory.c: vma_thp_gfp_mask for the ``defrag`` mode and a VMA that is
    (``madvised``) or is not MADV_HUGEPAGE.

    * always: GFP_TRANSHUGE, plus __GFP_NORETRY unless madvised (direct reclaim/compaction);
    * defer: GFP_TRANSHUGE_LIGHT | __GFP_KSWAPD_RECLAIM (wake kswapd/kcompactd, fail fast);
    * defer+madvise: LIGHT | (madvised ? __GFP_DIRECT_RECLAIM : __GFP_KSWAPD_RECLAIM);
    * madvise: LIGHT | (madvised ? __GFP_DIRECT_RECLAIM : 0);
    * never: GFP_TRANSHUGE_LIGHT.
    """
    if defrag == "always":
        return GFP_TRANSHUGE | (0 if madvised else __GFP_NORETRY)
    if defrag == "defer":
        return GFP_TRANSHUGE_LIGHT | __GFP_KSWAPD_RECLAIM
    if defrag == "defer+madvise":
        return GFP_TRANSHUGE_LIGHT | (__GFP_DIRECT_RECLAIM if madvised else __GFP_KSWAPD_RECLAIM)
    if defrag == "madvise":
        return GFP_TRANSHUGE_LIGHT | (__GFP_DIRECT_RECLAIM if madvised else 0)
    if defrag == "never":
        return GFP_TRANSHUGE_LIGHT
    raise ValueError(f"transparent_hugepage/defrag {defrag!r}: valid {', '.join(DEFRAG_MODES)}")


def defrag_show(defrag: str) -> str:
    """Models mm/huge_memory.c: defrag_show — the sysfs text, the current mode in brackets."""
    return THP_DEFRAG.render(defrag).rstrip("\n")


async def alloc_hugepage_mpol(pa: Allocator, cpu: Cpu, gfp: int) -> int:
    """Models mm/mempolicy.c: alloc_pages_mpol for a PMD-order fault under the default local
    policy: the local node only with __GFP_NORETRY first ("don't reclaim unnecessarily, just
    compact"), then, only if ``gfp`` may direct-reclaim, the full request."""
    pfn = await pa.alloc_pages(cpu, HPAGE_PMD_ORDER, gfp | __GFP_THISNODE | __GFP_NORETRY)
    if pfn >= 0 or not gfp & __GFP_DIRECT_RECLAIM:
        return pfn
    return await pa.alloc_pages(cpu, HPAGE_PMD_ORDER, gfp)


async def do_huge_pmd_anonymous_page(pa: Allocator, cpu: Cpu, madvised: bool) -> tuple[int, int]:
    """Models mm/huge_memory.c: do_huge_pmd_anonymous_page, its allocation half: allocate
    with vma_thp_gfp_mask; on success ``thp_fault_alloc`` and ``folio_zero_user`` clears the
    2 MiB (1167: ``costs.clear_page`` per base page, charged to the faulting CPU), else
    ``thp_fault_fallback`` and one zeroed base page. Returns ``(pfn, order)`` (pfn -1 if even
    the base page failed)."""
    gfp = vma_thp_gfp_mask(pa.machine.transparent_hugepage_defrag, madvised)
    pfn = await alloc_hugepage_mpol(pa, cpu, gfp)
    ev = pa.vm_events
    if pfn >= 0:
        ev["thp_fault_alloc"] += 1
        await pa.sim.delay(pa.costs.clear_page << HPAGE_PMD_ORDER)  # folio_zero_user
        return pfn, HPAGE_PMD_ORDER
    ev["thp_fault_fallback"] += 1
    return await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE | __GFP_ZERO), 0
