"""The race catalogue, measured: per race, N explored schedules with its mitigation off and on.

For each scenario of ``scenarios/races/`` this runs ``--runs`` schedules (seeds 1..N, the
``random`` and ``pct`` strategies alternately, with ``perturb``: delays at the kernel's unlocked
windows as well as the order of tied actors; and once under ``fifo``) and prints, per
setting: runs with a violation of the race's property, the first such run (the schedules
needed to show it), violations in all, the race's effect figures (summed over the runs) and
CPU seconds per run. The table in docs/races.md comes from it.

Usage (by hand; not part of the test suite)::

    python3 dev.py python benchmarks/races.py [--runs 10] [--only stolen_page,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator.explore.properties import Event, Property, PropertyRun  # noqa: E402
from emulator.runner import RunOptions, RunResult, run_scenario  # noqa: E402
from emulator.scenario import bundled_scenarios, load_scenario  # noqa: E402


def counting(name: str, events: tuple[str, ...], keep: Callable[[Event], bool]) -> Property:
    """A property that never fails: it counts the events ``keep`` accepts (in run.state)."""

    def on_event(run: PropertyRun, ev: Event) -> list[str]:
        if keep(ev):
            run.state["n"] = run.state.get("n", 0) + 1
        return []

    def check(run: PropertyRun) -> list[str]:
        run.ctx.findings[name] = run.state.get("n", 0)
        return []

    return Property(name, f"counts {name}", check=check, on_event=on_event, events=events)


def _async_durations(run: PropertyRun, ev: Event) -> list[str]:
    started = run.state.setdefault("t0", {})
    if ev.name == "mm_compaction_begin" and not ev.fields["sync"]:
        started[ev.actor] = ev.t
    elif ev.name == "mm_compaction_end" and ev.actor in started:
        d = ev.t - started.pop(ev.actor)
        run.state["max"] = max(run.state.get("max", 0), d)
    return []


def _async_max(run: PropertyRun) -> list[str]:
    run.ctx.findings["async_compaction_max_us"] = run.state.get("max", 0) // 1000
    return []


ASYNC_MAX = Property(
    "async_max",
    "longest async direct compaction",
    check=_async_max,
    on_event=_async_durations,
    events=("mm_compaction_begin", "mm_compaction_end"),
)
DIRECT_SCANS = counting(
    "direct_compaction_runs",
    ("mm_compaction_end",),
    lambda ev: bool(ev.actor and ev.actor.startswith("cpu")),
)


def _f(key: str) -> Callable[[RunResult], dict[str, Any]]:
    return lambda r: dict(r.ctx.findings.get(key, {}))


#: race -> (switch or None, property, extra measuring properties, effect figures of one run)
RACES: dict[str, tuple[str | None, str, list[Property], Callable[[RunResult], dict[str, Any]]]] = {
    "stolen_page": ("capture", "compaction_success_honoured", [], _f("thp")),
    "pcp_hidden_block": ("drain_after_reclaim", "no_failure_with_pcp_pages", [], _f("probe")),
    "async_contention": (
        "async_contended_abort",
        "async_compaction_bounded",
        [ASYNC_MAX],
        lambda r: {"async_compaction_max_us": r.ctx.findings["async_compaction_max_us"]},
    ),
    "compaction_herd": (
        "compaction_deferral",
        "compaction_herd_bounded",
        [DIRECT_SCANS],
        lambda r: {
            "direct_compaction_runs": r.ctx.findings["direct_compaction_runs"],
            "compact_stall": r.ctx.machine.vm_events["compact_stall"],
        },
    ),
    "watermark_then_lost": (
        None,
        "watermark_honoured",
        [],
        lambda r: {"lost_after_check": r.ctx.allocator.watermark_ok_lost[4], **_f("order4")(r)},
    ),
    "drain_refill": ("drain_after_reclaim", "no_failure_with_pcp_pages", [], _f("probe")),
    "shared_migration_source": (
        "skip_claim",
        "private_migration_source",
        [],
        lambda r: {
            "shared_blocks": len(r.violations),
            "pgmigrate_success": r.ctx.machine.vm_events["pgmigrate_success"],
        },
    ),
    "fallback_mixing": (
        "alloc_nofragment",
        "no_avoidable_mixing",
        [],
        lambda r: {"avoidable_mixing": len(r.violations)},
    ),
    "concurrent_shrinkers": (
        None,
        "no_crash",
        [],
        lambda r: {"slab_pages_freed": r.ctx.allocator.shrinkers[0].freed},
    ),
}


def measure(name: str, runs: int, overrides: dict[str, Any]) -> dict[str, Any]:
    _, prop, extra, effect = RACES[name]
    sc = load_scenario(bundled_scenarios()[f"races/{name}"])
    first = None
    bad = 0
    total = 0
    figures: dict[str, int] = {}
    t0 = time.process_time()
    for i in range(runs):
        over = dict(overrides)
        strategy = over.pop("strategy", None) or ("random", "pct")[i % 2]
        perturb = strategy != "fifo"
        params = sc.resolve({**over, "seed": i + 1, "strategy": strategy, "perturb": perturb})
        res = run_scenario(
            sc,
            params,
            record=False,
            options=RunOptions(properties=(*sc.properties, *extra)),
        )
        mine = [v for v in res.violations if v.property == prop]
        total += len(mine)
        if mine:
            bad += 1
            first = i + 1 if first is None else first
        for k, v in effect(res).items():
            figures[k] = figures.get(k, 0) + v
    cpu = (time.process_time() - t0) / runs
    return {
        "runs": runs,
        "violating": bad,
        "first": first,
        "violations": total,
        "effect": figures,
        "cpu_s": round(cpu, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", help="comma-separated race names")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(RACES)
    print(
        "| race | setting | runs violating | first | violations | effect (sum over runs) "
        "| CPU s/run |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        switch = RACES[name][0]
        settings: list[tuple[str, dict[str, Any], int]] = []
        if switch is not None:
            settings.append((f"{switch}=off", {f"mitigation.{switch}": "off"}, args.runs))
            settings.append((f"{switch}=on", {}, args.runs))
        else:
            settings.append(("explored", {}, args.runs))
        settings.append(("fifo (on)", {"strategy": "fifo"}, 1))
        for label, over, runs in settings:
            m = measure(name, runs, over)
            eff = ", ".join(f"{k} {v}" for k, v in m["effect"].items())
            print(
                f"| {name} | {label} | {m['violating']}/{m['runs']} | {m['first'] or '-'} "
                f"| {m['violations']} | {eff} | {m['cpu_s']} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
