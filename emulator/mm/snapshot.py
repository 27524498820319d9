"""Plain, frozen views of zone state: the seam between the live model and /proc text.

The live model (:mod:`emulator.mm.zone`) produces :class:`ZoneSnapshot` objects; the procfs
renderers (:mod:`emulator.mm.procfs.render`) and the fragmentation metrics
(:mod:`emulator.mm.vmstat`)
consume them; the procfs parsers produce them from a real machine's files, so ``mmemu inspect``
and "build a memory from this buddyinfo" share one representation. Nothing here knows how the
state was obtained.

Counts follow the kernel's units: ``nr_free[order]`` is a number of *blocks* of that order
(``free_area[order].nr_free``), page counts are base pages (4 KiB).
"""

from __future__ import annotations

from typing import Final

import attrs

from emulator.mm.compaction.sysctl import COMPACTION_PROACTIVENESS, EXTFRAG_THRESHOLD

# include/linux/mmzone.h
MAX_PAGE_ORDER: Final = 10
NR_PAGE_ORDERS: Final = MAX_PAGE_ORDER + 1
PAGEBLOCK_ORDER: Final = 9
PAGEBLOCK_NR_PAGES: Final = 1 << PAGEBLOCK_ORDER
PAGE_ALLOC_COSTLY_ORDER: Final = 3

# enum migratetype (mmzone.h:48), x86-64 distro config with CONFIG_CMA and CONFIG_MEMORY_ISOLATION
MIGRATE_UNMOVABLE: Final = 0
MIGRATE_MOVABLE: Final = 1
MIGRATE_RECLAIMABLE: Final = 2
MIGRATE_PCPTYPES: Final = 3
MIGRATE_HIGHATOMIC: Final = MIGRATE_PCPTYPES
MIGRATE_CMA: Final = 4
MIGRATE_ISOLATE: Final = 5
MIGRATE_TYPES: Final = 6
# migratetype_names[] (page_alloc.c:259)
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")

# zone names as /proc prints them (zone_names[], page_alloc.c)
ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")


@attrs.frozen
class PcpSnapshot:
    """One CPU's ``per_cpu_pages`` for a zone, as /proc/zoneinfo's pagesets print it."""

    cpu: int
    count: int
    high: int
    batch: int
    stat_threshold: int = 0


@attrs.frozen
class ZoneSnapshot:
    """One zone's allocator state at an instant.

    ``nr_free_by_mt`` (blocks per migratetype per order, as /proc/pagetypeinfo prints them) and
    ``pageblocks_by_mt`` (pageblocks per migratetype) are None when unknown, e.g. when parsed
    from a buddyinfo alone. Watermarks and sizes are 0 when unknown.
    """

    node: int
    name: str
    nr_free: tuple[int, ...]
    nr_free_by_mt: tuple[tuple[int, ...], ...] | None = None
    pageblocks_by_mt: tuple[int, ...] | None = None
    start_pfn: int = 0
    spanned: int = 0
    present: int = 0
    managed: int = 0
    cma: int = 0
    wmark_min: int = 0
    wmark_low: int = 0
    wmark_high: int = 0
    wmark_promo: int = 0
    boost: int = 0
    lowmem_reserve: tuple[int, ...] = ()
    nr_free_pages: int | None = None
    pcp: tuple[PcpSnapshot, ...] = ()
    #: populated_zone(): False for a zone with no present pages (zoneinfo still prints it, with
    #: only its sizes, watermarks and protection; buddyinfo and pagetypeinfo skip it)
    populated: bool = True
    #: other zone_stat_item and NUMA event lines of /proc/zoneinfo, in print order, as
    #: (name, value); ``nr_free_pages`` itself is not in here (it is ``free_pages``)
    zone_stats: tuple[tuple[str, int], ...] = ()

    def __attrs_post_init__(self) -> None:
        if len(self.nr_free) != NR_PAGE_ORDERS:
            raise ValueError(f"nr_free needs {NR_PAGE_ORDERS} orders, got {len(self.nr_free)}")

    @property
    def present_pages(self) -> int:
        """zone->present_pages (the ``present`` column of /proc/zoneinfo)."""
        return self.present

    @property
    def free_pages(self) -> int:
        """Free base pages on the buddy lists: sum of nr_free[o] << o (NR_FREE_PAGES)."""
        if self.nr_free_pages is not None:
            return self.nr_free_pages
        return sum(n << o for o, n in enumerate(self.nr_free))


@attrs.frozen
class NodeSnapshot:
    """A NUMA node: its zones in zone order (lowest first)."""

    node: int
    zones: tuple[ZoneSnapshot, ...]
    #: the "per-node stats" lines /proc/zoneinfo prints under the node's first populated zone
    node_stats: tuple[tuple[str, int], ...] = ()
    #: pgdat->kswapd_failures >= MAX_RECLAIM_RETRIES, printed per zone as node_unreclaimable
    node_unreclaimable: bool = False

    @property
    def present_pages(self) -> int:
        """pgdat->node_present_pages: the sum of the zones' present pages."""
        return sum(z.present for z in self.zones)


@attrs.frozen
class MachineSnapshot:
    """Every node, plus the sysctls the metrics depend on (kernel defaults unless read)."""

    nodes: tuple[NodeSnapshot, ...]
    compaction_proactiveness: int = COMPACTION_PROACTIVENESS.int_default()
    extfrag_threshold: int = EXTFRAG_THRESHOLD.int_default()

    @property
    def zones(self) -> tuple[ZoneSnapshot, ...]:
        return tuple(z for n in self.nodes for z in n.zones)
