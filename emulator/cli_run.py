"""``mmemu run [SCENARIO] [--seed N] [--set NAME=VALUE ...] [--out DIR] [--strategy S]``.

Runs a scenario file (or a bundled scenario by name; ``default`` when none is given), shows a
progress bar on a terminal and a short summary at the end, and writes the results folder,
including ``schedule.json``: ``mmemu run --replay DIR/schedule.json`` reproduces the run exactly.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from emulator.cli import UsageError
from emulator.engine.recorder import compile_event_filter
from emulator.engine.sim import DRIVERS
from emulator.explore.replay import ScheduleError, load_schedule, save_schedule
from emulator.report.results import format_summary, write_results
from emulator.report.views import write_views
from emulator.runner import run_scenario
from emulator.scenario import ScenarioError, find_scenario, load_scenario

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", help="scenario file or bundled name (default)")
    parser.add_argument("--seed", type=int, help="seed (overrides the scenario's)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a parameter: memory=8G, cpus=16, duration=2s, vm.<sysctl>=N, cost.<name>=NS",
    )
    parser.add_argument("--out", help="results folder (default: results/<scenario>-seed<N>)")
    parser.add_argument("--strategy", help="fifo, random or pct (seeded with --seed)")
    parser.add_argument("--quantum", type=int, help="sync quantum in ns (0 = exact)")
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _overrides(args: argparse.Namespace) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for item in args.sets:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    if args.seed is not None:
        out["seed"] = args.seed
    if args.strategy is not None:
        out["strategy"] = args.strategy
    if args.quantum is not None:
        out["quantum"] = args.quantum
    return out


class _Progress:
    """A one-line progress bar on stderr (terminal only); wall-clock is for display only."""

    def __init__(self) -> None:
        self.last = 0.0
        self.start = time.monotonic()

    def __call__(self, now_ns: int, duration_ns: int) -> None:
        t = time.monotonic()
        if t - self.last < 0.1:
            return
        self.last = t
        frac = min(1.0, now_ns / duration_ns) if duration_ns else 1.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(
            f"\r[{bar:<30s}] {frac * 100:5.1f}%  {now_ns / 1e9:.3f} s virtual  "
            f"{t - self.start:.1f} s wall"
        )
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r" + " " * 80 + "\r")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    schedule = None
    try:
        overrides = _overrides(args)
        if args.replay:
            schedule = load_schedule(args.replay)
            if overrides:
                raise UsageError("--replay takes the scenario's parameters from the schedule")
            where = args.scenario or schedule.scenario_path or schedule.scenario
            scenario = load_scenario(find_scenario(where))
            params = scenario.resolve({k: v for k, v in schedule.params.items()})
        else:
            scenario = load_scenario(find_scenario(args.scenario))
            params = scenario.resolve(overrides)
        compile_event_filter(args.events)
    except (ScenarioError, ScheduleError) as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"--events: {exc}") from None
    out = Path(args.out) if args.out else Path("results") / f"{scenario.name}-seed{params.seed}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {str(out)!r}: {exc.strerror}") from None
    progress = _Progress() if sys.stderr.isatty() and not args.quiet else None
    try:
        result = run_scenario(
            scenario,
            params,
            events=None if args.no_events else out / "events.jsonl",
            record=not args.no_events,
            progress=progress,
            strategy=schedule.replay() if schedule is not None else None,
            strict=args.strict,
            trace=not (args.no_trace or args.no_events),
            events_filter=args.events,
            driver=args.driver,
            trace_locks=args.trace_locks,
        )
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if progress is not None:
            progress.done()
    write_results(result, out)
    write_views(
        out,
        trace=not (args.no_trace or args.no_events),
        plots=args.plots,
        capture=result.ctx.trace,
    )
    save_schedule(
        out / "schedule.json", result.ctx.sim, scenario.name, scenario.path, params.as_json()
    )
    if schedule is not None and not args.quiet:
        strategy = result.ctx.sim.strategy
        exact = getattr(strategy, "exhausted", False) and result.error is None
        print(f"replay of {args.replay}: {'exact' if exact else 'DIVERGED'}", file=sys.stderr)
    if not args.quiet:
        print(format_summary(result))
        print(f"\nresults in {out}/")
    if result.error is not None:
        first = result.error.splitlines()[0]
        print(f"mmemu run: error: {first}", file=sys.stderr)
        for line in result.error.splitlines()[1:]:
            print(f"  {line.strip()}", file=sys.stderr)
        return 1
    return 130 if result.reason == "interrupted" else 0
