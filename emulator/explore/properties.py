"""Properties: named checks a run must pass, evaluated over its events and its state.

A scenario declares the properties its run must keep (``Scenario(..., properties=[...])``, or a
module-level ``properties = [...]`` beside ``SCENARIO``); ``mmemu run`` and
:func:`emulator.runner.run_scenario` check them and report every :class:`Violation` (property,
message, virtual time) in ``RunResult.violations`` and summary.json's ``"properties"``. A
:class:`Property` has up to three hooks, each returning violation messages (an empty iterable:
none), each given the run's :class:`PropertyRun`:

* ``on_event(run, event)``: every tracepoint event as it is emitted (``event`` is an
  :class:`Event`; only the names in ``events`` if given). The hook sees the event before any
  ``--events`` filter, so the recorded events.jsonl may hold fewer. It must not change the model.
* ``periodic(run)``: every ``every_ns`` of virtual time, by a daemon at a synchronised instant
  when no lock is held or awaited (no operation is half done), so state invariants hold.
* ``check(run)``: once, after the run.

``run.state`` is a dict private to the property for this run (counters, per-actor state), and
``run.ctx`` the :class:`~emulator.runner.RunContext` (machine, allocator, sim, findings).

The standard properties: :data:`INVARIANTS` (the model's invariant checker,
:meth:`~emulator.mm.page_alloc.allocator.PageAllocator.check`, at the end and every 1 ms) and
:data:`NO_DEADLOCK` (the engine's deadlock and watchdog detection), :data:`NO_CRASH` (no actor
crashed), and the race properties of the catalogue (``scenarios/races/``), e.g.
:data:`COMPACTION_SUCCESS_HONOURED` and :data:`NO_FAILURE_WITH_PCP_PAGES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import numpy as np

from emulator.engine.deadlock import lock_cycles
from emulator.mm.invariants import InvariantViolation
from emulator.mm.memmap import PG_BUDDY, PG_KIND_MASK, PG_PCP
from emulator.mm.snapshot import PAGEBLOCK_ORDER

__all__ = [
    "COMPACTION_SUCCESS_HONOURED",
    "INVARIANTS",
    "NO_AVOIDABLE_MIXING",
    "NO_CRASH",
    "NO_DEADLOCK",
    "NO_FAILURE_WITH_PCP_PAGES",
    "PRIVATE_MIGRATION_SOURCE",
    "STANDARD_PROPERTIES",
    "WATERMARK_HONOURED",
    "Event",
    "Property",
    "PropertyChecker",
    "PropertyRun",
    "Violation",
    "async_compaction_within",
    "failed_compactions_within",
    "hidden_block",
    "quiescent",
]


@attrs.frozen
class Event:
    """One tracepoint event as emitted: virtual time, actor, name and fields."""

    t: int
    actor: str | None
    name: str
    fields: dict[str, Any]


@attrs.frozen
class Violation:
    """A property that did not hold: which, why (one line), and when (virtual ns)."""

    property: str
    message: str
    time_ns: int

    def as_dict(self) -> dict[str, Any]:
        return {"property": self.property, "message": self.message, "time_ns": self.time_ns}


@attrs.define
class PropertyRun:
    """What a property's hooks see of one run."""

    #: the run's :class:`~emulator.runner.RunContext`
    ctx: Any
    #: the property's own state for this run
    state: dict[str, Any] = attrs.field(factory=dict)
    #: the run's end: ``reason`` and ``error`` (set before ``check``)
    reason: str | None = None
    error: str | None = None

    @property
    def now(self) -> int:
        """Virtual time of the running actor (or of the engine)."""
        return int(self.ctx.sim.now)


Messages = Iterable[str]


@attrs.frozen
class Property:
    """A named check of a run (see the module docstring for the hooks)."""

    name: str
    doc: str
    check: Callable[[PropertyRun], Messages] | None = None
    on_event: Callable[[PropertyRun, Event], Messages] | None = None
    #: the events ``on_event`` wants (empty: all)
    events: tuple[str, ...] = ()
    periodic: Callable[[PropertyRun], Messages] | None = None
    every_ns: int = 1_000_000

    def __attrs_post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"property name {self.name!r}: letters, digits, '_' and '-' only")
        if self.check is None and self.on_event is None and self.periodic is None:
            raise ValueError(f"property {self.name}: give check, on_event or periodic")
        if self.every_ns <= 0:
            raise ValueError(f"property {self.name}: every_ns must be > 0")


def quiescent(ctx: Any) -> bool:
    """No lock held and no actor waiting for one: no operation is half done (e.g. a zone's free
    lists mid-``rmqueue_bulk``), so every invariant of the model must hold."""
    pa = ctx.allocator
    locks: list[Any] = [z.lock for z in pa.zones] + [p.lock for c in pa.cpus for p in c.pcp]
    locks += [lv.lru_lock_or_none for lv in pa.lruvecs]
    if any(lock is not None and lock.holder is not None for lock in locks):
        return False
    return not any(a.state == "blocked" and hasattr(a.blocked_on, "holder") for a in ctx.sim.actors)


class PropertyChecker:
    """Runs a set of properties over one run: :meth:`install` before the run starts (watches the
    recorder's events for event hooks, spawns one daemon per periodic property), then
    :meth:`finish` after it."""

    def __init__(self, properties: Sequence[Property], ctx: Any) -> None:
        names = [p.name for p in properties]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"properties named twice: {', '.join(dup)}")
        self.properties = list(properties)
        self.ctx = ctx
        self.runs = {p.name: PropertyRun(ctx) for p in self.properties}
        self.violations: list[Violation] = []

    @property
    def needs_events(self) -> bool:
        return any(p.on_event is not None for p in self.properties)

    def _add(self, prop: Property, messages: Messages | None, t: int) -> None:
        for msg in messages or ():
            self.violations.append(Violation(prop.name, " ".join(str(msg).split()), t))

    def install(self) -> None:
        ctx = self.ctx
        sim = ctx.sim
        watchers: dict[str | None, list[Property]] = {}
        for p in self.properties:
            if p.on_event is not None:
                for name in p.events or (None,):
                    watchers.setdefault(name, []).append(p)
        recorder = sim.recorder
        if watchers and getattr(recorder, "enabled", False):
            every = watchers.get(None, [])
            runs = self.runs
            add = self._add

            def watched_emit(event: str, fields: dict[str, Any]) -> None:
                props = watchers.get(event)
                if props is None and not every:
                    return
                cur = sim._current
                ev = Event(
                    cur.now if cur is not None else sim._time,
                    cur.name if cur is not None else None,
                    event,
                    fields,
                )
                for p in (props or []) + every:
                    assert p.on_event is not None
                    add(p, p.on_event(runs[p.name], ev), ev.t)

            recorder.watch(watched_emit)
        for p in self.properties:
            if p.periodic is not None:
                sim.spawn(f"property-{p.name}", self._periodic(p), daemon=True)

    def _periodic(self, p: Property) -> Callable[[], Any]:
        sim = self.ctx.sim
        run = self.runs[p.name]
        hook = p.periodic
        assert hook is not None

        async def watch() -> None:
            while True:
                await sim.delay(p.every_ns)
                await sim.sync()
                if quiescent(self.ctx):
                    self._add(p, hook(run), sim.now)

        return watch

    def finish(self, reason: str, error: str | None) -> list[Violation]:
        """Run every ``check`` hook; all violations, in the order found."""
        now = int(self.ctx.sim.now)
        for p in self.properties:
            run = self.runs[p.name]
            run.reason, run.error = reason, error
            if p.check is not None:
                self._add(p, p.check(run), now)
        return self.violations

    def summary(self) -> dict[str, Any]:
        """summary.json ``properties``: per property, its doc, violation count and the first
        few violations."""
        out: dict[str, Any] = {}
        for p in self.properties:
            mine = [v for v in self.violations if v.property == p.name]
            out[p.name] = {
                "doc": p.doc,
                "violations": len(mine),
                "first": [v.as_dict() for v in mine[:5]],
            }
        return out


# -- the standard properties ------------------------------------------------------------------


def _invariants_now(run: PropertyRun) -> Messages:
    try:
        run.ctx.allocator.check()
    except InvariantViolation as exc:
        return [str(exc)]
    return ()


def _invariants_at_end(run: PropertyRun) -> Messages:
    if run.reason == "error" or not quiescent(run.ctx):
        return ()  # a crash or a stop mid-operation leaves half-done state
    return _invariants_now(run)


INVARIANTS = Property(
    "invariants",
    "every invariant of the model (free lists, pcp lists, LRU, conservation of pages) holds "
    "at every quiescent instant checked (each 1 ms) and at the end",
    check=_invariants_at_end,
    periodic=_invariants_now,
)


def _no_deadlock(run: PropertyRun) -> Messages:
    if run.reason in ("deadlock", "watchdog"):
        return [run.error or run.reason]
    cycles = lock_cycles(run.ctx.sim.actors)
    if cycles:
        names = " -> ".join(a.name for a in cycles[0])
        return [f"lock cycle at the end: {names}"]
    return ()


def _no_crash(run: PropertyRun) -> Messages:
    if run.reason == "error":
        return [run.error or "an actor crashed"]
    return ()


NO_CRASH = Property(
    "no_crash",
    "no actor of the model crashes (an exception in model code ends the run with reason error)",
    check=_no_crash,
)

NO_DEADLOCK = Property(
    "no_deadlock",
    "no lock cycle, no actor blocked forever, no actor without progress in virtual time "
    "(the engine's deadlock and watchdog detection)",
    check=_no_deadlock,
)


# -- race properties --------------------------------------------------------------------------


def _compaction_success_on_event(run: PropertyRun, ev: Event) -> Messages:
    """Per allocating actor: a direct compaction that finished with ``success`` must be followed
    by that allocation succeeding, without another compaction round."""
    actor = ev.actor
    if actor is None or not actor.startswith("cpu"):
        return ()
    pending: dict[str, tuple[int, int]] = run.state.setdefault("success", {})
    if ev.name == "mm_compaction_finished":
        if ev.fields.get("ret") == "success" and ev.fields.get("order", -1) > 0:
            pending[actor] = (ev.t, ev.fields["order"])
        return ()
    if ev.name == "mm_compaction_try_to_compact_pages":
        hit = pending.pop(actor, None)
        if hit is not None:
            return [
                f"{actor}: compaction reported SUCCESS for an order-{hit[1]} allocation at "
                f"t={hit[0]} ns, yet the allocation needed another compaction round"
            ]
        return ()
    if ev.name == "mm_page_alloc":
        hit = pending.pop(actor, None)
        if hit is not None and ev.fields.get("pfn", 0) < 0:
            return [
                f"{actor}: compaction reported SUCCESS for an order-{hit[1]} allocation at "
                f"t={hit[0]} ns, yet the allocation failed"
            ]
    return ()


COMPACTION_SUCCESS_HONOURED = Property(
    "compaction_success_honoured",
    "a direct compaction that reports COMPACT_SUCCESS gives its allocation the page: the "
    "allocation neither fails nor needs another compaction round (a stolen page breaks it)",
    on_event=_compaction_success_on_event,
    events=("mm_compaction_finished", "mm_compaction_try_to_compact_pages", "mm_page_alloc"),
)


def hidden_block(pa: Any, order: int) -> tuple[int, int] | None:
    """An order-``order`` aligned block of free pages, some of them on pcp lists (so not merged
    into a buddy of that order): ``(pfn, pages on pcp)`` of the first, or None."""
    st = np.frombuffer(pa.memmap.state, dtype=np.uint8) & PG_KIND_MASK
    size = 1 << order
    for zone in pa.zones:
        lo = -(-zone.zone_start_pfn // size) * size
        hi = zone.zone_end_pfn // size * size
        if hi <= lo:
            continue
        kinds = st[lo:hi].reshape(-1, size)
        pcp = kinds == PG_PCP
        free = pcp | (kinds == PG_BUDDY)
        hits = np.flatnonzero(free.all(axis=1) & pcp.any(axis=1))
        if hits.size:
            i = int(hits[0])
            return lo + i * size, int(pcp[i].sum())
    return None


def _pcp_hiding_on_event(run: PropertyRun, ev: Event) -> Messages:
    """A failed high-order allocation while a block of that order could be made by draining
    the pcp lists (every page of an aligned block free, some of them on pcp lists)."""
    if ev.fields.get("pfn", 0) >= 0:
        return ()
    order = int(ev.fields.get("order", 0))
    if order < 1:
        return ()
    pa = run.ctx.allocator
    if not pa.pcp_pages():
        return ()
    hit = hidden_block(pa, order)
    if hit is None:
        return ()
    return [
        f"{ev.actor}: an order-{order} allocation failed while the block at pfn {hit[0]:#x} was "
        f"all free, {hit[1]} of its pages on pcp lists"
    ]


NO_FAILURE_WITH_PCP_PAGES = Property(
    "no_failure_with_pcp_pages",
    "no high-order allocation fails while draining the pcp lists would give it a block: an "
    "aligned block of its order whose pages are all free, some of them on pcp lists (pages "
    "there are not PageBuddy and do not merge)",
    on_event=_pcp_hiding_on_event,
    events=("mm_page_alloc",),
)


def _private_source_on_event(run: PropertyRun, ev: Event) -> Messages:
    """A compactor that isolates pages from a pageblock holds it (e380bebe4771's claim) until
    its migration round ends (``mm_compaction_migratepages``, or ``mm_compaction_end``)."""
    actor = ev.actor or "?"
    claims: dict[int, str] = run.state.setdefault("claims", {})
    held: dict[str, set[int]] = run.state.setdefault("held", {})
    if ev.name == "mm_compaction_isolate_migratepages":
        if ev.fields.get("nr_taken", 0) <= 0:
            return ()
        block = int(ev.fields["start_pfn"]) >> PAGEBLOCK_ORDER
        other = claims.get(block)
        claims[block] = actor
        held.setdefault(actor, set()).add(block)
        if other is not None and other != actor:
            return [
                f"{actor} isolated migration sources from pageblock {block} "
                f"(pfn {block << PAGEBLOCK_ORDER:#x}) while {other} held pages isolated from it"
            ]
        return ()
    for block in held.pop(actor, ()):  # mm_compaction_migratepages / mm_compaction_end
        if claims.get(block) == actor:
            del claims[block]
    return ()


PRIVATE_MIGRATION_SOURCE = Property(
    "private_migration_source",
    "no two compactors isolate migration sources from the same pageblock at once (each keeps "
    "its source block to itself until its migration round ends)",
    on_event=_private_source_on_event,
    events=(
        "mm_compaction_isolate_migratepages",
        "mm_compaction_migratepages",
        "mm_compaction_end",
    ),
)


def async_compaction_within(limit_ns: int) -> Property:
    """``async_compaction_bounded``: no async direct compaction of a zone (``mm_compaction_begin``
    with ``sync`` false to its ``mm_compaction_end``, per actor) takes longer than ``limit_ns``
    of virtual time: async compaction is the cheap, opportunistic kind that gives up when it
    meets contention or takes too long (c67fe3752abe)."""

    def on_event(run: PropertyRun, ev: Event) -> Messages:
        actor = ev.actor or "?"
        started: dict[str, int] = run.state.setdefault("started", {})
        if ev.name == "mm_compaction_begin":
            if not ev.fields.get("sync", True) and actor.startswith("cpu"):
                started[actor] = ev.t
            return ()
        t0 = started.pop(actor, None)
        if t0 is not None and ev.t - t0 > limit_ns:
            return [
                f"{actor}: an async compaction ran {ev.t - t0} ns (> {limit_ns} ns) and ended "
                f"{ev.fields.get('status')}"
            ]
        return ()

    return Property(
        "async_compaction_bounded",
        f"no async direct compaction of a zone runs longer than {limit_ns} ns of virtual time "
        "(it gives up on lock contention instead of queueing)",
        on_event=on_event,
        events=("mm_compaction_begin", "mm_compaction_end"),
    )


def _nofragment_on_event(run: PropertyRun, ev: Event) -> Messages:
    """A fragmenting fallback (``fallback_order < pageblock_order``: the request takes pages
    from a pageblock of another migratetype, mixing it) while a lower zone of the same node
    had a whole free pageblock the request could have taken without mixing anything."""
    if int(ev.fields.get("fallback_order", PAGEBLOCK_ORDER)) >= PAGEBLOCK_ORDER:
        return ()
    pa = run.ctx.allocator
    zone = pa.zone_of(int(ev.fields["pfn"]))
    for lower in pa.zones:
        if (
            lower.node == zone.node
            and lower.zone_idx < zone.zone_idx
            and any(lower.nr_free[PAGEBLOCK_ORDER:])
        ):
            return [
                f"{ev.actor}: an order-{ev.fields['alloc_order']} allocation mixed "
                f"pageblock {int(ev.fields['pfn']) >> PAGEBLOCK_ORDER} of {zone.name} "
                f"(migratetype {ev.fields['alloc_migratetype']} into "
                f"{ev.fields['fallback_migratetype']}) while {lower.name} had free pageblocks"
            ]
    return ()


NO_AVOIDABLE_MIXING = Property(
    "no_avoidable_mixing",
    "no fallback mixes a pageblock of one zone (fragmenting: fallback order below pageblock "
    "order) while a lower zone of the node has a whole free pageblock to take instead",
    on_event=_nofragment_on_event,
    events=("mm_page_alloc_extfrag",),
)


def _watermark_honoured(run: PropertyRun) -> Messages:
    out = []
    for order, n in enumerate(run.ctx.allocator.watermark_ok_lost):
        if n:
            out.append(
                f"{n} order-{order} allocation(s) passed the watermark check and then found no "
                "free block (another CPU took the pages in between)"
            )
    return out


WATERMARK_HONOURED = Property(
    "watermark_honoured",
    "an allocation whose zone passed the watermark check gets a page from it (rmqueue never "
    "comes back empty after the check)",
    check=_watermark_honoured,
)


def failed_compactions_within(limit: int) -> Property:
    """``compaction_herd_bounded``: at most ``limit`` direct compactions (by CPUs) of one zone
    scan it to the end and fail (``mm_compaction_end`` status ``complete`` or
    ``partial_skipped``) in a run: a herd of compactors on a zone that has nothing to give
    wastes that scanning over and over."""

    def on_event(run: PropertyRun, ev: Event) -> Messages:
        actor = ev.actor or "?"
        if not actor.startswith("cpu") or ev.fields.get("status") not in (
            "complete",
            "partial_skipped",
        ):
            return ()
        counts: dict[int, int] = run.state.setdefault("failed", {})
        zone = int(ev.fields["zone_start"])
        counts[zone] = counts.get(zone, 0) + 1
        if counts[zone] == limit + 1:
            return [
                f"{actor}: the {limit + 1}th direct compaction of the zone at pfn {zone:#x} "
                "scanned it to the end and failed"
            ]
        return ()

    return Property(
        "compaction_herd_bounded",
        f"at most {limit} direct compactions of one zone scan it to the end and fail",
        on_event=on_event,
        events=("mm_compaction_end",),
    )


#: the properties ``--check`` may name besides a scenario's own
STANDARD_PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in (
        INVARIANTS,
        NO_CRASH,
        NO_DEADLOCK,
        COMPACTION_SUCCESS_HONOURED,
        NO_FAILURE_WITH_PCP_PAGES,
        PRIVATE_MIGRATION_SOURCE,
        NO_AVOIDABLE_MIXING,
        WATERMARK_HONOURED,
    )
}
