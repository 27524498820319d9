"""The control structs of compaction: Models mm/internal.h: struct compact_control and
struct capture_control, and the per-task capture hook of mm/page_alloc.c (``task_capc``,
``compaction_capture``).

:class:`CompactControl` carries the kernel's field names; the model adds the allocator
(``pa``), the CPU whose task runs the compaction (``cpu``), and for proactive runs the
proactiveness and a kswapd probe. Lists are plain Python lists of head pfns (``freepages[o]``
one list per order, ``migratepages``).

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

import attrs

from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    NR_PAGE_ORDERS,
    PAGEBLOCK_ORDER,
)

if TYPE_CHECKING:
    from emulator.engine.sim import Actor
    from emulator.mm.allocator import Cpu, PageAllocator
    from emulator.mm.page_alloc import Zone

__all__ = [
    "COMPACT_CLUSTER_MAX",
    "MIGRATE_ASYNC",
    "MIGRATE_SYNC",
    "MIGRATE_SYNC_LIGHT",
    "CaptureControl",
    "CaptureHook",
    "CompactControl",
    "capture_registry",
]

#: COMPACT_CLUSTER_MAX = SWAP_CLUSTER_MAX (include/linux/swap.h:225-226)
COMPACT_CLUSTER_MAX = 32

# enum migrate_mode (include/linux/migrate_mode.h)
MIGRATE_ASYNC = 0
MIGRATE_SYNC_LIGHT = 1
MIGRATE_SYNC = 2
MIGRATE_MODE_NAMES = ("async", "sync_light", "sync")


def _freepages() -> list[list[int]]:
    return [[] for _ in range(NR_PAGE_ORDERS)]


@attrs.define(slots=True, eq=False)
class CompactControl:
    """Models mm/internal.h: struct compact_control (field names as in the kernel)."""

    pa: PageAllocator
    zone: Zone
    cpu: Cpu | None = None
    freepages: list[list[int]] = attrs.field(factory=_freepages)
    migratepages: list[int] = attrs.field(factory=list)
    nr_freepages: int = 0
    nr_migratepages: int = 0
    free_pfn: int = 0
    migrate_pfn: int = 0
    fast_start_pfn: int = 0
    total_migrate_scanned: int = 0
    total_free_scanned: int = 0
    fast_search_fail: int = 0
    search_order: int = 0
    gfp_mask: int = 0
    order: int = 0
    migratetype: int = MIGRATE_MOVABLE
    alloc_flags: int = 0
    highest_zoneidx: int = 0
    mode: int = MIGRATE_ASYNC
    ignore_skip_hint: bool = False
    no_set_skip_hint: bool = False
    ignore_block_suitable: bool = False
    direct_compaction: bool = False
    proactive_compaction: bool = False
    whole_zone: bool = False
    contended: bool = False
    finish_pageblock: bool = False
    alloc_contig: bool = False
    # model: proactive compaction's inputs (kcompactd fills them in)
    proactiveness: int = 20
    kswapd_probe: Any = None

    def reset_for_zone(self) -> None:
        """The counters and lists ``compact_zone`` clears on entry."""
        self.total_migrate_scanned = 0
        self.total_free_scanned = 0
        self.nr_migratepages = 0
        self.nr_freepages = 0
        self.freepages = _freepages()
        self.migratepages = []

    def kswapd_is_running(self) -> bool:
        """compaction.c: kswapd_is_running(pgdat) (the kswapd issue provides the probe)."""
        return bool(self.kswapd_probe()) if self.kswapd_probe is not None else False


@attrs.define(slots=True, eq=False)
class CaptureControl:
    """Models mm/internal.h: struct capture_control — the compaction it belongs to and the
    captured block (a pfn, -1 while nothing is captured)."""

    cc: CompactControl
    page: int = -1


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
        if order != cc.order or cc.zone is not self.zone:
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
