"""``mmemu explore SCENARIO --runs N [--strategy random|pct] [--depth D] [--seed S] [--jobs J]
[--check NAMES] [--all] [--perturb]``: run a scenario under many schedules and shrink a failure.

Schedule ``i`` is the strategy seeded with ``S + i`` (the workload's own seed stays the
scenario's, or ``--set seed=N``): the same command explores the same schedules. They run in
``J`` worker processes (:mod:`emulator.explore.executor`), with a progress bar on a terminal.
At the end a table gives the runs, the violations per check, the distinct failure signatures
and the runs per minute. The first violating schedule (with ``--all``, the first of every
distinct signature) is shrunk (:func:`emulator.explore.schedules.shrink`) and written as a
schedule file; the command that replays it exactly is printed. Exit status 1 when a check was
violated, 0 when none was, 2 for bad input.

Without ``--perturb`` only the choice among actors tied at one instant is explored, so every
schedule keeps the scenario's timing; ``--perturb`` also injects delays at preemption points.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from emulator.cli import UsageError
from emulator.engine.strategy import MAX_DEPTH, MAX_SEED, PCT_DEFAULT_DEPTH
from emulator.explore.executor import ItemError, default_jobs, run_many
from emulator.explore.replay import schedule_document, write_schedule_document
from emulator.explore.schedules import (
    Outcome,
    RunSpec,
    ShrinkResult,
    available_checks,
    default_checks,
    make_schedule_strategy,
    run_schedule,
    shrink,
    signature,
)
from emulator.runner import ScenarioHookError
from emulator.scenario import ScenarioError, find_scenario, load_scenario

__all__ = ["configure", "run"]

MAX_RUNS = 1_000_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="scenario file or bundled name")
    parser.add_argument("--runs", default="100", help="schedules to run (default 100)")
    parser.add_argument(
        "--strategy", default="pct", help="random or pct (default pct): how schedules are drawn"
    )
    parser.add_argument(
        "--depth", default=str(PCT_DEFAULT_DEPTH), help=f"pct bug depth, 1..{MAX_DEPTH}"
    )
    parser.add_argument("--seed", default="1", help="seed of the first schedule (default 1)")
    parser.add_argument("--jobs", help="worker processes (default: all cores)")
    parser.add_argument(
        "--check",
        metavar="NAMES",
        help="comma-separated checks (default: crash, deadlock, watchdog, invariants and the "
        "scenario's properties; a standard property may be added by name)",
    )
    parser.add_argument(
        "--all", action="store_true", help="shrink one schedule per distinct failure signature"
    )
    parser.add_argument(
        "--perturb",
        action="store_true",
        help="also inject delays at preemption points (changes timing figures)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a scenario parameter (as for mmemu run)",
    )
    parser.add_argument(
        "--out", help="folder for the schedule files (default results/explore-<scenario>)"
    )
    parser.add_argument(
        "--shrink-runs", default="400", help="at most this many runs per shrink (default 400)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _int(name: str, text: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"-?[0-9]{1,12}", text.strip()):
        raise UsageError(f"{name} {text[:40]!r}: expected an integer in {lo}..{hi}")
    v = int(text)
    if not lo <= v <= hi:
        raise UsageError(f"{name} {v}: out of range: valid {lo}..{hi}")
    return v


def _checks(text: str | None, valid: list[str], default: tuple[str, ...]) -> tuple[str, ...]:
    if text is None:
        return default
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in valid]
    if bad or not names:
        why = f"unknown check {bad[0][:40]!r}" if bad else "no check named"
        raise UsageError(f"--check {text[:60]!r}: {why}; valid are {', '.join(valid)}")
    return names


def _overrides(sets: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in sets:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {item[:60]!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    for fixed in ("strategy", "perturb"):
        if fixed in out:
            raise UsageError(f"--set {fixed}=...: explore sets it (use --strategy, --perturb)")
    return out


@attrs.frozen
class Plan:
    scenario_name: str
    scenario_path: str
    params: dict[str, Any]  # resolved, as JSON
    strategy: str
    depth: int
    first_seed: int
    runs: int
    jobs: int
    checks: tuple[str, ...]
    perturb: bool
    shrink_all: bool
    shrink_runs: int
    out: Path


def _plan(args: argparse.Namespace) -> Plan:
    strategy = args.strategy.strip().lower()
    if strategy not in ("random", "pct"):
        raise UsageError(f"--strategy {args.strategy[:40]!r}: valid are random, pct")
    runs = _int("--runs", args.runs, 1, MAX_RUNS)
    depth = _int("--depth", args.depth, 1, MAX_DEPTH)
    seed = _int("--seed", args.seed, 0, MAX_SEED)
    if seed + runs - 1 > MAX_SEED:
        raise UsageError(f"--seed {seed} with --runs {runs}: schedule seeds pass {MAX_SEED}")
    jobs = default_jobs() if args.jobs is None else _int("--jobs", args.jobs, 1, 1024)
    shrink_runs = _int("--shrink-runs", args.shrink_runs, 0, 100_000)
    overrides = _overrides(args.sets)
    try:
        path = find_scenario(args.scenario)
        scenario = load_scenario(path)
        params = scenario.resolve({**overrides, "perturb": args.perturb, "strategy": strategy})
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    checks = _checks(args.check, list(available_checks(scenario)), default_checks(scenario))
    out = Path(args.out) if args.out else Path("results") / f"explore-{scenario.name}"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r}: exists and is not a folder")
    return Plan(
        scenario_name=scenario.name,
        scenario_path=str(path),
        params=params.as_json(),
        strategy=strategy,
        depth=depth,
        first_seed=seed,
        runs=runs,
        jobs=jobs,
        checks=checks,
        perturb=bool(args.perturb),
        shrink_all=bool(args.all),
        shrink_runs=shrink_runs,
        out=out,
    )


class _Bar:
    """A progress bar on stderr (rich), or nothing."""

    def __init__(self, enabled: bool, total: int, what: str) -> None:
        self._p: Any = None
        self._task: Any = None
        if enabled:
            self._p = Progress(
                TextColumn(what),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[found]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._p.add_task(what, total=total, found="")
            self._p.start()

    def update(self, done: int, found: str = "") -> None:
        if self._p is not None:
            self._p.update(self._task, completed=done, found=found)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


def run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    show = sys.stderr.isatty() and not args.quiet
    # the number of steps PCT spreads its change points over: the default schedule's
    try:
        base = run_schedule(
            RunSpec(
                plan.scenario_path, plan.params, "fifo", perturb=plan.perturb, checks=plan.checks
            )
        )
    except (ScenarioError, ScenarioHookError) as exc:
        raise UsageError(str(exc)) from None
    steps = max(1, len(base.decisions))
    specs = [
        RunSpec(
            scenario_path=plan.scenario_path,
            params=plan.params,
            strategy=plan.strategy,
            schedule_seed=plan.first_seed + i,
            depth=plan.depth,
            steps=steps,
            perturb=plan.perturb,
            checks=plan.checks,
        )
        for i in range(plan.runs)
    ]
    outcomes: dict[int, Outcome] = {}
    errors: dict[int, ItemError] = {}
    bar = _Bar(show, plan.runs, f"exploring {plan.scenario_name}")
    violating = 0
    t0 = time.perf_counter()
    try:
        for i, got in run_many(run_schedule, specs, jobs=plan.jobs):
            if isinstance(got, ItemError):
                errors[i] = got
            else:
                outcomes[i] = got
                violating += got.violated
            bar.update(len(outcomes) + len(errors), f"{violating} violating")
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    per_check: Counter[str] = Counter()
    first_of: dict[str, int] = {}
    for i in sorted(outcomes):
        for v in outcomes[i].violations:
            per_check[v.property] += 1
            first_of.setdefault(signature(v), i)
    print(f"explored {plan.scenario_name}: {plan.runs} schedules ({plan.strategy}", end="")
    print(
        f"{f', depth {plan.depth}' if plan.strategy == 'pct' else ''}"
        f"{', perturbed' if plan.perturb else ''}; seeds {plan.first_seed}.."
        f"{plan.first_seed + plan.runs - 1}; {steps} steps in the default schedule)"
    )
    if base.violated:
        print(f"  the default (fifo) schedule already violates: {base.signatures[0]}")
    rows = [("runs", str(plan.runs)), ("violating runs", str(violating))]
    rows += [(f"  {c}", str(per_check[c])) for c in plan.checks]
    rows.append(("distinct failure signatures", str(len(first_of))))
    if errors:
        rows.append(("runs that failed to run", str(len(errors))))
    rate = plan.runs / wall * 60 if wall > 0 else float("inf")
    rows.append(("runs per minute", f"{rate:.0f} ({plan.jobs} jobs, {wall:.1f} s wall)"))
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    for sig, i in first_of.items():
        print(f"  [{outcomes[i].spec.schedule_seed}] {sig}")
    for i, err in sorted(errors.items())[:3]:
        print(f"  schedule seed {specs[i].schedule_seed} did not run: {err.error}")
    targets = list(first_of.items()) if plan.shrink_all else list(first_of.items())[:1]
    if targets:
        plan.out.mkdir(parents=True, exist_ok=True)
    for sig, i in targets:
        _shrink_and_write(plan, outcomes[i], sig, show)
    return 1 if first_of else (1 if errors else 0)


def _shrink_and_write(plan: Plan, found: Outcome, sig: str, show: bool) -> None:
    seed = found.spec.schedule_seed
    bar = _Bar(show, plan.shrink_runs, f"shrinking schedule {seed}")
    try:
        result = shrink(
            found, sig, jobs=plan.jobs, max_runs=plan.shrink_runs, progress=lambda n: bar.update(n)
        )
    finally:
        bar.close()
    check = sig.split(":", 1)[0]
    path = plan.out / f"{plan.scenario_name}-{check}-seed{seed}.schedule.json"
    doc = replay_document(plan, result, sig, seed)
    write_schedule_document(path, doc)
    print(
        f"shrunk schedule {seed} ({sig}): {result.before} -> {result.after} non-default "
        f"decisions ({result.total_before} -> {result.total_after} in all), "
        f"{result.delays_before} -> {result.delays_after} delays "
        f"({result.delay_ns_before} -> {result.delay_ns_after} ns) in {result.runs} runs"
    )
    print(f"  replay: mmemu run --replay {path}")


def replay_document(
    plan: Plan, result: ShrinkResult, sig: str, schedule_seed: int
) -> dict[str, Any]:
    """The schedule file of a shrunk violation: replayable by ``mmemu run --replay``."""
    out = result.outcome
    violation = next(v for v in out.violations if signature(v) == sig)
    return schedule_document(
        scenario=plan.scenario_name,
        scenario_path=plan.scenario_path,
        params=plan.params,
        strategy=make_schedule_strategy(out.spec).describe(),
        delays=plan.perturb,
        decisions=out.decisions,
        events_sha256=out.events_sha256,
        violation={**violation.as_dict(), "signature": sig},
        explore={
            "strategy": plan.strategy,
            "depth": plan.depth,
            "perturb": plan.perturb,
            "schedule_seed": schedule_seed,
            "checks": list(plan.checks),
            "non_default_before": result.before,
            "non_default_after": result.after,
            "decisions_before": result.total_before,
            "decisions_after": result.total_after,
            "delays_before": result.delays_before,
            "delays_after": result.delays_after,
            "delay_ns_before": result.delay_ns_before,
            "delay_ns_after": result.delay_ns_after,
            "shrink_runs": result.runs,
            "reason": out.reason,
        },
    )
