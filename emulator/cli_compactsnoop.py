"""``mmemu compactsnoop RUN_DIR [-e] [-T]``: one line per compaction, like bcc's compactsnoop."""

from __future__ import annotations

import argparse
import sys

from emulator.cli_views import folder_errors, run_dir, warn_bad_lines
from emulator.report.compactsnoop import compactions, format_compactsnoop, header
from emulator.report.run_folder import EventLog, load_summary

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a results folder of mmemu run")
    parser.add_argument(
        "-e",
        "--extended_fields",
        action="store_true",
        help="also FRAGIDX MIN LOW HIGH FREE (as bcc's -e)",
    )
    parser.add_argument("-T", "--timestamp", action="store_true", help="include a TIME(s) column")


def run(args: argparse.Namespace) -> int:
    d = run_dir(args.run_dir, ("summary.json", "events.jsonl"))
    out = sys.stdout
    log = EventLog(d / "events.jsonl")
    with folder_errors():
        summary = load_summary(d)
        found = compactions(log, d, summary)
        try:
            out.write(header(args.extended_fields, args.timestamp) + "\n")
            for c in found:
                out.write(format_compactsnoop(c, args.extended_fields, args.timestamp) + "\n")
            out.flush()
        except BrokenPipeError:  # `mmemu compactsnoop RUN | head`
            sys.stderr.close()
            return 0
    warn_bad_lines("compactsnoop", log)
    return 0
