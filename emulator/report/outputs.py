"""A run's outputs as observers of its :class:`~emulator.runner.Run`: summary.json and the
kernel-format files, trace.json (written as the run goes) and the plots.

Each is an :class:`~emulator.runner.Observer`; ``mmemu run`` attaches the ones its options ask
for, in the order the results folder is written: :class:`SummaryFiles` first (the views after
it read summary.json back), then :class:`TraceFile`, then :class:`PlotFiles`.
"""

from __future__ import annotations

from pathlib import Path

from emulator.report.perfetto import enable_lock_events
from emulator.report.plots import write_plots
from emulator.report.results import write_results
from emulator.report.run_folder import load_summary
from emulator.report.trace_capture import TraceCapture
from emulator.runner import Observer, Run, RunResult

__all__ = ["PlotFiles", "SummaryFiles", "TraceFile"]


class SummaryFiles(Observer):
    """summary.json, the kernel-format files (buddyinfo, zoneinfo, ..., lock_stat) and the
    per-allocation latency file (:func:`~emulator.report.results.write_results`)."""

    def write(self, result: RunResult, folder: Path) -> list[Path]:
        return write_results(result, folder)


class TraceFile(Observer):
    """The timeline: the lock events of include/trace/events/lock.h and mmemu's markers
    (``mmemu_alloc_begin``, ``mmemu_slowpath_*``, ``mmemu_free_*``), turned on in the attach
    phase. With the events going to a file they stream into ``trace.json`` in ``folder`` as
    the run goes (:class:`~emulator.report.trace_capture.TraceCapture`, ``locks`` its lock
    policy), kept out of events.jsonl unless the events filter selects them; ``write`` False
    emits them without keeping the trace (``--no-trace`` with ``--events`` selecting them)."""

    def __init__(self, folder: Path, locks: str = "zone", write: bool = True) -> None:
        self.folder = folder
        self.locks = locks
        self.keep = write
        self.capture: TraceCapture | None = None

    def attach(self, run: Run) -> None:
        recorder = run.recorder
        if not recorder.enabled:
            return
        markers: TraceCapture | object = recorder
        if run.events.path is not None:
            markers = self.capture = TraceCapture(recorder, self.folder / "trace.json", self.locks)
        ctx = run.context
        enable_lock_events(ctx.allocator, markers)
        ctx.allocator.markers = markers
        for prog in ctx.programs:
            prog.markers = markers

    def write(self, result: RunResult, folder: Path) -> list[Path]:
        if self.capture is None:
            return []
        if not self.keep:
            self.capture.abandon()
            return []
        return [self.capture.finish(load_summary(folder))]


class PlotFiles(Observer):
    """plots/*.png (:func:`~emulator.report.plots.write_plots`), with the allocation latencies
    and zone->lock waits the trace captured when there is one."""

    def __init__(self, trace: TraceFile | None = None) -> None:
        self.trace = trace

    def write(self, result: RunResult, folder: Path) -> list[Path]:
        capture = self.trace.capture if self.trace is not None else None
        extra = None
        if capture is not None:
            extra = (capture.conv.alloc_latency, capture.conv.zone_lock_waits)
        return write_plots(folder, extra=extra)
