"""Shared helpers of the view subcommands (``trace``, ``compactsnoop``, ``plot``, ``diff``)."""

from __future__ import annotations

from pathlib import Path

from emulator.cli import UsageError

__all__ = ["run_dir"]


def run_dir(path: str, need: tuple[str, ...] = ("summary.json",)) -> Path:
    """A results folder that exists and holds ``need``; else a one-line UsageError."""
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"{path!r} is not a results folder (no such directory)")
    if not (p / "summary.json").exists():
        raise UsageError(f"{path!r} is not a results folder of mmemu run (no summary.json)")
    for name in need:
        if not (p / name).exists():
            hint = (
                ": the run used --no-events; run it again without" if name == "events.jsonl" else ""
            )
            raise UsageError(f"{path!r} has no {name}{hint}")
    return p
