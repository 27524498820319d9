"""Buddy allocator benchmark (run by hand: ``.venv/bin/python benchmarks/buddy.py [--json]``).

Measures, with the zone methods called directly (no actors, no pcp lists, no recorder):

* ``order0_pairs_per_s``: order-0 alloc+free pairs per second on a 4 GiB Normal zone in steady
  state: the zone is first brought to 50% free by random order-0 movable allocation with churn,
  then each pair allocates one page (``rmqueue_buddy``) and frees a random held page
  (``free_one_page``), so splits and merges happen at their natural rate.
* ``order0_hot_pairs_per_s``: the worst case on a freshly booted zone: allocate one page and
  free it again at once (every pair splits an order-10 block down to 0 and merges it back).
* ``mixed_ops_per_s``: churn of orders 0-3 and 9 (weights 50/20/10/10/10) across the three
  migratetypes at ~50% free: one op = one allocation or one free (fallbacks and claims included).
* ``build_64g_s`` and ``bytes_per_page``: building a 64 GiB x86-64 machine (``--build-mib``;
  fresh boot, run in a child process so its peak RSS is its own): wall time, and peak RSS
  divided by the pages (total, and above the interpreter's baseline after imports).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.mm.initstate import random_alloc_free
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.snapshot import MIGRATE_MOVABLE

ZONE_PAGES = 1 << 20  # 4 GiB (``--zone-mib``)


def bench_order0(pairs: int, zone_pages: int = ZONE_PAGES, seed: int = 1) -> float:
    m = Machine.simple(Normal=zone_pages)
    z = m.zone("Normal")
    rng = np.random.default_rng(seed)
    held = [p for p, _ in random_alloc_free(z, 0.5, rng, churn=1.0)]
    idx = rng.integers(0, len(held), size=pairs).tolist()
    alloc = partial(rmqueue_buddy_locked, z)
    free = partial(free_one_page_locked, z)
    t0 = time.perf_counter()
    for i in idx:
        p = alloc(0, MIGRATE_MOVABLE, 0)
        q = held[i]
        held[i] = p
        free(q, 0)
    return pairs / (time.perf_counter() - t0)


def bench_hot(pairs: int, zone_pages: int = ZONE_PAGES) -> float:
    m = Machine.simple(Normal=zone_pages)
    z = m.zone("Normal")
    alloc = partial(rmqueue_buddy_locked, z)
    free = partial(free_one_page_locked, z)
    t0 = time.perf_counter()
    for _ in range(pairs):
        free(alloc(0, MIGRATE_MOVABLE, 0), 0)
    return pairs / (time.perf_counter() - t0)


def bench_mixed(
    ops: int, zone_pages: int = ZONE_PAGES, seed: int = 2
) -> tuple[float, dict[str, int]]:
    m = Machine.simple(Normal=zone_pages)
    z = m.zone("Normal")
    rng = np.random.default_rng(seed)
    orders = (0, 1, 2, 3, 9)
    weights = (0.5, 0.2, 0.1, 0.1, 0.1)
    held = random_alloc_free(
        z,
        0.5,
        rng,
        orders=orders,
        order_weights=weights,
        migratetypes=(0, 1, 2),
        mt_weights=(0.2, 0.7, 0.1),
        churn=0.5,
    )
    target = z.managed_pages // 2
    o_list = rng.choice(orders, size=ops, p=weights).tolist()
    mt_list = rng.choice(3, size=ops, p=(0.2, 0.7, 0.1)).tolist()
    pick = rng.random(ops).tolist()
    alloc = partial(rmqueue_buddy_locked, z)
    free = partial(free_one_page_locked, z)
    steps0 = z.buddy_steps
    fails = 0
    t0 = time.perf_counter()
    for i in range(ops):
        if z.nr_free_pages > target or not held:
            p = alloc(o_list[i], mt_list[i], 0)
            if p >= 0:
                held.append((p, o_list[i]))
            else:
                fails += 1
        else:
            j = int(pick[i] * len(held))
            held[j], held[-1] = held[-1], held[j]
            p, o = held.pop()
            free(p, o)
    rate = ops / (time.perf_counter() - t0)
    return rate, {
        "buddy_steps": z.buddy_steps - steps0,
        "failed_allocs": fails,
    }


def build_child(mib: int) -> None:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    m = Machine.x86_64(mib)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pages = sum(z.present_pages for z in m.all_zones())
    print(
        json.dumps(
            {
                "build_64g_s": round(dt, 3),
                "pages": pages,
                "managed_pages": m.managed_pages,
                "peak_rss_bytes": peak,
                "bytes_per_page": round(peak / pages, 2),
                "bytes_per_page_above_baseline": round((peak - base) / pages, 2),
                "memmap_array_bytes_per_page": round(m.memmap.nbytes() / pages, 2),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--pairs", type=int, default=300_000)
    ap.add_argument("--zone-mib", type=int, default=4096, help="the zone churned (default 4 GiB)")
    ap.add_argument(
        "--build-mib", type=int, default=65536, help="memory of the machine built (default 64 GiB)"
    )
    ap.add_argument("--build-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_child:
        build_child(args.build_mib)
        return
    zone_pages = args.zone_mib << 8
    out: dict[str, object] = {}
    out["order0_pairs_per_s"] = round(bench_order0(args.pairs, zone_pages))
    out["order0_hot_pairs_per_s"] = round(bench_hot(args.pairs // 3, zone_pages))
    rate, info = bench_mixed(args.pairs, zone_pages)
    out["mixed_ops_per_s"] = round(rate)
    out["mixed_buddy_steps_per_op"] = round(info["buddy_steps"] / args.pairs, 2)
    out["mixed_failed_allocs"] = info["failed_allocs"]
    child = subprocess.run(
        [sys.executable, __file__, "--build-child", "--build-mib", str(args.build_mib)],
        capture_output=True,
        text=True,
        check=True,
    )
    out.update(json.loads(child.stdout))
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v}")


if __name__ == "__main__":
    main()
