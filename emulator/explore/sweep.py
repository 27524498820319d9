"""Parameter sweeps: one scenario over a grid of parameter values and seeds, run in parallel.

``mmemu sweep SCENARIO --set NAME=V1,V2,... --seeds A..B`` builds the grid (every combination of
the listed values, for every seed), checks every point as ``mmemu run`` would (a bad value is
refused before anything runs), runs the points with the parallel executor
(:func:`emulator.explore.executor.run_many`, or a Dask cluster) and writes one table: a row per
run with its parameters and its summary metrics, as ``sweep.csv`` and ``sweep.json``. Each row
of ``sweep.json`` holds the run's summary.json without its time series and wall-clock fields,
so ``mmemu plot --sweep DIR`` draws any summary metric from it, and a sweep's table is the same
whatever ran it (``--jobs 1``, all cores, a cluster).
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from emulator.runner import RunOptions, run_scenario
from emulator.scenario import load_scenario
from emulator.setup_cache import default_cache

__all__ = [
    "SweepPoint",
    "csv_columns",
    "grid",
    "parse_seeds",
    "parse_sets",
    "row_of",
    "run_point",
    "write_table",
]

#: summary.json fields that depend on the wall clock or are too big for a table row
_DROPPED = ("wall_s", "setup_s", "timeseries")
#: a grid larger than this is refused (a typo in --seeds, not an intended sweep)
MAX_POINTS = 100_000


@attrs.frozen
class SweepPoint:
    """One run of a sweep: the scenario file and the parameter overrides (seed included)."""

    index: int
    scenario_path: str
    overrides: Mapping[str, str]


def parse_sets(items: Sequence[str]) -> dict[str, list[str]]:
    """``NAME=V1,V2,...`` options: the values of each swept parameter, in order."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--set {item[:60]!r}: expected NAME=V1,V2,...")
        vals = [v.strip() for v in values.split(",")]
        if not values.strip() or any(not v for v in vals):
            raise ValueError(f"--set {item[:60]!r}: an empty value in the list")
        if name in out:
            raise ValueError(f"--set {name}: given twice (list every value in one --set)")
        out[name] = vals
    return out


def parse_seeds(text: str) -> list[int]:
    """``A..B`` (inclusive), ``A,B,C`` or one seed; each in 0..2^32-1."""
    text = text.strip()
    try:
        if ".." in text:
            lo_s, hi_s = text.split("..", 1)
            lo, hi = int(lo_s, 10), int(hi_s, 10)
            if hi < lo:
                raise ValueError
            seeds = list(range(lo, hi + 1)) if hi - lo < MAX_POINTS else []
            if not seeds:
                raise ValueError(f"--seeds {text!r}: more than {MAX_POINTS} seeds")
        else:
            seeds = [int(s, 10) for s in text.split(",")]
    except ValueError as exc:
        if str(exc).startswith("--seeds"):
            raise
        raise ValueError(
            f"--seeds {text[:40]!r}: expected A..B (A <= B), A,B,C or one seed, each 0..2^32-1"
        ) from None
    for s in seeds:
        if not 0 <= s < 1 << 32:
            raise ValueError(f"--seeds: seed {s} out of range 0..2^32-1")
    return seeds


def grid(
    scenario_path: str,
    sets: Mapping[str, Sequence[str]],
    seeds: Iterable[int],
    fixed: Mapping[str, str] | None = None,
) -> list[SweepPoint]:
    """Every combination of the swept values, for every seed (seeds vary fastest)."""
    names = list(sets)
    combos = list(itertools.product(*(sets[n] for n in names)))
    seeds = list(seeds)
    if len(combos) * len(seeds) > MAX_POINTS:
        raise ValueError(f"the grid has {len(combos) * len(seeds)} runs (at most {MAX_POINTS})")
    points: list[SweepPoint] = []
    for combo in combos:
        for seed in seeds:
            overrides = {**(fixed or {}), **dict(zip(names, combo, strict=True))}
            overrides["seed"] = str(seed)
            points.append(SweepPoint(len(points), scenario_path, overrides))
    return points


def run_point(point: SweepPoint) -> dict[str, Any]:
    """Run one point (in a worker process or a Dask worker): its table row."""
    scenario = load_scenario(point.scenario_path)
    params = scenario.resolve(dict(point.overrides))
    result = run_scenario(scenario, params, record=False, options=RunOptions(cache=default_cache()))
    return row_of(point, result.summary().to_json())


def row_of(point: SweepPoint, summary: Mapping[str, Any]) -> dict[str, Any]:
    """A table row: the point's index and overrides, and its summary (see the module doc)."""
    return {
        "index": point.index,
        "overrides": dict(point.overrides),
        "summary": {k: v for k, v in summary.items() if k not in _DROPPED},
    }


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, bool) or value is None or isinstance(value, int | float | str):
        out[prefix] = value


def _csv_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's CSV cells: its parameters, the outcome, and the summary's numbers."""
    s = row["summary"]
    out: dict[str, Any] = {"index": row["index"], "seed": s.get("seed")}
    for name, value in sorted(row["overrides"].items()):
        if name != "seed":
            out[f"param.{name}"] = value
    out["reason"] = s.get("reason")
    out["virtual_ns"] = s.get("virtual_ns")
    out["error"] = s.get("error", "")
    for section in ("vmstat_delta", "allocations", "lock_stat", "engine", "slowpath"):
        _flat(section, s.get(section, {}), out)
    out["violations"] = len(s.get("violations", []) or [])
    return out


def csv_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The union of the rows' CSV columns, in first-seen order (vmstat_delta counters that a run
    did not move are 0 in its row)."""
    seen: dict[str, None] = {}
    for row in rows:
        for k in _csv_fields(row):
            seen.setdefault(k, None)
    return list(seen)


def write_table(
    rows: Sequence[Mapping[str, Any]], out: Path, meta: Mapping[str, Any]
) -> tuple[Path, Path]:
    """``sweep.json`` (``meta`` and every row) and ``sweep.csv`` into folder ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r["index"])
    js = out / "sweep.json"
    js.write_text(json.dumps({**meta, "runs": list(rows)}, indent=1) + "\n", encoding="utf-8")
    columns = csv_columns(rows)
    cs = out / "sweep.csv"
    with cs.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for row in rows:
            cells = _csv_fields(row)
            w.writerow(
                {c: cells.get(c, 0 if c.startswith("vmstat_delta.") else "") for c in columns}
            )
    return js, cs
