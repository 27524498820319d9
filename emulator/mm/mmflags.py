"""Models include/trace/events/mmflags.h: how the mm tracepoints print pages, pfns, zone types
and compaction results (``__print_symbolic`` tables), shared by every mm TP_printk.

Simplification: ``page=%p`` prints the address the page's ``struct page`` would have in the
x86-64 vmemmap (``0xffffea0000000000 + pfn * 64``), unhashed.
"""

from __future__ import annotations

__all__ = ["COMPACTION_STATUS", "ZONE_TYPE", "show_mode", "show_page", "show_pfn", "show_status"]

VMEMMAP_START = 0xFFFFEA0000000000
STRUCT_PAGE_SIZE = 64

#: COMPACTION_STATUS: enum compact_result in include/linux/compaction.h order
COMPACTION_STATUS = dict(
    enumerate(
        (
            "not_suitable_zone",
            "skipped",
            "deferred",
            "no_suitable_page",
            "continue",
            "complete",
            "partial_skipped",
            "contended",
            "success",
        )
    )
)
#: ZONE_TYPE on x86-64 (no HIGHMEM)
ZONE_TYPE = ("DMA", "DMA32", "Normal", "Movable")


def show_page(pfn: int | None) -> str:
    if pfn is None or pfn < 0:
        return "0000000000000000"
    return f"{VMEMMAP_START + pfn * STRUCT_PAGE_SIZE:016x}"


def show_pfn(pfn: int) -> str:
    return f"0x{max(pfn, 0):x}"


def show_status(v: int | str) -> str:
    return COMPACTION_STATUS.get(v, str(v)) if isinstance(v, int) else str(v)


def show_zone(v: int | str) -> str:
    name = ZONE_TYPE[v] if isinstance(v, int) and 0 <= v < len(ZONE_TYPE) else str(v)
    return f"{name:<8s}"


def show_mode(sync: object) -> str:
    return "sync" if sync in (True, 1, "sync") else "async"
