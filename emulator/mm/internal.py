"""The kernel interface of mm/: the context structs of mm/internal.h, what the mechanisms
need of the page allocator, and the zone->lock discipline shared by every path.

Models mm/internal.h: ``struct alloc_context`` (:class:`AllocContext`), ``struct
compact_control`` (:class:`CompactControl`), ``struct capture_control`` (:class:`CaptureControl`)
and include/linux/migrate_mode.h's ``enum migrate_mode``. The structs declare the kernel's fields
with the kernel's names; the mechanisms that fill and read them (the slow path, compaction,
migration) live in their own modules, named after the kernel file.

The interface faces down: the mechanisms (the slow path, the free and drain paths, compaction,
migration, reclaim, the LRU, the kthreads) are written against :class:`Allocator`, a Protocol
naming what they use of the page allocator (its structs, its ``zone->lock`` helpers and the
entry points the kernel's mm files call across: ``__alloc_pages``, ``get_page_from_freelist``,
``wakeup_kswapd``), and never import :class:`~emulator.mm.page_alloc.allocator.PageAllocator`,
which sits above them all and is checked against the Protocol where it hands itself down.

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
Functions the kernel documents as "zone->lock held" call
:func:`~emulator.mm.lockdep.lockdep_assert_held` (free unless the sim is strict).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from emulator.engine.recorder import NullRecorder, Recorder
from emulator.engine.sim import Sim
from emulator.engine.sync import Mutex
from emulator.mm.alloc_latency import AllocClock
from emulator.mm.compaction.sysctl import COMPACTION_PROACTIVENESS
from emulator.mm.costs import Costs
from emulator.mm.machine import Machine
from emulator.mm.memmap import Memmap
from emulator.mm.page_alloc.alloc_stats import SlowpathStats
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.reclaim.lruvec import Lruvec, SlabShrinker
from emulator.mm.snapshot import NR_PAGE_ORDERS
from emulator.mm.zone import Zone

__all__ = [
    "MIGRATE_ASYNC",
    "MIGRATE_MODE_NAMES",
    "MIGRATE_SYNC",
    "MIGRATE_SYNC_LIGHT",
    "AllocContext",
    "Allocator",
    "CaptureControl",
    "CompactControl",
    "KswapdView",
    "KthreadsView",
    "ZoneLockHold",
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
    pa: Allocator | None = None
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
        "_clock",
        "_lock_cost",
        "_resume",
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
        #: the allocating actor's latency accumulators (emulator.mm.alloc_latency), if timed
        self._clock: AllocClock | None = None
        self._resume = 0

    def _taken(self) -> None:
        zone = self.zone
        bounced = zone.lock.stats.acq_bounces != self._bounces
        self.charge = self._lock_cost + (self._bounce_cost if bounced else 0)
        self._steps = zone.buddy_steps

    async def acquire(self) -> ZoneLockHold:
        """spin_lock_irqsave(&zone->lock). A wait is noted in the zone's ``lock_waits`` (start,
        ns) and, in a timed allocation, booked as ``zone_lock_wait``."""
        zone = self.zone
        lock = zone.lock
        self._bounces = lock.stats.acq_bounces
        me = lock.sim._current
        assert me is not None
        clk = me.clock
        if clk is not None and clk.active:
            self._clock = clk
            self._resume = clk.lock_wait(me)
        else:
            clk = None
        spun = me.spin_ns
        await lock.acquire(self.site)
        wait = me.spin_ns - spun
        if wait:
            zone.lock_waits.append(me.now - wait)
            zone.lock_waits.append(wait)
        if clk is not None:
            clk.lock_taken(self._resume, me)
        self._taken()
        return self

    def try_acquire_now(self) -> bool:
        """spin_trylock_irqsave(&zone->lock) at the caller's just-synchronised instant."""
        lock = self.zone.lock
        self._bounces = lock.stats.acq_bounces
        if not lock.try_acquire_now(self.site):
            return False
        me = lock.sim._current
        assert me is not None
        clk = me.clock
        if clk is not None and clk.active:
            self._clock = clk
            self._resume = clk.part
            clk.lock_taken(self._resume, me)
        self._taken()
        return True

    async def unlock(self) -> None:
        """Spend the hold (charge + buddy steps) with the lock held, then release it."""
        zone = self.zone
        await zone.lock.sim.delay(self.charge + (zone.buddy_steps - self._steps) * self._buddy_step)
        zone.lock.release()
        clk = self._clock
        if clk is not None:
            me = zone.lock.sim._current
            assert me is not None
            clk.switch(self._resume, me)

    async def __aenter__(self) -> ZoneLockHold:
        return await self.acquire()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.zone.lock.release()  # an error under the lock: release, charge nothing
            self._clock = None
            return
        await self.unlock()


class KswapdView(Protocol):
    """A node's kswapd as reclaim sees it: ``pgdat->kswapd_failures``, which shrink_node
    clears on progress."""

    kswapd_failures: int


class KthreadsView(Protocol):
    """Every node's kswapd and kcompactd as the allocator sees them
    (:class:`~emulator.mm.reclaim.kswapd.Kthreads` once started)."""

    @property
    def kswapd(self) -> Sequence[KswapdView]: ...

    def wakeup_kswapd(self, zone: Zone, gfp_flags: int, order: int, highest_zoneidx: int) -> None:
        """wakeup_kswapd(zone, gfp_flags, order, highest_zoneidx) for the zone's node."""
        ...

    def summary(self) -> dict[str, Any]:
        """summary.json's ``"kcompactd"`` and ``"kswapd"`` lists."""
        ...


class Allocator(Protocol):
    """What the mechanisms below the allocator use of it: the machine's page allocator as
    :class:`~emulator.mm.page_alloc.allocator.PageAllocator` implements it.

    Its structs: the machine and its mem_map, the populated zones and every CPU (with its pcp
    lists), each node's lruvec and slab shrinker, the costs, the recorder and vm events, the
    kthreads once started; the ``zone->lock`` helpers (:class:`ZoneLockHold`); and the entry
    points the kernel's mm files call across (``__alloc_pages``, ``get_page_from_freelist``,
    ``wakeup_kswapd``, ``page_zone``).
    """

    machine: Machine
    sim: Sim
    costs: Costs
    rec: Recorder | NullRecorder
    memmap: Memmap
    vm_events: defaultdict[str, int]
    zones: list[Zone]
    cpus: list[Cpu]
    lruvecs: list[Lruvec]
    nr_nodes: int
    pcpu_drain_mutex: Mutex
    explore: bool
    slowpath_stats: list[SlowpathStats]
    shrinkers: list[SlabShrinker]
    kthreads: KthreadsView | None
    markers: Any
    extensions: dict[str, Any]

    def zone_of(self, pfn: int) -> Zone:
        """include/linux/mm.h: page_zone. The zone holding ``pfn``."""
        ...

    def gfp_name(self, gfp: int) -> str:
        """The gfp flags as show_gfp_flags prints them."""
        ...

    def zone_locked(self, zone: Zone, site: str) -> ZoneLockHold:
        """``async with pa.zone_locked(zone, site) as hold:`` (see the module docstring)."""
        ...

    async def zone_lock(self, zone: Zone, site: str) -> ZoneLockHold:
        """spin_lock_irqsave(&zone->lock) for a hold ended by ``await hold.unlock()``."""
        ...

    def zone_trylock_now(self, zone: Zone, site: str) -> ZoneLockHold | None:
        """spin_trylock_irqsave(&zone->lock) at the caller's just-synchronised instant."""
        ...

    async def zone_trylock(self, zone: Zone, site: str) -> ZoneLockHold | None:
        """spin_trylock_irqsave(&zone->lock), synchronising first."""
        ...

    async def alloc_pages(self, cpu: Cpu, order: int, gfp: int, owner: int = -1) -> int:
        """mm/page_alloc.c: __alloc_pages_noprof. The pfn, or -1."""
        ...

    async def get_page_from_freelist(
        self, cpu: Cpu, gfp: int, order: int, alloc_flags: int, ac: AllocContext, owner: int
    ) -> tuple[int, str]:
        """mm/page_alloc.c: get_page_from_freelist. ``(pfn, failure reason)``."""
        ...

    def wakeup_kswapd(
        self, zone: Zone, order: int, highest_zoneidx: int, gfp_flags: int = 0
    ) -> None:
        """The wakeup_kswapd call sites: counted, then the node's kswapd."""
        ...
