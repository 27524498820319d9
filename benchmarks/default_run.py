"""Benchmark: the whole default scenario as ``mmemu run`` does it, split into its phases.

Phases (wall seconds): ``setup_s`` building the used 4 GiB machine (the scenario's set-up),
``run_s`` the virtual run (0.5 s of the default 8-CPU machine), ``results_s`` writing the
results folder (summary.json, kernel files, schedule.json), ``total_s`` all of it including
booting the machine and loading the scenario; ``total_cpu_s`` is the CPU time of this process
for the same span, ``setup_cpu_s`` and ``run_cpu_s`` those of the set-up and of the run with
its boot (CPU times are steadier than wall times on a shared machine).

    python3 dev.py python benchmarks/default_run.py [--json] [--repeat N] [--no-events]
        [--trace] [--duration D] [--cache DIR] [--driver fast|trio] [--set NAME=VALUE ...]

``--duration 1s`` runs one virtual second instead of the scenario's 0.5 s (the same as
``--set duration=1s``). ``--cache DIR`` loads the machine after set-up from a set-up cache
(:mod:`emulator.setup_cache`) in DIR, filled by a first unmeasured run; ``setup_s`` is then the
load.

``--trace`` also writes ``trace.json`` as ``mmemu run`` does (captured during the run, finished
with the results; the default leaves it out, as ``mmemu run --no-trace`` does): the ratio of
the two runs' ``run_results_cpu_s`` (the run with its boot, and the results) is the cost of
trace capture.

Best of ``--repeat`` (default 3) by ``total_cpu_s``. ``--json`` prints one JSON object with
``setup_s``, ``run_s``, ``results_s``, ``total_s`` (the best run) and every run. The events file
goes to a temporary folder. This is a benchmark, run by hand; the numbers go into notes, never
into unit tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emulator.explore.replay import save_schedule
from emulator.report.outputs import TraceFile
from emulator.report.results import write_results
from emulator.runner import Observer, RunOptions, run_scenario
from emulator.scenario import find_scenario, load_scenario
from emulator.setup_cache import SetupCache


def run_once(
    overrides: dict[str, str],
    record: bool,
    driver: str | None,
    cache: Path | None,
    trace: bool = False,
) -> dict[str, Any]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    scenario = load_scenario(find_scenario("default"))
    params = scenario.resolve(dict(overrides))
    setup_s = [0.0, 0.0]
    marks: dict[str, tuple[float, float]] = {}

    def stage(name: str) -> None:
        # set-up: from its start (building, or loading from the cache) to the run's start
        marks[name] = (time.perf_counter(), time.process_time())
        if name == "run" and "set-up" in marks:
            s0, sc0 = marks["set-up"]
            setup_s[:] = [time.perf_counter() - s0, time.process_time() - sc0]

    class Stages(Observer):
        def enter(self, name: str) -> None:
            stage(name)

    options = RunOptions(cache=SetupCache(cache) if cache is not None else None, driver=driver)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        observers: list[Observer] = [Stages()]
        trace_file = TraceFile(out) if trace and record else None
        if trace_file is not None:
            observers.append(trace_file)
        rc0 = time.process_time()
        result = run_scenario(
            scenario,
            params,
            events=out / "events.jsonl" if record else None,
            record=record,
            options=options,
            observers=observers,
        )
        run_cpu_s = time.process_time() - rc0 - setup_s[1]
        r0 = time.perf_counter()
        write_results(result, out)
        save_schedule(
            out / "schedule.json", result.ctx.sim, scenario.name, scenario.path, params.as_json()
        )
        if trace_file is not None:
            trace_file.write(result, out)
        results_s = time.perf_counter() - r0
        run_results_cpu_s = time.process_time() - rc0 - setup_s[1]
        total_s = time.perf_counter() - t0
        total_cpu_s = time.process_time() - c0
        events = result.ctx.sim.recorder.count
    return {
        "setup_s": round(setup_s[0], 3),
        "run_s": round(result.wall_s, 3),
        "results_s": round(results_s, 3),
        "total_s": round(total_s, 3),
        "total_cpu_s": round(total_cpu_s, 3),
        "setup_cpu_s": round(setup_s[1], 3),
        "run_cpu_s": round(run_cpu_s, 3),
        "run_results_cpu_s": round(run_results_cpu_s, 3),
        "virtual_ns": result.virtual_ns,
        "events": events,
        "reason": result.reason,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    ap.add_argument("--no-events", action="store_true", help="do not record events")
    ap.add_argument(
        "--trace", action="store_true", help="also write trace.json (as mmemu run does by default)"
    )
    ap.add_argument("--driver", choices=["fast", "trio"], help="engine driver (default: fast)")
    ap.add_argument(
        "--cache",
        metavar="DIR",
        help="load the machine after set-up from a set-up cache in DIR (stored by a first, "
        "unmeasured run)",
    )
    ap.add_argument("--duration", help="virtual duration, e.g. 1s (default: the scenario's)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    overrides = dict(s.split("=", 1) for s in args.sets)
    if args.duration is not None:
        overrides["duration"] = args.duration
    cache = Path(args.cache) if args.cache else None
    record = not args.no_events
    if cache is not None:  # the first run stores the set-up, the measured ones load it
        run_once(overrides, record, args.driver, cache)
    runs = [run_once(overrides, record, args.driver, cache, args.trace) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["total_cpu_s"])
    out = {
        "benchmark": "default_run",
        "python": sys.version.split()[0],
        "events": not args.no_events,
        "trace": args.trace and not args.no_events,
        "driver": args.driver or "default",
        "setup_cache": bool(cache),
        "duration": overrides.get("duration", "scenario default"),
        **{
            k: best[k]
            for k in (
                "setup_s",
                "run_s",
                "results_s",
                "total_s",
                "total_cpu_s",
                "setup_cpu_s",
                "run_cpu_s",
                "run_results_cpu_s",
            )
        },
        "runs": runs,
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"default run (events {'on' if out['events'] else 'off'}, driver {out['driver']}), best "
        f"of {args.repeat}: set-up {best['setup_s']:.2f} s, run {best['run_s']:.2f} s, "
        f"results {best['results_s']:.2f} s, total {best['total_s']:.2f} s "
        f"({best['total_cpu_s']:.2f} s CPU)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
