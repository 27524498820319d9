"""``mmemu latency RUN_DIR [--order N] [--by cpu|phase]``: where a finished run's allocation
latency went, per order and part (:mod:`emulator.report.latency`); no re-run."""

from __future__ import annotations

import argparse

from rich.console import Console

from emulator.cli import UsageError
from emulator.cli_views import folder_errors, run_dir

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a results folder of mmemu run")
    parser.add_argument("--order", help="only this allocation order (0..10)")
    parser.add_argument(
        "--by", choices=("cpu", "phase"), help="also split the order per CPU or workload phase"
    )


def run(args: argparse.Namespace) -> int:
    from emulator.report.latency import render
    from emulator.report.run_folder import load_summary

    d = run_dir(args.run_dir)
    with folder_errors():
        summary = load_summary(d)
    allocs = summary.allocations
    order = None
    if args.order is not None:
        if not args.order.strip().isdigit() or not 0 <= int(args.order) <= 10:
            raise UsageError(f"--order {args.order!r}: expected an order 0..10")
        order = int(args.order)
        if order not in allocs:
            have = ", ".join(str(o) for o in sorted(allocs)) or "none"
            raise UsageError(
                f"--order {order}: no allocation of that order in this run (have: {have})"
            )
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)
    for item in render(d, summary, order, args.by):
        console.print(item)
    return 0
