"""Benchmark: runs per minute of a sweep of 100 ms default runs, in process, on every core, and
on a 2-worker Dask LocalCluster.

Each configuration runs the same ``--runs`` points (the default scenario, ``duration=100ms``,
seeds 1..N, set-up cache off so every run builds its machine) through
:func:`emulator.explore.executor.run_many` (``jobs=1``: in this process; ``jobs=None``: one
worker process per core) and :func:`emulator.explore.executor_dask.run_on_cluster` (a
``distributed.LocalCluster`` of 2 worker processes, skipped when dask is not installed), and
checks that all three give the same table. Reported per configuration: wall seconds, runs per
wall minute, and the CPU seconds of this process, its children and the cluster's workers
(steadier than wall time on a shared machine: ``runs_per_cpu_min``).

    python3 dev.py python benchmarks/sweep.py [--json] [--runs N]

This is a benchmark, run by hand; the numbers go into notes, never into unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any

from emulator.explore.executor import ItemError, default_jobs, run_many
from emulator.explore.sweep import grid, run_point
from emulator.scenario import find_scenario


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _own_cpu() -> float:
    """This process's CPU seconds (run on each Dask worker)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _measure(name: str, results: Any, n: int, t0: float, c0: float) -> tuple[dict, dict]:
    rows = {}
    for index, outcome in results:
        if isinstance(outcome, ItemError):
            raise SystemExit(f"{name}: {outcome}")
        rows[index] = outcome
    wall = time.perf_counter() - t0
    cpu = _cpu() - c0
    return {
        "config": name,
        "runs": n,
        "wall_s": round(wall, 2),
        "runs_per_min": round(60 * n / wall, 2),
        "cpu_s": round(cpu, 2),
        "runs_per_cpu_min": round(60 * n / cpu, 2),
    }, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--runs", type=int, default=6, help="runs per configuration (default 6)")
    args = ap.parse_args(argv)
    os.environ["MMEMU_CACHE"] = "off"  # every run builds its machine (workers inherit it)
    points = grid(str(find_scenario("default")), {}, range(1, args.runs + 1), {"duration": "100ms"})
    out: list[dict[str, Any]] = []
    tables = []
    for name, jobs in (("jobs=1", 1), (f"jobs={default_jobs()} (all cores)", None)):
        t0, c0 = time.perf_counter(), _cpu()
        row, table = _measure(name, run_many(run_point, points, jobs=jobs), args.runs, t0, c0)
        out.append(row)
        tables.append(table)
    try:
        import distributed
    except ImportError:
        out.append({"config": "dask LocalCluster(2)", "skipped": "dask is not installed"})
    else:
        from emulator.explore.executor_dask import run_on_cluster

        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            client.run(os.environ.__setitem__, "MMEMU_CACHE", "off")
            w0 = sum(client.run(_own_cpu).values())
            t0, c0 = time.perf_counter(), _cpu()
            results = run_on_cluster(run_point, points, client)
            row, table = _measure("dask LocalCluster(2)", results, args.runs, t0, c0)
            # the workers are the cluster's processes: their CPU time is asked of them
            cpu = row["cpu_s"] + sum(client.run(_own_cpu).values()) - w0
            row["cpu_s"] = round(cpu, 2)
            row["runs_per_cpu_min"] = round(60 * args.runs / cpu, 2)
            out.append(row)
            tables.append(table)
    same = all(t == tables[0] for t in tables)
    doc = {"benchmark": "sweep", "python": sys.version.split()[0], "identical": same, "runs": out}
    if args.json:
        print(json.dumps(doc))
    else:
        for r in out:
            print(r)
        print(f"tables identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
