"""A results folder read as untrusted input: by ``mmemu trace``, ``compactsnoop``, ``plot`` and
``diff``.

A run killed mid-write leaves events.jsonl with a line cut short; a folder may have been edited,
copied half-way, or be something else altogether. The views therefore read:

- ``summary.json`` through :func:`load_summary`, which reads it back typed
  (:class:`~emulator.run.summary.RunSummary`: every field's type checked) and names the first
  field that is wrong;
- ``events.jsonl`` through :class:`EventLog`, which yields the complete, well-formed lines and
  skips the others: a line that is not UTF-8, not JSON, not an object, lacks ``t``/``event`` or
  has a field of a type no event has. A view that finds an event it cannot use (a missing or
  mistyped field of that tracepoint) calls :meth:`EventLog.reject` and carries on. At the end
  :meth:`EventLog.warning` names the first bad line and the count, and
  :meth:`EventLog.require_usable` refuses a log in which nothing was usable.

Every refusal is a :class:`RunFolderError`: one line, which the CLI prints with exit status 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from emulator.run.summary import RunSummary, SummaryError, kind_of

__all__ = [
    "EventLog",
    "RunFolderError",
    "load_summary",
    "open_run_folder",
]

#: the exceptions a view's per-event code raises on an event lacking a field or holding a
#: value of the wrong type (each makes that line a bad line, see :meth:`EventLog.reject`)
EVENT_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError)


class RunFolderError(ValueError):
    """A results folder (or a file in it) cannot be used; the message is one line."""


def open_run_folder(path: str | Path, need: tuple[str, ...] = ("summary.json",)) -> Path:
    """A results folder that exists and holds ``need`` as regular files."""
    p = Path(path)
    if not p.is_dir():
        what = "is not a directory" if p.exists() else "no such directory"
        raise RunFolderError(f"{str(path)!r} is not a results folder ({what})")
    if not (p / "summary.json").exists():
        raise RunFolderError(
            f"{str(path)!r} is not a results folder of mmemu run (no summary.json)"
        )
    for name in need:
        f = p / name
        if not f.exists():
            hint = (
                ": the run used --no-events; run it again without" if name == "events.jsonl" else ""
            )
            raise RunFolderError(f"{str(path)!r} has no {name}{hint}")
        if not f.is_file():
            raise RunFolderError(f"{f}: is not a regular file")
    return p


# -- summary.json -------------------------------------------------------------------------


def load_summary(folder: str | Path) -> RunSummary:
    """The folder's summary.json, typed (:meth:`RunSummary.load`); :class:`RunFolderError`
    names what is wrong."""
    try:
        return RunSummary.load(Path(folder) / "summary.json")
    except SummaryError as exc:
        raise RunFolderError(str(exc)) from None


# -- events.jsonl -------------------------------------------------------------------------

_SCALARS = (int, str, float, bool, type(None))


def _why(raw: bytes, last: bool) -> tuple[dict[str, Any] | None, str]:
    """(event, "") for a well-formed line, else (None, why not)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        ev = json.loads(text)
    except json.JSONDecodeError as exc:
        if last and not raw.endswith(b"\n"):
            return None, "cut short (the run stopped while writing it)"
        return None, f"not JSON ({exc.msg})"
    except RecursionError:
        return None, "nested too deeply"
    if not isinstance(ev, dict):
        return None, f"{kind_of(ev)}, not an event object"
    t = ev.get("t")
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        return None, "no time 't' (a non-negative integer)" if t is None else f"'t' is {kind_of(t)}"
    if not isinstance(ev.get("event"), str):
        return None, "no 'event' name (a string)"
    actor = ev.get("actor", "")
    if not isinstance(actor, str):
        return None, f"'actor' is {kind_of(actor)}, not a string"
    for k, v in ev.items():
        if not isinstance(v, _SCALARS):
            return None, f"field {k[:40]!r} is {kind_of(v)}; event fields are numbers or strings"
    return ev, ""


@attrs.define
class EventLog:
    """The events of an events.jsonl, complete and well-formed lines only, in file order.

    ``line`` is the line number of the event last yielded (for :meth:`reject`).
    """

    path: Path
    line: int = 0
    good: int = 0
    bad: int = 0
    first_bad: tuple[int, str] | None = None
    _rejected: int = -1

    def _note(self, number: int, why: str) -> None:
        self.bad += 1
        if self.first_bad is None:
            self.first_bad = (number, why)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            f = self.path.open("rb")
        except IsADirectoryError:
            raise RunFolderError(f"{self.path}: is a directory, not an event log") from None
        except OSError as exc:
            raise RunFolderError(f"{self.path}: cannot read: {exc.strerror}") from None
        with f:
            number = 0
            prev: bytes | None = None
            # one line of look-ahead tells the last line (a cut-short one) from the others
            for raw in f:
                if prev is not None:
                    number += 1
                    yield from self._one(prev, number, last=False)
                prev = raw
            if prev is not None:
                number += 1
                yield from self._one(prev, number, last=True)

    def _one(self, raw: bytes, number: int, last: bool) -> Iterator[dict[str, Any]]:
        if not raw.strip():
            return
        ev, why = _why(raw, last)
        if ev is None:
            self._note(number, why)
            return
        self.line = number
        self.good += 1
        yield ev

    def reject(self, exc: BaseException) -> None:
        """The event last yielded could not be used (``exc``: a missing or mistyped field)."""
        if self._rejected == self.line:
            return
        self._rejected = self.line
        self.good -= 1
        what = (
            f"field {exc.args[0]!r} missing"
            if isinstance(exc, KeyError)
            else "a field of the wrong type"
        )
        self._note(self.line, f"{what} for its event")

    def warning(self) -> str | None:
        """One line naming the first bad line, or None if every line was usable."""
        if self.first_bad is None:
            return None
        number, why = self.first_bad
        more = f" ({self.bad} bad lines skipped)" if self.bad > 1 else " (skipped)"
        return f"{self.path}:{number}: {why}{more}"

    def require_usable(self) -> None:
        """Refuse a log with bad lines and not one usable event."""
        if self.good <= 0 and self.first_bad is not None:
            number, why = self.first_bad
            raise RunFolderError(
                f"{self.path}: no usable event ({self.bad} bad lines; line {number}: {why})"
            )
