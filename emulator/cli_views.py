"""Shared helpers of the view subcommands (``trace``, ``compactsnoop``, ``plot``, ``diff``).

A results folder is untrusted input (:mod:`emulator.report.run_folder`): what cannot be used
at all is a :class:`~emulator.cli.UsageError` (one line, exit 2); bad event lines among good
ones are skipped and named in one warning line on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from emulator.cli import UsageError
from emulator.report.run_folder import EventLog, RunFolderError, open_run_folder

__all__ = ["folder_errors", "run_dir", "warn_bad_lines"]


def run_dir(path: str, need: tuple[str, ...] = ("summary.json",)) -> Path:
    """A results folder that exists and holds ``need``; else a one-line UsageError."""
    with folder_errors():
        return open_run_folder(path, need)


@contextmanager
def folder_errors() -> Iterator[None]:
    """Turn a :class:`RunFolderError` (an unusable results folder) into a UsageError."""
    try:
        yield
    except RunFolderError as exc:
        raise UsageError(" ".join(str(exc).split())[:400]) from None


def warn_bad_lines(command: str, log: EventLog) -> None:
    """Refuse a log with nothing usable; else name its first bad line, if any, on stderr."""
    with folder_errors():
        log.require_usable()
    warning = log.warning()
    if warning is not None:
        print(f"mmemu {command}: warning: {warning}", file=sys.stderr)
