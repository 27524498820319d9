"""``mmemu diff A B [--only-diff] [--json]``: two runs, or a run and a saved /proc folder."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from emulator.cli import UsageError
from emulator.cli_views import folder_errors, warn_bad_lines
from emulator.report.diff import Side, diff_sections, load_side, print_diff

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="results folder, or a saved /proc folder")
    parser.add_argument("b", metavar="B", help="results folder, or a saved /proc folder")
    parser.add_argument("--only-diff", action="store_true", help="only rows that differ")
    parser.add_argument("--json", action="store_true", help="the rows as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        a, b = load_side(args.a), load_side(args.b)
    except ValueError as exc:
        raise UsageError(" ".join(str(exc).split())[:400]) from None
    with folder_errors():
        if args.json:
            sections = {
                k: [{"key": key, "a": va, "b": vb} for key, va, vb in rows]
                for k, rows in diff_sections(a, b).items()
            }
            doc = {"a": str(a.path), "b": str(b.path), "sections": sections}
            text = json.dumps(doc, indent=1, default=str)
            _warn(a, b)
            sys.stdout.write(text + "\n")
            return 0
        console = Console(highlight=False, width=max(100, Console().width))
        print_diff(a, b, console, args.only_diff)
    _warn(a, b)
    return 0


def _warn(a: Side, b: Side) -> None:
    """Each side's bad event lines, once per file (``diff RUN RUN`` reads one twice)."""
    seen = set()
    for side in (a, b):
        if side.events is not None and side.events.path.resolve() not in seen:
            seen.add(side.events.path.resolve())
            warn_bad_lines("diff", side.events)
