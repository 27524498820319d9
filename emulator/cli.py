"""The ``mmemu`` command.

Subcommands are small modules that each provide ``configure(parser)`` and ``run(args) -> int``;
this file only wires them together, and turns :class:`UsageError` (bad input) into one clear
line on stderr and exit status 2.

Exit statuses: 0 success; 1 the run found a problem (an actor crashed, a deadlock, a watchdog
report, a replay that diverged) or mmemu failed internally; 2 bad input (one line, nothing
written); 128 + N a run stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP) after
writing its results.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from emulator.run.stop import StopSignals

__all__ = ["UsageError", "main"]

#: subcommand -> (module path, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("emulator.cli_run", "run a scenario and write kernel-format results"),
    "explore": ("emulator.cli_explore", "run a scenario under many schedules; shrink a failure"),
    "list": ("emulator.cli_list", "list the bundled scenarios"),
    "inspect": ("emulator.report.inspect", "fragmentation report for a live or saved /proc"),
    "trace": ("emulator.cli_trace", "a run's events as ftrace text (trace-cmd report style)"),
    "compactsnoop": ("emulator.cli_compactsnoop", "one line per compaction, like bcc's"),
    "plot": ("emulator.cli_plot", "PNG plots of a run, or a metric against a parameter"),
    "diff": ("emulator.cli_diff", "two runs (or a run and a saved /proc) side by side"),
    "sweep": ("emulator.cli_sweep", "a scenario over a grid of parameters and seeds, in parallel"),
    "latency": ("emulator.cli_latency", "where a run's allocation latency went, per part"),
}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2, no traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): ``mmemu run: error: ...``."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        if len(message) > 300:
            message = message[:300] + "..."
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is one), if any."""
    for arg in argv:
        if arg in SUBCOMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def build_parser(only: str | None = None, *, all_commands: bool = True) -> argparse.ArgumentParser:
    """The ``mmemu`` parser. With ``all_commands`` False, only the subcommand ``only`` gets its
    options (its module is imported to configure them); the others are listed with their help
    alone, so ``mmemu --help`` and ``mmemu list`` do not import the emulator."""
    parser = _Parser(
        prog="mmemu",
        description="Actor-based emulator of the Linux page allocator and memory compaction.",
    )
    from emulator import __version__
    from emulator.native import describe

    parser.add_argument("--version", action="version", version=f"mmemu {__version__}, {describe()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if all_commands or name == only:
            importlib.import_module(module).configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # first thing: a stop signal during the imports below is recorded, never lost
    stop = StopSignals()
    installed = stop.install()
    try:
        return _main(argv, stop)
    finally:
        if installed:
            stop.restore()


def _main(argv: Sequence[str] | None, stop: StopSignals) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(_chosen(argv), all_commands=False)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2), printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":
        args.stop_signals = stop  # mmemu run stops cleanly at any phase (emulator.run.stop)
    else:
        if stop.reason is not None:
            print(f"mmemu {args.command}: {stop.reason}", file=sys.stderr)
            return stop.exit_status
        stop.restore()  # the views: Ctrl-C is a KeyboardInterrupt, as usual
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except UsageError as exc:
        print(f"mmemu {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmemu {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"mmemu {args.command}: error: out of memory (try less memory=)", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"mmemu {args.command}: error: input nested too deeply", file=sys.stderr)
        return 2
    except Exception as exc:
        # a bug in mmemu: one line, and the traceback only when asked for
        if os.environ.get("MMEMU_DEBUG"):
            traceback.print_exc()
        text = " ".join(str(exc).split())[:300]
        print(
            f"mmemu {args.command}: internal error: {type(exc).__name__}: {text} "
            "(MMEMU_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
