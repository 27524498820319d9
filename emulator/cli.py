"""The ``mmemu`` command.

Subcommands are small modules that each provide ``configure(parser)`` and ``run(args) -> int``;
this file only wires them together, and turns :class:`UsageError` (bad input) into one clear
line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["UsageError", "main"]

#: subcommand -> (module path, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("emulator.cli_run", "run a scenario and write kernel-format results"),
    "list": ("emulator.cli_list", "list the bundled scenarios"),
    "inspect": ("emulator.report.inspect", "fragmentation report for a live or saved /proc"),
    "trace": ("emulator.cli_trace", "a run's events as ftrace text (trace-cmd report style)"),
    "compactsnoop": ("emulator.cli_compactsnoop", "one line per compaction, like bcc's"),
    "plot": ("emulator.cli_plot", "PNG plots of a run, or a metric against a parameter"),
    "diff": ("emulator.cli_diff", "two runs (or a run and a saved /proc) side by side"),
}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmemu",
        description="Actor-based emulator of the Linux page allocator and memory compaction.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(module).configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except UsageError as exc:
        print(f"mmemu {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmemu {args.command}: interrupted", file=sys.stderr)
        return 130
