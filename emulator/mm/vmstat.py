"""Counters and fragmentation metrics, after mm/vmstat.c.

Everything here is pure integer arithmetic on a zone's ``nr_free[order]`` block counts, done the
way the kernel does it (``div_u64`` truncation at each step, the ``int`` result of a ``u64``
subtraction), so the printed values match a real machine's digit for digit.

``zone`` arguments accept any object with an ``nr_free`` sequence of ``NR_PAGE_ORDERS`` block
counts (a :class:`~emulator.mm.snapshot.ZoneSnapshot`, or the live zone); the fragmentation
score of mm/compaction.c (:mod:`emulator.mm.compaction.suitable`) also reads ``present_pages``
and ``populated`` (:class:`ScoredZone`). The kernel reads ``nr_free`` without the zone
lock (``data_race``); callers here pass a consistent view.

The second half lists the /proc/vmstat names (``vmstat_text[]``) of the emulated configuration
in the kernel's order, and the subset the model keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from emulator.mm.snapshot import MAX_PAGE_ORDER, NR_PAGE_ORDERS, PAGE_ALLOC_COSTLY_ORDER

__all__ = [
    "COMPACTION_HPAGE_ORDER",
    "MODEL_VMSTAT_NAMES",
    "VMSTAT_TEXT",
    "ContigPageInfo",
    "extfrag_for_order",
    "fill_contig_page_info",
    "fragindex_allows_compaction",
    "fragmentation_index",
    "fragmentation_index_info",
    "new_counters",
    "unusable_free_index",
    "unusable_index",
]

#: COMPACTION_HPAGE_ORDER = HPAGE_PMD_ORDER with THP (mm/compaction.c:76)
COMPACTION_HPAGE_ORDER = 9

_U64 = (1 << 64) - 1


class HasNrFree(Protocol):
    """Anything with the zone's free_area[].nr_free block counts."""

    @property
    def nr_free(self) -> Sequence[int]: ...


class ScoredZone(HasNrFree, Protocol):
    """A zone as the fragmentation score sees it (``present_pages``, ``populated_zone``)."""

    @property
    def present_pages(self) -> int: ...

    @property
    def populated(self) -> bool: ...


class ScoredNode(Protocol):
    """A node as ``fragmentation_score_node`` sees it."""

    @property
    def zones(self) -> Sequence[ScoredZone]: ...


def _s32(value: int) -> int:
    """C conversion of an unsigned 64-bit value to ``int`` (two's complement truncation)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@attrs.frozen
class ContigPageInfo:
    """Models mm/vmstat.c: struct contig_page_info."""

    free_pages: int
    free_blocks_total: int
    free_blocks_suitable: int


def _nr_free(zone: HasNrFree | Sequence[int]) -> Sequence[int]:
    nr_free = zone if isinstance(zone, Sequence) else zone.nr_free
    if len(nr_free) != NR_PAGE_ORDERS:
        raise ValueError(f"nr_free needs {NR_PAGE_ORDERS} orders, got {len(nr_free)}")
    return nr_free


def fill_contig_page_info(zone: HasNrFree | Sequence[int], suitable_order: int) -> ContigPageInfo:
    """Models mm/vmstat.c: fill_contig_page_info (line 1070).

    Counts free blocks, free base pages, and how many blocks of ``suitable_order`` the free
    blocks of that order or larger would make (``nr_free[o] << (o - suitable_order)``). Like the
    kernel it ignores what compaction could assemble from movable pages.
    """
    free_pages = free_blocks_total = free_blocks_suitable = 0
    for order, blocks in enumerate(_nr_free(zone)):
        blocks = int(blocks)
        free_blocks_total += blocks
        free_pages += blocks << order
        if order >= suitable_order:
            free_blocks_suitable += blocks << (order - suitable_order)
    return ContigPageInfo(free_pages, free_blocks_total, free_blocks_suitable)


def __fragmentation_index(order: int, info: ContigPageInfo) -> int:
    """Models mm/vmstat.c: __fragmentation_index (line 1109), in the kernel's arithmetic.

    * order > MAX_PAGE_ORDER: 0 (the kernel also WARNs once);
    * no free blocks at all: 0;
    * a block of at least ``order`` is free: -1000 (the allocation would succeed);
    * otherwise ``1000 - (1000 + free_pages * 1000 / requested) / free_blocks_total`` with
      truncating u64 divisions, the u64 result converted to ``int``. With few free blocks this
      is negative: one free order-8 block asked for order 9 gives 1000 - 1500 = -500.

    The result lies in [-1000, 1000]: near 0 means the failure is a lack of memory, near 1000
    that it is external fragmentation.
    """
    requested = 1 << order
    if order > MAX_PAGE_ORDER:
        return 0
    if not info.free_blocks_total:
        return 0
    if info.free_blocks_suitable:
        return -1000
    quotient = (1000 + ((info.free_pages * 1000) & _U64) // requested) // info.free_blocks_total
    return _s32((1000 - quotient) & _U64)


#: ``__fragmentation_index`` under a name that Python does not mangle inside class bodies
fragmentation_index_info = __fragmentation_index


def fragmentation_index(zone: HasNrFree | Sequence[int], order: int) -> int:
    """Models mm/vmstat.c: fragmentation_index (line 1151), what compaction_suitable() uses."""
    return __fragmentation_index(order, fill_contig_page_info(zone, order))


def unusable_free_index(order: int, info: ContigPageInfo) -> int:
    """Models mm/vmstat.c: unusable_free_index (line 2210, debugfs only).

    The share of free memory, in thousandths, that cannot serve an allocation of ``order``:
    1000 when nothing is free, else
    ``(free_pages - (free_blocks_suitable << order)) * 1000 / free_pages``.
    """
    if info.free_pages == 0:
        return 1000
    unusable = info.free_pages - (info.free_blocks_suitable << order)
    return ((unusable * 1000) & _U64) // info.free_pages


def unusable_index(zone: HasNrFree | Sequence[int], order: int) -> int:
    """Models mm/vmstat.c: unusable_show_print (fill_contig_page_info + unusable_free_index)."""
    return unusable_free_index(order, fill_contig_page_info(zone, order))


def extfrag_for_order(zone: HasNrFree | Sequence[int], order: int) -> int:
    """Models mm/vmstat.c: extfrag_for_order (line 1137): percentage (0-100) of free pages
    in blocks smaller than ``order``; 0 when nothing is free."""
    info = fill_contig_page_info(zone, order)
    if info.free_pages == 0:
        return 0
    unusable = info.free_pages - (info.free_blocks_suitable << order)
    return ((unusable * 100) & _U64) // info.free_pages


def fragindex_allows_compaction(order: int, fragindex: int, extfrag_threshold: int) -> bool:
    """Models mm/compaction.c: compaction_suitable (its fragmentation-index half, line 2409).

    For costly orders (> PAGE_ALLOC_COSTLY_ORDER) a zone is unsuitable when
    ``0 <= fragindex <= sysctl_extfrag_threshold``: the failure is judged to be a lack of memory,
    so reclaim is preferred. Negative indexes (-1000 and the small-zone negatives) and
    non-costly orders pass. The order-0 watermark half (``__compaction_suitable``) is not here.
    """
    if order <= PAGE_ALLOC_COSTLY_ORDER:
        return True
    return not (0 <= fragindex <= extfrag_threshold)


# --------------------------------------------------------------------------------------------
# /proc/vmstat names: vmstat_text[] (mm/vmstat.c:1190) for the emulated x86-64 configuration:
# ZONE_DMA, ZONE_DMA32, no HIGHMEM, no ZONE_DEVICE (the four zones of snapshot.ZONE_NAMES),
# ZSMALLOC, UNACCEPTED_MEMORY, NUMA, NUMA_BALANCING, IOMMU_SUPPORT, SWAP, MIGRATION, COMPACTION,
# HUGETLB_PAGE, CMA, TRANSPARENT_HUGEPAGE with PUD, MEMORY_BALLOON + BALLOON_COMPACTION, KSM,
# ZSWAP; no SHADOW_CALL_STACK, DEBUG_TLBFLUSH, PER_VMA_LOCK_STATS or DEBUG_STACK_USAGE.


def _zones(prefix: str) -> tuple[str, ...]:
    """TEXTS_FOR_ZONES(prefix)."""
    return tuple(f"{prefix}_{z}" for z in ("dma", "dma32", "normal", "movable"))


#: enum zone_stat_item
ZONE_STAT_NAMES: tuple[str, ...] = (
    "nr_free_pages", "nr_zone_inactive_anon", "nr_zone_active_anon", "nr_zone_inactive_file",
    "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending", "nr_mlock",
    "nr_bounce", "nr_zspages", "nr_free_cma", "nr_unaccepted",
)  # fmt: skip
#: enum numa_stat_item
NUMA_STAT_NAMES: tuple[str, ...] = (
    "numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other",
)  # fmt: skip
#: enum node_stat_item
NODE_STAT_NAMES: tuple[str, ...] = (
    "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file",
    "nr_unevictable", "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_isolated_anon",
    "nr_isolated_file", "workingset_nodes", "workingset_refault_anon", "workingset_refault_file",
    "workingset_activate_anon", "workingset_activate_file", "workingset_restore_anon",
    "workingset_restore_file", "workingset_nodereclaim", "nr_anon_pages", "nr_mapped",
    "nr_file_pages", "nr_dirty", "nr_writeback", "nr_writeback_temp", "nr_shmem",
    "nr_shmem_hugepages", "nr_shmem_pmdmapped", "nr_file_hugepages", "nr_file_pmdmapped",
    "nr_anon_transparent_hugepages", "nr_vmscan_write", "nr_vmscan_immediate_reclaim",
    "nr_dirtied", "nr_written", "nr_throttled_written", "nr_kernel_misc_reclaimable",
    "nr_foll_pin_acquired", "nr_foll_pin_released", "nr_kernel_stack", "nr_page_table_pages",
    "nr_sec_page_table_pages", "nr_iommu_pages", "nr_swapcached", "pgpromote_success",
    "pgpromote_candidate", "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged",
)  # fmt: skip
#: enum vm_stat_item (system-wide)
VM_STAT_NAMES: tuple[str, ...] = (
    "nr_dirty_threshold", "nr_dirty_background_threshold", "nr_memmap_pages",
    "nr_memmap_boot_pages",
)  # fmt: skip
#: enum vm_event_item
VM_EVENT_NAMES: tuple[str, ...] = (
    "pgpgin", "pgpgout", "pswpin", "pswpout",
    *_zones("pgalloc"), *_zones("allocstall"), *_zones("pgskip"),
    "pgfree", "pgactivate", "pgdeactivate", "pglazyfree", "pgfault", "pgmajfault",
        "pglazyfreed", "pgrefill", "pgreuse", "pgsteal_kswapd", "pgsteal_direct",
        "pgsteal_khugepaged", "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged",
        "pgscan_direct_throttle", "pgscan_anon", "pgscan_file", "pgsteal_anon", "pgsteal_file",
        "zone_reclaim_success", "zone_reclaim_failed", "pginodesteal", "slabs_scanned",
        "kswapd_inodesteal", "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly",
        "pageoutrun", "pgrotated", "drop_pagecache", "drop_slab", "oom_kill",
        "numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults",
        "numa_hint_faults_local", "numa_pages_migrated",
        "pgmigrate_success", "pgmigrate_fail", "thp_migration_success", "thp_migration_fail",
        "thp_migration_split",
        "compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "compact_stall",
        "compact_fail", "compact_success", "compact_daemon_wake",
        "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
        "htlb_buddy_alloc_success", "htlb_buddy_alloc_fail", "cma_alloc_success",
        "cma_alloc_fail", "unevictable_pgs_culled", "unevictable_pgs_scanned",
        "unevictable_pgs_rescued", "unevictable_pgs_mlocked", "unevictable_pgs_munlocked",
        "unevictable_pgs_cleared", "unevictable_pgs_stranded",
        "thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge",
        "thp_collapse_alloc", "thp_collapse_alloc_failed", "thp_file_alloc",
        "thp_file_fallback", "thp_file_fallback_charge", "thp_file_mapped", "thp_split_page",
        "thp_split_page_failed", "thp_deferred_split_page", "thp_underused_split_page",
        "thp_split_pmd", "thp_scan_exceed_none_pte", "thp_scan_exceed_swap_pte",
        "thp_scan_exceed_share_pte", "thp_split_pud", "thp_zero_page_alloc",
        "thp_zero_page_alloc_failed", "thp_swpout", "thp_swpout_fallback",
        "balloon_inflate", "balloon_deflate", "balloon_migrate",
        "swap_ra", "swap_ra_hit", "swpin_zero", "swpout_zero", "ksm_swpin_copy", "cow_ksm",
        "zswpin", "zswpout", "zswpwb", "direct_map_level2_splits", "direct_map_level3_splits",
)  # fmt: skip

#: every /proc/vmstat line of the emulated configuration, in print order
VMSTAT_TEXT: tuple[str, ...] = (
    *ZONE_STAT_NAMES,
    *NUMA_STAT_NAMES,
    *NODE_STAT_NAMES,
    *VM_STAT_NAMES,
    *VM_EVENT_NAMES,
)

#: the deprecated line vmstat_show() prints after the last item
VMSTAT_DEPRECATED = (("nr_unstable", 0),)

_MODEL = frozenset(
    {"nr_free_pages", "nr_free_cma", "nr_isolated_anon", "nr_isolated_file"}
    | {
        "nr_zone_inactive_anon", "nr_zone_active_anon", "nr_zone_inactive_file",
        "nr_zone_active_file", "nr_zone_unevictable", "nr_mlock", "nr_inactive_anon",
        "nr_active_anon", "nr_inactive_file", "nr_active_file", "nr_unevictable",
        "nr_slab_reclaimable", "workingset_refault_file", "unevictable_pgs_culled",
        "unevictable_pgs_mlocked", "unevictable_pgs_cleared",
    }
    | set(_zones("pgalloc")) | set(_zones("allocstall"))
    | {
        "pgfree", "pgsteal_kswapd", "pgsteal_direct", "pgscan_kswapd", "pgscan_direct",
        "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly", "pageoutrun",
        "pgmigrate_success", "pgmigrate_fail", "thp_migration_success", "thp_migration_fail",
        "compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "compact_stall",
        "compact_fail", "compact_success", "compact_daemon_wake",
        "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
        "htlb_buddy_alloc_success", "htlb_buddy_alloc_fail",
        "thp_fault_alloc", "thp_fault_fallback", "thp_collapse_alloc",
        "thp_collapse_alloc_failed", "thp_split_page",
    }
)  # fmt: skip

#: the counters the emulator keeps, in vmstat_text order
MODEL_VMSTAT_NAMES: tuple[str, ...] = tuple(n for n in VMSTAT_TEXT if n in _MODEL)


def new_counters() -> dict[str, int]:
    """A zeroed counter dict with every name the model keeps, in /proc/vmstat order."""
    return dict.fromkeys(MODEL_VMSTAT_NAMES, 0)


def zone_event_name(prefix: str, zone_name: str) -> str:
    """The per-zone event name, e.g. ``("pgalloc", "DMA32") -> "pgalloc_dma32"``."""
    return f"{prefix}_{zone_name.lower()}"
