"""One declaration per tracepoint, as the kernel's TRACE_EVENT gives one: its name, its fields
with their types (TP_STRUCT__entry), its TP_printk format, and its role in a trace timeline.

A mechanism declares the events it emits (:class:`TraceEvent`); the emit sites pass exactly the
declared fields, in order (a test checks every site), and the readers of a run's events
(``mmemu trace``'s ftrace text, the Perfetto converter, compactsnoop, ``--events``) look the
declaration up instead of keeping their own list. The engine declares its lock events here
(include/trace/events/lock.h); the memory model declares its own (``emulator.mm.tracepoints``
gathers them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

__all__ = ["LOCK_EVENTS", "Field", "Role", "TraceEvent", "gather"]


@attrs.frozen
class Field:
    """One field of an event: its name and the Python type its value has in events.jsonl."""

    name: str
    type: type


@attrs.frozen
class Role:
    """How a timeline draws the event: ``begin`` opens a slice named ``slice`` that the event
    ``end`` closes; ``end`` closes one; ``instant`` marks a moment; ``lock`` feeds the lock
    tracks; ``isolation`` (with any kind) moves the compaction "pages isolated" counter."""

    kind: str = ""
    slice: str = ""
    end: str = ""
    isolation: bool = False


@attrs.frozen
class TraceEvent:
    """A tracepoint: ``system`` (the include/trace/events/ header, or ``mmemu`` for the model's
    own markers), ``name``, ``fields``, ``printk`` (the TP_printk format string) and ``render``
    (that format applied to an event's fields: the ftrace text), and its timeline ``role``."""

    system: str
    name: str
    fields: tuple[Field, ...]
    printk: str
    render: Callable[[Mapping[str, Any]], str] | None = None
    role: Role = Role()
    #: False for a kernel tracepoint the model never fires (kept so its name is known)
    emitted: bool = True

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def gather(*tables: Iterable[TraceEvent]) -> dict[str, TraceEvent]:
    """One table by name from several mechanisms' declarations (a name declared twice is an
    error)."""
    out: dict[str, TraceEvent] = {}
    for table in tables:
        for tp in table:
            if tp.name in out:
                raise ValueError(f"tracepoint {tp.name} is declared twice")
            out[tp.name] = tp
    return out


#: include/trace/events/lock.h contention_begin flags
LCB_FLAGS = ((1, "SPIN"), (2, "READ"), (4, "WRITE"), (8, "RT"), (16, "PERCPU"), (32, "MUTEX"))


def _flags(v: int) -> str:
    return "|".join(n for bit, n in LCB_FLAGS if v & bit) or "0"


_LOCK = Role("lock")
#: include/trace/events/lock.h (``lock_addr`` is the lock's label, not an address)
LOCK_EVENTS = (
    TraceEvent(
        "lock",
        "contention_begin",
        (Field("lock_addr", str), Field("flags", int)),
        "%p (flags=%s)",
        lambda e: f"{e['lock_addr']} (flags={_flags(int(e['flags']))})",
        _LOCK,
    ),
    TraceEvent(
        "lock",
        "contention_end",
        (Field("lock_addr", str), Field("ret", int)),
        "%p (ret=%d)",
        lambda e: f"{e['lock_addr']} (ret={e['ret']})",
        _LOCK,
    ),
    TraceEvent(
        "lock",
        "lock_acquired",
        (Field("name", str), Field("lock_addr", str)),
        "%p %s",
        lambda e: f"{e['lock_addr']} {e['name']}",
        _LOCK,
    ),
    TraceEvent(
        "lock",
        "lock_release",
        (Field("name", str), Field("lock_addr", str)),
        "%p %s",
        lambda e: f"{e['lock_addr']} {e['name']}",
        _LOCK,
    ),
)
