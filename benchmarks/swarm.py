"""Swarm: random scenarios and knobs with invariants on; counts runs, violations, crashes, hangs.

Each run is a child process (``--one SPEC``) with a wall-clock limit, so a hang is seen as a
hang. The child resolves a random scenario and parameters (bundled scenario, 1-16 CPUs, 1-2
nodes, fifo/random/pct, sync quanta, random sysctls over their whole legal ranges, random
mitigation switches and costs), runs it in
strict mode with an invariant-checking daemon (every ``check_every`` of virtual time, when no
lock is held or awaited, :meth:`PageAllocator.check` walks every free list, pcp list and
LRU list), checks again at the end (when quiescent), and, for every fifth run, runs it twice
and compares the event logs byte for byte.

Usage (by hand; not part of the test suite)::

    python3 dev.py python benchmarks/swarm.py --minutes 10 [--seed 1] [--limit 180] [--show-specs]

``--show-specs`` prints each failing run's spec; replay it alone with ``--one 'SPEC'``.

Prints one line per run and the totals: runs, ok, violations, crashes, hangs, deadlocks,
refused (inputs the CLI would refuse: counted, not errors), nondeterministic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
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
    nodes = 2 if rng.random() < 0.1 else 1
    cpus = rng.choice([c for c in CPUS if c % nodes == 0])
    memory = (
        f"{rng.choice([4224, 4608])}M" if nodes == 2 else f"{rng.choice([128, 256, 512, 1024])}M"
    )
    seed = rng.randrange(1 << 32)
    strategy = rng.choice(["fifo", "random", "pct", f"pct({seed % 1000},{rng.randint(1, 5)})"])
    params: dict[str, Any] = {
        "memory": memory,
        "nodes": str(nodes),
        "cpus": str(cpus),
        "duration": f"{rng.randint(1, 5)}ms",
        "sample": "500us",
        "seed": str(seed),
        "strategy": strategy,
        "quantum": rng.choice(["0", "100ns", "1us", "10us"]),
    }
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


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one spec in this process; the result as a dict (status and details)."""
    import attrs

    from emulator.mm.invariants import InvariantViolation
    from emulator.runner import run_scenario
    from emulator.scenario import ScenarioError, bundled_scenarios, load_scenario

    sc = load_scenario(bundled_scenarios()[spec["scenario"]])
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
            res = run_scenario(wrapped, params, events=None, record=True, strict=True)
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=float, default=180.0, help="wall seconds before a hang")
    ap.add_argument(
        "--show-specs", action="store_true", help="print each failing run's spec (for --one)"
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0
    rng = random.Random(args.seed)
    totals: Counter[str] = Counter()
    end = time.monotonic() + args.minutes * 60
    n = 0
    while time.monotonic() < end:
        spec = random_spec(rng, n)
        n += 1
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", json.dumps(spec)],
                capture_output=True,
                text=True,
                timeout=args.limit,
            )
            last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
            if proc.returncode != 0 or not last:
                err = proc.stderr.strip().splitlines()[-1:] or ["no output"]
                out = {"status": "crash", "why": err[0][:300]}
            else:
                out = json.loads(last[0])
        except subprocess.TimeoutExpired:
            out = {"status": "hang", "why": f"no result in {args.limit:.0f} s wall"}
        totals[out["status"]] += 1
        totals["runs"] += 1
        p = spec["params"]
        print(
            f"{n:4d} {out['status']:<9s} {time.monotonic() - t0:6.1f}s {spec['scenario']:<16s}"
            f" cpus={p['cpus']} nodes={p['nodes']} mem={p['memory']} {p['strategy']}"
            f" q={p['quantum']} knobs={len(p) - 8} checks={out.get('checks', '-')}"
            f" {out.get('why', '')}",
            flush=True,
        )
        if out["status"] not in ("ok", "refused") and args.show_specs:
            print("     spec: " + json.dumps(spec), flush=True)
    keys = ["runs", "ok", "violation", "crash", "hang", "deadlock", "refused", "nondeterministic"]
    print("totals: " + "  ".join(f"{k}={totals.get(k, 0)}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
