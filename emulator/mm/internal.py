"""The context structs of mm/internal.h and the zone->lock discipline shared by every path.

Models mm/internal.h: ``struct alloc_context`` (:class:`AllocContext`), ``struct
compact_control`` (:class:`CompactControl`), ``struct capture_control`` (:class:`CaptureControl`)
and include/linux/migrate_mode.h's ``enum migrate_mode``. The structs declare the kernel's fields
with the kernel's names; the mechanisms that fill and read them (the slow path, compaction,
migration) live in their own modules, named after the kernel file.

The zone->lock helper (:class:`ZoneLockHold`, made by ``PageAllocator.zone_locked`` /
``zone_lock`` / ``zone_trylock_now``) is the one place that takes ``zone->lock``, charges the
hold and releases it::

    async with pa.zone_locked(zone, "rmqueue_bulk") as hold:
        n = pcp.refill(...)                       # synchronous buddy work under the lock
        hold.charge += n * costs.bulk_per_block   # extra hold time beyond the buddy steps

On exit the actor spends ``zone_lock (+ lock_bounce if another CPU held it last) + buddy steps
taken * buddy_step + hold.charge`` of virtual time, then releases. Compaction, which holds the
lock across a scan and drops it every ``COMPACT_CLUSTER_MAX`` pages, uses the explicit form::

    hold = pa.zone_trylock_now(zone, "isolate_freepages_block")   # async mode, just synced
    if hold is None:                   # compact_lock_irqsave: cc->contended = True, then
        hold = await pa.zone_lock(zone, "isolate_freepages_block")  # spin_lock as the kernel
    ...
    await hold.unlock()

(``await pa.zone_trylock(zone, site)`` synchronises first, for a caller that has not.)
Functions the kernel documents as "zone->lock held" call :func:`lockdep_assert_held` (free
unless the sim is strict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from emulator.engine.errors import PrimitiveMisuse
from emulator.mm.compaction.sysctl import COMPACTION_PROACTIVENESS
from emulator.mm.snapshot import NR_PAGE_ORDERS

if TYPE_CHECKING:
    from collections.abc import Callable

    from emulator.engine import SpinLock
    from emulator.mm.page_alloc.allocator import Cpu, PageAllocator
    from emulator.mm.page_alloc.buddy import Zone

__all__ = [
    "MIGRATE_ASYNC",
    "MIGRATE_MODE_NAMES",
    "MIGRATE_SYNC",
    "MIGRATE_SYNC_LIGHT",
    "AllocContext",
    "CaptureControl",
    "CompactControl",
    "ZoneLockHold",
    "lockdep_assert_held",
]

# include/linux/migrate_mode.h: enum migrate_mode
MIGRATE_ASYNC = 0
MIGRATE_SYNC_LIGHT = 1
MIGRATE_SYNC = 2
MIGRATE_MODE_NAMES = ("MIGRATE_ASYNC", "MIGRATE_SYNC_LIGHT", "MIGRATE_SYNC")


@attrs.frozen(eq=False)
class AllocContext:
    """Models mm/internal.h: struct alloc_context.

    What ``prepare_alloc_pages`` derives from (node, gfp): the ``zonelist`` (zones in fallback
    order, populated only), ``nodemask`` (None: all nodes; a frozenset of node ids otherwise),
    ``preferred_zoneref`` (the kernel points into the zonelist; here the first usable
    :class:`Zone` itself, the kernel's ``ac->preferred_zoneref->zone``), ``migratetype``,
    ``highest_zoneidx`` and ``spread_dirty_pages``. Frozen: the allocator caches one per
    (node, gfp); the slow path's changes (``ac->nodemask = NULL``, a new preferred zoneref) make
    a new one with :func:`attrs.evolve`, as the kernel changes its on-stack copy. Compared and
    hashed by identity (``zonelist`` is the CPU's shared list: do not mutate it).
    """

    zonelist: list[Zone]
    nodemask: frozenset[int] | None
    preferred_zoneref: Zone
    migratetype: int
    highest_zoneidx: int
    spread_dirty_pages: bool = False

    @property
    def preferred_zone(self) -> Zone:
        """``ac->preferred_zoneref->zone``."""
        return self.preferred_zoneref


@attrs.define(slots=True, eq=False)
class CompactControl:
    """Models mm/internal.h: struct compact_control (the fields of Linux 6.12, same names).

    ``freepages[order]`` and ``migratepages`` are the kernel's list heads; here plain lists of
    pfns (heads of isolated blocks): compaction isolates at most ``COMPACT_CLUSTER_MAX`` pages
    per round, so these stay short. pfns are ints; ``zone`` the zone being compacted;
    ``mode`` one of :data:`MIGRATE_ASYNC`, :data:`MIGRATE_SYNC_LIGHT`, :data:`MIGRATE_SYNC`.
    The kernel's ``const`` fields (gfp_mask, alloc_flags, highest_zoneidx) are set once at
    construction. Declared here; filled and read by mm/compaction.py and mm/migrate.py.
    """

    zone: Zone
    order: int = -1
    gfp_mask: int = 0
    migratetype: int = 0
    alloc_flags: int = 0
    highest_zoneidx: int = 0
    mode: int = MIGRATE_ASYNC
    freepages: list[list[int]] = attrs.field(factory=lambda: [[] for _ in range(NR_PAGE_ORDERS)])
    migratepages: list[int] = attrs.Factory(list)
    nr_freepages: int = 0
    nr_migratepages: int = 0
    free_pfn: int = 0
    migrate_pfn: int = 0
    fast_start_pfn: int = 0
    total_migrate_scanned: int = 0
    total_free_scanned: int = 0
    fast_search_fail: int = 0
    search_order: int = 0
    ignore_skip_hint: bool = False
    no_set_skip_hint: bool = False
    ignore_block_suitable: bool = False
    direct_compaction: bool = False
    proactive_compaction: bool = False
    whole_zone: bool = False
    contended: bool = False
    finish_pageblock: bool = False
    alloc_contig: bool = False
    # model (compaction's own): the allocator, the CPU whose task runs the compaction (its pcp
    # lists receive freed sources; None for a task with no CPU of its own), and proactive
    # compaction's inputs (kcompactd fills them in: proactiveness, a kswapd_is_running probe)
    pa: PageAllocator | None = None
    cpu: Cpu | None = None
    proactiveness: int = COMPACTION_PROACTIVENESS.int_default()
    kswapd_probe: Callable[[], bool] | None = None


@attrs.define(slots=True, eq=False)
class CaptureControl:
    """Models mm/internal.h: struct capture_control.

    ``cc`` is the direct compactor's control; ``page`` the pfn of the block captured by
    ``__free_one_page`` (``compaction_capture``), -1 while none (the kernel's NULL).
    """

    cc: CompactControl | None = None
    page: int = -1


def lockdep_assert_held(lock: SpinLock | None) -> None:
    """lockdep_assert_held(lock): in a strict sim, raise unless the running actor holds it.

    Free when the sim is not strict, and a no-op for a zone with no lock yet (synchronous unit
    tests drive a bare :class:`Zone`)."""
    if lock is None:
        return
    sim = lock.sim
    if sim.strict and lock.holder is not sim._current:
        me = sim._current
        who = me.name if me is not None else "no actor"
        held = lock.holder.name if lock.holder is not None else "nobody"
        raise PrimitiveMisuse(f"{who!r} needs {lock.name} held, but it is held by {held}")


class ZoneLockHold:
    """One hold of ``zone->lock`` (spin_lock_irqsave .. spin_unlock_irqrestore).

    Made by ``PageAllocator.zone_locked`` (``async with``), ``zone_lock`` / ``zone_trylock`` /
    ``zone_trylock_now`` (already held; finish with :meth:`unlock`). ``charge`` starts at the
    lock operation's cost (plus one cache-line transfer when another CPU held it last); add
    any extra per-item cost of the critical section to it. :meth:`unlock` adds the buddy steps
    the zone took meanwhile, spends the total as virtual time with the lock held, releases.
    """

    __slots__ = (
        "_bounce_cost",
        "_bounces",
        "_buddy_step",
        "_lock_cost",
        "_steps",
        "charge",
        "site",
        "zone",
    )

    def __init__(
        self, zone: Zone, site: str, lock_cost: int, bounce_cost: int, buddy_step: int
    ) -> None:
        self.zone = zone
        self.site = site
        self.charge = 0
        self._lock_cost = lock_cost
        self._bounce_cost = bounce_cost
        self._buddy_step = buddy_step
        self._bounces = 0
        self._steps = 0

    def _taken(self) -> None:
        zone = self.zone
        bounced = zone.lock.stats.acq_bounces != self._bounces
        self.charge = self._lock_cost + (self._bounce_cost if bounced else 0)
        self._steps = zone.buddy_steps

    async def acquire(self) -> ZoneLockHold:
        """spin_lock_irqsave(&zone->lock)."""
        lock = self.zone.lock
        self._bounces = lock.stats.acq_bounces
        await lock.acquire(self.site)
        self._taken()
        return self

    def try_acquire_now(self) -> bool:
        """spin_trylock_irqsave(&zone->lock) at the caller's just-synchronised instant."""
        lock = self.zone.lock
        self._bounces = lock.stats.acq_bounces
        if not lock.try_acquire_now(self.site):
            return False
        self._taken()
        return True

    async def unlock(self) -> None:
        """Spend the hold (charge + buddy steps) with the lock held, then release it."""
        zone = self.zone
        await zone.lock.sim.delay(self.charge + (zone.buddy_steps - self._steps) * self._buddy_step)
        zone.lock.release()

    async def __aenter__(self) -> ZoneLockHold:
        return await self.acquire()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.zone.lock.release()  # an error under the lock: release, charge nothing
            return
        await self.unlock()
