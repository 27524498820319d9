"""``mmemu plot RUN_DIR`` (PNG plots into RUN_DIR/plots/) and
``mmemu plot --sweep DIR... --x PARAM --y METRIC [--out FILE]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from emulator.cli import UsageError
from emulator.cli_views import folder_errors, run_dir, warn_bad_lines
from emulator.report.run_folder import EventLog

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a results folder")
    parser.add_argument(
        "--out",
        help="folder (or, with --sweep, PNG file: .png is added if missing; a folder gets "
        "the default name inside it) to write",
    )
    parser.add_argument(
        "--sweep", nargs="+", metavar="DIR", help="results folders of a parameter sweep"
    )
    parser.add_argument("--x", help="with --sweep: the parameter (e.g. rate, vm.<sysctl>)")
    parser.add_argument(
        "--y",
        help="with --sweep: a summary.json number by dotted path, e.g. "
        "vmstat_delta.compact_stall or allocations.9.failures",
    )


def sweep_path(out: str | None, x: str, y: str) -> Path:
    """The PNG file ``plot --sweep`` writes for ``--out`` (checked: its folder exists)."""
    default = f"sweep-{y}-vs-{x}.png".replace("/", "_")
    if out is None:
        return Path(default)
    p = Path(out)
    if p.is_dir():
        return p / default
    if p.suffix.lower() != ".png":
        p = p.with_name(p.name + ".png")
    if p.exists() and not p.is_file():
        raise UsageError(f"--out {out!r}: {p} exists and is not a regular file")
    if not p.parent.is_dir():
        raise UsageError(f"--out {out!r}: no such folder {str(p.parent)!r}")
    return p


def run(args: argparse.Namespace) -> int:
    from emulator.report.plots import plot_sweep, write_plots

    if args.sweep:
        if not args.x or not args.y:
            raise UsageError("--sweep needs --x PARAM and --y METRIC")
        dirs = [run_dir(d) for d in ([args.run_dir] if args.run_dir else []) + args.sweep]
        out = sweep_path(args.out, args.x, args.y)
        with folder_errors():
            try:
                path, points = plot_sweep(dirs, args.x, args.y, out)
            except KeyError as exc:
                raise UsageError(f"--x/--y: {exc.args[0]}") from None
            except OSError as exc:
                raise UsageError(f"--out {str(out)!r}: cannot write: {exc.strerror}") from None
        print(f"{path} ({len(points)} runs)")
        return 0
    if not args.run_dir:
        raise UsageError("give a RUN_DIR (or --sweep DIR... --x PARAM --y METRIC)")
    d = run_dir(args.run_dir)
    log = EventLog(d / "events.jsonl")
    with folder_errors():
        written = write_plots(d, Path(args.out) if args.out else None, log=log)
    for p in written:
        print(p)
    if (d / "events.jsonl").exists():
        warn_bad_lines("plot", log)
    return 0
