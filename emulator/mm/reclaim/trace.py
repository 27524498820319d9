"""Reclaim's tracepoints: include/trace/events/vmscan.h."""

from __future__ import annotations

from emulator.engine.tracepoint import Field, Role, TraceEvent

__all__ = ["VMSCAN_EVENTS"]

_NID = Field("nid", int)
_ORDER = Field("order", int)

VMSCAN_EVENTS = (
    TraceEvent(
        "vmscan",
        "mm_vmscan_kswapd_sleep",
        (_NID,),
        "nid=%d",
        lambda e: f"nid={e['nid']}",
        Role("end"),
    ),
    TraceEvent(
        "vmscan",
        "mm_vmscan_kswapd_wake",
        (_NID, Field("zid", int), _ORDER),
        "nid=%d order=%d",
        lambda e: f"nid={e['nid']} order={e['order']}",
        Role("begin", "kswapd", "mm_vmscan_kswapd_sleep"),
    ),
    TraceEvent(
        "vmscan",
        "mm_vmscan_wakeup_kswapd",
        (_NID, Field("zid", int), _ORDER, Field("gfp_flags", str)),
        "nid=%d order=%d gfp_flags=%s",
        lambda e: f"nid={e['nid']} order={e['order']} gfp_flags={e['gfp_flags']}",
    ),
    TraceEvent(
        "vmscan",
        "mm_vmscan_direct_reclaim_begin",
        (_ORDER, Field("gfp_flags", str)),
        "order=%d gfp_flags=%s",
        lambda e: f"order={e['order']} gfp_flags={e['gfp_flags']}",
        Role("begin", "direct_reclaim", "mm_vmscan_direct_reclaim_end"),
    ),
    TraceEvent(
        "vmscan",
        "mm_vmscan_direct_reclaim_end",
        (Field("nr_reclaimed", int),),
        "nr_reclaimed=%lu",
        lambda e: f"nr_reclaimed={e['nr_reclaimed']}",
        Role("end"),
    ),
)
