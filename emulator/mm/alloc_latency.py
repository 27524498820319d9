"""Where an allocation's virtual time goes: __alloc_pages_noprof's latency split into parts.

Not a kernel structure: the kernel measures this only from outside (``perf lock contention``
for lock waits, bcc ``funclatency`` for one function's latency at a time). The emulator keeps
it exactly, as the allocation runs, in the allocating actor's own :class:`AllocClock`
(:attr:`Actor.clock <emulator.engine.actor.Actor.clock>`): at every boundary between parts
the time since the last boundary is added to the part that was running. No event is recorded
and nothing is awaited for it; an allocation that crosses no boundary (a pcp hit) costs one
``start`` and one test.

The parts are exclusive (the innermost wins) and add up to the allocation's latency:

* ``zone_lock_wait`` — spinning for ``zone->lock`` (any caller: rmqueue_bulk, rmqueue_buddy,
  the free path under compaction, compaction's scanners);
* ``zone_lock_hold`` — holding ``zone->lock`` outside compaction (rmqueue_bulk, rmqueue_buddy,
  free_pcppages_bulk, reserve/unreserve_highatomic_pageblock). Inside compaction the time under
  the lock stays with the compaction part doing the work (the free scanner scans with the lock
  held);
* ``other_lock_wait`` — spinning for ``pcp->lock`` and ``lruvec->lru_lock``, sleeping on
  ``pcpu_drain_mutex``;
* ``slowpath`` — __alloc_pages_slowpath's own work on its first pass: gfp_to_alloc_flags,
  wake_all_kswapds, the freelist attempts;
* ``reclaim`` — try_to_free_pages (direct reclaim: shrink_lruvec, shrink_slab);
* ``compact_scan`` — isolate_migratepages and isolate_freepages: the pfn walks
  (``compact_scan_page``, ``compact_free_scan_page``, ``compact_block_check``);
* ``compact_isolate`` — the per-page isolation charge (``compact_isolate_page``);
* ``compact_migrate`` — migrate_pages: the copies, failures and the sources' frees;
* ``drain`` — lru_add_drain and drain_local_pages in compact_zone, drain_all_pages after
  direct reclaim;
* ``compact_throttle`` — too_many_isolated: reclaim_throttle's sleeps in
  isolate_migratepages_block;
* ``compact_other`` — the rest of try_to_compact_pages (compaction_suitable, compact_finished,
  putback, release_free_list, the compaction events);
* ``capture`` — prep_new_page of a page compaction captured;
* ``retry`` — should_reclaim_retry, should_compact_retry and every later pass of the retry
  loop (its freelist attempts, __alloc_pages_may_oom's last attempt);
* ``fast_path`` — the rest: entry, watermark checks, the pcp lists, prep_new_page.

:data:`INTERLEAVING` names the parts that come from the simulated interleaving (how long a lock
or the isolated-page throttle made this CPU wait depends on what the others did); every other
part restates the cost table (:class:`~emulator.mm.costs.Costs`) times the work done, so its
size is an input, not a finding.
"""

from __future__ import annotations

from array import array
from typing import Any

from emulator.engine import Sim
from emulator.engine.actor import Actor

__all__ = [
    "CAPTURE",
    "COMPACT_ISOLATE",
    "COMPACT_MIGRATE",
    "COMPACT_OTHER",
    "COMPACT_SCAN",
    "COMPACT_THROTTLE",
    "DRAIN",
    "FAST_PATH",
    "INTERLEAVING",
    "NR_PARTS",
    "OTHER_LOCK_WAIT",
    "PARTS",
    "RECLAIM",
    "RETRY",
    "SLOWPATH",
    "ZONE_LOCK_HOLD",
    "ZONE_LOCK_WAIT",
    "AllocClock",
    "lat_credit",
    "lat_enter",
    "lat_leave",
]

PARTS = (
    "fast_path",
    "zone_lock_wait",
    "zone_lock_hold",
    "other_lock_wait",
    "slowpath",
    "reclaim",
    "compact_scan",
    "compact_isolate",
    "compact_migrate",
    "drain",
    "compact_throttle",
    "compact_other",
    "capture",
    "retry",
)
NR_PARTS = len(PARTS)
(
    FAST_PATH,
    ZONE_LOCK_WAIT,
    ZONE_LOCK_HOLD,
    OTHER_LOCK_WAIT,
    SLOWPATH,
    RECLAIM,
    COMPACT_SCAN,
    COMPACT_ISOLATE,
    COMPACT_MIGRATE,
    DRAIN,
    COMPACT_THROTTLE,
    COMPACT_OTHER,
    CAPTURE,
    RETRY,
) = range(NR_PARTS)

#: the parts whose size comes from the simulated interleaving (waits for others); the rest
#: restate the cost table
INTERLEAVING = frozenset({"zone_lock_wait", "other_lock_wait", "compact_throttle"})

#: compaction's own parts: zone->lock held inside them stays theirs
_COMPACTION = frozenset({COMPACT_SCAN, COMPACT_ISOLATE, COMPACT_MIGRATE, DRAIN, COMPACT_OTHER})
_ZERO = (0,) * NR_PARTS


class AllocClock:
    """One actor's latency accumulators for the allocation it is running.

    ``acc[part]`` holds the ns booked so far; ``part`` runs since ``since``; ``waited`` is the
    actor's ``spin_ns + sleep_ns`` at ``since`` (lock waits in a segment go to
    ``other_lock_wait``); ``switches`` counts boundaries crossed (0: all ``fast_path``).
    """

    __slots__ = ("acc", "active", "part", "segments", "since", "switches", "waited")

    def __init__(self) -> None:
        #: with a trace being written: the allocation's segments as (start, ns, part), for
        #: the timeline's nested slices (None: not kept)
        self.segments: list[tuple[int, int, int]] | None = None
        self.acc = list(_ZERO)
        self.active = False
        self.part = FAST_PATH
        self.since = 0
        self.waited = 0
        self.switches = 0

    def start(self, me: Actor) -> None:
        """The allocation begins (in ``fast_path``) at ``me.now``."""
        self.active = True
        self.part = FAST_PATH
        self.since = me.now
        self.waited = me.spin_ns + me.sleep_ns
        if self.switches:
            self.acc[:] = _ZERO
            self.switches = 0
            if self.segments is not None:
                self.segments = []

    def switch(self, part: int, me: Actor) -> int:
        """Book the running segment, start ``part``; returns the part that was running."""
        now = me.now
        waited = me.spin_ns + me.sleep_ns
        spun = waited - self.waited
        cur = self.part
        acc = self.acc
        since = self.since
        if spun and cur != ZONE_LOCK_WAIT:
            acc[OTHER_LOCK_WAIT] += spun
            acc[cur] += now - since - spun
        else:
            acc[cur] += now - since
            spun = 0
        segs = self.segments
        if segs is not None and now > since:
            # a pcp/LRU lock wait inside the segment is drawn at its end
            if now - since > spun:
                segs.append((since, now - since - spun, cur))
            if spun:
                segs.append((now - spun, spun, OTHER_LOCK_WAIT))
        self.since = now
        self.waited = waited
        self.part = part
        self.switches += 1
        return cur

    def credit(self, part: int, ns: int, me: Actor) -> None:
        """Book the next ``ns`` (a delay the caller is about to spend) to ``part``."""
        cur = self.switch(part, me)
        self.acc[part] += ns
        if self.segments is not None:
            self.segments.append((self.since, ns, part))
        self.since += ns
        self.part = cur

    def finish(self, me: Actor) -> tuple[int, ...] | None:
        """The allocation ends: its parts (None when it crossed no boundary: all fast path)."""
        self.active = False
        if not self.switches:
            return None
        self.switch(FAST_PATH, me)
        return tuple(self.acc)

    # -- zone->lock (emulator.mm.internal.ZoneLockHold) -------------------------------------

    def lock_wait(self, me: Actor) -> int:
        """spin_lock(&zone->lock) begins: waiting; returns the part to resume."""
        return self.switch(ZONE_LOCK_WAIT, me)

    def lock_taken(self, resume: int, me: Actor) -> None:
        """zone->lock acquired: holding it (or, inside compaction, back to its part)."""
        self.switch(resume if resume in _COMPACTION else ZONE_LOCK_HOLD, me)


def _clock(sim: Sim) -> tuple[AllocClock, Actor] | None:
    me = sim._current
    if me is None:
        return None
    clk: Any = me.clock
    if clk is None or not clk.active:
        return None
    return clk, me


def lat_enter(sim: Sim, part: int) -> int:
    """The running allocation (if any) enters ``part``; returns what to pass to
    :func:`lat_leave` (-1: no allocation is being timed)."""
    found = _clock(sim)
    if found is None:
        return -1
    return found[0].switch(part, found[1])


def lat_leave(sim: Sim, resume: int) -> None:
    """Back to the part :func:`lat_enter` returned."""
    if resume >= 0:
        found = _clock(sim)
        if found is not None:
            found[0].switch(resume, found[1])


def lat_credit(sim: Sim, part: int, ns: int) -> None:
    """Book the next ``ns`` of the running allocation (a delay about to be spent) to ``part``."""
    if ns > 0:
        found = _clock(sim)
        if found is not None:
            found[0].credit(part, ns, found[1])


def new_rows() -> array[int]:
    """The per-order store of timed allocations: flat rows of ``(index, *parts)``."""
    return array("q")
