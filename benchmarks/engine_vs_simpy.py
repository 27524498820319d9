"""Benchmark: the mmemu engine against SimPy 4.1 on the same model, side by side.

Model: 64 actors; each step, with probability 0.05 acquire one shared lock and hold it 1 µs,
then delay an exponentially distributed time with mean 5 µs (integer ns, at least 1); run 50 ms
of virtual time. Both sides draw from the same per-actor seeded streams, so the lock's
acquisitions, contentions and mean wait must agree (the script checks within 5%).

    python3 dev.py python benchmarks/engine_vs_simpy.py [--json] [--only engine] [--repeat N]

Prints steps per wall second for each side, the ratio engine/SimPy, and the recorder-on rate;
also steps per CPU second (``time.process_time``, best of the runs) and their ratio
(``ratio_cpu``), steadier than wall time on a shared machine.
This is a benchmark, run by hand; the numbers go into notes, never into unit tests.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from typing import Any

import trio

from emulator.engine import Recorder, Sim, SpinLock

ACTORS = 64
P_LOCK = 0.05
HOLD_NS = 1_000
MEAN_NS = 5_000
DURATION_NS = 50_000_000
LAMBDA = 1.0 / MEAN_NS


def _rngs(seed: int) -> list[random.Random]:
    return [random.Random(seed * 1000 + i) for i in range(ACTORS)]


def run_engine(seed: int, record: bool) -> dict[str, Any]:
    rec = Recorder(io.StringIO()) if record else None
    sim = Sim("fifo", recorder=rec) if rec is not None else Sim("fifo")
    lock = SpinLock(sim, "lock")
    steps = [0]

    async def actor(rng: random.Random) -> None:
        rand = rng.random
        expo = rng.expovariate
        delay = sim.delay
        acquire = lock.acquire
        release = lock.release
        n = 0
        try:
            while True:
                if rand() < P_LOCK:
                    await acquire()
                    await delay(HOLD_NS)
                    release()
                    if record:
                        rec.emit("lock_step", n=n)  # type: ignore[union-attr]
                d = int(expo(LAMBDA))
                await delay(d if d > 0 else 1)
                n += 1
        finally:
            steps[0] += n

    for i, rng in enumerate(_rngs(seed)):
        sim.spawn(f"a{i}", actor, rng)

    async def main() -> None:
        await sim.run(until=DURATION_NS)

    c0 = time.process_time()
    t0 = time.perf_counter()
    trio.run(main)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    s = lock.stats
    return {
        "steps": steps[0],
        "wall_s": wall,
        "steps_per_s": steps[0] / wall,
        "cpu_s": cpu,
        "steps_per_cpu_s": steps[0] / cpu,
        "acquisitions": s.acquisitions,
        "contentions": s.contentions,
        "mean_wait_ns": s.wait_total / s.acquisitions if s.acquisitions else 0.0,
        "switches": sim.switches,
        "events": rec.count if rec is not None else 0,
    }


def run_simpy(seed: int) -> dict[str, Any]:
    import simpy

    env = simpy.Environment()
    lock = simpy.Resource(env, capacity=1)
    st = {"steps": 0, "acq": 0, "con": 0, "wait": 0}

    def actor(rng: random.Random):  # type: ignore[no-untyped-def]
        rand = rng.random
        expo = rng.expovariate
        timeout = env.timeout
        while True:
            if rand() < P_LOCK:
                t0 = env.now
                with lock.request() as req:
                    yield req
                    w = env.now - t0
                    st["acq"] += 1
                    if w > 0:
                        st["con"] += 1
                        st["wait"] += w
                    yield timeout(HOLD_NS)
            d = int(expo(LAMBDA))
            yield timeout(d if d > 0 else 1)
            st["steps"] += 1

    for rng in _rngs(seed):
        env.process(actor(rng))
    c0 = time.process_time()
    t0 = time.perf_counter()
    env.run(until=DURATION_NS)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "steps": st["steps"],
        "wall_s": wall,
        "steps_per_s": st["steps"] / wall,
        "cpu_s": cpu,
        "steps_per_cpu_s": st["steps"] / cpu,
        "acquisitions": st["acq"],
        "contentions": st["con"],
        "mean_wait_ns": st["wait"] / st["acq"] if st["acq"] else 0.0,
    }


def _best(fn: Any, repeat: int, *args: Any) -> dict[str, Any]:
    """The best of ``repeat`` runs by wall rate, with the best CPU rate of them all beside it
    (on a shared machine the CPU rate is the steadier of the two)."""
    runs = [fn(*args) for _ in range(repeat)]
    best = dict(max(runs, key=lambda r: r["steps_per_s"]))
    best["best_steps_per_cpu_s"] = max(r["steps_per_cpu_s"] for r in runs)
    return best


def _agree(a: float, b: float) -> bool:
    return abs(a - b) <= 0.05 * max(abs(a), abs(b), 1e-9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--only", choices=["engine", "simpy"], help="run one side only")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {}
    if args.only != "simpy":
        eng = _best(run_engine, args.repeat, args.seed, False)
        on = _best(run_engine, args.repeat, args.seed, True)
        out["engine_steps_per_s"] = round(eng["steps_per_s"])
        out["recorder_on_steps_per_s"] = round(on["steps_per_s"])
        out["engine"] = eng
        out["engine_recorder_on"] = on
    if args.only != "engine":
        sp = _best(run_simpy, args.repeat, args.seed)
        out["simpy_steps_per_s"] = round(sp["steps_per_s"])
        out["simpy"] = sp
    if "engine" in out and "simpy" in out:
        out["ratio"] = round(out["engine_steps_per_s"] / out["simpy_steps_per_s"], 3)
        out["ratio_cpu"] = round(
            out["engine"]["best_steps_per_cpu_s"] / out["simpy"]["best_steps_per_cpu_s"], 3
        )
        e, s = out["engine"], out["simpy"]
        out["lock_stats_agree"] = all(
            _agree(e[k], s[k]) for k in ("acquisitions", "contentions", "mean_wait_ns")
        )
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    for side in ("engine", "engine_recorder_on", "simpy"):
        if side in out:
            r = out[side]
            print(
                f"{side:>20s}: {r['steps_per_s']:>10,.0f} steps/s  ({r['steps']:,} steps in "
                f"{r['wall_s']:.2f} s; best {r['best_steps_per_cpu_s']:,.0f} per CPU s)\n"
                f"{'':>22s}lock: acq={r['acquisitions']:,} con={r['contentions']:,} "
                f"mean wait={r['mean_wait_ns']:.1f} ns"
            )
    if "ratio" in out:
        print(f"{'ratio engine/simpy':>20s}: {out['ratio']:.2f} wall, {out['ratio_cpu']:.2f} CPU")
        print(f"{'lock stats agree':>20s}: {out['lock_stats_agree']} (within 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
