"""A run as a Chrome JSON trace (``trace.json``), for ui.perfetto.dev or chrome://tracing.

Built after the run from ``events.jsonl`` and ``summary.json``; the model knows nothing of it.
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
  per lock instance a ``hold`` thread of complete (``X``) slices, from lockdep's
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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "enable_lock_events",
    "fragmentation_marks",
    "proactiveness_of",
    "read_events",
    "write_trace",
]

PID_CPUS, PID_KTHREADS, PID_LOCKS, PID_COUNTERS = 1, 2, 3, 4
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: kernel begin/end tracepoint pairs drawn as nested slices: begin event -> (end event, name)
_PAIRS: dict[str, tuple[str, str]] = {
    "mmemu_alloc_begin": ("mm_page_alloc", "alloc"),
    "mmemu_free_begin": ("mmemu_free_end", "free"),
    "mmemu_slowpath_begin": ("mmemu_slowpath_end", "slowpath"),
    "mm_compaction_begin": ("mm_compaction_end", "compact_zone"),
    "mm_vmscan_direct_reclaim_begin": ("mm_vmscan_direct_reclaim_end", "direct_reclaim"),
    "mm_vmscan_kswapd_wake": ("mm_vmscan_kswapd_sleep", "kswapd"),
    "mm_compaction_kcompactd_wake": ("mm_compaction_kcompactd_sleep", "kcompactd"),
}
_ENDS = {end: name for end, name in _PAIRS.values()}
#: compaction events that move the "pages isolated" counter (migrate and free side)
_ISOLATION = frozenset(
    (
        "mm_compaction_isolate_migratepages",
        "mm_compaction_isolate_freepages",
        "mm_compaction_fast_isolate_freepages",
        "mm_compaction_migratepages",
        "mm_compaction_end",
    )
)
_INSTANTS = ("mm_compaction_deferred", "mm_page_alloc_extfrag", "mm_compaction_defer_reset")


def fragmentation_marks(proactiveness: int) -> tuple[int, int]:
    """mm/compaction.c: fragmentation_score_wmark — (low, high) for a proactiveness value."""
    low = max(100 - proactiveness, 5)
    return low, min(low + 10, 100)


def proactiveness_of(summary: dict) -> int:
    """vm.compaction_proactiveness of a run (its ``--set`` value, else the kernel's 20)."""
    params = summary.get("params") or {}
    value = params.get("vm.compaction_proactiveness")
    if value is None:
        value = (params.get("sysctls") or {}).get("vm.compaction_proactiveness", 20)
    return int(value)


def enable_lock_events(allocator: Any, rec: Any) -> int:
    """Turn on the lock.h event hook of every lock the allocator has; returns how many.

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
    for lock, label in locks:
        lock.traced(rec, label)
    return len(locks)


#: the recorder's rendering of a lockdep hold event (the most frequent lines of a traced run):
#: parsed without the JSON decoder; anything else (or any surprise) goes through json.loads
_LOCK_LINE = re.compile(
    r'^\{"t":(\d+),"actor":"([^"\\]*)","event":"(lock_acquired|lock_release)",'
    r'"name":"([^"\\]*)","lock_addr":"([^"\\]*)"\}$'
)


def read_events(path: Path) -> Iterator[dict]:
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


def _us(t_ns: int) -> float:
    return t_ns / 1000


class _Writer:
    """Writes the traceEvents array one event per line."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.first = True
        self.count = 0

    def __call__(self, ev: dict) -> None:
        self.raw(_dumps(ev))

    def raw(self, line: str) -> None:
        """One event already rendered as JSON (the hot paths format their own)."""
        self.out.write("\n" if self.first else ",\n")
        self.first = False
        self.out.write(line)
        self.count += 1


class _Tracks:
    """Assigns thread ids to actors and locks, in order of first appearance (deterministic)."""

    def __init__(self, emit: _Writer) -> None:
        self.emit = emit
        self.ids: dict[tuple[int, str], int] = {}
        self.per_pid: dict[int, int] = {}
        self.lock_base: dict[str, int] = {}
        self.lock_used: dict[str, int] = {}

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
        if name.startswith("cpu") and name[3:].isdigit():
            return PID_CPUS, self.tid(PID_CPUS, name, int(name[3:]))
        return PID_KTHREADS, self.tid(PID_KTHREADS, name)


def _slice_name(ev: dict, base: str) -> str:
    if "order" in ev and base in ("alloc", "free", "slowpath"):
        return f"{base} order={ev['order']}"
    return base


def _args(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if k not in ("t", "actor", "event")}


def _wait_slice(
    emit: _Writer, tracks: _Tracks, addr: str, waiter: str, t0: float, t1: float
) -> None:
    """One wait for a lock, on the track of that lock's waits by that actor (an actor waits
    for one lock at a time, so its waits never overlap there)."""
    tid = tracks.lock(addr, f"wait {waiter}")
    emit(
        {
            "ph": "X",
            "pid": PID_LOCKS,
            "tid": tid,
            "ts": t0,
            "dur": t1 - t0,
            "name": f"{waiter} waits",
            "cat": "lock_wait",
            "args": {"lock": addr, "waiter": waiter},
        }
    )


def _flow(emit: _Writer, key: tuple[int, int], fid: int, name: str, t0: float, t1: float) -> None:
    """A v1 flow arrow on one thread: ``s`` at ``t0``, ``f`` binding the slice open at ``t1``."""
    for ph, t in (("s", t0), ("f", t1)):
        ev = {"ph": ph, "pid": key[0], "tid": key[1], "ts": t, "name": name, "cat": "flow"}
        ev["id"] = fid
        if ph == "f":
            ev["bp"] = "e"
        emit(ev)


def _convert(events: Iterable[dict], emit: _Writer) -> dict[str, int]:
    """Every per-event track; returns counts for the caller's otherData."""
    tracks = _Tracks(emit)
    stacks: dict[tuple[int, int], list[tuple[str, float]]] = {}
    holds: dict[str, tuple[float, str, dict]] = {}
    hold_lanes: dict[str, list[float]] = {}
    hold_json: dict[tuple[object, str], str] = {}
    waits: dict[tuple[str, str], float] = {}
    zone_waiters: dict[str, int] = {}
    isolated: dict[str, tuple[int, int]] = {}
    pending_flows: dict[tuple[int, int], list[tuple[int, float]]] = {}
    counts = {"slices": 0, "flows": 0, "instants": 0, "lock_holds": 0, "lock_waits": 0}
    next_id = 1
    last_t = 0.0

    def close(key: tuple[int, int], name: str, ts: float, args: dict | None = None) -> bool:
        stack = stacks.get(key)
        if not stack or all(n != name for n, _ in stack):
            return False
        while stack:
            n, _ = stack.pop()
            if n == name and args:
                emit({"ph": "E", "pid": key[0], "tid": key[1], "ts": ts, "args": args})
                return True
            emit.raw(f'{{"ph":"E","pid":{key[0]},"tid":{key[1]},"ts":{ts!r}}}')
            if n == name:
                return True
        return True

    for ev in events:
        name = ev["event"]
        ts = _us(ev["t"])
        last_t = ts
        actor = ev.get("actor") or "kernel"
        if name in _PAIRS:
            key = tracks.actor(actor)
            base = _PAIRS[name][1]
            if base in ("kswapd", "kcompactd"):
                close(key, base, ts)  # a wake while awake: one slice per wake
            sname = _slice_name(ev, base)
            stacks.setdefault(key, []).append((base, ts))
            emit(
                {
                    "ph": "B",
                    "pid": key[0],
                    "tid": key[1],
                    "ts": ts,
                    "name": sname,
                    "cat": "mm",
                    "args": _args(ev),
                }
            )
            counts["slices"] += 1
        elif name in _ENDS:
            key = tracks.actor(actor)
            base = _ENDS[name]
            if name == "mm_page_alloc" and key in pending_flows:
                ok = ev.get("pfn", -1) >= 0
                fname = f"compaction→alloc {'satisfied' if ok else 'lost'}"
                for fid, t_from in pending_flows.pop(key):
                    _flow(emit, key, fid, fname, t_from, ts)
                    counts["flows"] += 1
            if name == "mm_compaction_end":
                stack = stacks.get(key, [])
                if any(n == "alloc" for n, _ in stack):
                    # Perfetto pairs s and f by (id, cat, name), and the name tells the
                    # outcome, known only when the allocation ends: both are written then. The
                    # start sits half a ns before this end (the virtual clock ticks in whole
                    # ns), so it binds to the compact_zone slice still open there.
                    began = stack[-1][1] if stack and stack[-1][0] == "compact_zone" else ts
                    t_from = max(began, ts - 0.0005)
                    pending_flows.setdefault(key, []).append((next_id, t_from))
                    next_id += 1
            close(key, base, ts, _args(ev))
            if name == "mm_page_alloc" and ev.get("pfn", 0) < 0:
                emit(
                    {
                        "ph": "i",
                        "s": "t",
                        "pid": key[0],
                        "tid": key[1],
                        "ts": ts,
                        "name": f"alloc failure order={ev.get('order')}",
                        "cat": "failure",
                        "args": _args(ev),
                    }
                )
                counts["instants"] += 1
        elif name in _INSTANTS:
            key = tracks.actor(actor)
            emit(
                {
                    "ph": "i",
                    "s": "t",
                    "pid": key[0],
                    "tid": key[1],
                    "ts": ts,
                    "name": name,
                    "cat": "mm",
                    "args": _args(ev),
                }
            )
            counts["instants"] += 1
        elif name == "lock_acquired":
            holds[ev["lock_addr"]] = (ts, actor, ev)
        elif name == "lock_release":
            addr = ev["lock_addr"]
            got = holds.pop(addr, None)
            if got is not None:
                t0, holder, _ = got
                lanes = hold_lanes.setdefault(addr, [])
                lane = next((i for i, end in enumerate(lanes) if end <= t0), len(lanes))
                if lane == len(lanes):
                    lanes.append(ts)
                else:
                    lanes[lane] = ts
                tid = tracks.lock(addr, f"({lane})" if lane else "")
                hold_args = hold_json.get((ev.get("name"), holder))
                if hold_args is None:
                    hold_args = hold_json[(ev.get("name"), holder)] = (
                        f'"name":{_dumps(f"held by {holder}")},"cat":"lock_hold",'
                        f'"args":{_dumps({"lock": ev.get("name"), "holder": holder})}'
                    )
                emit.raw(
                    f'{{"ph":"X","pid":{PID_LOCKS},"tid":{tid},"ts":{t0!r},'
                    f'"dur":{ts - t0!r},{hold_args}}}'
                )
                counts["lock_holds"] += 1
        elif name == "contention_begin":
            addr = ev["lock_addr"]
            waits[(addr, actor)] = ts
            tracks.lock(addr)
            if addr.startswith("zone->lock"):
                zone_waiters[addr] = zone_waiters.get(addr, 0) + 1
                emit(
                    {
                        "ph": "C",
                        "pid": PID_COUNTERS,
                        "ts": ts,
                        "name": f"waiters {addr}",
                        "args": {"waiters": zone_waiters[addr]},
                    }
                )
        elif name == "contention_end":
            addr = ev["lock_addr"]
            t0 = waits.pop((addr, actor), -1.0)
            if t0 >= 0:
                _wait_slice(emit, tracks, addr, actor, t0, ts)
                counts["lock_waits"] += 1
                if addr.startswith("zone->lock"):
                    zone_waiters[addr] -= 1
                    emit(
                        {
                            "ph": "C",
                            "pid": PID_COUNTERS,
                            "ts": ts,
                            "name": f"waiters {addr}",
                            "args": {"waiters": zone_waiters[addr]},
                        }
                    )
        if name in _ISOLATION:
            mig, free = isolated.get(actor, (0, 0))
            taken = int(ev.get("nr_taken", 0))
            if name == "mm_compaction_isolate_migratepages":
                mig += taken
            elif name == "mm_compaction_migratepages":
                done = int(ev.get("nr_migrated", 0))
                mig = max(0, mig - done - int(ev.get("nr_failed", 0)))
                free = max(0, free - done)  # the new pages the migrated ones moved to
            elif name == "mm_compaction_end":
                mig, free = 0, 0  # putback and release_free_list
            else:
                free += taken
            isolated[actor] = (mig, free)
            emit(
                {
                    "ph": "C",
                    "pid": PID_COUNTERS,
                    "ts": ts,
                    "name": "pages isolated by compaction",
                    "args": {
                        "migrate": sum(m for m, _ in isolated.values()),
                        "free": sum(f for _, f in isolated.values()),
                    },
                }
            )
    # close whatever is still open at the end of the trace (a run cut at its deadline)
    for addr, (t0, holder, ev) in sorted(holds.items()):
        tid = tracks.lock(addr)
        emit(
            {
                "ph": "X",
                "pid": PID_LOCKS,
                "tid": tid,
                "ts": t0,
                "dur": max(0.0, last_t - t0),
                "name": f"held by {holder}",
                "cat": "lock_hold",
                "args": {"lock": ev.get("name")},
            }
        )
    for (addr, waiter), t0 in sorted(waits.items()):
        _wait_slice(emit, tracks, addr, waiter, t0, last_t)
    for key, pending in sorted(pending_flows.items()):
        for fid, t_from in pending:
            _flow(emit, key, fid, "compaction→alloc unfinished", t_from, last_t)
    for key in sorted(stacks):
        while stacks[key]:
            stacks[key].pop()
            emit({"ph": "E", "pid": key[0], "tid": key[1], "ts": last_t})
    return counts


def _counters(summary: dict, emit: _Writer) -> None:
    """Counter tracks from the sampler's time series in summary.json."""
    ts_ns = summary.get("timeseries", {}).get("t_ns", [])
    series = summary.get("timeseries", {})
    proactiveness = proactiveness_of(summary)
    low, high = fragmentation_marks(proactiveness)
    for i, t in enumerate(ts_ns):
        ts = _us(t)
        per_order = series.get("free_pages_per_order", [])
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
        scores = series.get("fragmentation_score", [])
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
        pcp = series.get("pcp_pages", [])
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
        free = series.get("nr_free_pages", [])
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


def write_trace(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``trace.json`` for the results folder ``run_dir``; returns its path."""
    run_dir = Path(run_dir)
    out = out or run_dir / "trace.json"
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    events_path = run_dir / "events.jsonl"
    tmp = out.with_suffix(".json.tmp")
    with tmp.open("w", encoding="utf-8") as f:
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
        counts: dict[str, int] = {}
        if events_path.exists():
            counts = _convert(read_events(events_path), emit)
        _counters(summary, emit)
        other = {
            "scenario": summary.get("scenario"),
            "seed": summary.get("seed"),
            "virtual_ns": summary.get("virtual_ns"),
            "time": "virtual (kernel ns shown as µs with a fractional part)",
            **counts,
        }
        f.write('\n],"otherData":')
        f.write(_dumps(other))
        f.write("}\n")
    tmp.replace(out)
    return out
