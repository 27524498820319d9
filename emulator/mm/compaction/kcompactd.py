"""kcompactd: the per-node background compaction thread and proactive compaction.

Models mm/compaction.c of Linux 6.12: kcompactd (the thread loop), kcompactd_work_requested,
kcompactd_node_suitable, kcompactd_do_work, wakeup_kcompactd, fragmentation_score_node,
should_proactive_compact_node, compact_node(pgdat, proactive=true) and
compaction_proactiveness_sysctl_handler; and the wait-queue discipline of include/linux/wait.h
(wait_event_freezable_timeout, prepare_to_wait / schedule_timeout / finish_wait) that kcompactd
and kswapd sleep with (:class:`KthreadWait`).

One :class:`Kcompactd` per node holds the ``pg_data_t`` fields the kernel keeps for it
(``kcompactd_max_order``, ``kcompactd_highest_zoneidx``, ``proactive_compact_trigger``,
``kcompactd_wait``) and runs :meth:`Kcompactd.kcompactd` as a daemon actor:

* it sleeps up to ``HPAGE_FRAG_CHECK_INTERVAL_MSEC`` = 500 ms of virtual time, or until woken,
  forever when ``vm.compaction_proactiveness`` is 0; the wait condition
  (``kcompactd_work_requested``) is tested before sleeping, so a request raised while kcompactd
  was busy (``wakeup_kcompactd`` raises the order *before* its early returns) is served at the
  next loop, and counted then;
* woken with work, it runs :meth:`Kcompactd.kcompactd_do_work`: MIGRATE_SYNC_LIGHT, no capture
  (``direct_compaction`` false), deferral, ``drain_all_pages(zone)`` after COMPLETE or
  PARTIAL_SKIPPED; one compact_control for all zones, so ``whole_zone`` set by
  ``compact_zone`` for one zone carries over to the next;
* on a timeout (or a write of ``vm.compaction_proactiveness``) it runs the proactive check:
  when the node's fragmentation score is above the high mark and kswapd is not running, it
  compacts every zone (``compact_node(pgdat, true)``: order -1, SYNC_LIGHT, whole zone, ignoring
  skip hints; ``__compact_finished`` stops a zone at the low mark), and a pass that did not lower
  the score backs the next timer off to ``500 ms << COMPACT_MAX_DEFER_SHIFT`` = 32 s.

The compaction mechanism itself (compact_zone, compaction_suit_allocation_order, deferral,
reset_isolation_suitable) is reached through :class:`CompactionOps`, so that this module depends
on mm/compaction's functions and not on their internals; :func:`compaction_ops` binds the
real ones. Simplifies: no freezer, no kthread_should_stop (the actor is a daemon that lives for
the run), no psi accounting, no CPU binding (kcompactd runs on no CPU's pcp; drains are issued
from the node's first CPU).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from emulator.engine import Sim, WaitQueue
from emulator.mm.compaction import compact
from emulator.mm.compaction.control import COMPACT_MAX_DEFER_SHIFT, CompactResult
from emulator.mm.compaction.defer import (
    compaction_defer_reset,
    compaction_deferred,
    defer_compaction,
)
from emulator.mm.compaction.skip import reset_isolation_suitable
from emulator.mm.compaction.suitable import (
    compaction_suit_allocation_order,
    fragmentation_score_node,
    fragmentation_score_wmark,
    should_proactive_compact_node,
)
from emulator.mm.internal import MIGRATE_SYNC_LIGHT, Allocator, CompactControl
from emulator.mm.machine import Machine, Node
from emulator.mm.page_alloc.alloc_flags import ALLOC_WMARK_MIN
from emulator.mm.page_alloc.drain import drain_all_pages
from emulator.mm.page_alloc.gfp import GFP_KERNEL
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.snapshot import MIGRATE_UNMOVABLE
from emulator.mm.zone import Zone

__all__ = [
    "HPAGE_FRAG_CHECK_INTERVAL_NS",
    "CompactionOps",
    "Kcompactd",
    "KswapdState",
    "KthreadWait",
    "ProactivePass",
    "compaction_ops",
]


class KswapdState(Protocol):
    """The node's kswapd as kcompactd sees it (``pgdat->kswapd``):
    :class:`~emulator.mm.reclaim.kswapd.Kswapd`, which starts after kcompactd and wakes it."""

    def is_running(self) -> bool:
        """Whether kswapd is awake (not in its sleep)."""
        ...


MSEC = 1_000_000
#: HPAGE_FRAG_CHECK_INTERVAL_MSEC (mm/compaction.c:33), in ns of virtual time
HPAGE_FRAG_CHECK_INTERVAL_NS = 500 * MSEC


class KthreadWait:
    """A kernel thread's wait queue head as the kthread uses it (include/linux/wait.h).

    ``prepare_to_wait`` puts the thread on the queue and makes it not running
    (``task_is_running`` false, ``waitqueue_active`` true) *before* it re-checks its condition
    and sleeps; a ``wake_up_interruptible`` in that window is not lost: the following
    ``schedule_timeout`` returns at once. ``finish_wait`` takes it off the queue (running again).
    :meth:`wake` is the synchronous ``wake_up_interruptible`` for model code called from an
    actor that is synchronised at its instant (the allocator's slow path, kswapd).
    """

    __slots__ = ("_pending", "queued", "wq")

    def __init__(self, sim: Sim, name: str) -> None:
        self.wq = WaitQueue(sim, name)
        self.queued = False
        self._pending = False

    def prepare_to_wait(self) -> None:
        """prepare_to_wait(wq, &wait, TASK_INTERRUPTIBLE)."""
        self.queued = True
        self._pending = False

    def finish_wait(self) -> None:
        """finish_wait(): back to TASK_RUNNING, off the queue."""
        self.queued = False
        self._pending = False

    def active(self) -> bool:
        """waitqueue_active() / wq_has_sleeper(): the thread is on the queue."""
        return self.queued

    def wake(self) -> bool:
        """wake_up_interruptible(): wake the thread if it is on the queue; True if it was."""
        if not self.queued:
            return False
        wq = self.wq
        if len(wq) and wq.sim._current is not None:
            wq.wake_up_now()
        else:
            self._pending = True  # between prepare_to_wait and schedule: schedule returns
        return True

    def _take_pending(self) -> bool:
        pending = self._pending
        self._pending = False
        return pending

    async def schedule_timeout(self, timeout_ns: int | None) -> bool:
        """schedule_timeout(timeout) (None: schedule()): True if woken before the timeout
        (the kernel's non-zero ``remaining``), False when the time ran out. A wake-up that
        came after prepare_to_wait but before the thread was on the queue (it was still
        getting ordered in time) returns at once, as the task state set by the waker does."""
        return await self.wq.wait(timeout_ns, until=self._take_pending)

    async def wait_event_timeout(self, cond: Callable[[], bool], timeout_ns: int | None) -> bool:
        """wait_event_freezable_timeout(wq, cond, timeout): True as soon as ``cond()`` holds
        (tested first, then after every wake-up, and once more when the time runs out);
        False if the timeout passed with ``cond()`` false. None waits forever."""
        if cond():
            return True
        sim = self.wq.sim
        deadline = None if timeout_ns is None else sim.current.now + timeout_ns
        self.prepare_to_wait()
        try:
            while True:
                if cond():
                    return True
                remaining = None if deadline is None else deadline - sim.current.now
                if remaining is not None and remaining <= 0:
                    return cond()
                woken = await self.schedule_timeout(remaining)
                if cond():
                    return True
                if not woken:
                    return False
        finally:
            self.finish_wait()


@attrs.frozen
class CompactionOps:
    """The mm/compaction.c functions kcompactd and kswapd call, bound to one allocator.

    * ``compact_zone(cc)``: compact ``cc.zone`` (no capture); returns its
      :class:`~emulator.mm.compaction.control.CompactResult` and leaves
      ``cc.total_migrate_scanned`` / ``cc.total_free_scanned`` for the zone;
    * ``suitable(zone, order, highest_zoneidx)``: ``compaction_suit_allocation_order(zone, order,
      highest_zoneidx, ALLOC_WMARK_MIN) == COMPACT_CONTINUE``;
    * ``deferred(zone, order)``, ``defer(zone, order)``, ``defer_reset(zone, order)``:
      compaction_deferred, defer_compaction, compaction_defer_reset(zone, order, false);
    * ``reset_isolation_suitable(node)``: clear skip bits of zones with compact_blockskip_flush;
    * ``pages_migrated()``: the ``pgmigrate_success`` count so far (for the pass records).
    """

    compact_zone: Callable[[CompactControl], Awaitable[CompactResult]]
    suitable: Callable[[Zone, int, int], bool]
    deferred: Callable[[Zone, int], bool]
    defer: Callable[[Zone, int], None]
    defer_reset: Callable[[Zone, int], None]
    reset_isolation_suitable: Callable[[Node], None]
    pages_migrated: Callable[[], int]


def compaction_ops(pa: Allocator) -> CompactionOps:
    """The real mm/compaction.c functions, bound to ``pa``."""

    def suitable(zone: Zone, order: int, highest_zoneidx: int) -> bool:
        ret = compaction_suit_allocation_order(
            zone, order, highest_zoneidx, ALLOC_WMARK_MIN, pa.machine.extfrag_threshold
        )
        return ret == CompactResult.COMPACT_CONTINUE

    async def compact_zone(cc: CompactControl) -> CompactResult:
        return await compact.compact_zone(cc, None)

    def reset(node: Node) -> None:
        reset_isolation_suitable(node.zones)

    events = pa.vm_events
    # 4f92e2586b43 (mitigation.compaction_deferral): off, kcompactd never defers a zone
    deferral = pa.machine.mitigations.on("compaction_deferral")
    return CompactionOps(
        compact_zone=compact_zone,
        suitable=suitable,
        deferred=compaction_deferred if deferral else lambda _z, _o: False,
        defer=defer_compaction if deferral else lambda _z, _o: None,
        defer_reset=lambda z, o: compaction_defer_reset(z, o, False),
        reset_isolation_suitable=reset,
        pages_migrated=lambda: events["pgmigrate_success"],
    )


@attrs.frozen
class ProactivePass:
    """One proactive compaction pass (for summary.json)."""

    t_ns: int
    score_before: int
    score_after: int
    pages_migrated: int

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


class Kcompactd:
    """One node's kcompactd and the ``pg_data_t`` fields it owns.

    ``kswapd`` (the node's :class:`~emulator.mm.reclaim.kswapd.Kswapd`, set when both are started)
    answers ``kswapd_is_running``. ``wakeups`` counts served wake-ups by cause: ``timer`` (the
    500 ms / 32 s timeout), ``sysctl`` (a proactiveness write), or the waker that asked for work
    (``kswapd_sleep``, ``kswapd_boost``, ``wakeup_kswapd``, or any name a caller passes);
    ``deferred_request`` counts a request recorded while kcompactd was busy and served at its
    next loop without a wake-up.
    """

    def __init__(
        self, pa: Allocator, node: Node, ops: CompactionOps, cpu: Cpu | None = None
    ) -> None:
        self.pa = pa
        self.sim: Sim = pa.sim
        self.machine: Machine = pa.machine
        self.node = node
        self.nid = node.nid
        self.ops = ops
        self.cpu: Cpu = cpu if cpu is not None else next(c for c in pa.cpus if c.node == node.nid)
        populated = [z.zone_idx for z in node.zones if z.populated]
        #: pgdat->nr_zones: one past the highest populated zone
        self.nr_zones = (max(populated) + 1) if populated else 0
        self.kcompactd_max_order = 0
        self.kcompactd_highest_zoneidx = self.nr_zones - 1
        self.proactive_compact_trigger = False
        self.kcompactd_wait = KthreadWait(self.sim, f"kcompactd_wait{node.nid}")
        self.kswapd: KswapdState | None = None
        self.wakeups: Counter[str] = Counter()
        self.proactive_passes: list[ProactivePass] = []
        self.timeout_ns: int | None = HPAGE_FRAG_CHECK_INTERVAL_NS
        """The timeout of the current (or next) wait: None while proactiveness is 0."""
        self._woken_by = ""  # who delivered the last wake-up

    # -- state queries -------------------------------------------------------------------------

    def kcompactd_work_requested(self) -> bool:
        """Models mm/compaction.c: kcompactd_work_requested (no kthread_should_stop)."""
        return self.kcompactd_max_order > 0 or self.proactive_compact_trigger

    def kswapd_is_running(self) -> bool:
        """Models mm/compaction.c: kswapd_is_running — kswapd exists and is not sleeping."""
        return self.kswapd is not None and self.kswapd.is_running()

    def wmarks(self) -> tuple[int, int]:
        """(low, high) of fragmentation_score_wmark for the current proactiveness."""
        p = self.machine.compaction_proactiveness
        return fragmentation_score_wmark(True, p), fragmentation_score_wmark(False, p)

    def kcompactd_node_suitable(self) -> bool:
        """Models mm/compaction.c: kcompactd_node_suitable — some populated zone up to
        ``kcompactd_highest_zoneidx`` where compaction_suit_allocation_order(zone,
        kcompactd_max_order, highest_zoneidx, ALLOC_WMARK_MIN) gives COMPACT_CONTINUE."""
        hz = self.kcompactd_highest_zoneidx
        for z in self.node.zones[: hz + 1]:
            if z.populated and self.ops.suitable(z, self.kcompactd_max_order, hz):
                return True
        return False

    # -- wake-ups --------------------------------------------------------------------------------

    def wakeup_kcompactd(self, order: int, highest_zoneidx: int, cause: str) -> bool:
        """Models mm/compaction.c: wakeup_kcompactd — called at the caller's synchronised
        instant. Records the request first (raise ``kcompactd_max_order``, lower
        ``kcompactd_highest_zoneidx``), then returns without waking if nobody is waiting on
        ``kcompactd_wait`` (kcompactd busy: the request is served at its next loop) or the node
        is not suitable. Fires ``mm_compaction_wakeup_kcompactd``. True if it woke kcompactd."""
        if not order:
            return False
        if self.kcompactd_max_order < order:
            self.kcompactd_max_order = order
        if self.kcompactd_highest_zoneidx > highest_zoneidx:
            self.kcompactd_highest_zoneidx = highest_zoneidx
        if not self.kcompactd_wait.active():
            return False
        if not self.kcompactd_node_suitable():
            return False
        rec = self.sim.recorder
        if rec.enabled:
            rec.emit(
                "mm_compaction_wakeup_kcompactd",
                nid=self.nid,
                order=order,
                highest_zoneidx=highest_zoneidx,
            )
        self._woken_by = cause
        self.kcompactd_wait.wake()
        return True

    def proactiveness_written(self, value: int) -> None:
        """Models mm/compaction.c: compaction_proactiveness_sysctl_handler's node part — on a
        non-zero write, set ``proactive_compact_trigger`` (unless set) and wake kcompactd,
        firing ``mm_compaction_wakeup_kcompactd`` with order -1."""
        if not value or self.proactive_compact_trigger:
            return
        self.proactive_compact_trigger = True
        rec = self.sim.recorder
        if rec.enabled:
            rec.emit(
                "mm_compaction_wakeup_kcompactd",
                nid=self.nid,
                order=-1,
                highest_zoneidx=self.nr_zones - 1,
            )
        self._woken_by = "sysctl"
        self.kcompactd_wait.wake()

    # -- the thread ------------------------------------------------------------------------------

    async def kcompactd(self) -> None:
        """Models mm/compaction.c: kcompactd — the thread loop (run as a daemon actor)."""
        sim = self.sim
        await sim.sync()
        # kcompactd() clears kcompactd_max_order / kcompactd_highest_zoneidx as it starts, at
        # boot, before any request: the constructor did (a request made at t=0 before this
        # actor's first step is kept, as it would be after boot)
        default_timeout = HPAGE_FRAG_CHECK_INTERVAL_NS
        timeout: int | None = default_timeout
        rec = sim.recorder
        while True:
            if not self.machine.compaction_proactiveness:
                timeout = None
            self.timeout_ns = timeout
            if rec.enabled:
                rec.emit("mm_compaction_kcompactd_sleep", nid=self.nid)
            self._woken_by = ""
            work = await self.kcompactd_wait.wait_event_timeout(
                self.kcompactd_work_requested, timeout
            )
            if work and not self.proactive_compact_trigger:
                if self._woken_by:
                    self.wakeups[self._woken_by] += 1
                else:
                    self.wakeups["deferred_request"] += 1
                await self.kcompactd_do_work()
                timeout = default_timeout
                continue
            self.wakeups["sysctl" if self.proactive_compact_trigger else "timer"] += 1
            timeout = default_timeout
            proactiveness = self.machine.compaction_proactiveness
            if should_proactive_compact_node(self.node, proactiveness, self.kswapd_is_running()):
                prev_score = fragmentation_score_node(self.node)
                migrated = self.ops.pages_migrated()
                t0 = sim.current.now
                await self.compact_node_proactive()
                await sim.sync()
                score = fragmentation_score_node(self.node)
                self.proactive_passes.append(
                    ProactivePass(t0, prev_score, score, self.ops.pages_migrated() - migrated)
                )
                if score >= prev_score and self.machine.mitigations.on("proactive_backoff"):
                    timeout = default_timeout << COMPACT_MAX_DEFER_SHIFT
            self.proactive_compact_trigger = False

    def _cc_inputs(self) -> dict[str, Any]:
        """What the model's compact_control carries besides the kernel's fields: the allocator,
        the CPU whose pcp lists receive freed sources, proactiveness, the kswapd probe."""
        return {
            "pa": self.pa,
            "cpu": self.cpu,
            "proactiveness": self.machine.compaction_proactiveness,
            "kswapd_probe": self.kswapd_is_running,
        }

    async def kcompactd_do_work(self) -> None:
        """Models mm/compaction.c: kcompactd_do_work — compact the zones up to
        ``kcompactd_highest_zoneidx`` for ``kcompactd_max_order`` with one compact_control
        (SYNC_LIGHT, skip hints honoured, GFP_KERNEL, no capture); SUCCESS resets the deferral,
        COMPLETE and PARTIAL_SKIPPED drain the zone's pcp lists and defer. Counts
        compact_daemon_wake, compact_daemon_migrate_scanned, compact_daemon_free_scanned. A
        larger order or lower zone index requested meanwhile survives the final reset."""
        sim = self.sim
        ops = self.ops
        events = self.pa.vm_events
        first = next(z for z in self.node.zones if z.populated)
        cc = CompactControl(
            **self._cc_inputs(),
            zone=first,
            order=self.kcompactd_max_order,
            search_order=self.kcompactd_max_order,
            highest_zoneidx=self.kcompactd_highest_zoneidx,
            mode=MIGRATE_SYNC_LIGHT,
            ignore_skip_hint=False,
            gfp_mask=GFP_KERNEL,
            migratetype=MIGRATE_UNMOVABLE,
        )
        rec = sim.recorder
        if rec.enabled:
            rec.emit(
                "mm_compaction_kcompactd_wake",
                nid=self.nid,
                order=cc.order,
                highest_zoneidx=cc.highest_zoneidx,
            )
        events["compact_daemon_wake"] += 1
        for zone in self.node.zones[: cc.highest_zoneidx + 1]:
            if not zone.populated:
                continue
            await sim.sync()
            if ops.deferred(zone, cc.order):
                continue
            if not ops.suitable(zone, cc.order, zone.zone_idx):
                continue
            cc.zone = zone
            status = await ops.compact_zone(cc)
            if status == CompactResult.COMPACT_SUCCESS:
                ops.defer_reset(zone, cc.order)
            elif status in (CompactResult.COMPACT_PARTIAL_SKIPPED, CompactResult.COMPACT_COMPLETE):
                await drain_all_pages(self.pa, self.cpu, zone)
                await sim.sync()
                ops.defer(zone, cc.order)
            events["compact_daemon_migrate_scanned"] += cc.total_migrate_scanned
            events["compact_daemon_free_scanned"] += cc.total_free_scanned
        await sim.sync()
        if self.kcompactd_max_order <= cc.order:
            self.kcompactd_max_order = 0
        if self.kcompactd_highest_zoneidx >= cc.highest_zoneidx:
            self.kcompactd_highest_zoneidx = self.nr_zones - 1

    async def compact_node_proactive(self) -> None:
        """Models mm/compaction.c: compact_node(pgdat, proactive=true) — every populated zone
        with order -1, MIGRATE_SYNC_LIGHT, ignore_skip_hint, whole_zone and
        proactive_compaction (``__compact_finished`` ends a zone at the low mark, or with
        PARTIAL_SKIPPED once kswapd runs). Counts compact_daemon_*_scanned, not the wake."""
        events = self.pa.vm_events
        zones = [z for z in self.node.zones if z.populated]
        cc = CompactControl(
            **self._cc_inputs(),
            zone=zones[0],
            order=-1,
            mode=MIGRATE_SYNC_LIGHT,
            ignore_skip_hint=True,
            whole_zone=True,
            gfp_mask=GFP_KERNEL,
            migratetype=MIGRATE_UNMOVABLE,
            proactive_compaction=True,
        )
        for zone in zones:
            cc.zone = zone
            await self.ops.compact_zone(cc)
            events["compact_daemon_migrate_scanned"] += cc.total_migrate_scanned
            events["compact_daemon_free_scanned"] += cc.total_free_scanned

    # -- results -----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """This node's entry of summary.json's ``"kcompactd"`` list."""
        low, high = self.wmarks()
        return {
            "node": self.nid,
            "low": low,
            "high": high,
            "wakeups": dict(sorted(self.wakeups.items())),
            "proactive_passes": [p.as_dict() for p in self.proactive_passes],
        }
