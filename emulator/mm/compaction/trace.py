"""Compaction's tracepoints: include/trace/events/compaction.h."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.engine.tracepoint import Field, Role, TraceEvent
from emulator.mm.mmflags import show_mode, show_pfn, show_status, show_zone

__all__ = ["COMPACTION_EVENTS", "DEFER_EVENTS"]


def _isolate(e: Mapping[str, Any]) -> str:
    return (
        f"range=({show_pfn(e['start_pfn'])} ~ {show_pfn(e['end_pfn'])}) "
        f"nr_scanned={e['nr_scanned']} nr_taken={e['nr_taken']}"
    )


def _suitable(e: Mapping[str, Any]) -> str:
    return (
        f"node={e['nid']} zone={show_zone(e['idx'])} order={e['order']} ret={show_status(e['ret'])}"
    )


def _defer(e: Mapping[str, Any]) -> str:
    return (
        f"node={e['nid']} zone={show_zone(e['idx'])} order={e['order']} "
        f"order_failed={e['order_failed']} consider={e['considered']} "
        f"limit={1 << int(e['defer_shift'])}"
    )


def _kcompactd(e: Mapping[str, Any]) -> str:
    return f"nid={e['nid']} order={e['order']} classzone_idx={show_zone(e['highest_zoneidx'])}"


def _range(e: Mapping[str, Any]) -> str:
    return (
        f"zone_start={show_pfn(e['zone_start'])} migrate_pfn={show_pfn(e['migrate_pfn'])} "
        f"free_pfn={show_pfn(e['free_pfn'])} zone_end={show_pfn(e['zone_end'])}, "
        f"mode={show_mode(e['sync'])}"
    )


_ISOLATE = (
    Field("start_pfn", int),
    Field("end_pfn", int),
    Field("nr_scanned", int),
    Field("nr_taken", int),
)
_ISOLATE_FMT = "range=(0x%lx ~ 0x%lx) nr_scanned=%lu nr_taken=%lu"
_SUITABLE = (Field("nid", int), Field("idx", int), Field("order", int), Field("ret", str))
_SUITABLE_FMT = "node=%d zone=%-8s order=%d ret=%s"
_DEFER = (
    Field("nid", int),
    Field("idx", int),
    Field("order", int),
    Field("considered", int),
    Field("defer_shift", int),
    Field("order_failed", int),
)
_DEFER_FMT = "node=%d zone=%-8s order=%d order_failed=%d consider=%u limit=%lu"
_RANGE = (
    Field("zone_start", int),
    Field("migrate_pfn", int),
    Field("free_pfn", int),
    Field("zone_end", int),
    Field("sync", bool),
)
_RANGE_FMT = "zone_start=0x%lx migrate_pfn=0x%lx free_pfn=0x%lx zone_end=0x%lx, mode=%s"
_KCOMPACTD = (Field("nid", int), Field("order", int), Field("highest_zoneidx", int))
_KCOMPACTD_FMT = "nid=%d order=%d classzone_idx=%-5s"

#: the mm_compaction_defer_template events (emitted by name from compaction/defer.py)
DEFER_EVENTS = tuple(
    TraceEvent("compaction", name, _DEFER, _DEFER_FMT, _defer, role)
    for name, role in (
        ("mm_compaction_deferred", Role("instant")),
        ("mm_compaction_defer_compaction", Role()),
        ("mm_compaction_defer_reset", Role("instant")),
    )
)

COMPACTION_EVENTS = (
    *(
        TraceEvent("compaction", name, _ISOLATE, _ISOLATE_FMT, _isolate, Role(isolation=True))
        for name in (
            "mm_compaction_isolate_migratepages",
            "mm_compaction_isolate_freepages",
            "mm_compaction_fast_isolate_freepages",
        )
    ),
    TraceEvent(
        "compaction",
        "mm_compaction_migratepages",
        (Field("nr_migrated", int), Field("nr_failed", int)),
        "nr_migrated=%lu nr_failed=%lu",
        lambda e: f"nr_migrated={e['nr_migrated']} nr_failed={e['nr_failed']}",
        Role(isolation=True),
    ),
    TraceEvent(
        "compaction",
        "mm_compaction_begin",
        _RANGE,
        _RANGE_FMT,
        _range,
        Role("begin", "compact_zone", "mm_compaction_end"),
    ),
    TraceEvent(
        "compaction",
        "mm_compaction_end",
        (*_RANGE, Field("status", str)),
        _RANGE_FMT + " status=%s",
        lambda e: f"{_range(e)} status={show_status(e['status'])}",
        Role("end", isolation=True),
    ),
    TraceEvent(
        "compaction",
        "mm_compaction_try_to_compact_pages",
        (Field("order", int), Field("gfp_mask", str), Field("prio", int)),
        "order=%d gfp_mask=%s priority=%d",
        lambda e: f"order={e['order']} gfp_mask={e['gfp_mask']} priority={e['prio']}",
    ),
    TraceEvent("compaction", "mm_compaction_finished", _SUITABLE, _SUITABLE_FMT, _suitable),
    TraceEvent("compaction", "mm_compaction_suitable", _SUITABLE, _SUITABLE_FMT, _suitable),
    *DEFER_EVENTS,
    TraceEvent(
        "compaction",
        "mm_compaction_kcompactd_sleep",
        (Field("nid", int),),
        "nid=%d",
        lambda e: f"nid={e['nid']}",
        Role("end"),
    ),
    TraceEvent(
        "compaction",
        "mm_compaction_wakeup_kcompactd",
        _KCOMPACTD,
        _KCOMPACTD_FMT,
        _kcompactd,
    ),
    TraceEvent(
        "compaction",
        "mm_compaction_kcompactd_wake",
        _KCOMPACTD,
        _KCOMPACTD_FMT,
        _kcompactd,
        Role("begin", "kcompactd", "mm_compaction_kcompactd_sleep"),
    ),
)
