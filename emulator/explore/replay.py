"""Schedule files: save a run's decisions, replay them exactly.

Every choice the strategy made (which of several actors tied at one instant ran first, and
how long an actor was held back at a preemption point) is in ``sim.decisions``. A schedule file
keeps them with the scenario and parameters, so ``mmemu run --replay FILE`` reproduces the run
byte for byte, even one found by ``random`` or ``pct`` exploration.

Format (JSON): ``{"format": "mmemu-schedule/1", "mmemu_version": ..., "scenario": ...,
"scenario_path": ..., "scenario_sha256": ..., "params": {...}, "params_sha256": ...,
"strategy": {...}, "delays": bool, "decisions": [[n, value], ...], "decisions_sha256": ...,
"events_sha256": ...}`` where ``n >= 2`` is a choice among ``n`` actors (``value`` the index)
and ``n == 0`` a delay in ns.

A replay is exact only with the same mmemu, the same scenario file and the same parameters:
:func:`check_schedule` refuses a schedule recorded with another version, a scenario file that
changed, or edited parameters or decisions (their digests no longer match), and
:func:`compare_replay` names the first decision where a replay went another way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from emulator import __version__
from emulator.engine import Replay, Sim

__all__ = [
    "FORMAT",
    "Schedule",
    "ScheduleError",
    "check_schedule",
    "compare_replay",
    "file_sha256",
    "load_schedule",
    "save_schedule",
    "schedule_document",
    "write_schedule_document",
]

#: the largest schedule file read (a run's decisions; 100 MB is tens of millions of them)
MAX_SCHEDULE_BYTES = 100 * 1024 * 1024

FORMAT = "mmemu-schedule/1"


class ScheduleError(ValueError):
    """A schedule file is unreadable or malformed; the message names the file and the field."""


@attrs.frozen
class Schedule:
    scenario: str
    scenario_path: str | None
    params: dict[str, Any]
    strategy: dict[str, Any]
    delays: bool
    decisions: tuple[tuple[int, int], ...]
    mmemu_version: str | None = None
    scenario_sha256: str | None = None
    params_sha256: str | None = None
    decisions_sha256: str | None = None
    events_sha256: str | None = None
    path: str = ""
    #: where a run stopped by a signal stopped (``reason``, ``virtual_ns``): its replay
    #: makes the recorded decisions and stops there, never asking for one more
    stopped: dict[str, Any] | None = None
    #: a --from-proc run's saved /proc files (name -> text): its replay starts from them
    from_proc: dict[str, str] | None = None

    def replay(self) -> Replay:
        return Replay(self.decisions, delays=self.delays, partial=self.stopped is not None)


def _digest_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def file_sha256(path: str | Path | None) -> str | None:
    """The sha256 of a file's bytes, or None if there is no such regular file."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def schedule_document(
    *,
    scenario: str,
    scenario_path: str | None,
    params: dict[str, Any],
    strategy: dict[str, Any],
    delays: bool,
    decisions: Sequence[Sequence[int]],
    events_sha256: str | None,
    **extra: Any,
) -> dict[str, Any]:
    """A schedule file's contents (``extra`` keys, e.g. an explored schedule's ``violation``,
    are kept as they are and ignored by a replay)."""
    listed = [list(d) for d in decisions]
    return {
        "format": FORMAT,
        "mmemu_version": __version__,
        "scenario": scenario,
        "scenario_path": scenario_path,
        "scenario_sha256": file_sha256(scenario_path),
        "params": params,
        "params_sha256": _digest_json(params),
        "strategy": strategy,
        "delays": bool(delays),
        "decisions": listed,
        "decisions_sha256": _digest_json(listed),
        "events_sha256": events_sha256,
        # a replay checks the events of a run that recorded them: a null digest of a run
        # that did is refused, never a skipped check
        "events_recorded": events_sha256 is not None,
        **extra,
    }


def write_schedule_document(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")


def save_schedule(
    path: Path,
    sim: Sim,
    scenario: str,
    scenario_path: str | None,
    params: dict[str, Any],
    events: Path | None = None,
    stopped: dict[str, Any] | None = None,
    from_proc: Mapping[str, str] | None = None,
) -> None:
    """Write ``path``. ``stopped`` (``reason``, ``virtual_ns``, ``events_lines``) for a run a
    signal stopped; ``from_proc`` the saved /proc files a --from-proc run started from."""
    extra: dict[str, Any] = {}
    if stopped is not None:
        extra["stopped"] = stopped
    if from_proc is not None:
        extra["from_proc"] = dict(from_proc)
        extra["from_proc_sha256"] = _digest_json(extra["from_proc"])
    doc = schedule_document(
        scenario=scenario,
        scenario_path=scenario_path,
        params=params,
        strategy=sim.strategy.describe(),
        delays=bool(sim.strategy.delays),
        decisions=sim.decisions,
        events_sha256=file_sha256(events),
        **extra,
    )
    write_schedule_document(path, doc)


def load_schedule(path: str | Path) -> Schedule:
    p = Path(path)
    try:
        if not p.is_file():
            what = "does not exist" if not p.exists() else "is not a regular file"
            raise ScheduleError(f"{p}: {what}")
        if p.stat().st_size > MAX_SCHEDULE_BYTES:
            raise ScheduleError(f"{p}: larger than {MAX_SCHEDULE_BYTES >> 20} MB: not a schedule")
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"{p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ScheduleError(f"{p}: not JSON: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"{p}:{exc.lineno}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise ScheduleError(f"{p}: not a schedule file (nested too deeply)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ScheduleError(f"{p}: not a schedule file (format must be {FORMAT!r})")
    try:
        raw = doc["decisions"]
        if not isinstance(raw, list):
            raise TypeError("decisions must be a list")
        decisions = tuple(_decision(d) for d in raw)
        if any(n == 1 or n < 0 or v < 0 or (n >= 2 and v >= n) for n, v in decisions):
            raise ValueError("a decision is out of range")
        params = doc["params"]
        if not isinstance(params, dict):
            raise TypeError("params must be an object")
        strategy = doc["strategy"]
        if not isinstance(strategy, dict):
            raise TypeError("strategy must be an object")
        opt = {k: doc.get(k) for k in _OPTIONAL}
        for k, v in opt.items():
            if v is not None and not isinstance(v, str):
                raise TypeError(f"{k} must be a string")
        sp = doc.get("scenario_path")
        if sp is not None and not isinstance(sp, str):
            raise TypeError("scenario_path must be a string or null")
        if not isinstance(doc["scenario"], str):
            raise TypeError("scenario must be a string")
        if not isinstance(doc["delays"], bool):
            raise TypeError("delays must be true or false")
        for k in _REQUIRED_DIGESTS:
            if not isinstance(doc.get(k), str):
                raise TypeError(f"{k} must be a string")
        recorded = doc.get("events_recorded")
        if not isinstance(recorded, bool):
            raise TypeError("events_recorded must be true or false")
        if recorded and not isinstance(doc.get("events_sha256"), str):
            raise TypeError("events_sha256 must be a string (the run recorded events)")
        stopped = doc.get("stopped")
        if stopped is not None and not (
            isinstance(stopped, dict)
            and isinstance(stopped.get("reason"), str)
            and isinstance(stopped.get("virtual_ns"), int)
            and not isinstance(stopped.get("virtual_ns"), bool)
        ):
            raise TypeError("stopped must be {reason: string, virtual_ns: integer}")
        procs = doc.get("from_proc")
        if procs is not None:
            if not isinstance(procs, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in procs.items()
            ):
                raise TypeError("from_proc must map file names to their text")
            if doc.get("from_proc_sha256") != _digest_json(procs):
                raise ValueError(
                    "its from_proc files were edited (from_proc_sha256 does not match)"
                )
        return Schedule(
            scenario=doc["scenario"],
            scenario_path=sp,
            params=dict(params),
            strategy=dict(strategy),
            delays=doc["delays"],
            decisions=decisions,
            path=str(p),
            stopped=stopped,
            from_proc=procs,
            **opt,
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        text = str(exc)
        raise ScheduleError(f"{p}: malformed schedule: {text[:200]}") from None


#: digests a schedule must carry (a null one would skip its check); events_sha256 is null
#: only for a run without events.jsonl (--no-events), scenario_sha256 for a scenario
#: without a file
_REQUIRED_DIGESTS = ("params_sha256", "decisions_sha256")

_OPTIONAL = (
    "mmemu_version",
    "scenario_sha256",
    "params_sha256",
    "decisions_sha256",
    "events_sha256",
)


def _decision(d: Any) -> tuple[int, int]:
    if (
        not isinstance(d, list)
        or len(d) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in d)
    ):
        raise TypeError("each decision must be [n, value] with two integers")
    return d[0], d[1]


def check_schedule(schedule: Schedule, scenario_path: str | None) -> None:
    """Refuse a schedule that cannot replay exactly: another mmemu version, a changed scenario
    file, or edited parameters or decisions. Raises :class:`ScheduleError` (one line)."""
    p = schedule.path
    if schedule.mmemu_version is None:
        raise ScheduleError(f"{p}: records no mmemu_version (written by an older mmemu)")
    if schedule.mmemu_version != __version__:
        raise ScheduleError(
            f"{p}: recorded with mmemu {schedule.mmemu_version}, this is mmemu {__version__}; "
            "a replay is exact only with the same version"
        )
    if schedule.params_sha256 != _digest_json(schedule.params):
        raise ScheduleError(f"{p}: its params were edited (params_sha256 does not match)")
    if schedule.decisions_sha256 != _digest_json([list(d) for d in schedule.decisions]):
        raise ScheduleError(
            f"{p}: its decisions were edited (decisions_sha256 does not match); "
            "a schedule replays only as recorded"
        )
    now = file_sha256(scenario_path)
    if now is not None and schedule.scenario_sha256 is None:
        raise ScheduleError(
            f"{p}: records no scenario_sha256 for the scenario file {scenario_path}; "
            "a replay is exact only with the file it was recorded with"
        )
    if schedule.scenario_sha256 is not None and now != schedule.scenario_sha256:
        raise ScheduleError(
            f"{p}: the scenario file {scenario_path} changed since the schedule was recorded "
            "(scenario_sha256 does not match)"
        )


def compare_replay(schedule: Schedule, made: list[tuple[int, int]]) -> str | None:
    """None if a replay made exactly the recorded decisions, else one line naming the first
    decision that differs."""
    rec = schedule.decisions
    for i, (a, b) in enumerate(zip(rec, made, strict=False)):
        if tuple(a) != tuple(b):
            return f"decision {i}: recorded {_show(a)}, replay made {_show(b)}"
    if len(made) < len(rec):
        return (
            f"decision {len(made)}: recorded {_show(rec[len(made)])}, but the replay ended after "
            f"{len(made)} of {len(rec)} decisions"
        )
    if len(made) > len(rec):
        return f"decision {len(rec)}: the recording has only {len(rec)} decisions"
    return None


def _show(d: tuple[int, int]) -> str:
    n, v = d
    return f"a delay of {v} ns" if n == 0 else f"choice {v} of {n}"
