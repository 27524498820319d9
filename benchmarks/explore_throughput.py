"""Benchmark: schedules per minute of ``mmemu explore``'s runner, with 1 and with N workers.

Runs ``--runs`` PCT schedules of a scenario through :func:`emulator.explore.executor.run_many`
(as ``mmemu explore`` does, after its default-schedule run) once per ``--jobs`` value and
prints, per value: wall seconds, CPU seconds (this process and its joined workers, from
``getrusage``), schedules per wall minute and per CPU minute. On a shared machine the CPU
figure is the steady one; the wall figure shows what parallel workers buy when cores are free.

    python3 dev.py python benchmarks/explore_throughput.py [SCENARIO] [--runs N]
        [--jobs 1,2] [--set NAME=VALUE ...] [--perturb]

Run by hand; the numbers go into notes, never into unit tests.
"""

from __future__ import annotations

import argparse
import resource
import time

from emulator.explore.executor import ItemError, run_many
from emulator.explore.schedules import RunSpec, run_schedule
from emulator.scenario import find_scenario, load_scenario


def _cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="pcp_hiding")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--perturb", action="store_true")
    args = ap.parse_args()
    path = str(find_scenario(args.scenario))
    overrides = dict(s.split("=", 1) for s in args.sets)
    params = load_scenario(path).resolve({**overrides, "strategy": "pct"}).as_json()
    base = run_schedule(RunSpec(path, params, "fifo", perturb=args.perturb))
    steps = max(1, len(base.decisions))
    specs = [
        RunSpec(path, params, "pct", schedule_seed=s, steps=steps, perturb=args.perturb)
        for s in range(1, args.runs + 1)
    ]
    print(f"{args.scenario}: {args.runs} pct schedules, {steps} steps in the default schedule")
    for jobs in (int(j) for j in args.jobs.split(",")):
        c0, t0 = _cpu(), time.perf_counter()
        results = dict(run_many(run_schedule, specs, jobs=jobs))
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        failed = sum(isinstance(r, ItemError) for r in results.values())
        print(
            f"  --jobs {jobs}: {wall:.1f} s wall, {cpu:.1f} s CPU: "
            f"{args.runs / wall * 60:.0f} runs/wall-min, {args.runs / cpu * 60:.0f} runs/CPU-min"
            + (f" ({failed} failed to run)" if failed else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
