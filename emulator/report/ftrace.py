"""A run's event log as ftrace text, the way ``trace-cmd report`` prints it.

Each line is ``COMM-PID [CPU] SECONDS: EVENT: FIELDS`` with FIELDS rendered by the kernel's
``TP_printk`` format of the tracepoint, from its declaration (``emulator.mm.tracepoints``:
include/trace/events/kmem.h, compaction.h, vmscan.h, lock.h), so scripts written for real
ftrace output parse a run. Time is the run's virtual time (µs precision like
``trace-cmd report``; ``ns=True`` prints all nine digits like ``trace-cmd report -t``).

Simplifications: ``page=%p`` prints the vmemmap address (``emulator.mm.mmflags``);
``lock_addr`` prints the lock's label (e.g. ``zone->lock:0:Normal``) instead of an address; a
CPU actor ``cpuN`` is the task ``cpuN`` with pid ``1000 + N`` on CPU N, and other actors
(kswapd, kcompactd, ...) get pids from 100 up in order of appearance in the whole log (whatever
events are printed) and print on CPU 0. Events with no TP_printk rendering (the ``mmemu_*``
markers) and events the table does not know print as ``name=value`` pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any

from emulator.mm.tracepoints import TRACEPOINTS

__all__ = ["format_event", "format_line", "write_ftrace"]


def format_event(e: dict[str, Any]) -> str:
    """The TP_printk text of one event (``name=value`` pairs for unknown events)."""
    tp = TRACEPOINTS.get(e["event"])
    if tp is not None and tp.render is not None:
        try:
            return tp.render(e)
        except (KeyError, TypeError, ValueError):
            pass  # a field the model does not record: fall back to the raw fields
    return " ".join(f"{k}={v}" for k, v in e.items() if k not in ("t", "actor", "event"))


class _Tasks:
    """comm, pid and CPU of each actor (see the module docstring)."""

    def __init__(self) -> None:
        self.others: dict[str, int] = {}

    def __call__(self, actor: str | None) -> tuple[str, int, int]:
        name = actor or "<idle>"
        if name.startswith("cpu") and name[3:].isdigit():
            n = int(name[3:])
            return name, 1000 + n, n
        if actor is None:
            return name, 0, 0
        pid = self.others.setdefault(name, 100 + len(self.others))
        return name, pid, 0


def format_line(e: dict[str, Any], tasks: _Tasks, ns: bool = False) -> str:
    comm, pid, cpu = tasks(e.get("actor"))
    t = int(e["t"])
    stamp = (
        f"{t // 1_000_000_000}.{t % 1_000_000_000:09d}"
        if ns
        else (f"{t // 1_000_000_000}.{(t // 1000) % 1_000_000:06d}")
    )
    task = f"{comm}-{pid}"
    return f"{task:>16s} [{cpu:03d}] {stamp}: {e['event'] + ':':<22s} {format_event(e)}"


def lines(events: Iterable[dict[str, Any]], ns: bool = False) -> Iterator[str]:
    tasks = _Tasks()
    for e in events:
        yield format_line(e, tasks, ns)


def write_ftrace(
    events: Iterable[dict[str, Any]],
    out: IO[str],
    cpus: int,
    ns: bool = False,
    only: set[str] | None = None,
    seen: set[str] | None = None,
) -> int:
    """Write the trace-cmd report text for ``events``; returns the number of lines.

    Task pids are given over the whole log, so ``only`` (the event names to print) never
    changes them; ``seen``, if given, receives every event name the log holds."""
    out.write(f"cpus={cpus}\n")
    n = 0
    tasks = _Tasks()
    for e in events:
        name = e["event"]
        if seen is not None:
            seen.add(name)
        if only is not None and name not in only:
            tasks(e.get("actor"))  # the pid order of the whole log
            continue
        out.write(format_line(e, tasks, ns))
        out.write("\n")
        n += 1
    return n
