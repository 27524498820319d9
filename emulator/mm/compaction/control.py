"""Compaction's types: Models include/linux/compaction.h (``enum compact_result``,
``enum compact_priority``, ``compact_gap``, ``compaction_made_progress`` / ``_failed`` /
``_withdrawn``) and compaction's use of the control structs of mm/internal.h
(:class:`CompactControl`, :class:`CaptureControl`, declared in :mod:`emulator.mm.internal`) and
the per-task capture hook of mm/page_alloc.c (``task_capc``, ``compaction_capture``).

Capture: ``current->capture_control`` is modelled per zone by :class:`CaptureHook`, installed
as the zone's ``capture`` callable (which ``__free_one_page`` offers every merged block) while
at least one direct compactor of that zone has published its :class:`CaptureControl`. The
hook captures only for the actor that is running (``current``), never for one that is not
direct compaction (kthreads never publish one), only while nothing was captured yet, only at
exactly ``cc.order``, never from CMA or ISOLATE blocks, and never a MOVABLE block below
pageblock order for a non-movable request.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final

from emulator.engine.actor import Actor
from emulator.mm.internal import (
    CaptureControl,
    CompactControl,
)
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    NR_PAGE_ORDERS,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import Zone

__all__ = [
    "COMPACT_CLUSTER_MAX",
    "COMPACT_MAX_DEFER_SHIFT",
    "DEF_COMPACT_PRIORITY",
    "INIT_COMPACT_PRIORITY",
    "MIN_COMPACT_COSTLY_PRIORITY",
    "MIN_COMPACT_PRIORITY",
    "CaptureHook",
    "CompactPriority",
    "CompactResult",
    "capture_registry",
    "compact_gap",
    "compaction_failed",
    "compaction_made_progress",
    "compaction_withdrawn",
    "is_via_compact_memory",
    "kswapd_is_running",
    "reset_for_zone",
]

#: Do not skip compaction more than 64 times (compaction.c:151)
COMPACT_MAX_DEFER_SHIFT: Final = 6


class CompactResult(IntEnum):
    """``enum compact_result`` (include/linux/compaction.h:21), in the kernel's order: the
    maximum over zones is the result of ``try_to_compact_pages``."""

    COMPACT_NOT_SUITABLE_ZONE = 0
    COMPACT_SKIPPED = 1
    COMPACT_DEFERRED = 2
    COMPACT_NO_SUITABLE_PAGE = 3
    COMPACT_CONTINUE = 4
    COMPACT_COMPLETE = 5
    COMPACT_PARTIAL_SKIPPED = 6
    COMPACT_CONTENDED = 7
    COMPACT_SUCCESS = 8

    @property
    def status(self) -> str:
        """The trace string (``COMPACTION_STATUS`` in include/trace/events/mmflags.h)."""
        return _STATUS[self]


_STATUS = {
    CompactResult.COMPACT_NOT_SUITABLE_ZONE: "not_suitable_zone",
    CompactResult.COMPACT_SKIPPED: "skipped",
    CompactResult.COMPACT_DEFERRED: "deferred",
    CompactResult.COMPACT_NO_SUITABLE_PAGE: "no_suitable_page",
    CompactResult.COMPACT_CONTINUE: "continue",
    CompactResult.COMPACT_COMPLETE: "complete",
    CompactResult.COMPACT_PARTIAL_SKIPPED: "partial_skipped",
    CompactResult.COMPACT_CONTENDED: "contended",
    CompactResult.COMPACT_SUCCESS: "success",
}

R = CompactResult


class CompactPriority(IntEnum):
    """``enum compact_priority`` (include/linux/compaction.h:9): lower means more effort."""

    COMPACT_PRIO_SYNC_FULL = 0
    COMPACT_PRIO_SYNC_LIGHT = 1
    COMPACT_PRIO_ASYNC = 2


MIN_COMPACT_PRIORITY = CompactPriority.COMPACT_PRIO_SYNC_FULL
MIN_COMPACT_COSTLY_PRIORITY = CompactPriority.COMPACT_PRIO_SYNC_LIGHT
DEF_COMPACT_PRIORITY = CompactPriority.COMPACT_PRIO_SYNC_LIGHT
INIT_COMPACT_PRIORITY = CompactPriority.COMPACT_PRIO_ASYNC


def compact_gap(order: int) -> int:
    """``compact_gap(order)`` (compaction.h:66): ``2UL << order`` free pages of headroom."""
    return 2 << order


def compaction_made_progress(result: CompactResult) -> bool:
    """compaction.h: compaction_made_progress — only COMPACT_SUCCESS counts as progress."""
    return result == R.COMPACT_SUCCESS


def compaction_failed(result: CompactResult) -> bool:
    """compaction.h: compaction_failed — the scanners met over the whole zone."""
    return result == R.COMPACT_COMPLETE


def compaction_withdrawn(result: CompactResult) -> bool:
    """compaction.h: compaction_withdrawn — compaction bailed out for reasons that say nothing
    about the zone: SKIPPED (no order-0 headroom), DEFERRED, CONTENDED, PARTIAL_SKIPPED."""
    return result in (
        R.COMPACT_SKIPPED,
        R.COMPACT_DEFERRED,
        R.COMPACT_CONTENDED,
        R.COMPACT_PARTIAL_SKIPPED,
    )


def is_via_compact_memory(order: int) -> bool:
    """compaction.c:51 — order -1 is manual (``compact_memory``) or proactive compaction."""
    return order == -1


#: COMPACT_CLUSTER_MAX = SWAP_CLUSTER_MAX (include/linux/swap.h:225-226)
COMPACT_CLUSTER_MAX: Final = 32


def reset_for_zone(cc: CompactControl) -> None:
    """The counters and lists ``compact_zone`` clears on entry."""
    cc.total_migrate_scanned = 0
    cc.total_free_scanned = 0
    cc.nr_migratepages = 0
    cc.nr_freepages = 0
    cc.freepages = [[] for _ in range(NR_PAGE_ORDERS)]
    cc.migratepages = []


def kswapd_is_running(cc: CompactControl) -> bool:
    """compaction.c: kswapd_is_running(pgdat), asked through ``cc.kswapd_probe`` (kcompactd
    passes :meth:`~emulator.mm.compaction.kcompactd.Kcompactd.kswapd_is_running`)."""
    return bool(cc.kswapd_probe()) if cc.kswapd_probe is not None else False


class CaptureHook:
    """``task_capc`` + ``compaction_capture`` for one zone, over every task that published a
    capture control for it (the model of ``current->capture_control``)."""

    __slots__ = ("capcs", "sim", "zone")

    def __init__(self, zone: Zone, sim: Any) -> None:
        self.zone = zone
        self.sim = sim
        self.capcs: dict[Actor, CaptureControl] = {}

    def publish(self, actor: Actor, capc: CaptureControl) -> None:
        """``WRITE_ONCE(current->capture_control, &capc)``."""
        self.capcs[actor] = capc
        self.zone.capture = self

    def withdraw(self, actor: Actor) -> None:
        """``WRITE_ONCE(current->capture_control, NULL)``."""
        self.capcs.pop(actor, None)
        if not self.capcs and self.zone.capture is self:
            self.zone.capture = None

    def __call__(self, pfn: int, order: int, migratetype: int) -> bool:
        """page_alloc.c: task_capc(zone) then compaction_capture(capc, page, order, mt)."""
        capc = self.capcs.get(self.sim._current)
        if capc is None or capc.page >= 0:
            return False
        cc = capc.cc
        if cc is None or order != cc.order or cc.zone is not self.zone:
            return False
        if migratetype in (MIGRATE_CMA, MIGRATE_ISOLATE):
            return False
        if (
            order < PAGEBLOCK_ORDER
            and migratetype == MIGRATE_MOVABLE
            and cc.migratetype != migratetype
        ):
            return False
        capc.page = pfn
        return True


def capture_registry(zone: Zone) -> CaptureHook:
    """The zone's :class:`CaptureHook` (installed on first use; the zone's ``capture`` slot
    holds it only while some task has a capture control published)."""
    hook = zone.capture
    if isinstance(hook, CaptureHook):
        return hook
    if hook is not None:
        raise RuntimeError(f"{zone!r}: capture hook already taken by {hook!r}")
    return CaptureHook(zone, zone.lock.sim)
