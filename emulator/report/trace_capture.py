"""Writing ``trace.json`` while the run runs, from the recorder's tuples: no second parse.

A timeline needs events the kernel's tracepoints do not give: lock.h's ``contention_begin`` /
``contention_end`` and lockdep's ``lock_acquired`` / ``lock_release`` (from the lock hook of
:class:`~emulator.engine.sync.SpinLock`), and mmemu's markers (``mmemu_alloc_begin``,
``mmemu_slowpath_begin/end``, ``mmemu_free_begin/end``). :class:`TraceCapture` takes them
instead of the recorder: they stay out of ``events.jsonl`` (which is the tracepoint log the
user asked for, byte-identical with and without the trace) unless ``--events`` selects them,
and are kept as compact tuples ``(t, n + j / 2**21, actor, event, fields)``. The recorder's tap
(:meth:`~emulator.engine.recorder.Recorder.set_tap`) hands over every batch it writes; the
capture merges the batch with its own tuples older than the same frontier, in emission order
(``n`` is the recorder's count when the tuple was made, ``j`` counts the capture's own since
then), and streams
them through :class:`~emulator.report.perfetto.TraceConverter` into ``trace.json.tmp``.
:meth:`TraceCapture.finish` adds the sampler's counters and renames it to ``trace.json``.

Volume: with the default lock policy ``zone`` a CPU's own ``pcp->lock`` reports only its
waits (``SpinLock.traced(..., holds=False)``): its holds, thousands of a few hundred ns each,
carry nothing a contention study needs; see :data:`~emulator.report.perfetto.LOCK_POLICIES`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from emulator.engine.recorder import compile_event_filter
from emulator.report.perfetto import (
    LOCK_POLICIES,
    TRACE_EVENTS,
    TraceConverter,
    holds_drawn,
    write_footer,
    write_header,
)
from emulator.run.summary import RunSummary

__all__ = ["TRACE_ONLY", "TraceCapture"]

#: the events recorded for the trace only (events.jsonl gets them only when ``--events`` asks)
TRACE_ONLY = frozenset(
    (
        "contention_begin",
        "contention_end",
        "lock_acquired",
        "lock_release",
        "mmemu_alloc_begin",
        "mmemu_alloc_parts",
        "mmemu_slowpath_begin",
        "mmemu_slowpath_end",
        "mmemu_free_begin",
        "mmemu_free_end",
    )
)
_HOLD_EVENTS = ("lock_acquired", "lock_release")
#: the fraction between two of the recorder's emission numbers, per captured event
_STEP = 2.0**-21


class TraceCapture:
    """Records the trace-only events and writes ``trace.json`` as the run goes (see module).

    ``rec`` is the run's recorder (its clock, its count, its tap), ``path`` the trace to write,
    ``locks`` one of :data:`~emulator.report.perfetto.LOCK_POLICIES`.
    """

    def __init__(self, rec: Any, path: Path, locks: str = "zone") -> None:
        if locks not in LOCK_POLICIES:
            raise ValueError(f"lock policy {locks!r}: expected one of {', '.join(LOCK_POLICIES)}")
        self.rec = rec
        self.path = Path(path)
        self.locks = locks
        self.pending: list[tuple[Any, ...]] = []
        self.k = 0
        self.stop: int | None = None
        #: trace-only events the user selected with ``--events``: they go to the recorder
        selected = compile_event_filter(rec.events_filter)
        self.to_recorder = frozenset(e for e in TRACE_ONLY if selected is not None and selected(e))
        self._tmp = self.path.with_suffix(".json.tmp")
        self._f: IO[str] | None = self._tmp.open("w", encoding="utf-8")
        self._emit = write_header(self._f)
        self.conv = TraceConverter(self._emit, locks)
        self.recorded = 0
        self._n = -1
        self._j = 0
        rec.set_tap(self)

    # -- the recording side (called by the model) ------------------------------------------

    def emit(self, event: str, **fields: Any) -> None:
        """Record one trace-only event (same call as :meth:`Recorder.emit`)."""
        if event in self.to_recorder:
            self.rec.emit(event, **fields)
            return
        rec = self.rec
        src = rec._source
        if src is not None:
            cur = src._current
            if cur is not None:
                t, actor = cur.now, cur.name
            else:
                t, actor = src._time, None
        else:
            t, actor = rec.clock(), rec.actor()
        # after the recorder's event n, before its n + 1: n + j / 2**21 for the capture's j-th
        # event since then (exact in a float; never equal to the recorder's ints), so plain
        # tuple sorts keep emission order and never compare further than the second item
        n = rec.count
        if n != self._n:
            self._n = n
            self._j = 0
        self._j = j = self._j + 1
        self.pending.append((t, n + j * _STEP, actor, event, fields))

    def holds_for(self, label: str) -> bool:
        """Whether the lock labelled ``label`` reports its holds under this capture's policy
        (else only its waits: the lock hook then costs nothing per uncontended hold)."""
        if self.locks == "contended" or holds_drawn(label, self.locks):
            return True
        return any(e in self.to_recorder for e in _HOLD_EVENTS)

    # -- the recorder's tap ------------------------------------------------------------------

    def discard_after(self, t: int) -> None:
        self.stop = t

    def flushed(self, entries: list[tuple[Any, ...]], before: int | None) -> None:
        """A batch the recorder writes (sorted), all older than ``before`` (None: the end)."""
        own = self.pending
        own.sort()
        if before is None:
            stop = self.stop
            mine = own if stop is None else [e for e in own if e[0] <= stop]
            rest: list[tuple[Any, ...]] = []
        else:
            lo, hi = 0, len(own)
            while lo < hi:
                mid = (lo + hi) >> 1
                if own[mid][0] < before:
                    lo = mid + 1
                else:
                    hi = mid
            mine, rest = own[:lo], own[lo:]
        self.pending = rest
        wanted = TRACE_EVENTS
        if entries and len(entries[0]) == 3:  # the structlog path: rendered lines
            batch = []
            for e in entries:
                d = json.loads(e[2])
                name = d.pop("event")
                if name in wanted:
                    batch.append((d.pop("t"), e[1], d.pop("actor", None), name, d))
        else:
            batch = [e for e in entries if e[3] in wanted]
        if not mine and not batch:
            return
        batch += mine
        batch.sort()  # two sorted runs: a linear merge
        self.conv.feed_batch(batch)
        self.recorded += len(mine)

    # -- the end -------------------------------------------------------------------------------

    def finish(self, summary: RunSummary) -> Path:
        """Close what is open, add the counters and ``otherData``, rename to ``trace.json``."""
        f = self._f
        if f is None:
            return self.path
        counts = self.conv.finish()
        counts["trace_only_events"] = self.recorded
        write_footer(f, self._emit, summary, {**counts, "trace_locks": self.locks})
        f.close()
        self._f = None
        self._tmp.replace(self.path)
        return self.path

    def abandon(self) -> None:
        """Drop the unfinished trace (a run that wrote no results)."""
        if self._f is not None:
            self._f.close()
            self._f = None
            self._tmp.unlink(missing_ok=True)
