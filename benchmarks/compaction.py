"""Manual compaction speed: wall time of ``echo 1 > /proc/sys/vm/compact_memory``.

Each machine (1, 4 and 16 GiB, x86-64 layout, 2 CPUs) starts with every other page of every
zone allocated movable and the rest free (``free_k_of_n(zone, 1, 2)``: order-0 holes only), so
compaction has to migrate about a quarter of memory. One actor writes ``vm.compact_memory``
(``compact_nodes``: every zone, order -1, MIGRATE_SYNC) and the run ends when it is done.
Reported: the wall time of the run (not of the set-up; the check of every invariant at the
end is included), this process's CPU time over the same span (less sensitive to other load on
a shared machine), the pages migrated (``pgmigrate_success``) and the virtual time the
compaction took.

Target: 4 GiB in <= 5 s wall on this kind of machine, growing linearly. Wall times
are noisy on a shared machine; run by hand, not in the test suite::

    python3 dev.py python benchmarks/compaction.py [--json] [--sizes 1G,4G,16G]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

import trio

from emulator.mm.initstate import free_k_of_n
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.testing import make_kernel
from emulator.workload.writes import write_file


def run_one(size: str) -> dict[str, float | int]:
    k = make_kernel(size, cpus=2, record=False, strict=False)
    pa = k.allocator
    for z in pa.zones:
        free_k_of_n(z, 1, 2)
    adopt_allocated(pa)  # anonymous memory on the LRU, with holders
    before = dict(pa.vm_events)

    async def writer() -> None:
        await write_file(pa, pa.cpus[0], "vm.compact_memory", "1")

    # as ``mmemu run`` does (emulator.runner.Run.run): the machine built by the set-up lives for
    # the whole run, so the cyclic GC is kept from scanning it again and again
    gc.collect()
    gc.freeze()
    try:
        t0 = time.perf_counter()
        c0 = time.process_time()
        trio.run(k.run, ("compact_memory", writer))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        gc.unfreeze()
    ev = pa.vm_events
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "pages_migrated": ev["pgmigrate_success"] - before.get("pgmigrate_success", 0),
        "virtual_ms": round(k.sim.now / 1e6, 3),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--sizes", default="1G,4G,16G", help="comma-separated memory sizes")
    args = ap.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    results = {s: run_one(s) for s in sizes}
    if args.json:
        print(
            json.dumps(
                {
                    "compact_memory_wall_s": {s: r["wall_s"] for s, r in results.items()},
                    "pages_migrated": {s: r["pages_migrated"] for s, r in results.items()},
                    "virtual_ms": {s: r["virtual_ms"] for s, r in results.items()},
                    "process_cpu_s": {s: r["cpu_s"] for s, r in results.items()},
                }
            )
        )
    else:
        for s, r in results.items():
            print(
                f"{s:>5}: {r['wall_s']:7.3f} s wall ({r['cpu_s']:.3f} s CPU), "
                f"{r['pages_migrated']:>8} pages migrated, "
                f"{r['virtual_ms']:9.3f} ms virtual"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
