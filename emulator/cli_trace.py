"""``mmemu trace RUN_DIR [-t] [-e EVENT ...]``: the event log as ``trace-cmd report`` text."""

from __future__ import annotations

import argparse
import sys

from emulator.cli_views import folder_errors, run_dir, warn_bad_lines
from emulator.report.ftrace import write_ftrace
from emulator.report.run_folder import EventLog, load_summary

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a results folder of mmemu run")
    parser.add_argument(
        "-t", action="store_true", dest="ns", help="nanosecond timestamps (trace-cmd report -t)"
    )
    parser.add_argument(
        "-e",
        "--event",
        action="append",
        default=[],
        metavar="EVENT",
        help="only this event (repeatable), e.g. -e mm_page_alloc",
    )


def run(args: argparse.Namespace) -> int:
    d = run_dir(args.run_dir, ("summary.json", "events.jsonl"))
    log = EventLog(d / "events.jsonl")
    with folder_errors():
        summary = load_summary(d)
        try:
            write_ftrace(log, sys.stdout, summary.cpus, ns=args.ns, only=set(args.event) or None)
        except BrokenPipeError:  # `mmemu trace RUN | head`
            sys.stderr.close()
            return 0
    warn_bad_lines("trace", log)
    return 0
