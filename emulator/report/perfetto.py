"""A run as a Chrome JSON trace (``trace.json``), for ui.perfetto.dev or chrome://tracing.

Built while the run runs, from the recorder's tuples and the trace-only events
(:mod:`emulator.report.trace_capture`), or afterwards from an ``events.jsonl`` by
:func:`write_trace`; both feed the same :class:`TraceConverter`. The model knows nothing of it.
Time is virtual: the kernel's ns become the format's µs with a fractional part.

Tracks (the format's processes and threads):

* **CPUs** — one thread per CPU actor. Nested ``B``/``E`` slices: ``alloc order=N`` (from
  ``mmemu_alloc_begin`` to the kernel's ``mm_page_alloc``), ``free order=N``
  (``mmemu_free_begin`` .. ``mmemu_free_end``), ``slowpath`` (``mmemu_slowpath_begin/end``),
  ``compact_zone`` (``mm_compaction_begin/end``), ``direct_reclaim``
  (``mm_vmscan_direct_reclaim_begin/end``). Instants mark failures (``mm_page_alloc`` with
  pfn -1), ``mm_compaction_deferred`` and ``mm_page_alloc_extfrag`` fallbacks.
* **kernel threads** — one thread per other actor (kswapd, kcompactd, a scenario's own):
  ``kswapd`` slices from ``mm_vmscan_kswapd_wake`` to ``mm_vmscan_kswapd_sleep``, ``kcompactd``
  slices from ``mm_compaction_kcompactd_wake`` to ``mm_compaction_kcompactd_sleep``, and the
  same compaction/reclaim slices as on CPUs.
* **locks** — (``zone->lock``, ``pcp->lock``, each node's ``lru_lock``, ``pcpu_drain_mutex``)
  per lock instance a ``hold`` thread of complete (``X``) slices (which holds: the lock policy,
  :data:`LOCK_POLICIES`), from lockdep's
  ``lock_acquired`` to ``lock_release`` (a lock is held by one actor at a time, so they never
  overlap); waits (``contention_begin`` .. ``contention_end`` of include/trace/events/lock.h)
  overlap each other, so each waiter has its own track per lock (``LOCK wait cpuN``), where
  its waits, one at a time, never overlap.
* **counters** — free pages per order and pages on pcp lists (from the sampler's time series),
  the node fragmentation score with kcompactd's proactive low and high marks
  (mm/compaction.c: fragmentation_score_wmark), waiters per ``zone->lock``, and pages isolated
  by compaction, migrate and free side (``nr_taken`` of ``mm_compaction_isolate_migratepages``
  and ``mm_compaction_(fast_)isolate_freepages`` added; ``mm_compaction_migratepages`` takes
  back the migrated and failed pages and the free pages they moved to; ``mm_compaction_end``
  — putback and release_free_list — returns the rest).
* **flows** — an arrow from each direct compaction (``mm_compaction_end`` inside an allocation)
  to the end of that allocation, named ``compaction→alloc satisfied`` or ``... lost`` (both
  ends carry the name: Perfetto pairs v1 flow events by id, category and name).

Events the run did not record simply leave their tracks empty. The file is written as a
stream (one trace event per line), so a long run does not need the whole trace in memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from emulator.mm.alloc_latency import PARTS
from emulator.mm.compaction.sysctl import COMPACTION_PROACTIVENESS
from emulator.mm.tracepoints import TRACEPOINTS
from emulator.report.run_folder import load_summary
from emulator.run.summary import RunSummary

__all__ = [
    "LOCK_POLICIES",
    "TRACE_EVENTS",
    "TraceConverter",
    "enable_lock_events",
    "fragmentation_marks",
    "proactiveness_of",
    "read_events",
    "write_footer",
    "write_header",
    "write_trace",
]

PID_CPUS, PID_KTHREADS, PID_LOCKS, PID_COUNTERS = 1, 2, 3, 4
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: begin/end tracepoint pairs drawn as nested slices: begin event -> (end event, slice name),
#: from the tracepoints' declared roles
_PAIRS: dict[str, tuple[str, str]] = {
    tp.name: (tp.role.end, tp.role.slice) for tp in TRACEPOINTS.values() if tp.role.kind == "begin"
}
_ENDS = {end: name for end, name in _PAIRS.values()}
#: compaction events that move the "pages isolated" counter (migrate and free side)
_ISOLATION = frozenset(tp.name for tp in TRACEPOINTS.values() if tp.role.isolation)
_INSTANTS = tuple(tp.name for tp in TRACEPOINTS.values() if tp.role.kind == "instant")
_LOCK_EVENTS = tuple(tp.name for tp in TRACEPOINTS.values() if tp.role.kind == "lock")


def fragmentation_marks(proactiveness: int) -> tuple[int, int]:
    """mm/compaction.c: fragmentation_score_wmark — (low, high) for a proactiveness value."""
    low = max(100 - proactiveness, 5)
    return low, min(low + 10, 100)


def proactiveness_of(summary: RunSummary) -> int:
    """vm.compaction_proactiveness of a run (its ``--set`` value, else the kernel's default)."""
    value = summary.params.get(COMPACTION_PROACTIVENESS.name)
    return COMPACTION_PROACTIVENESS.int_default() if value is None else int(value)


def enable_lock_events(allocator: Any, rec: Any) -> int:
    """Turn on the lock.h event hook of every lock the allocator has; returns how many.
    ``rec`` is a recorder, or a :class:`~emulator.report.trace_capture.TraceCapture` (which
    says per lock whether its policy wants the holds reported: :meth:`holds_for`).

    Labels stand for the kernel's lock addresses: ``zone->lock:N:Zone``,
    ``pcp->lock:cpuC:N:Zone``, ``lru_lock:N`` (each node's lruvec) and ``pcpu_drain_mutex``.
    """
    locks: list[tuple[Any, str]] = []
    for z in allocator.zones:
        locks.append((z.lock, f"zone->lock:{z.node}:{z.name}"))
    for lv in getattr(allocator, "lruvecs", ()):
        lock = lv.lru_lock_or_none
        if lock is not None:
            locks.append((lock, f"lru_lock:{lv.nid}"))
    for c in allocator.cpus:
        for p in c.pcp:
            locks.append((p.lock, f"pcp->lock:cpu{c.id}:{p.zone.node}:{p.zone.name}"))
    mutex = getattr(allocator, "pcpu_drain_mutex", None)
    if mutex is not None:
        locks.append((mutex, "pcpu_drain_mutex"))
    holds_for = getattr(rec, "holds_for", None)
    for lock, label in locks:
        lock.traced(rec, label, holds=True if holds_for is None else holds_for(label))
    return len(locks)


#: the recorder's rendering of a lockdep hold event (the most frequent lines of a traced run):
#: parsed without the JSON decoder; anything else (or any surprise) goes through json.loads
_LOCK_LINE = re.compile(
    r'^\{"t":(\d+),"actor":"([^"\\]*)","event":"(lock_acquired|lock_release)",'
    r'"name":"([^"\\]*)","lock_addr":"([^"\\]*)"\}$'
)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of an events.jsonl file, in file (time) order."""
    loads = json.loads
    match = _LOCK_LINE.match
    with path.open(encoding="utf-8") as f:
        for line in f:
            m = match(line.rstrip("\n"))
            if m is not None:
                t, actor, event, name, addr = m.groups()
                yield {"t": int(t), "actor": actor, "event": event, "name": name, "lock_addr": addr}
            elif line.strip():
                yield loads(line)


class _Writer:
    """Writes the traceEvents array one event per line, buffered (:meth:`flush` writes)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.sep = "\n"
        self.count = 0
        #: rendered events not yet written (hot paths append to it directly)
        self.buf: list[str] = []

    def __call__(self, ev: dict[str, Any]) -> None:
        self.raw(_dumps(ev))

    def raw(self, line: str) -> None:
        """One event already rendered as JSON (the hot paths format their own)."""
        buf = self.buf
        buf.append(line)
        if len(buf) >= 65536:
            self.flush()

    def flush(self) -> None:
        buf = self.buf
        if buf:
            self.out.write(self.sep + ",\n".join(buf))
            self.sep = ",\n"
            self.count += len(buf)
            buf.clear()


class _Tracks:
    """Assigns thread ids to actors and locks, in order of first appearance (deterministic)."""

    def __init__(self, emit: _Writer) -> None:
        self.emit = emit
        self.ids: dict[tuple[int, str], int] = {}
        self.per_pid: dict[int, int] = {}
        self.lock_base: dict[str, int] = {}
        self.lock_used: dict[str, int] = {}
        #: actor name -> (pid, tid)
        self.keys: dict[str, tuple[int, int]] = {}

    def lock(self, addr: str, sub: str = "") -> int:
        """A track of lock ``addr``: its holds (no ``sub``), or e.g. ``wait cpu3``. A lock's
        tracks get neighbouring ids (1000 * k + n), so they sort together."""
        name = f"{addr} {sub}" if sub else addr
        tid = self.ids.get((PID_LOCKS, name))
        if tid is not None:
            return tid
        base = self.lock_base.setdefault(addr, 1000 * (len(self.lock_base) + 1))
        n = self.lock_used.get(addr, 0)
        self.lock_used[addr] = n + 1
        return self.tid(PID_LOCKS, name, fixed=base + n)

    def tid(self, pid: int, name: str, sort: int | None = None, fixed: int = 0) -> int:
        key = (pid, name)
        tid = self.ids.get(key)
        if tid is None:
            self.per_pid[pid] = self.per_pid.get(pid, 0) + 1
            tid = self.ids[key] = fixed or self.per_pid[pid]
            self.emit(
                {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}}
            )
            self.emit(
                {
                    "ph": "M",
                    "pid": pid,
                    "tid": tid,
                    "name": "thread_sort_index",
                    "args": {"sort_index": tid if sort is None else sort},
                }
            )
        return tid

    def actor(self, name: str) -> tuple[int, int]:
        """(pid, tid) of an actor's track: CPUs under "CPUs", the others under "kernel threads"."""
        key = self.keys.get(name)
        if key is None:
            if name.startswith("cpu") and name[3:].isdigit():
                key = PID_CPUS, self.tid(PID_CPUS, name, int(name[3:]))
            else:
                key = PID_KTHREADS, self.tid(PID_KTHREADS, name)
            self.keys[name] = key
        return key


def _slice_name(fields: dict[str, Any], base: str) -> str:
    if base in ("alloc", "free", "slowpath") and "order" in fields:
        return f"{base} order={fields['order']}"
    return base


#: lock track policies (``--trace-locks``): which holds are drawn (waits always are)
LOCK_POLICIES = ("zone", "contended", "all")
#: the locks whose every hold the default ``zone`` policy draws (pcp->lock is a CPU's own)
_ZONE_POLICY_HOLDS = ("zone->lock", "lru_lock", "pcpu_drain_mutex")
#: every event the trace uses: the converter ignores the rest of the log
TRACE_EVENTS = frozenset(
    (
        *_PAIRS,
        *_ENDS,
        *_INSTANTS,
        *_ISOLATION,
        *_LOCK_EVENTS,
        "mmemu_alloc_parts",
    )
)


def holds_drawn(addr: str, policy: str) -> bool:
    """Whether the ``policy`` draws every hold of the lock labelled ``addr``."""
    return policy == "all" or (policy == "zone" and addr.startswith(_ZONE_POLICY_HOLDS))


def _us(t_ns: int) -> str:
    """Virtual ns as the format's µs (the shortest repr of the float)."""
    return repr(t_ns / 1000)


class TraceConverter:
    """Turns events (in time order) into trace events as they come: :meth:`feed` per event,
    :meth:`finish` at the end (closes what is still open). Used by :func:`write_trace` (from
    an events.jsonl file) and by :class:`~emulator.report.trace_capture.TraceCapture` (during
    the run, from the recorder's tuples).

    ``locks`` (one of :data:`LOCK_POLICIES`) chooses the lock holds drawn: ``all`` every hold
    of every lock; ``contended`` only the holds some other actor waited behind, of every lock;
    ``zone`` (the default) every hold of ``zone->lock``, ``lru_lock`` and ``pcpu_drain_mutex``
    and none of a CPU's own ``pcp->lock``. Every wait is drawn whatever the policy.

    Volume: a slice with nothing nested is one ``X`` event at its end (a slice with children
    is ``B`` .. ``E``); an allocation or free with nothing nested (a pcp hit or a quick buddy
    allocation, the bulk of a run) carries no args (its ``mm_page_alloc`` or ``mm_page_free``
    line in events.jsonl, at the same time, has them; a failure keeps them); lock holds carry
    no args (the track names the lock, the slice the holder).
    """

    def __init__(self, emit: _Writer, locks: str = "zone") -> None:
        if locks not in LOCK_POLICIES:
            raise ValueError(f"lock policy {locks!r}: expected one of {', '.join(LOCK_POLICIES)}")
        self.emit = emit
        self.locks = locks
        self.tracks = _Tracks(emit)
        self.stacks: dict[tuple[int, int], list[list[Any]]] = {}
        #: open holds: lock -> [t0 (ns), holder, lockdep name, contended]
        self.holds: dict[str, list[Any]] = {}
        self.hold_lanes: dict[str, list[int]] = {}
        self.hold_json: dict[str, str] = {}
        self.all_holds: dict[str, bool] = {}
        self.waits: dict[tuple[str, str], int] = {}
        self.zone_waiters: dict[str, int] = {}
        self.isolated: dict[str, tuple[int, int]] = {}
        self.pending_flows: dict[tuple[int, int], list[tuple[int, float]]] = {}
        self.counts = {
            "slices": 0,
            "flows": 0,
            "instants": 0,
            "lock_holds": 0,
            "lock_waits": 0,
            "lock_holds_omitted": 0,
        }
        self.next_id = 1
        self.last_t = 0
        #: allocation latency per order and zone->lock waits (ns), for the plots
        self.alloc_latency: dict[int, list[int]] = {}
        self.zone_lock_waits: dict[str, list[tuple[int, int]]] = {}
        self._alloc_t0: dict[str, int] = {}
        self._names: dict[tuple[str, object], str] = {}

    # -- slices on actor tracks --------------------------------------------------------------

    def _name(self, base: str, fields: dict[str, Any]) -> str:
        """The slice's name as JSON (cached per base and order)."""
        order = fields.get("order") if base in ("alloc", "free", "slowpath") else None
        js = self._names.get((base, order))
        if js is None:
            js = self._names[(base, order)] = _dumps(
                base if order is None else f"{base} order={order}"
            )
        return js

    def _open(self, key: tuple[int, int], base: str, t: int, fields: dict[str, Any]) -> None:
        """Push a slice; it is written when it gets a child (``B``) or ends (``X``)."""
        stack = self.stacks.get(key)
        if stack is None:
            stack = self.stacks[key] = []
        elif stack and not stack[-1][2]:
            self._write_begin(key, stack[-1])
        stack.append([base, t, False, fields])
        self.counts["slices"] += 1

    def _materialize(self, key: tuple[int, int]) -> None:
        """Write the ``B`` of every slice still pending on ``key`` (before an instant there,
        so that the track's timestamps stay in order)."""
        for entry in self.stacks.get(key, ()):
            if not entry[2]:
                self._write_begin(key, entry)

    def _write_begin(self, key: tuple[int, int], entry: list[Any]) -> None:
        base, t, _, fields = entry
        entry[2] = True
        self.emit.raw(
            f'{{"ph":"B","pid":{key[0]},"tid":{key[1]},"ts":{_us(t)},'
            f'"name":{self._name(base, fields)},"cat":"mm","args":{_dumps(fields)}}}'
        )

    def _close(
        self, key: tuple[int, int], name: str, t: int, args: dict[str, Any] | None = None
    ) -> bool:
        stack = self.stacks.get(key)
        if not stack:
            return False
        if stack[-1][0] != name and all(e[0] != name for e in stack):
            return False
        raw = self.emit.raw
        while stack:
            n, t0, begun, fields = stack.pop()
            last = n == name
            if not begun:
                # a leaf: one complete event instead of B and E
                head = (
                    f'{{"ph":"X","pid":{key[0]},"tid":{key[1]},"ts":{_us(t0)},'
                    f'"dur":{_us(t - t0)},"name":{self._name(n, fields)}'
                )
                if n in ("alloc", "free") and not (last and args and args.get("pfn", 0) < 0):
                    raw(head + "}")
                else:
                    merged = fields if not (last and args) else {**fields, **args}
                    raw(head + f',"cat":"mm","args":{_dumps(merged)}}}')
            elif last and args:
                raw(
                    f'{{"ph":"E","pid":{key[0]},"tid":{key[1]},"ts":{_us(t)},'
                    f'"args":{_dumps(args)}}}'
                )
            else:
                raw(f'{{"ph":"E","pid":{key[0]},"tid":{key[1]},"ts":{_us(t)}}}')
            if last:
                return True
        return True

    # -- locks -------------------------------------------------------------------------------

    def _draws_all(self, addr: str) -> bool:
        d = self.all_holds.get(addr)
        if d is None:
            d = self.all_holds[addr] = holds_drawn(addr, self.locks)
        return d

    def _hold_slice(self, addr: str, t0: int, t1: int, holder: str) -> None:
        lanes = self.hold_lanes.get(addr)
        if lanes is None:
            lanes = self.hold_lanes[addr] = []
        if lanes and lanes[0] <= t0:
            lane = 0
            lanes[0] = t1
        else:
            lane = next((i for i, end in enumerate(lanes) if end <= t0), len(lanes))
            if lane == len(lanes):
                lanes.append(t1)
            else:
                lanes[lane] = t1
        tid = self.tracks.lock(addr, f"({lane})" if lane else "")
        tail = self.hold_json.get(holder)
        if tail is None:
            tail = self.hold_json[holder] = (
                f'"name":{_dumps(f"held by {holder}")},"cat":"lock_hold"}}'
            )
        self.emit.raw(
            f'{{"ph":"X","pid":{PID_LOCKS},"tid":{tid},"ts":{_us(t0)},"dur":{_us(t1 - t0)},' + tail
        )
        self.counts["lock_holds"] += 1

    def _waiters_counter(self, addr: str, t: int, delta: int) -> None:
        n = self.zone_waiters[addr] = self.zone_waiters.get(addr, 0) + delta
        self.emit.raw(
            f'{{"ph":"C","pid":{PID_COUNTERS},"ts":{_us(t)},"name":{_dumps(f"waiters {addr}")},'
            f'"args":{{"waiters":{n}}}}}'
        )

    # -- the event loop ------------------------------------------------------------------------

    def feed_batch(self, batch: list[tuple[Any, ...]]) -> None:
        """Feed ``(t, n, actor, event, fields)`` entries in order: :meth:`feed` for each, with
        the most frequent cases (leaf allocations and frees, lock holds) inlined."""
        stacks = self.stacks
        keys = self.tracks.keys
        actor_key = self.tracks.actor
        names = self._names
        holds = self.holds
        waits = self.waits
        alloc_t0 = self._alloc_t0
        latency = self.alloc_latency
        pending_flows = self.pending_flows
        buf = self.emit.buf
        append = buf.append
        feed = self.feed
        close = self._close
        slices = 0
        t = self.last_t
        for t, _n, actor, name, fields in batch:
            if name == "mmemu_free_begin" or name == "mmemu_alloc_begin":
                if actor is None:
                    actor = "kernel"
                key = keys.get(actor) or actor_key(actor)
                stack = stacks.get(key)
                if stack is None:
                    stack = stacks[key] = []
                elif stack and not stack[-1][2]:
                    self._write_begin(key, stack[-1])
                if name[6] == "a":
                    alloc_t0[actor] = t
                    stack.append(["alloc", t, False, fields])
                else:
                    stack.append(["free", t, False, fields])
                slices += 1
            elif name == "mmemu_free_end" or name == "mm_page_alloc":
                if actor is None:
                    actor = "kernel"
                key = keys.get(actor) or actor_key(actor)
                stack = stacks.get(key)
                base = "free" if name[0] == "m" and name[2] == "e" else "alloc"
                if (
                    stack
                    and stack[-1][0] == base
                    and not stack[-1][2]
                    and (base == "free" or (fields["pfn"] >= 0 and key not in pending_flows))
                ):
                    _b, t0, _begun, bfields = stack.pop()
                    if base == "alloc":
                        a0 = alloc_t0.pop(actor, None)
                        if a0 is not None:
                            lat = latency.get(fields["order"])
                            if lat is None:
                                lat = latency[fields["order"]] = []
                            lat.append(t - a0)
                    order = bfields.get("order")
                    nm = names.get((base, order))
                    if nm is None:
                        nm = self._name(base, bfields)
                    append(
                        f'{{"ph":"X","pid":{key[0]},"tid":{key[1]},"ts":{t0 / 1000!r},'
                        f'"dur":{(t - t0) / 1000!r},"name":{nm}}}'
                    )
                elif base == "free":
                    close(key, "free", t, fields)
                else:
                    self._end(t, actor, name, fields)
            elif name == "lock_acquired":
                addr = fields["lock_addr"]
                waited = any(a == addr for a, _ in waits) if waits else False
                holds[addr] = [t, actor or "kernel", fields.get("name"), waited]
            elif name == "lock_release":
                self._release(t, actor, fields)
            else:
                feed(t, actor, name, fields)
        self.last_t = t
        self.counts["slices"] += slices
        self.emit.flush()

    def _acquired(self, t: int, actor: str | None, fields: dict[str, Any]) -> None:
        self.last_t = t
        addr = fields["lock_addr"]
        waits = self.waits
        waited = any(a == addr for a, _ in waits) if waits else False
        self.holds[addr] = [t, actor or "kernel", fields.get("name"), waited]

    def _release(self, t: int, actor: str | None, fields: dict[str, Any]) -> None:
        self.last_t = t
        addr = fields["lock_addr"]
        got = self.holds.pop(addr, None)
        if got is not None:
            if self._draws_all(addr) or (got[3] and self.locks == "contended"):
                self._hold_slice(addr, got[0], t, got[1])
            else:
                self.counts["lock_holds_omitted"] += 1

    def feed(self, t: int, actor: str | None, name: str, fields: dict[str, Any]) -> None:
        """One event (``fields`` without ``t``, ``actor``, ``event``); events come in time order."""
        self.last_t = t
        actor = actor or "kernel"
        if name == "lock_acquired":
            self._acquired(t, actor, fields)
        elif name == "lock_release":
            self._release(t, actor, fields)
        elif name in _PAIRS:
            key = self.tracks.actor(actor)
            base = _PAIRS[name][1]
            if base == "alloc":
                self._alloc_t0[actor] = t
            elif base in ("kswapd", "kcompactd"):
                self._close(key, base, t)  # a wake while awake: one slice per wake
            self._open(key, base, t, fields)
        elif name in _ENDS:
            self._end(t, actor, name, fields)
        elif name == "contention_begin":
            addr = fields["lock_addr"]
            self.waits[(addr, actor)] = t
            held = self.holds.get(addr)
            if held is not None:
                held[3] = True
            self.tracks.lock(addr)
            if addr.startswith("zone->lock"):
                self._waiters_counter(addr, t, 1)
        elif name == "contention_end":
            addr = fields["lock_addr"]
            t0 = self.waits.pop((addr, actor), -1)
            if t0 >= 0:
                _wait_slice(self.emit, self.tracks, addr, actor, t0, t)
                self.counts["lock_waits"] += 1
                if addr.startswith("zone->lock"):
                    self._waiters_counter(addr, t, -1)
                    self.zone_lock_waits.setdefault(addr, []).append((t0, t))
        elif name == "mmemu_alloc_parts":
            self._alloc_parts(actor, fields)
        elif name in _INSTANTS:
            key = self.tracks.actor(actor)
            self._materialize(key)
            self.emit.raw(
                f'{{"ph":"i","s":"t","pid":{key[0]},"tid":{key[1]},"ts":{_us(t)},'
                f'"name":{_dumps(name)},"cat":"mm","args":{_dumps(fields)}}}'
            )
            self.counts["instants"] += 1
        if name in _ISOLATION:
            self._isolation(actor, t, name, fields)

    def _alloc_parts(self, actor: str, fields: dict[str, Any]) -> None:
        """An allocation's latency parts (emulator.mm.alloc_latency) as nested slices on the
        actor's ``latency parts`` track: ``alloc order=N`` over one child per segment."""
        segs = fields.get("segments") or []
        if not segs:
            return
        pid, tid = self.tracks.actor(actor)
        ptid = self.tracks.tid(pid, f"{actor} latency parts", sort=10_000 + tid)
        t0 = segs[0][0]
        t1 = segs[-1][0] + segs[-1][1]
        raw = self.emit.raw
        name = _dumps(f"alloc order={fields.get('order')}")
        raw(f'{{"ph":"B","pid":{pid},"tid":{ptid},"ts":{_us(t0)},"name":{name},"cat":"latency"}}')
        for start, ns, part in segs:
            raw(
                f'{{"ph":"X","pid":{pid},"tid":{ptid},"ts":{_us(start)},"dur":{_us(ns)},'
                f'"name":{_dumps(PARTS[part])},"cat":"latency"}}'
            )
        raw(f'{{"ph":"E","pid":{pid},"tid":{ptid},"ts":{_us(t1)}}}')
        self.counts["slices"] += 1 + len(segs)

    def _end(self, t: int, actor: str, name: str, fields: dict[str, Any]) -> None:
        key = self.tracks.actor(actor)
        base = _ENDS[name]
        if name == "mm_page_alloc":
            t0 = self._alloc_t0.pop(actor, None)
            if t0 is not None:
                self.alloc_latency.setdefault(int(fields.get("order", 0)), []).append(t - t0)
            if key in self.pending_flows:
                ok = fields.get("pfn", -1) >= 0
                fname = f"compaction→alloc {'satisfied' if ok else 'lost'}"
                for fid, t_from in self.pending_flows.pop(key):
                    self._flow(key, fid, fname, t_from, t / 1000)
        elif name == "mm_compaction_end":
            stack = self.stacks.get(key, [])
            if any(e[0] == "alloc" for e in stack):
                # Perfetto pairs s and f by (id, cat, name), and the name tells the outcome,
                # known only when the allocation ends: both are written then. The start sits
                # half a ns before this end (the virtual clock ticks in whole ns), so it binds
                # to the compact_zone slice still open there; that slice is written as B/E.
                top = stack[-1] if stack and stack[-1][0] == "compact_zone" else None
                began = top[1] if top is not None else t
                if top is not None and not top[2]:
                    self._write_begin(key, top)
                t_from = max(began / 1000, t / 1000 - 0.0005)
                self.pending_flows.setdefault(key, []).append((self.next_id, t_from))
                self.next_id += 1
        self._close(key, base, t, fields)
        if name == "mm_page_alloc" and fields.get("pfn", 0) < 0:
            self.emit(
                {
                    "ph": "i",
                    "s": "t",
                    "pid": key[0],
                    "tid": key[1],
                    "ts": t / 1000,
                    "name": f"alloc failure order={fields.get('order')}",
                    "cat": "failure",
                    "args": fields,
                }
            )
            self.counts["instants"] += 1

    def _flow(self, key: tuple[int, int], fid: int, name: str, t0: float, t1: float) -> None:
        _flow(self.emit, key, fid, name, t0, t1)
        self.counts["flows"] += 1

    def _isolation(self, actor: str, t: int, name: str, fields: dict[str, Any]) -> None:
        isolated = self.isolated
        mig, free = isolated.get(actor, (0, 0))
        taken = int(fields.get("nr_taken", 0))
        if name == "mm_compaction_isolate_migratepages":
            mig += taken
        elif name == "mm_compaction_migratepages":
            done = int(fields.get("nr_migrated", 0))
            mig = max(0, mig - done - int(fields.get("nr_failed", 0)))
            free = max(0, free - done)  # the new pages the migrated ones moved to
        elif name == "mm_compaction_end":
            mig, free = 0, 0  # putback and release_free_list
        else:
            free += taken
        isolated[actor] = (mig, free)
        self.emit(
            {
                "ph": "C",
                "pid": PID_COUNTERS,
                "ts": t / 1000,
                "name": "pages isolated by compaction",
                "args": {
                    "migrate": sum(m for m, _ in isolated.values()),
                    "free": sum(f for _, f in isolated.values()),
                },
            }
        )

    def finish(self) -> dict[str, int]:
        """Close whatever is still open at the end (a run cut at its deadline); the counts."""
        last_t = self.last_t
        for addr, (t0, holder, lname, _) in sorted(self.holds.items()):
            tid = self.tracks.lock(addr)
            self.emit(
                {
                    "ph": "X",
                    "pid": PID_LOCKS,
                    "tid": tid,
                    "ts": t0 / 1000,
                    "dur": max(0, last_t - t0) / 1000,
                    "name": f"held by {holder}",
                    "cat": "lock_hold",
                    "args": {"lock": lname},
                }
            )
        self.holds.clear()
        for (addr, waiter), t0 in sorted(self.waits.items()):
            _wait_slice(self.emit, self.tracks, addr, waiter, t0, last_t)
        self.waits.clear()
        for key, pending in sorted(self.pending_flows.items()):
            for fid, t_from in pending:
                self._flow(key, fid, "compaction→alloc unfinished", t_from, last_t / 1000)
        self.pending_flows.clear()
        for key in sorted(self.stacks):
            stack = self.stacks[key]
            while stack:
                self._close(key, stack[0][0], last_t)
        return self.counts


def _wait_slice(emit: _Writer, tracks: _Tracks, addr: str, waiter: str, t0: int, t1: int) -> None:
    """One wait for a lock (times in ns), on the track of that lock's waits by that actor (an
    actor waits for one lock at a time, so its waits never overlap there)."""
    tid = tracks.lock(addr, f"wait {waiter}")
    emit.raw(
        f'{{"ph":"X","pid":{PID_LOCKS},"tid":{tid},"ts":{_us(t0)},"dur":{_us(t1 - t0)},'
        f'"name":{_dumps(f"{waiter} waits")},"cat":"lock_wait",'
        f'"args":{_dumps({"lock": addr, "waiter": waiter})}}}'
    )


def _flow(emit: _Writer, key: tuple[int, int], fid: int, name: str, t0: float, t1: float) -> None:
    """A v1 flow arrow on one thread: ``s`` at ``t0``, ``f`` binding the slice open at ``t1``."""
    for ph, t in (("s", t0), ("f", t1)):
        ev = {"ph": ph, "pid": key[0], "tid": key[1], "ts": t, "name": name, "cat": "flow"}
        ev["id"] = fid
        if ph == "f":
            ev["bp"] = "e"
        emit(ev)


def _counters(summary: RunSummary, emit: _Writer) -> None:
    """Counter tracks from the sampler's time series in summary.json."""
    series = summary.series
    ts_ns = series.t_ns
    proactiveness = proactiveness_of(summary)
    low, high = fragmentation_marks(proactiveness)
    for i, t in enumerate(ts_ns):
        ts = t / 1000
        per_order = series.free_pages_per_order
        if i < len(per_order):
            emit(
                {
                    "ph": "C",
                    "pid": PID_COUNTERS,
                    "ts": ts,
                    "name": "free pages per order",
                    "args": {f"order{o}": v for o, v in enumerate(per_order[i])},
                }
            )
        scores = series.fragmentation_score
        if i < len(scores):
            for node, score in enumerate(scores[i]):
                emit(
                    {
                        "ph": "C",
                        "pid": PID_COUNTERS,
                        "ts": ts,
                        "name": f"fragmentation score node{node}",
                        "args": {"score": score, "low": low, "high": high},
                    }
                )
        pcp = series.pcp_pages
        if i < len(pcp):
            emit(
                {
                    "ph": "C",
                    "pid": PID_COUNTERS,
                    "ts": ts,
                    "name": "pcp pages",
                    "args": {"pages": pcp[i]},
                }
            )
        free = series.nr_free_pages
        if i < len(free):
            emit(
                {
                    "ph": "C",
                    "pid": PID_COUNTERS,
                    "ts": ts,
                    "name": "nr_free_pages",
                    "args": {"pages": free[i]},
                }
            )


def write_header(f: IO[str]) -> _Writer:
    """Start a trace file: the opening and the process names; returns its event writer."""
    f.write('{"displayTimeUnit":"ns","traceEvents":[')
    emit = _Writer(f)
    for pid, pname in (
        (PID_CPUS, "CPUs"),
        (PID_KTHREADS, "kernel threads"),
        (PID_LOCKS, "locks"),
        (PID_COUNTERS, "counters"),
    ):
        emit({"ph": "M", "pid": pid, "tid": 0, "name": "process_name", "args": {"name": pname}})
        emit(
            {
                "ph": "M",
                "pid": pid,
                "tid": 0,
                "name": "process_sort_index",
                "args": {"sort_index": pid},
            }
        )
    return emit


def write_footer(f: IO[str], emit: _Writer, summary: RunSummary, counts: dict[str, Any]) -> None:
    """End a trace file: the sampler's counters and ``otherData``."""
    _counters(summary, emit)
    emit.flush()
    other = {
        "scenario": summary.scenario,
        "seed": summary.seed,
        "virtual_ns": summary.virtual_ns,
        "time": "virtual (kernel ns shown as µs with a fractional part)",
        **counts,
    }
    f.write('\n],"otherData":')
    f.write(_dumps(other))
    f.write("}\n")


def write_trace(run_dir: Path, out: Path | None = None, locks: str = "zone") -> Path:
    """Write ``trace.json`` for the results folder ``run_dir`` from its events.jsonl (a run
    traced while it ran has it already: see :mod:`emulator.report.trace_capture`)."""
    run_dir = Path(run_dir)
    out = out or run_dir / "trace.json"
    summary = load_summary(run_dir)
    events_path = run_dir / "events.jsonl"
    tmp = out.with_suffix(".json.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        emit = write_header(f)
        counts: dict[str, int] = {}
        if events_path.exists():
            conv = TraceConverter(emit, locks)
            wanted = TRACE_EVENTS
            batch: list[tuple[Any, ...]] = []
            for ev in read_events(events_path):
                name = ev.pop("event")
                if name in wanted:
                    t = ev.pop("t")
                    batch.append((t, 0, ev.pop("actor", None), name, ev))
                    if len(batch) >= 65536:
                        conv.feed_batch(batch)
                        batch.clear()
            conv.feed_batch(batch)
            counts = conv.finish()
        write_footer(f, emit, summary, counts)
    tmp.replace(out)
    return out
