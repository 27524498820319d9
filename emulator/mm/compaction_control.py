"""Compaction's use of the control structs of mm/internal.h (:class:`CompactControl`,
:class:`CaptureControl`, declared in :mod:`emulator.mm.internal`) and the per-task capture
hook of mm/page_alloc.c (``task_capc``, ``compaction_capture``).

Capture: ``current->capture_control`` is modelled per zone by :class:`CaptureHook`, installed
as the zone's ``capture`` callable (which ``__free_one_page`` offers every merged block) while
at least one direct compactor of that zone has published its :class:`CaptureControl`. The
hook captures only for the actor that is running (``current``), never for one that is not
direct compaction (kthreads never publish one), only while nothing was captured yet, only at
exactly ``cc.order``, never from CMA or ISOLATE blocks, and never a MOVABLE block below
pageblock order for a non-movable request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulator.mm.internal import (
    MIGRATE_ASYNC,
    MIGRATE_MODE_NAMES,
    MIGRATE_SYNC,
    MIGRATE_SYNC_LIGHT,
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

if TYPE_CHECKING:
    from emulator.engine.sim import Actor
    from emulator.mm.page_alloc import Zone

__all__ = [
    "COMPACT_CLUSTER_MAX",
    "MIGRATE_ASYNC",
    "MIGRATE_MODE_NAMES",
    "MIGRATE_SYNC",
    "MIGRATE_SYNC_LIGHT",
    "CaptureControl",
    "CaptureHook",
    "CompactControl",
    "capture_registry",
    "kswapd_is_running",
    "reset_for_zone",
]

#: COMPACT_CLUSTER_MAX = SWAP_CLUSTER_MAX (include/linux/swap.h:225-226)
COMPACT_CLUSTER_MAX = 32


def reset_for_zone(cc: CompactControl) -> None:
    """The counters and lists ``compact_zone`` clears on entry."""
    cc.total_migrate_scanned = 0
    cc.total_free_scanned = 0
    cc.nr_migratepages = 0
    cc.nr_freepages = 0
    cc.freepages = [[] for _ in range(NR_PAGE_ORDERS)]
    cc.migratepages = []


def kswapd_is_running(cc: CompactControl) -> bool:
    """compaction.c: kswapd_is_running(pgdat) (the kswapd issue provides the probe)."""
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
    return CaptureHook(zone, zone.lock.sim)  # type: ignore[attr-defined]
