"""``mmemu trace RUN_DIR [-t] [-e EVENT ...]``: the event log as ``trace-cmd report`` text."""

from __future__ import annotations

import argparse
import sys

from emulator.cli import UsageError
from emulator.cli_views import folder_errors, run_dir, warn_bad_lines
from emulator.mm.tracepoints import TRACEPOINTS, unmatched_globs
from emulator.report.ftrace import write_ftrace
from emulator.report.run_folder import EventLog, load_summary
from emulator.report.trace_capture import TRACE_ONLY

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
    for name in args.event:
        if name not in TRACEPOINTS:
            problem = unmatched_globs([name]) or f"{name!r} is not a tracepoint"
            raise UsageError(f"-e: {problem}")
    d = run_dir(args.run_dir, ("summary.json", "events.jsonl"))
    log = EventLog(d / "events.jsonl")
    seen: set[str] = set()
    with folder_errors():
        summary = load_summary(d)
        try:
            write_ftrace(
                log,
                sys.stdout,
                summary.cpus,
                ns=args.ns,
                only=set(args.event) or None,
                seen=seen,
            )
        except BrokenPipeError:  # `mmemu trace RUN | head`
            sys.stderr.close()
            return 0
    warn_bad_lines("trace", log)
    missing = [e for e in dict.fromkeys(args.event) if e not in seen]
    unknown = [e for e in missing if e not in TRACEPOINTS and e not in TRACE_ONLY]
    if unknown:
        raise UsageError(
            f"-e {unknown[0]!r}: no such event (this run recorded: {', '.join(sorted(seen))})"
        )
    for e in missing:
        print(f"mmemu trace: no {e} events in this run", file=sys.stderr)
    return 0
