"""The event recorder: tracepoint-style events stamped with virtual time, written as JSON lines.

Every state change worth seeing is an event named like the kernel tracepoint that reports it
(``mm_page_alloc``, ``mm_compaction_begin``, ...). Events go through a structlog pipeline whose
processors are plain functions: :func:`stamp` adds the virtual time (``t``, integer ns) and the
actor, then :func:`render_json_line` turns the event dict into one compact JSON line. Keys keep
insertion order (``t``, ``actor``, ``event``, then the fields as given), so the same run gives a
byte-identical file.

Cost model: call sites guard with ``if rec.enabled:`` so a disabled recorder costs one attribute
load; :class:`NullRecorder` is the disabled recorder. An enabled recorder buffers lines in memory
and writes them in chunks (and on :meth:`Recorder.close`, which also runs on interruption).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, MutableMapping
from typing import IO, Any

import structlog

__all__ = ["MemoryRecorder", "NullRecorder", "Recorder", "render_json_line", "stamp"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def stamp(clock: Callable[[], int], actor: Callable[[], str | None]) -> Callable[..., dict]:
    """Build the processor that puts ``t`` (virtual ns) and ``actor`` first in every event."""

    def _stamp(_logger: Any, _method: str, event_dict: dict) -> dict:
        out = {"t": clock(), "actor": actor(), "event": event_dict.pop("event")}
        out.update(event_dict)
        return out

    return _stamp


def render_json_line(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """Render one event as a compact JSON object (no spaces, insertion order kept)."""
    return _dumps(event_dict)


class _LineSink:
    """The structlog "logger" at the end of the pipeline: collects rendered lines.

    With lookahead, actors emit events in processing order, which is not global time order:
    an actor running ahead on its own clock emits before another actor's earlier event. The
    sink keeps ``(t, n, line)`` and writes lines sorted by virtual time (stable: emission order
    within an instant). It writes only lines older than ``frontier()`` — the engine's promise
    that no event earlier than that can still come — and everything on :meth:`flush_all`.
    """

    __slots__ = ("_clock", "_flush_at", "_frontier", "_n", "_next_flush", "_out", "_pending")

    def __init__(
        self,
        out: IO[str] | None,
        clock: Callable[[], int],
        frontier: Callable[[], int],
        flush_at: int = 16384,
    ) -> None:
        self._out = out
        self._clock = clock
        self._frontier = frontier
        self._pending: list[tuple[int, int, str]] = []
        self._flush_at = flush_at
        self._next_flush = flush_at
        self._n = 0

    def msg(self, line: str) -> None:
        self._n += 1
        self._pending.append((self._clock(), self._n, line))
        if self._out is not None and len(self._pending) >= self._next_flush:
            self._flush(self._frontier())
            # When the frontier lags (one actor far ahead), little can be written: wait for
            # another `flush_at` lines before sorting again, so the cost stays amortised
            # O(log n) per line instead of one full sort per emitted line.
            self._next_flush = len(self._pending) + self._flush_at

    def _flush(self, before: int | None) -> None:
        pending = self._pending
        pending.sort()
        if before is None:
            cut = len(pending)
        else:
            cut = 0
            while cut < len(pending) and pending[cut][0] < before:
                cut += 1
        if self._out is not None and cut:
            self._out.write("\n".join(p[2] for p in pending[:cut]))
            self._out.write("\n")
            self._out.flush()
            del pending[:cut]

    def flush_all(self) -> None:
        self._flush(None)

    def lines(self) -> list[str]:
        self._pending.sort()
        return [p[2] for p in self._pending]


class Recorder:
    """Records tracepoint events; ``enabled`` is True.

    ``clock`` returns the current virtual time in ns and ``actor`` the running actor's name (or
    None outside actors); the engine's :class:`~emulator.engine.sim.Sim` supplies both. With
    ``out=None`` the lines stay in memory (:attr:`lines`), which is what tests use.
    ``extra_processors`` run between stamping and rendering (e.g. filters that raise
    ``structlog.DropEvent``).
    """

    enabled = True

    def __init__(
        self,
        out: IO[str] | None = None,
        *,
        clock: Callable[[], int] = lambda: 0,
        actor: Callable[[], str | None] = lambda: None,
        extra_processors: Iterable[Callable[..., Any]] = (),
    ) -> None:
        self.clock = clock
        self.actor = actor
        self.frontier: Callable[[], int] = lambda: 0
        self._sink = _LineSink(out, lambda: self.clock(), lambda: self.frontier())
        self.count = 0
        self._log = structlog.wrap_logger(
            self._sink,
            processors=[
                stamp(lambda: self.clock(), lambda: self.actor()),
                *extra_processors,
                render_json_line,
            ],
            wrapper_class=structlog.BoundLogger,
            cache_logger_on_first_use=True,
        )
        self._msg = self._log.msg

    def bind_clock(
        self,
        clock: Callable[[], int],
        actor: Callable[[], str | None],
        frontier: Callable[[], int] | None = None,
    ) -> None:
        """Point the stamps at a source of virtual time and actor names; ``frontier`` returns a
        time before which no more events can be emitted (lines older than it may be written)."""
        self.clock = clock
        self.actor = actor
        if frontier is not None:
            self.frontier = frontier

    def emit(self, event: str, **fields: Any) -> None:
        """Record one event named like a kernel tracepoint, with its fields."""
        self.count += 1
        self._msg(event, **fields)

    @property
    def lines(self) -> list[str]:
        """Rendered lines not yet written out, in time order (all of them when ``out`` is None)."""
        return self._sink.lines()

    def events(self) -> list[dict]:
        """The in-memory lines parsed back into dicts (for tests and checks)."""
        return [json.loads(line) for line in self.lines]

    def close(self) -> None:
        """Write out whatever is buffered. Safe to call more than once."""
        self._sink.flush_all()


class MemoryRecorder(Recorder):
    """A :class:`Recorder` that keeps every line in memory."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(None, **kwargs)


class NullRecorder:
    """The disabled recorder: ``enabled`` is False and :meth:`emit` does nothing."""

    enabled = False
    count = 0

    def bind_clock(
        self,
        clock: Callable[[], int],
        actor: Callable[[], str | None],
        frontier: Callable[[], int] | None = None,
    ) -> None:
        pass

    def emit(self, event: str, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


NULL_RECORDER = NullRecorder()
