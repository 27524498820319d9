"""Every tracepoint the model emits, gathered from the mechanisms' declarations (as the
kernel's ``events/`` directory lists them): the one table ``mmemu trace``, the Perfetto
converter, compactsnoop, ``--events`` and the event tests read."""

from __future__ import annotations

import difflib
import fnmatch

from emulator.engine.tracepoint import LOCK_EVENTS, TraceEvent, gather
from emulator.mm.compaction.trace import COMPACTION_EVENTS
from emulator.mm.page_alloc.trace import PAGE_ALLOC_EVENTS
from emulator.mm.reclaim.trace import VMSCAN_EVENTS
from emulator.mm.sysctl import SYSCTL_EVENTS

__all__ = ["TRACEPOINTS", "unmatched_globs"]

#: every tracepoint by name
TRACEPOINTS: dict[str, TraceEvent] = gather(
    PAGE_ALLOC_EVENTS, COMPACTION_EVENTS, VMSCAN_EVENTS, SYSCTL_EVENTS, LOCK_EVENTS
)


def unmatched_globs(globs: list[str]) -> str | None:
    """None if every glob matches a known tracepoint, else a one-line message naming the first
    that matches none and the closest names."""
    for g in globs:
        if not any(fnmatch.fnmatchcase(name, g) for name in TRACEPOINTS):
            close = difflib.get_close_matches(g.lower(), TRACEPOINTS, n=4, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            return (
                f"{g!r} matches no tracepoint{hint} "
                "(the tracepoints are mm_page_*, mm_compaction_*, mm_vmscan_*, "
                "lock and contention events, mmemu_*, sysctl_write)"
            )
    return None
