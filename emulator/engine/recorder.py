"""The event recorder: tracepoint-style events stamped with virtual time, written as JSON lines.

Every state change worth seeing is an event named like the kernel tracepoint that reports it
(``mm_page_alloc``, ``mm_compaction_begin``, ...). A line is one compact JSON object whose keys
keep insertion order: ``t`` (virtual ns), ``actor``, ``event``, then the fields as given, so the
same run gives a byte-identical file.

Two paths produce the same bytes:

* **The public pipeline** is structlog: :func:`stamp` adds ``t`` and ``actor``, then any
  ``extra_processors`` (filters raising ``structlog.DropEvent``, enrichers), then
  :func:`render_json_line`. A recorder built with ``extra_processors`` runs it for every event.
* **The hot path** (no extra processors, the default): :meth:`Recorder.emit` only stores a tuple
  ``(t, n, actor, event, fields)`` and the line is rendered when it is written, by
  :func:`render_event`, from a template cached per tracepoint and field names. Field values are
  therefore read at write time: pass immutable values (ints, strings, tuples), as every
  tracepoint does. ``tests/engine/test_engine_recorder.py`` checks the two paths agree byte for
  byte.

Filtering: ``events="mm_compaction_*,mm_page_alloc"`` (kernel tracepoint globs, as
``trace-cmd record -e`` takes them) records only matching events; :attr:`Recorder.count` is the
number recorded and :attr:`Recorder.dropped` the number the filter left out.

Cost model: call sites guard with ``if rec.enabled:`` so a disabled recorder costs one attribute
load; :class:`NullRecorder` is the disabled recorder. An enabled recorder buffers events in
memory and writes them in chunks (and on :meth:`Recorder.close`, which also runs on
interruption).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable, MutableMapping
from typing import IO, Any

import structlog

__all__ = [
    "MemoryRecorder",
    "NullRecorder",
    "Recorder",
    "compile_event_filter",
    "render_event",
    "render_json_line",
    "stamp",
]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode

#: the keys every line starts with; a field of the same name is merged (dict update) into them
_STAMP_KEYS = frozenset(("t", "actor", "event"))
#: a valid tracepoint glob: names, ``*``, ``?`` and character classes
_GLOB_RE = re.compile(r"^[A-Za-z0-9_*?\[\]!-]+$")
#: a glob whose brackets pair up: text outside brackets has no ']', each '[...]' is closed
_BRACKETS_RE = re.compile(r"^(?:[^\[\]]|\[!?\]?[^\[\]]*\])*$")


def stamp(
    clock: Callable[[], int], actor: Callable[[], str | None]
) -> Callable[..., dict[str, Any]]:
    """Build the processor that puts ``t`` (virtual ns) and ``actor`` first in every event."""

    def _stamp(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        out = {"t": clock(), "actor": actor(), "event": event_dict.pop("event")}
        out.update(event_dict)
        return out

    return _stamp


def render_json_line(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """Render one event as a compact JSON object (no spaces, insertion order kept)."""
    return _dumps(event_dict)


# -- the hot path's renderer ------------------------------------------------------------------

_templates: dict[tuple[Any, ...], str | None] = {}
_strings: dict[str, str] = {}


def _template(key: tuple[Any, ...]) -> str | None:
    """``%``-format template for an event name and its field names (None: use the dict path)."""
    event, *names = key
    if _STAMP_KEYS.intersection(names):
        tpl = None
    else:
        head = '{"t":%d,"actor":%s,"event":' + _dumps(event).replace("%", "%%")
        tail = "".join("," + _dumps(k).replace("%", "%%") + ":%s" for k in names)
        tpl = head + tail + "}"
    _templates[key] = tpl
    return tpl


def _value(v: Any) -> str:
    cls = v.__class__
    if cls is int:
        return int.__repr__(v)
    if cls is str:
        s = _strings.get(v)
        if s is None:
            s = _dumps(v)
            if len(_strings) < 4096 and len(v) < 64:
                _strings[v] = s
        return s
    return _dumps(v)


def render_event(t: int, actor: str | None, event: str, fields: dict[str, Any]) -> str:
    """The line :func:`stamp` + :func:`render_json_line` would give, without the pipeline."""
    key = (event, *fields)
    tpl = _templates[key] if key in _templates else _template(key)
    if tpl is None or t.__class__ is not int:
        out = {"t": t, "actor": actor, "event": event}
        out.update(fields)
        return _dumps(out)
    return tpl % (t, _value(actor), *map(_value, fields.values()))


def compile_event_filter(spec: str | Iterable[str] | None) -> Callable[[str], bool] | None:
    """A predicate for event names from tracepoint globs (``"mm_compaction_*,mm_page_alloc"``
    or a list of globs); None for no filter. Raises ValueError naming a malformed glob."""
    if spec is None:
        return None
    globs = spec.split(",") if isinstance(spec, str) else list(spec)
    globs = [g.strip() for g in globs]
    if not globs or any(not g for g in globs):
        raise ValueError(
            f"events {spec!r}: expected tracepoint globs separated by commas, "
            "e.g. mm_compaction_*,mm_page_alloc"
        )
    for g in globs:
        if not _GLOB_RE.match(g):
            raise ValueError(
                f"events glob {g!r}: only letters, digits, '_', '-' and the wildcards * ? [] "
                "are allowed"
            )
        if not _BRACKETS_RE.match(g):
            # fnmatch reads an unclosed '[' as a literal, which no tracepoint name contains
            raise ValueError(f"events glob {g!r}: '[' and ']' must pair up, as in mm_page_[af]*")
    rx = re.compile("|".join(fnmatch.translate(g) for g in globs))
    return lambda name: rx.match(name) is not None


class _Sink:
    """Pending events, written sorted by virtual time once no earlier event can come.

    With lookahead, actors emit events in processing order, which is not global time order: an
    actor running ahead on its own clock emits before another actor's earlier event. The sink
    keeps ``(t, n, ...)`` entries (``n`` the emission number) and writes lines sorted by
    ``(t, n)``. It writes only entries older than ``frontier()`` (the engine's promise that no
    event earlier than that can still come) and everything on :meth:`flush_all`. An entry is
    ``(t, n, line)`` (already rendered, the structlog path) or ``(t, n, actor, event, fields)``.
    """

    __slots__ = ("_flush_at", "_frontier", "_next_flush", "_out", "pending", "tap")

    def __init__(self, out: IO[str] | None, frontier: Callable[[], int], flush_at: int = 16384):
        self._out = out
        self._frontier = frontier
        self.pending: list[tuple[Any, ...]] = []
        self._flush_at = flush_at
        self._next_flush = flush_at
        #: an observer of what is written: ``tap.flushed(entries, before)`` sees the sorted
        #: entries about to be written (``before``: the frontier, None at the end) and
        #: ``tap.discard_after(t)`` the run's stop instant (see :meth:`Recorder.set_tap`)
        self.tap: Any = None

    def added(self) -> None:
        """Called when ``pending`` reached the flush threshold."""
        if self._out is None:
            self._next_flush = 1 << 62
            return
        self._flush(self._frontier())
        # When the frontier lags (one actor far ahead), little can be written: wait for another
        # `flush_at` entries before sorting again, so the cost stays amortised O(log n) per
        # entry instead of one full sort per emitted event.
        self._next_flush = len(self.pending) + self._flush_at

    def _flush(self, before: int | None) -> None:
        pending = self.pending
        pending.sort()
        if before is None:
            cut = len(pending)
        else:
            lo, hi = 0, len(pending)
            while lo < hi:  # first entry with t >= before
                mid = (lo + hi) >> 1
                if pending[mid][0] < before:
                    lo = mid + 1
                else:
                    hi = mid
            cut = lo
        if self.tap is not None and self._out is not None:
            self.tap.flushed(pending[:cut], before)
        if self._out is not None and cut:
            self._out.write("\n".join(_render_all(pending[:cut])))
            self._out.write("\n")
            self._out.flush()
            del pending[:cut]

    def discard_after(self, t: int) -> int:
        """Drop pending entries later than ``t``; returns how many."""
        pending = self.pending
        keep = [e for e in pending if e[0] <= t]
        n = len(pending) - len(keep)
        pending[:] = keep
        if self.tap is not None:
            self.tap.discard_after(t)
        return n

    def flush_all(self) -> None:
        self._flush(None)
        if self._out is None:
            self._next_flush = self._flush_at

    def lines(self) -> list[str]:
        self.pending.sort()
        return _render_all(self.pending)


_typed: dict[tuple[Any, ...], tuple[str, tuple[int, ...]] | None] = {}


def _typed_template(key: tuple[Any, ...], n: int) -> tuple[str, tuple[int, ...]] | None:
    """For ``(event, *names, *types)``: a template with ``%d`` where the value is an int and
    the positions of the other values (JSON-encoded first), or None for the dict path."""
    event, names, types = key[0], key[1 : 1 + n], key[1 + n :]
    if _STAMP_KEYS.intersection(names):
        out = None
    else:
        parts = ['{"t":%d,"actor":%s,"event":' + _dumps(event).replace("%", "%%")]
        for k, ty in zip(names, types, strict=True):
            parts.append("," + _dumps(k).replace("%", "%%") + (":%d" if ty is int else ":%s"))
        parts.append("}")
        out = "".join(parts), tuple(i for i, ty in enumerate(types) if ty is not int)
    _typed[key] = out
    return out


def _render_all(entries: list[tuple[Any, ...]]) -> list[str]:
    """Render pending entries: :func:`render_event` for each, with templates keyed also by the
    values' types so that ints are formatted by ``%d`` without a call per value."""
    if entries and len(entries[0]) == 3:  # the structlog path: already rendered
        return [e[2] for e in entries]
    typed = _typed
    value = _value
    strings = _strings  # JSON forms of short strings (actor names, gfp names, lock names)
    out: list[str] = []
    append = out.append
    for t, _n, actor, event, fields in entries:
        vals = (*fields.values(),)
        key = (event, *fields, *map(type, vals))
        entry = typed[key] if key in typed else _typed_template(key, len(vals))
        if entry is None or t.__class__ is not int:
            append(render_event(t, actor, event, fields))
            continue
        tpl, other = entry
        a = strings.get(actor) if actor is not None else None
        if other:
            items = list(vals)
            for i in other:
                v = items[i]
                js = strings.get(v) if v.__class__ is str else None
                items[i] = js if js is not None else value(v)
            append(tpl % (t, a if a is not None else value(actor), *items))
        else:
            append(tpl % (t, a if a is not None else value(actor), *vals))
    return out


class Recorder:
    """Records tracepoint events; ``enabled`` is True.

    ``clock`` returns the current virtual time in ns and ``actor`` the running actor's name (or
    None outside actors); the engine's :class:`~emulator.engine.sim.Sim` supplies both. With
    ``out=None`` the lines stay in memory (:attr:`lines`), which is what tests use.
    ``extra_processors`` run between stamping and rendering (e.g. filters that raise
    ``structlog.DropEvent``); ``events`` keeps only events matching tracepoint globs
    (see :func:`compile_event_filter`).
    """

    enabled = True

    def __init__(
        self,
        out: IO[str] | None = None,
        *,
        clock: Callable[[], int] = lambda: 0,
        actor: Callable[[], str | None] = lambda: None,
        extra_processors: Iterable[Callable[..., Any]] = (),
        events: str | Iterable[str] | None = None,
    ) -> None:
        self.clock = clock
        self.actor = actor
        self.frontier: Callable[[], int] = lambda: 0
        self._sink = _Sink(out, lambda: self.frontier())
        self._pending = self._sink.pending
        #: events recorded (kept by the filter and the processors)
        self.count = 0
        #: events the ``events`` filter left out
        self.dropped = 0
        #: recorded events discarded because they lie after the run's stop instant
        self.after_stop = 0
        self._filter = compile_event_filter(events)
        self.events_filter = None if events is None else events
        self._wanted: dict[str, bool] = {}
        self._source: Any = None
        extra = list(extra_processors)
        self._log: Any = None
        if extra:
            self._log = structlog.wrap_logger(
                self,
                processors=[
                    stamp(lambda: self.clock(), lambda: self.actor()),
                    *extra,
                    render_json_line,
                ],
                wrapper_class=structlog.BoundLogger,
                cache_logger_on_first_use=True,
            ).msg
        self._watcher: Callable[[str, dict[str, Any]], None] | None = None
        #: no filter, no processors and no watcher: :meth:`emit` takes the hot path
        self._direct = self._filter is None and self._log is None

    def bind_clock(
        self,
        clock: Callable[[], int],
        actor: Callable[[], str | None],
        frontier: Callable[[], int] | None = None,
        source: Any = None,
    ) -> None:
        """Point the stamps at a source of virtual time and actor names; ``frontier`` returns a
        time before which no more events can be emitted (lines older than it may be written).

        ``source`` (the engine's :class:`~emulator.engine.sim.Sim`) lets the hot path read the
        running actor (``source._current``: ``now`` and ``name``, or ``source._time`` outside
        actors) directly instead of calling ``clock`` and ``actor``: the same stamps."""
        self.clock = clock
        self.actor = actor
        self._source = source
        if frontier is not None:
            self.frontier = frontier

    def set_tap(self, tap: Any) -> None:
        """Let ``tap`` see the entries as they are written (the trace writer's stream): its
        ``flushed(entries, before)`` gets each written batch of ``(t, n, actor, event,
        fields)`` tuples in order, and ``discard_after(t)`` the stop instant of the run."""
        self._sink.tap = tap

    def wants(self, event: str) -> bool:
        """Whether the ``events`` filter records ``event``."""
        w = self._wanted.get(event)
        if w is None:
            w = self._wanted[event] = self._filter is None or self._filter(event)
        return w

    def emit(self, event: str, **fields: Any) -> None:
        """Record one event named like a kernel tracepoint, with its fields."""
        if not self._direct:
            self._emit_slow(event, fields)
            return
        # the hot path: store the entry, render it when it is written
        self.count = n = self.count + 1
        src = self._source
        if src is not None:
            cur = src._current
            if cur is not None:
                entry = (cur.now, n, cur.name, event, fields)
            else:
                entry = (src._time, n, None, event, fields)
        else:
            entry = (self.clock(), n, self.actor(), event, fields)
        pending = self._pending
        pending.append(entry)
        if len(pending) >= self._sink._next_flush:
            self._sink.added()

    def _emit_slow(self, event: str, fields: dict[str, Any]) -> None:
        # emit() with a filter, processors or a watcher
        if self._filter is not None and not self.wants(event):
            self.dropped += 1
        elif self._log is not None:
            self._log(event, **fields)
        else:
            self.count = n = self.count + 1
            t, actor = self._stamp()
            self._pending.append((t, n, actor, event, fields))
            if len(self._pending) >= self._sink._next_flush:
                self._sink.added()
        if self._watcher is not None:
            self._watcher(event, fields)

    def _stamp(self) -> tuple[int, str | None]:
        src = self._source
        if src is None:
            return self.clock(), self.actor()
        cur = src._current
        return (cur.now, cur.name) if cur is not None else (src._time, None)

    def watch(self, watcher: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``watcher(event, fields)`` for every event emitted from now on, after it is
        recorded (also for events the ``events`` filter leaves out): what a property checked
        over the run sees (:mod:`emulator.explore.properties`)."""
        self._watcher = watcher
        self._direct = False

    def msg(self, line: str) -> None:
        """The end of the structlog pipeline (this recorder is its "logger")."""
        self.count = n = self.count + 1
        self._pending.append((self.clock(), n, line))
        if len(self._pending) >= self._sink._next_flush:
            self._sink.added()

    @property
    def lines(self) -> list[str]:
        """Rendered lines not yet written out, in time order (all of them when ``out`` is None)."""
        return self._sink.lines()

    def events(self) -> list[dict[str, Any]]:
        """The in-memory lines parsed back into dicts (for tests and checks)."""
        return [json.loads(line) for line in self.lines]

    def close(self, until: int | None = None) -> None:
        """Write out whatever is buffered. Safe to call more than once.

        With ``until``, events later than that virtual time (emitted by actors that had run
        ahead of the instant the run stopped at) are discarded first (:attr:`after_stop`).
        """
        if until is not None:
            n = self._sink.discard_after(until)
            self.after_stop += n
            self.count -= n
        self._sink.flush_all()


class MemoryRecorder(Recorder):
    """A :class:`Recorder` that keeps every line in memory."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(None, **kwargs)


class NullRecorder:
    """The disabled recorder: ``enabled`` is False and :meth:`emit` does nothing."""

    enabled = False
    count = 0
    dropped = 0
    after_stop = 0
    events_filter = None

    def bind_clock(
        self,
        clock: Callable[[], int],
        actor: Callable[[], str | None],
        frontier: Callable[[], int] | None = None,
        source: Any = None,
    ) -> None:
        pass

    def wants(self, event: str) -> bool:
        return False

    def emit(self, event: str, **fields: Any) -> None:
        pass

    def close(self, until: int | None = None) -> None:
        pass


NULL_RECORDER = NullRecorder()
