"""The optional views a run writes beside its results: ``trace.json`` and ``plots/*.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_views"]


def write_views(
    out: Path, *, trace: bool = True, plots: bool = False, capture: Any = None
) -> list[Path]:
    """Write the trace and the plots for the results folder ``out`` (summary.json written).

    ``capture`` is the run's :class:`~emulator.report.trace_capture.TraceCapture` (the trace
    written as the run went: finished here, and its allocation latencies and zone->lock waits
    feed the plots); without it the trace is built from events.jsonl.
    """
    written: list[Path] = []
    if trace and capture is not None:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        written.append(capture.finish(summary))
    elif trace and (out / "events.jsonl").exists():
        from emulator.report.perfetto import write_trace

        written.append(write_trace(out))
    elif capture is not None:
        capture.abandon()
    if plots:
        from emulator.report.plots import write_plots

        extra = None
        if capture is not None:
            extra = (capture.conv.alloc_latency, capture.conv.zone_lock_waits)
        written.extend(write_plots(out, extra=extra))
    return written
