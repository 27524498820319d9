"""``mmemu plot RUN_DIR`` (PNG plots into RUN_DIR/plots/) and
``mmemu plot --sweep DIR... --x PARAM --y METRIC [--out FILE]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from emulator.cli import UsageError
from emulator.cli_views import run_dir

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a results folder")
    parser.add_argument("--out", help="folder (or, with --sweep, PNG file) to write")
    parser.add_argument(
        "--sweep",
        nargs="+",
        metavar="DIR",
        help="results folders of a parameter sweep, or an mmemu sweep folder (sweep.json)",
    )
    parser.add_argument("--x", help="with --sweep: the parameter (e.g. rate, vm.<sysctl>)")
    parser.add_argument(
        "--y",
        help="with --sweep: a summary.json number by dotted path, e.g. "
        "vmstat_delta.compact_stall or allocations.9.failures",
    )


def run(args: argparse.Namespace) -> int:
    from emulator.report.plots import plot_sweep, write_plots

    if args.sweep:
        if not args.x or not args.y:
            raise UsageError("--sweep needs --x PARAM and --y METRIC")
        dirs = [
            Path(d) if (Path(d) / "sweep.json").is_file() else run_dir(d)
            for d in ([args.run_dir] if args.run_dir else []) + args.sweep
        ]
        out = Path(args.out) if args.out else Path(f"sweep-{args.y}-vs-{args.x}.png")
        try:
            path, points = plot_sweep(dirs, args.x, args.y, out)
        except KeyError as exc:
            raise UsageError(f"--x/--y: {exc.args[0]}") from None
        print(f"{path} ({len(points)} runs)")
        return 0
    if not args.run_dir:
        raise UsageError("give a RUN_DIR (or --sweep DIR... --x PARAM --y METRIC)")
    d = run_dir(args.run_dir)
    for p in write_plots(d, Path(args.out) if args.out else None):
        print(p)
    return 0
