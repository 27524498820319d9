"""Set-up at scale: boot and set-up of the default scenario's machine at 1, 16 and 64 GiB.

For each size a fresh child process (so each peak is its own) loads the ``default`` scenario
with ``--set memory=SIZE``, boots the machine (:meth:`emulator.runner.Run.boot`: the memmap,
the zones, the allocator and its CPUs) and runs the scenario's set-up
(:meth:`~emulator.runner.Run.set_up`: the machine's past, filled through the buddy allocator,
partly released, the survivors adopted onto the LRU lists). Reported per size: the CPU seconds
of boot and of set-up (``time.process_time``), their sum per GiB, the peak resident set size
of the child (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and what it had before the boot
(the interpreter with mmemu imported), and the bytes of per-page state: the sum of the item
sizes of the memmap's per-pfn arrays (``state``, ``order``, ``owner``, ``pflags``, ``handle``,
``nxt``, ``prv``).

Run by hand, one size after the other, never in the test suite::

    python3 dev.py python benchmarks/setup_scale.py [--json] [--sizes 1G,16G,64G]

With ``--trace-malloc`` the child also reports the biggest allocation sites still held at the
end of the set-up (tracemalloc; this slows the set-up down, so its CPU times are not
comparable).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any


def child(size: str, trace: bool) -> dict[str, Any]:
    """Boot and set up one machine of ``size`` in this process; the measurements."""
    from emulator.mm.memmap import per_page_bytes
    from emulator.runner import Run, RunOptions
    from emulator.scenario import find_scenario, load_scenario

    scenario = load_scenario(find_scenario("default"))
    params = scenario.resolve({"memory": size})
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        import tracemalloc

        tracemalloc.start(4)
    run = Run(scenario, params, options=RunOptions())
    c0 = time.process_time()
    run.boot()
    c1 = time.process_time()
    run.set_up()
    c2 = time.process_time()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gib = params.memory_mib / 1024
    out: dict[str, Any] = {
        "size": size,
        "boot_cpu_s": round(c1 - c0, 3),
        "setup_cpu_s": round(c2 - c1, 3),
        "cpu_s_per_gib": round((c2 - c0) / gib, 3),
        "peak_rss_mb": round(rss1 / 1024, 1),
        "rss_before_boot_mb": round(rss0 / 1024, 1),
        "per_page_bytes": per_page_bytes(run.context.machine.memmap),
        "pages": run.context.machine.memmap.end_pfn,
    }
    if trace:
        import tracemalloc

        snap = tracemalloc.take_snapshot()
        top = snap.statistics("lineno")[:15]
        out["tracemalloc_top"] = [
            f"{s.size / 2**20:8.1f} MiB {s.count:>9} blocks  {s.traceback[0]}" for s in top
        ]
        tracemalloc.stop()
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--sizes", default="1G,16G,64G", help="comma-separated memory sizes")
    ap.add_argument(
        "--trace-malloc", action="store_true", help="report the biggest allocation sites"
    )
    ap.add_argument("--child", metavar="SIZE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.trace_malloc)))
        return 0
    results = []
    for size in (s.strip() for s in args.sizes.split(",") if s.strip()):
        cmd = [sys.executable, __file__, "--child", size]
        if args.trace_malloc:
            cmd.append("--trace-malloc")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"setup_scale: {size}: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout))
    if args.json:
        print(json.dumps({"benchmark": "setup_scale", "results": results}))
        return 0
    for r in results:
        print(
            f"{r['size']:>5}: boot {r['boot_cpu_s']:6.2f} s + set-up {r['setup_cpu_s']:6.2f} s CPU "
            f"({r['cpu_s_per_gib']:.3f} s/GiB), peak RSS {r['peak_rss_mb']:7.1f} MB "
            f"({r['rss_before_boot_mb']:.1f} before boot), {r['per_page_bytes']} B per page"
        )
        for line in r.get("tracemalloc_top", []):
            print("       " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
