"""A results folder read as untrusted input: by ``mmemu trace``, ``compactsnoop``, ``plot`` and
``diff``.

A run killed mid-write leaves events.jsonl with a line cut short; a folder may have been edited,
copied half-way, or be something else altogether. The views therefore read:

- ``summary.json`` through :func:`load_summary`, which checks the type of every field a view
  uses (:class:`RunSummary`, read back typed) and names the first field that is wrong;
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
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "EventLog",
    "RunFolderError",
    "RunSummary",
    "Timeseries",
    "load_summary",
    "open_run_folder",
]

#: the largest summary.json read (a long run's timeseries is a few MB)
MAX_SUMMARY_BYTES = 256 * 1024 * 1024

#: the exceptions a view's per-event code raises on an event lacking a field or holding a
#: value of the wrong type (each makes that line a bad line, see :meth:`EventLog.reject`)
EVENT_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError)


class RunFolderError(ValueError):
    """A results folder (or a file in it) cannot be used; the message is one line."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


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


def _int(doc: dict[str, Any], key: str, where: str, default: int | None = None) -> int | None:
    v = doc.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise RunFolderError(f"{where}: field {key!r} should be an integer, not {_kind(v)}")
    return v


def _str(doc: dict[str, Any], key: str, where: str, default: str = "") -> str:
    v = doc.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise RunFolderError(f"{where}: field {key!r} should be a string, not {_kind(v)}")
    return v


def _obj(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    v = doc.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise RunFolderError(f"{where}: field {key!r} should be an object, not {_kind(v)}")
    return v


def _numbers(v: Any, where: str, key: str, depth: int) -> list[Any]:
    """A list of numbers (depth 1) or of lists of numbers (depth 2)."""
    what = "a list of numbers" if depth == 1 else "a list of lists of numbers"
    if not isinstance(v, list):
        raise RunFolderError(f"{where}: field {key!r} should be {what}, not {_kind(v)}")
    for i, x in enumerate(v):
        if depth == 2:
            _numbers(x, where, f"{key}[{i}]", 1)
        elif isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise RunFolderError(f"{where}: field {key}[{i}] should be a number, not {_kind(x)}")
    return v


@attrs.frozen
class Timeseries:
    """The sampler's series of summary.json (``timeseries``), all of one length."""

    t_ns: list[int] = attrs.field(factory=list)
    nr_free_pages: list[int] = attrs.field(factory=list)
    pcp_pages: list[int] = attrs.field(factory=list)
    free_pages_per_order: list[list[int]] = attrs.field(factory=list)
    fragmentation_score: list[list[float]] = attrs.field(factory=list)

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str) -> Timeseries:
        where = f"{where} timeseries"
        got: dict[str, Any] = {}
        for f in attrs.fields(cls):
            if doc.get(f.name) is not None:
                depth = 2 if f.name in ("free_pages_per_order", "fragmentation_score") else 1
                got[f.name] = _numbers(doc[f.name], where, f.name, depth)
        n = len(got.get("t_ns", []))
        for name, series in got.items():
            if series and len(series) != n:
                raise RunFolderError(f"{where}: {name} has {len(series)} samples but t_ns has {n}")
        return cls(**got)


@attrs.frozen
class RunSummary:
    """summary.json read back typed: the fields the views use, each checked, and the whole
    document (``doc``) for a view that looks a number up by path (``plot --sweep --y``)."""

    path: Path
    scenario: str
    seed: int | None
    params: dict[str, Any]
    reason: str
    stage: str | None
    virtual_ns: int
    allocations: dict[str, dict[str, Any]]
    lock_stat: dict[str, dict[str, Any]]
    vmstat_delta: dict[str, Any]
    timeseries: Timeseries
    doc: dict[str, Any]

    @property
    def cpus(self) -> int:
        cpus = self.params.get("cpus", 1)
        return cpus if isinstance(cpus, int) and not isinstance(cpus, bool) and cpus > 0 else 1

    @classmethod
    def from_json(cls, doc: Any, path: Path) -> RunSummary:
        where = str(path)
        if not isinstance(doc, dict):
            raise RunFolderError(f"{where}: should hold a JSON object, not {_kind(doc)}")
        params = _obj(doc, "params", where)
        for k, v in params.items():
            if isinstance(v, dict | list):
                raise RunFolderError(f"{where}: params.{k} should be a number or a string")
        allocations = _obj(doc, "allocations", where)
        for order, s in allocations.items():
            if not order.lstrip("-").isdigit() or not isinstance(s, dict):
                raise RunFolderError(f"{where}: allocations.{order[:20]} is not an order's counts")
        lock_stat = _obj(doc, "lock_stat", where)
        for name, s in lock_stat.items():
            if not isinstance(s, dict):
                raise RunFolderError(f"{where}: lock_stat.{name[:40]} should be an object")
        vmstat_delta = _obj(doc, "vmstat_delta", where)
        stage = doc.get("stage")
        return cls(
            path=path,
            scenario=_str(doc, "scenario", where, "?"),
            seed=_int(doc, "seed", where),
            params=params,
            reason=_str(doc, "reason", where, "?"),
            stage=stage if isinstance(stage, str) else None,
            virtual_ns=_int(doc, "virtual_ns", where, 0) or 0,
            allocations=allocations,
            lock_stat=lock_stat,
            vmstat_delta=vmstat_delta,
            timeseries=Timeseries.from_json(_obj(doc, "timeseries", where), where),
            doc=doc,
        )


def load_summary(folder: str | Path) -> RunSummary:
    """The folder's summary.json, typed; :class:`RunFolderError` names what is wrong."""
    path = Path(folder) / "summary.json"
    try:
        if not path.is_file():
            what = "is not a regular file" if path.exists() else "does not exist"
            raise RunFolderError(f"{path}: {what}")
        if path.stat().st_size > MAX_SUMMARY_BYTES:
            raise RunFolderError(f"{path}: larger than {MAX_SUMMARY_BYTES >> 20} MB")
        text = path.read_bytes().decode("utf-8")
        doc = json.loads(text)
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RunFolderError(f"{path}: not a summary (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise RunFolderError(f"{path}: not a summary (nested too deeply)") from None
    return RunSummary.from_json(doc, path)


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
        return None, f"{_kind(ev)}, not an event object"
    t = ev.get("t")
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        return None, "no time 't' (a non-negative integer)" if t is None else f"'t' is {_kind(t)}"
    if not isinstance(ev.get("event"), str):
        return None, "no 'event' name (a string)"
    actor = ev.get("actor", "")
    if not isinstance(actor, str):
        return None, f"'actor' is {_kind(actor)}, not a string"
    for k, v in ev.items():
        if not isinstance(v, _SCALARS):
            return None, f"field {k[:40]!r} is {_kind(v)}; event fields are numbers or strings"
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
