"""Compaction deferral: Models mm/compaction.c: defer_compaction, compaction_deferred,
compaction_defer_reset, compaction_restarting (the exponential back-off of commit 4f92e2586b43,
per zone in ``compact_considered`` / ``compact_defer_shift`` / ``compact_order_failed``, struct
zone mmzone.h:977-979). Each fires its tracepoint (``mm_compaction_deferred``,
``mm_compaction_defer_compaction``, ``mm_compaction_defer_reset``) with the kernel's fields.

The counters move on every check, not on time: after k successive failures a zone skips
compaction for 2^k (at most 64) checks at orders >= the failed order.
"""

from __future__ import annotations

from emulator.mm.compaction.control import COMPACT_MAX_DEFER_SHIFT
from emulator.mm.zone import Zone

__all__ = [
    "compaction_defer_reset",
    "compaction_deferred",
    "compaction_restarting",
    "defer_compaction",
]


def _defer_event(zone: Zone, name: str, order: int) -> None:
    rec = zone.rec
    if rec.enabled:
        rec.emit(
            name,
            nid=zone.node,
            idx=zone.zone_idx,
            order=order,
            considered=zone.compact_considered,
            defer_shift=zone.compact_defer_shift,
            order_failed=zone.compact_order_failed,
        )


def defer_compaction(zone: Zone, order: int) -> None:
    """Models mm/compaction.c: defer_compaction — restart the count, back off one more step
    (``compact_defer_shift`` up to 6), remember the lowest failed order."""
    zone.compact_considered = 0
    zone.compact_defer_shift += 1
    if order < zone.compact_order_failed:
        zone.compact_order_failed = order
    if zone.compact_defer_shift > COMPACT_MAX_DEFER_SHIFT:
        zone.compact_defer_shift = COMPACT_MAX_DEFER_SHIFT
    _defer_event(zone, "mm_compaction_defer_compaction", order)


def compaction_deferred(zone: Zone, order: int) -> bool:
    """Models mm/compaction.c: compaction_deferred — True if compaction should be skipped this
    time. Every call at an order >= ``compact_order_failed`` counts one consideration."""
    defer_limit = 1 << zone.compact_defer_shift
    if order < zone.compact_order_failed:
        return False
    zone.compact_considered += 1
    if zone.compact_considered >= defer_limit:
        zone.compact_considered = defer_limit
        return False
    _defer_event(zone, "mm_compaction_deferred", order)
    return True


def compaction_defer_reset(zone: Zone, order: int, alloc_success: bool) -> None:
    """Models mm/compaction.c: compaction_defer_reset — after a success (or an expected one,
    ``alloc_success`` False) raise ``compact_order_failed`` past ``order``; a real allocation
    also clears the back-off."""
    if alloc_success:
        zone.compact_considered = 0
        zone.compact_defer_shift = 0
    if order >= zone.compact_order_failed:
        zone.compact_order_failed = order + 1
    _defer_event(zone, "mm_compaction_defer_reset", order)


def compaction_restarting(zone: Zone, order: int) -> bool:
    """Models mm/compaction.c: compaction_restarting — deferred to the maximum and all 64
    considerations used up: the next run clears the skip bits first."""
    if order < zone.compact_order_failed:
        return False
    return (
        zone.compact_defer_shift == COMPACT_MAX_DEFER_SHIFT
        and zone.compact_considered >= 1 << zone.compact_defer_shift
    )
