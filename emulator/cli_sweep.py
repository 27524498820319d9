"""``mmemu sweep SCENARIO --set NAME=V1,V2,... --seeds A..B [--jobs J | --dask ADDRESS]``:
one scenario over a grid of parameter values and seeds, in parallel, into one table
(:mod:`emulator.explore.sweep`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from emulator.cli import UsageError
from emulator.explore.executor import ItemError, run_many
from emulator.explore.executor_dask import ClusterUnavailable, run_on_cluster
from emulator.explore.sweep import SweepPoint, grid, parse_seeds, parse_sets, run_point, write_table
from emulator.scenario import ScenarioError, find_scenario, load_scenario

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="scenario file or bundled name")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a swept parameter and its values (repeat for a grid); one value fixes it",
    )
    parser.add_argument("--seeds", default="1", help="seeds: A..B (inclusive), A,B,C or one")
    parser.add_argument("--strategy", help="fifo, random or pct for every run")
    parser.add_argument(
        "--jobs", type=int, help="worker processes (default: every core; 1: in this process)"
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a Dask cluster (scheduler address; needs mmemu[cluster] there and here)",
    )
    parser.add_argument("--out", help="folder for sweep.csv and sweep.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary line")


def _points(args: argparse.Namespace) -> tuple[Any, list[SweepPoint]]:
    """The grid, every point checked as ``mmemu run`` would check it."""
    try:
        sets = parse_sets(args.sets)
        seeds = parse_seeds(args.seeds)
        path = find_scenario(args.scenario)
        scenario = load_scenario(path)
        fixed = {"strategy": args.strategy} if args.strategy else {}
        points = grid(str(path), sets, seeds, fixed)
        checked: set[tuple[tuple[str, str], ...]] = set()
        for p in points:
            # parameters are checked once per combination (the seed's range is checked above)
            key = tuple(sorted((k, v) for k, v in p.overrides.items() if k != "seed"))
            if key not in checked:
                scenario.resolve(dict(p.overrides))
                checked.add(key)
    except (ScenarioError, ValueError) as exc:
        raise UsageError(" ".join(str(exc).split())[:300]) from None
    return scenario, points


def run(args: argparse.Namespace) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: at least 1")
    if args.jobs is not None and args.dask:
        raise UsageError("--jobs and --dask: choose one (the cluster sets its own parallelism)")
    scenario, points = _points(args)
    out = Path(args.out) if args.out else Path("results") / f"sweep-{scenario.name}"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, not a folder")
    show = sys.stderr.isatty() and not args.quiet
    bar = Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not show,
    )
    task = bar.add_task("sweep", total=len(points))

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    rows: list[dict[str, Any]] = []
    failed: list[ItemError] = []
    with bar:
        if args.dask:
            try:
                results = run_on_cluster(run_point, points, args.dask, progress)
            except ClusterUnavailable as exc:
                raise UsageError(str(exc)) from None
        else:
            results = run_many(run_point, points, jobs=args.jobs, progress=progress)
        for _, outcome in results:
            if isinstance(outcome, ItemError):
                failed.append(outcome)
            else:
                rows.append(outcome)
    meta = {
        "scenario": scenario.name,
        "sets": parse_sets(args.sets),
        "seeds": args.seeds,
        "strategy": args.strategy,
        "runs_failed": [str(f) for f in sorted(failed, key=lambda f: f.index)],
    }
    try:
        js, cs = write_table(rows, out, meta)
    except OSError as exc:
        raise UsageError(f"--out {str(out)!r}: {exc.strerror}") from None
    errors = [r for r in rows if r["summary"].get("error")]
    if not args.quiet:
        print(f"{len(rows)} runs of {scenario.name} -> {cs} and {js}")
    for f in failed[:5]:
        print(f"mmemu sweep: run failed: {' '.join(f.error.split())[:200]}", file=sys.stderr)
    for r in errors[:5]:
        line = " ".join(str(r["summary"]["error"]).split())[:200]
        print(f"mmemu sweep: run {r['index']} ({r['summary']['reason']}): {line}", file=sys.stderr)
    return 1 if failed or errors else 0
