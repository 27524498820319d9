"""Swarm: random scenarios and knobs with invariants on; counts runs, violations, crashes, hangs.

The runs go through the parallel executor (:func:`emulator.explore.executor.run_many`: one
worker process per core by default, ``--jobs``), each a pure function of its spec. A spec is a
random scenario and parameters: every bundled scenario, 1-16 CPUs, 1-2 nodes, small machines
(64-256 MiB; 4224-4608 MiB for the 3% with two nodes), fifo/random/pct, sync quanta, random
sysctls over their full legal ranges, costs, and every ``mitigation.*`` switch. A run is strict
mode with an invariant-checking daemon (every ``check_every`` of virtual time, when no lock is
held or awaited, :meth:`PageAllocator.check` walks every free list, pcp list and LRU list) and
checks again at the end (when quiescent); every fifth run runs twice and compares the event logs
byte for byte. A run that uses more than ``--limit`` CPU seconds is a hang (the engine's
watchdog catches an actor that stops advancing virtual time first); a worker that dies is a
crash.

Usage (by hand; not part of the test suite)::

    python3 dev.py python benchmarks/swarm.py --runs 10000 [--jobs J] [--seed 1] [--limit 60]
        [--minutes M] [--show-specs] [--json]

``--minutes`` stops handing out runs after M wall minutes (the runs done are counted).
``--show-specs`` prints each failing run's spec; replay it alone with ``--one 'SPEC'``.

Prints one line per failing run, a progress line every 500 runs, and the totals: runs, ok,
violations, crashes, hangs, deadlocks, refused (inputs the CLI would refuse: counted, not
errors), nondeterministic, and the CPU time used.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
import resource
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CPUS = [1, 2, 3, 4, 6, 8, 12, 16]


def random_spec(rng: random.Random, n: int) -> dict[str, Any]:
    """One random run: scenario, parameters, and whether to check determinism."""
    from emulator.mm.costs import Costs
    from emulator.mm.mitigations import MITIGATIONS, PARAM_PREFIX
    from emulator.mm.sysctl import TUNABLES
    from emulator.scenario import bundled_scenarios

    scenario = rng.choice(sorted(bundled_scenarios()))
    nodes = 2 if rng.random() < 0.03 else 1
    cpus = rng.choice([c for c in CPUS if c % nodes == 0])
    # small machines (a run is mostly set-up): 64 MiB to 256 MiB on one node; two nodes need
    # the DMA32 zone filled (4 GiB) before the second node starts
    memory = f"{rng.choice([4224, 4608])}M" if nodes == 2 else f"{rng.choice([64, 64, 128, 256])}M"
    seed = rng.randrange(1 << 32)
    strategy = rng.choice(["fifo", "random", "pct", f"pct({seed},{rng.randint(1, 5)})"])
    params: dict[str, Any] = {
        "memory": memory,
        "nodes": str(nodes),
        "cpus": str(cpus),
        "duration": f"{rng.randint(1, 2)}ms",
        "sample": "500us",
        "seed": str(seed),
        "strategy": strategy,
        "perturb": "on" if strategy != "fifo" and rng.random() < 0.5 else "off",
        "quantum": rng.choice(["0", "100ns", "1us", "10us"]),
    }
    if strategy != "fifo":
        params["perturb"] = rng.choice(["true", "false"])
    for spec in TUNABLES.values():
        if not spec.name.startswith(PARAM_PREFIX) and rng.random() < 0.3:
            params[spec.name] = _sysctl_value(rng, spec)
    for name in MITIGATIONS:
        if rng.random() < 0.2:
            params[f"{PARAM_PREFIX}{name}"] = rng.choice(["on", "off"])
    for name, default in Costs().as_dict().items():
        if rng.random() < 0.2:
            params[f"cost.{name}"] = f"{rng.randint(0, 3 * max(default, 10))}ns"
    return {"n": n, "scenario": scenario, "params": params, "twice": n % 5 == 0}


def _draw_int(rng: random.Random, lo: int, hi: int) -> int:
    """An integer in [lo, hi], spread over the whole range: half the draws uniform in a
    random power-of-two magnitude (so 0, 1, 65536 and INT_MAX are all likely), half the
    range's ends and their neighbours."""
    if rng.random() < 0.3:
        return rng.choice([lo, min(lo + 1, hi), max(hi - 1, lo), hi])
    top = rng.randint(0, max(hi, 1).bit_length())
    v = rng.randint(0, (1 << top) - 1)
    v = -v if lo < 0 and rng.random() < 0.25 else v
    return min(max(v, lo), hi)


def _sysctl_value(rng: random.Random, spec: Any) -> str:
    """A legal value of one tunable, drawn over its whole range (see :func:`_draw_int`)."""
    from emulator.mm.tunable import IntMinMax, IntVecMinMax, OnOff, Words

    parse = spec.parse
    if isinstance(parse, Words):
        return str(rng.choice(parse.choices))
    if isinstance(parse, OnOff):
        return rng.choice(["on", "off"])
    if isinstance(parse, IntVecMinMax):
        return " ".join(str(_draw_int(rng, parse.lo, parse.hi)) for _ in range(parse.n))
    assert isinstance(parse, IntMinMax)
    v = _draw_int(rng, parse.lo, parse.hi)
    floor = parse.zero_or_from
    if floor is not None and 0 < v < floor:
        v = floor
    return str(v)


def _checker(ctx: Any, every: int) -> Any:
    sim = ctx.sim
    pa = ctx.allocator
    checked = [0]

    async def check() -> None:
        while True:
            await sim.delay(every)
            await sim.sync()
            if quiescent(ctx):
                pa.check()
                checked[0] += 1

    return check, checked


def quiescent(ctx: Any) -> bool:
    """No lock held and no actor waiting for one: no operation is half done (e.g. a zone's
    free lists mid-rmqueue_bulk), so every invariant must hold. The checks run only then. (The
    LRU invariants hold at every synchronised instant: tests/mm/test_lru_batch.py.)"""
    pa = ctx.allocator
    locks = [z.lock for z in pa.zones] + [p.lock for c in pa.cpus for p in c.pcp]
    locks += [lv.lru_lock_or_none for lv in getattr(pa, "lruvecs", ())]
    if any(lock is not None and lock.holder is not None for lock in locks):
        return False
    return not any(a.state == "blocked" and hasattr(a.blocked_on, "holder") for a in ctx.sim.actors)


class SwarmHang(Exception):
    """A run used more than its CPU-time limit."""


def _over_limit(_signum: int, _frame: Any) -> None:
    raise SwarmHang("CPU-time limit reached")


def run_limited(item: tuple[dict[str, Any], float]) -> dict[str, Any]:
    """:func:`run_one` under a CPU-time limit (an executor item: ``(spec, limit_s)``)."""
    spec, limit = item
    old = signal.signal(signal.SIGPROF, _over_limit)
    signal.setitimer(signal.ITIMER_PROF, limit)
    try:
        out = run_one(spec)
    except SwarmHang:
        out = {"status": "hang", "why": f"more than {limit:.0f} CPU-s"}
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
    if "SwarmHang" in out.get("why", ""):
        out = {"status": "hang", "why": f"more than {limit:.0f} CPU-s"}
    return out


@functools.cache
def _scenario(name: str) -> Any:
    """A bundled scenario, loaded once per worker process."""
    from emulator.scenario import bundled_scenarios, load_scenario

    return load_scenario(bundled_scenarios()[name])


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one spec in this process; the result as a dict (status and details)."""
    import attrs

    from emulator.mm.invariants import InvariantViolation
    from emulator.runner import RunOptions, run_scenario
    from emulator.scenario import ScenarioError

    sc = _scenario(spec["scenario"])
    try:
        params = sc.resolve(spec["params"])
    except ScenarioError as exc:
        return {"status": "refused", "why": str(exc)}
    checks: list[Any] = []

    def actors(p: Any, ctx: Any) -> list[Any]:
        extra = list(sc.actors(p, ctx)) if sc.actors is not None else []
        fn, counter = _checker(ctx, 200_000)
        checks.append(counter)
        ctx.sim.spawn("invariant-checker", fn, daemon=True)
        return extra

    wrapped = attrs.evolve(sc, actors=actors)
    digests = []
    for _ in range(2 if spec["twice"] else 1):
        try:
            res = run_scenario(
                wrapped, params, events=None, record=True, options=RunOptions(strict=True)
            )
        except InvariantViolation as exc:
            return {"status": "violation", "why": str(exc)[:300]}
        if res.error is not None:
            kind = {"deadlock": "deadlock", "watchdog": "hang"}.get(res.reason, "crash")
            if "InvariantViolation" in res.error:
                kind = "violation"
            return {"status": kind, "why": " ".join(res.error.split())[:300]}
        end_checked = quiescent(res.ctx)
        try:
            if end_checked:
                res.ctx.allocator.check()
        except InvariantViolation as exc:
            return {"status": "violation", "why": "at end: " + str(exc)[:300]}
        lines = res.ctx.sim.recorder.lines
        digests.append(hashlib.sha256("\n".join(lines).encode()).hexdigest())
    if len(set(digests)) > 1:
        return {"status": "nondeterministic", "why": "two runs' event logs differ"}
    return {
        "status": "ok",
        "reason": res.reason,
        "virtual_ns": res.virtual_ns,
        "checks": (checks[-1][0] if checks else 0) + int(end_checked),
        "events": len(lines),
    }


def main() -> int:
    from emulator.explore.executor import ItemError, default_jobs, run_many

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000, help="runs to hand out (default 10000)")
    ap.add_argument("--minutes", type=float, help="stop handing out runs after M wall minutes")
    ap.add_argument("--jobs", type=int, help="worker processes (default: every core)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=float, default=60.0, help="CPU seconds before a hang")
    ap.add_argument(
        "--show-specs", action="store_true", help="print each failing run's spec (for --one)"
    )
    ap.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_limited((json.loads(args.one), args.limit))))
        return 0
    rng = random.Random(args.seed)
    specs = [random_spec(rng, n) for n in range(args.runs)]
    totals: Counter[str] = Counter()
    t0 = time.monotonic()
    end = t0 + args.minutes * 60 if args.minutes else None
    jobs = args.jobs or default_jobs()
    results = run_many(run_limited, [(s, args.limit) for s in specs], jobs=jobs)
    try:
        for n, outcome in results:
            spec = specs[n]
            if isinstance(outcome, ItemError):
                out = {"status": "crash", "why": f"{outcome.kind}: {outcome.error}"[:300]}
            else:
                out = outcome
            totals[out["status"]] += 1
            totals["runs"] += 1
            if spec["twice"] and out["status"] != "refused":
                totals["reruns_compared"] += 1
            p = spec["params"]
            if out["status"] not in ("ok", "refused"):
                print(
                    f"{n:5d} {out['status']:<9s} {spec['scenario']:<16s} cpus={p['cpus']}"
                    f" nodes={p['nodes']} mem={p['memory']} {p['strategy']} q={p['quantum']}"
                    f" knobs={len(p) - 8} {out.get('why', '')}",
                    flush=True,
                )
                if args.show_specs:
                    print("      spec: " + json.dumps(spec), flush=True)
            if totals["runs"] % 500 == 0:
                print(f"... {totals['runs']} runs, {time.monotonic() - t0:.0f} s", flush=True)
            if end is not None and time.monotonic() > end:
                break
    finally:
        results.close()  # stops the workers
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    cpu_s = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    keys = ["runs", "ok", "violation", "crash", "hang", "deadlock", "refused", "nondeterministic"]
    keys.append("reruns_compared")
    report = {k: totals.get(k, 0) for k in keys}
    report.update(
        jobs=jobs,
        wall_s=round(time.monotonic() - t0, 1),
        cpu_s=round(cpu_s, 1),
        cpu_s_per_run=round(cpu_s / max(1, totals["runs"]), 4),
    )
    print("totals: " + "  ".join(f"{k}={v}" for k, v in report.items()))
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
