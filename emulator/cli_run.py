"""``mmemu run [SCENARIO] [--seed N] [--set NAME=VALUE ...] [--out DIR] [--strategy S]``.

Runs a scenario file (or a bundled scenario by name; ``default`` when none is given), shows the
set-up and then the run's progress on a terminal and a short summary at the end, and writes the
results folder, including ``schedule.json``: ``mmemu run --replay DIR/schedule.json`` reproduces
the run exactly.

Every input is checked before anything is written: a bad one is one line on stderr and exit 2.
SIGINT, SIGTERM and SIGHUP stop the run cleanly: the results so far are written (with
``reason`` saying what stopped it) and the exit status is 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from emulator.cli import UsageError
from emulator.cli_progress import Progress
from emulator.engine.recorder import compile_event_filter
from emulator.engine.sim import DRIVERS
from emulator.explore.replay import (
    ScheduleError,
    check_schedule,
    compare_replay,
    file_sha256,
    load_schedule,
    save_schedule,
)
from emulator.mm.tracepoints import unmatched_globs
from emulator.report.results import print_summary, write_results
from emulator.report.views import write_views
from emulator.runner import ScenarioHookError, Stopped, StopSignals, run_scenario
from emulator.scenario import (
    Scenario,
    ScenarioError,
    find_scenario,
    from_proc,
    load_scenario,
)

__all__ = ["configure", "run"]

#: files a run writes besides the kernel files (checked up front: none may be a directory)
RUN_FILES = ("events.jsonl", "summary.json", "schedule.json", "trace.json")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", help="scenario file or bundled name (default)")
    parser.add_argument("--seed", help="seed (overrides the scenario's), 0..2^32-1")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a parameter: memory=8G, cpus=16, duration=2s, vm.<sysctl>=N, cost.<name>=50ns, "
        "mitigation.<name>=on|off",
    )
    parser.add_argument(
        "--out", help="results folder (default: results/<scenario>-seed<N>[-NAME=VALUE...])"
    )
    parser.add_argument("--strategy", help="fifo, random or pct (seeded with --seed)")
    parser.add_argument(
        "--perturb",
        action="store_true",
        help="let random/pct also inject delays at preemption points (changes timing figures)",
    )
    parser.add_argument("--quantum", help="sync quantum, a duration (0 = exact; e.g. 1us)")
    parser.add_argument(
        "--from-proc",
        metavar="DIR",
        help="start from a real machine's state: DIR holds buddyinfo, pagetypeinfo, zoneinfo",
    )
    parser.add_argument(
        "--replay",
        metavar="SCHEDULE",
        help="replay a schedule.json from an earlier run exactly (its scenario and params)",
    )
    parser.add_argument("--no-events", action="store_true", help="do not record events.jsonl")
    parser.add_argument("--no-trace", action="store_true", help="do not write trace.json")
    parser.add_argument(
        "--trace-locks",
        choices=("zone", "contended", "all"),
        default="zone",
        help="lock holds in trace.json: zone (zone->lock, lru_lock; default), contended, all",
    )
    parser.add_argument("--plots", action="store_true", help="also write PNG plots (plots/)")
    parser.add_argument(
        "--events",
        metavar="GLOB[,GLOB]",
        help="record only these tracepoints, e.g. mm_compaction_*,mm_page_alloc",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail if model code touches shared state without synchronising (debugging)",
    )
    parser.add_argument(
        "--driver",
        choices=DRIVERS,
        default=None,
        help="engine driver: fast (default) or trio (the reference; same results, slower)",
    )
    parser.add_argument(
        "--check-determinism",
        action="store_true",
        help="run twice and name the first event where the two runs differ (exit 1 if any)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or summary")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.sets:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {item[:60]!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    if args.seed is not None:
        out["seed"] = args.seed
    if args.strategy is not None:
        out["strategy"] = args.strategy
    if args.quantum is not None:
        out["quantum"] = args.quantum
    if getattr(args, "perturb", False):
        out["perturb"] = True
    return out


def _default_out(scenario: Scenario, seed: int, sets: list[str]) -> Path:
    """``results/<scenario>-seed<N>`` plus every ``--set NAME=VALUE`` (so runs that differ in
    a parameter do not overwrite each other)."""
    name = f"{scenario.name}-seed{seed}"
    for item in sets:
        k, _, v = item.partition("=")
        name += "-" + f"{k.strip()}={v.strip()}".replace("/", "_").replace(" ", "_")
    return Path("results") / name[:200]


def _check_out(out: Path, from_proc: bool) -> None:
    """Refuse an output folder the results cannot be written to (before writing anything)."""
    from emulator.report.results import KERNEL_FILES

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r}: exists and is not a folder")
    if out.is_dir():
        for name in (*RUN_FILES, *KERNEL_FILES):
            p = out / name
            if p.exists() and not p.is_file():
                raise UsageError(f"--out {str(out)!r}: {name} exists and is not a regular file")


def _prepare(args: argparse.Namespace) -> tuple[Scenario, Any, Any]:
    """Scenario, params and the schedule to replay (or None); every refusal is a UsageError."""
    schedule = None
    try:
        overrides = _overrides(args)
        if args.replay:
            schedule = load_schedule(args.replay)
            if overrides or args.from_proc:
                raise UsageError("--replay takes the scenario's parameters from the schedule")
            where = args.scenario or schedule.scenario_path or schedule.scenario
            path = find_scenario(where)
            check_schedule(schedule, str(path))
            scenario = load_scenario(path)
            params = scenario.resolve(dict(schedule.params))
        else:
            scenario = load_scenario(find_scenario(args.scenario))
            if args.from_proc:
                scenario = from_proc(scenario, args.from_proc)
            params = scenario.resolve(overrides)
        compile_event_filter(args.events)
        if args.events is not None:
            problem = unmatched_globs([g.strip() for g in args.events.split(",")])
            if problem is not None:
                raise UsageError(f"--events: {problem}")
    except (ScenarioError, ScheduleError) as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"--events: {' '.join(str(exc).split())[:300]}") from None
    return scenario, params, schedule


def run(args: argparse.Namespace) -> int:
    scenario, params, schedule = _prepare(args)
    if getattr(args, "check_determinism", False) and args.no_events:
        raise UsageError("--check-determinism compares the events: drop --no-events")
    out = Path(args.out) if args.out else _default_out(scenario, params.seed, args.sets)
    _check_out(out, bool(args.from_proc))
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {str(out)!r}: {exc.strerror}") from None
    stop = StopSignals()
    stop.install()
    try:
        return _run(args, scenario, params, schedule, out, created, stop)
    finally:
        stop.restore()


def _second_run_differs(
    args: argparse.Namespace,
    scenario: Scenario,
    params: Any,
    schedule: Any,
    out: Path,
    stop: StopSignals,
) -> str | None:
    """Run again (same scenario, params and schedule) into a scratch file and compare the event
    logs: None if byte-identical, else one line naming the first event that differs."""
    import tempfile

    first = out / "events.jsonl"
    with tempfile.TemporaryDirectory(prefix="mmemu-determinism-") as tmp:
        again = Path(tmp) / "events.jsonl"
        run_scenario(
            scenario,
            params,
            events=again,
            strategy=schedule.replay() if schedule is not None else None,
            strict=args.strict,
            stop=stop,
            events_filter=args.events,
            driver=args.driver,
        )
        return first_difference(first, again)


def first_difference(a: Path, b: Path) -> str | None:
    """None if two event logs are byte-identical, else which event differs first and how."""
    with a.open("rb") as fa, b.open("rb") as fb:
        n = 0
        for n, (la, lb) in enumerate(zip(fa, fb, strict=False), start=1):
            if la != lb:
                return f"event {n} differs: first run {_shorten(la)}, second run {_shorten(lb)}"
        rest_a, rest_b = fa.readline(), fb.readline()
    if rest_a or rest_b:
        longer, line = ("first", rest_a) if rest_a else ("second", rest_b)
        return f"event {n + 1} differs: only the {longer} run has it: {_shorten(line)}"
    return None


def _shorten(line: bytes) -> str:
    text = line.decode("utf-8", "replace").strip()
    return text if len(text) <= 200 else text[:200] + "..."


def _run(
    args: argparse.Namespace,
    scenario: Scenario,
    params: Any,
    schedule: Any,
    out: Path,
    created: bool,
    stop: StopSignals,
) -> int:
    progress = Progress(enabled=sys.stderr.isatty() and not args.quiet)
    events = None if args.no_events else out / "events.jsonl"
    try:
        with progress:
            result = run_scenario(
                scenario,
                params,
                events=events,
                record=not args.no_events,
                progress=progress.advance,
                strategy=schedule.replay() if schedule is not None else None,
                strict=args.strict,
                stop=stop,
                stage=progress.stage,
                trace=not (args.no_trace or args.no_events),
                events_filter=args.events,
                driver=args.driver,
                trace_locks=args.trace_locks,
            )
    except ScenarioHookError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise UsageError(str(exc)) from None
    except ScenarioError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise UsageError(str(exc)) from None
    except Stopped as exc:
        # stopped before the machine existed: the reason is all there is to write
        doc = {"scenario": scenario.name, "params": params.as_json(), "reason": exc.reason}
        doc["stage"] = "boot"
        (out / "summary.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"mmemu run: {exc.reason} during boot; results in {out}/", file=sys.stderr)
        return stop.exit_status or 130
    # from here on, further signals are only counted: the results are always written
    stop.raise_now = False
    write_results(result, out)
    write_views(
        out,
        trace=not (args.no_trace or args.no_events),
        plots=args.plots,
        capture=result.ctx.trace,
    )
    save_schedule(
        out / "schedule.json",
        result.ctx.sim,
        scenario.name,
        scenario.path,
        params.as_json(),
        events=events,
    )
    status = 0
    problem = None
    if getattr(args, "check_determinism", False) and stop.reason is None:
        differs = _second_run_differs(args, scenario, params, schedule, out, stop)
        if differs is not None:
            print(f"mmemu run: nondeterministic: {differs}", file=sys.stderr)
            return 1
        if not args.quiet:
            print("determinism: a second run recorded the same events, byte for byte")
    if schedule is not None:
        problem = compare_replay(schedule, list(result.ctx.sim.decisions))
        if result.error is not None and "ReplayDivergence" in result.error:
            why = result.error.split("ReplayDivergence: ", 1)[-1].removeprefix("replay: ")
            problem = f"decision {len(result.ctx.sim.decisions)}: {' '.join(why.split())}"
            result.error = None
        if (
            problem is None
            and schedule.events_sha256
            and events is not None
            and file_sha256(events) != schedule.events_sha256
        ):
            problem = "events.jsonl differs from the recorded run's (events_sha256)"
        if not args.quiet:
            verdict = "exact" if problem is None else "DIVERGED"
            print(f"replay of {args.replay}: {verdict}", file=sys.stderr)
    if not args.quiet:
        print_summary(result)
        print(f"\nresults in {out}/")
    if result.error is not None:
        first = " ".join(result.error.split())
        # "deadlock at t=...", "watchdog: actor ...": say the reason once
        first = first.removeprefix(f"{result.reason}:").removeprefix(result.reason).strip()
        print(f"mmemu run: {result.reason}: {first}", file=sys.stderr)
        status = 1
    elif problem is not None:
        print(f"mmemu run: replay diverged at {problem}", file=sys.stderr)
        status = 1
    elif result.violations:
        v = result.violations[0]
        msg = " ".join(v.message.split())[:300]
        print(
            f"mmemu run: property {v.property} violated at t={v.time_ns} ns: {msg} "
            f"({len(result.violations)} violation(s); rerun with --seed {params.seed} "
            f"--strategy {shlex.quote(str(params['strategy']))})",
            file=sys.stderr,
        )
        status = 1
    elif result.report_error is not None:
        print(f"mmemu run: error: {result.report_error}", file=sys.stderr)
        status = 2
    if stop.reason is not None or result.reason == "interrupted":
        return stop.exit_status or 130
    return status
