"""The page allocator's tracepoints: include/trace/events/kmem.h (mm_page_alloc, mm_page_free,
...), include/trace/events/oom.h (the slow path's retry decisions), and the model's own
``mmemu_*`` markers that bracket an allocation, its slow path and a free."""

from __future__ import annotations

from emulator.engine.tracepoint import Field, Role, TraceEvent
from emulator.mm.mmflags import show_page, show_pfn

__all__ = ["PAGE_ALLOC_EVENTS"]

#: include/linux/mmzone.h: pageblock_order on x86-64
PAGEBLOCK_ORDER = 9

_PFN = Field("pfn", int)
_ORDER = Field("order", int)

PAGE_ALLOC_EVENTS = (
    TraceEvent(
        "kmem",
        "mm_page_alloc",
        (_PFN, _ORDER, Field("migratetype", int), Field("gfp_flags", str)),
        "page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s",
        lambda e: (
            f"page={show_page(e['pfn'])} pfn={show_pfn(e['pfn'])} order={e['order']} "
            f"migratetype={e['migratetype']} gfp_flags={e['gfp_flags']}"
        ),
        Role("end"),
    ),
    TraceEvent(
        "kmem",
        "mm_page_free",
        (_PFN, _ORDER),
        "page=%p pfn=0x%lx order=%d",
        lambda e: f"page={show_page(e['pfn'])} pfn={show_pfn(e['pfn'])} order={e['order']}",
    ),
    TraceEvent(
        "kmem",
        "mm_page_free_batched",
        (_PFN,),
        "page=%p pfn=0x%lx order=0",
        lambda e: f"page={show_page(e['pfn'])} pfn={show_pfn(e['pfn'])} order=0",
        emitted=False,  # free_unref_folios' batch: the model frees folio by folio
    ),
    TraceEvent(
        "kmem",
        "mm_page_alloc_zone_locked",
        (_PFN, _ORDER, Field("migratetype", int), Field("percpu_refill", int)),
        "page=%p pfn=0x%lx order=%u migratetype=%d percpu_refill=%d",
        lambda e: (
            f"page={show_page(e['pfn'])} pfn={show_pfn(e['pfn'])} order={e['order']} "
            f"migratetype={e['migratetype']} percpu_refill={e['percpu_refill']}"
        ),
    ),
    TraceEvent(
        "kmem",
        "mm_page_pcpu_drain",
        (_PFN, _ORDER, Field("migratetype", int)),
        "page=%p pfn=0x%lx order=%d migratetype=%d",
        lambda e: (
            f"page={show_page(e['pfn'])} pfn={show_pfn(e['pfn'])} order={e['order']} "
            f"migratetype={e['migratetype']}"
        ),
    ),
    TraceEvent(
        "kmem",
        "mm_page_alloc_extfrag",
        (
            _PFN,
            Field("alloc_order", int),
            Field("fallback_order", int),
            Field("alloc_migratetype", int),
            Field("fallback_migratetype", int),
            Field("change_ownership", int),
        ),
        "page=%p pfn=0x%lx alloc_order=%d fallback_order=%d pageblock_order=%d "
        "alloc_migratetype=%d fallback_migratetype=%d fragmenting=%d change_ownership=%d",
        lambda e: (
            f"page={show_page(e['pfn'])} pfn={show_pfn(e['pfn'])} "
            f"alloc_order={e['alloc_order']} fallback_order={e['fallback_order']} "
            f"pageblock_order={PAGEBLOCK_ORDER} alloc_migratetype={e['alloc_migratetype']} "
            f"fallback_migratetype={e['fallback_migratetype']} "
            f"fragmenting={int(e['fallback_order'] < PAGEBLOCK_ORDER)} "
            f"change_ownership={e['change_ownership']}"
        ),
        Role("instant"),
    ),
    # include/trace/events/oom.h
    TraceEvent(
        "oom",
        "reclaim_retry_zone",
        (
            Field("node", int),
            Field("zone", str),
            _ORDER,
            Field("reclaimable", int),
            Field("available", int),
            Field("min_wmark", int),
            Field("no_progress_loops", int),
            Field("wmark_check", int),
        ),
        "node=%d zone=%-8s order=%d reclaimable=%lu available=%lu min_wmark=%lu "
        "no_progress_loops=%d wmark_check=%d",
    ),
    TraceEvent(
        "oom",
        "compact_retry",
        (
            _ORDER,
            Field("priority", str),
            Field("compaction_result", str),
            Field("retries", int),
            Field("max_retries", int),
            Field("should_retry", int),
        ),
        "order=%d priority=%s compaction_result=%s retries=%d max_retries=%d should_retry=%d",
    ),
    # the model's markers (no kernel tracepoint): an allocation, its slow path, a free
    TraceEvent(
        "mmemu",
        "mmemu_alloc_begin",
        (_ORDER, Field("gfp_flags", str)),
        "order=%d gfp_flags=%s",
        role=Role("begin", "alloc", "mm_page_alloc"),
    ),
    TraceEvent(
        "mmemu",
        "mmemu_alloc_parts",
        (_ORDER, Field("segments", list)),
        "order=%d segments=%s",
    ),
    TraceEvent(
        "mmemu",
        "mmemu_slowpath_begin",
        (_ORDER,),
        "order=%d",
        role=Role("begin", "slowpath", "mmemu_slowpath_end"),
    ),
    TraceEvent(
        "mmemu",
        "mmemu_slowpath_end",
        (_PFN, _ORDER, Field("reason", str)),
        "pfn=%ld order=%d reason=%s",
        role=Role("end"),
    ),
    TraceEvent(
        "mmemu",
        "mmemu_free_begin",
        (_PFN, _ORDER),
        "pfn=%lu order=%d",
        role=Role("begin", "free", "mmemu_free_end"),
    ),
    TraceEvent("mmemu", "mmemu_free_end", (_PFN, _ORDER), "pfn=%lu order=%d", role=Role("end")),
)
