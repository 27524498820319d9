"""The optional views a run writes beside its results: ``trace.json`` and ``plots/*.png``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_views"]


def write_views(out: Path, *, trace: bool = True, plots: bool = False) -> list[Path]:
    """Write the trace (needs events.jsonl) and the plots for the results folder ``out``."""
    written: list[Path] = []
    if trace and (out / "events.jsonl").exists():
        from emulator.report.perfetto import write_trace

        written.append(write_trace(out))
    if plots:
        from emulator.report.plots import write_plots

        written.extend(write_plots(out))
    return written
