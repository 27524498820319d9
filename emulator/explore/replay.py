"""Schedule files: save a run's decisions, replay them exactly.

Every choice the strategy made (which of several actors tied at one instant ran first, and
how long an actor was held back at a preemption point) is in ``sim.decisions``. A schedule file
keeps them with the scenario and parameters, so ``mmemu run --replay FILE`` reproduces the run
byte for byte, even one found by ``random`` or ``pct`` exploration.

Format (JSON): ``{"format": "mmemu-schedule/1", "scenario": ..., "scenario_path": ...,
"params": {...}, "strategy": {...}, "delays": bool, "decisions": [[n, value], ...]}`` where
``n >= 2`` is a choice among ``n`` actors (``value`` the index) and ``n == 0`` a delay in ns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from emulator.engine import Replay, Sim

__all__ = ["FORMAT", "Schedule", "ScheduleError", "load_schedule", "save_schedule"]

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

    def replay(self) -> Replay:
        return Replay(self.decisions, delays=self.delays)


def save_schedule(
    path: Path, sim: Sim, scenario: str, scenario_path: str | None, params: dict[str, Any]
) -> None:
    doc = {
        "format": FORMAT,
        "scenario": scenario,
        "scenario_path": scenario_path,
        "params": params,
        "strategy": sim.strategy.describe(),
        "delays": bool(sim.strategy.delays),
        "decisions": [list(d) for d in sim.decisions],
    }
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")


def load_schedule(path: str | Path) -> Schedule:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as exc:
        raise ScheduleError(f"{p}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"{p}:{exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ScheduleError(f"{p}: not a schedule file (format must be {FORMAT!r})")
    try:
        decisions = tuple((int(n), int(v)) for n, v in doc["decisions"])
        if any(n == 1 or n < 0 or v < 0 or (n >= 2 and v >= n) for n, v in decisions):
            raise ValueError("a decision is out of range")
        return Schedule(
            scenario=str(doc["scenario"]),
            scenario_path=doc.get("scenario_path"),
            params=dict(doc["params"]),
            strategy=dict(doc["strategy"]),
            delays=bool(doc["delays"]),
            decisions=decisions,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ScheduleError(f"{p}: malformed schedule: {exc}") from None
