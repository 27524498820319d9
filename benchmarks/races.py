"""The race catalogue, measured: per race, N explored schedules with its mitigation off and on.

``--explore`` measures the races that need exploration (the default schedule passes) as
``mmemu explore RACE --perturb`` finds them: PCT (depth 3, change points over the default
schedule's steps), schedule seeds 1..N with the mitigation off and the same N with it on. Per
race it prints the schedules needed to the first violation, the violating schedules, the effect
figures summed over the N schedules, the shrink of the first violating schedule (non-default
decisions and delays, count and ns, before -> after, and the runs the shrink took), whether its
replay is exact (same events sha256), and CPU seconds per schedule::

    python3 dev.py python benchmarks/races.py --explore [--runs 200] [--jobs 2]

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
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator.explore.executor import ItemError, run_many  # noqa: E402
from emulator.explore.properties import Event, Property, PropertyRun  # noqa: E402
from emulator.explore.schedules import (  # noqa: E402
    RunSpec,
    make_schedule_strategy,
    run_schedule,
    shrink,
)
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
    "kcompactd_cached_positions": (
        "skip_claim",
        "private_migration_source",
        [],
        lambda r: {"shared_blocks": len(r.violations), **_f("thp")(r)},
    ),
    "final_compaction": (
        "whole_zone",
        "final_compaction_covers_zone",
        [],
        lambda r: {"partial_final_rounds": len(r.violations), **_f("alloc")(r)},
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


def _count(prop: str) -> Callable[[RunResult], int]:
    return lambda r: sum(v.property == prop for v in r.violations)


#: races the default schedule passes -> (switch, property, effect figures of one run)
EXPLORED: dict[str, tuple[str, str, Callable[[RunResult], dict[str, int]]]] = {
    "stolen_page": (
        "capture",
        "compaction_success_honoured",
        lambda r: {
            "compactor_thp": r.ctx.findings["thp"]["compactor"],
            "thieves_thp": r.ctx.findings["thp"]["thieves"],
            "honoured_violations": _count("compaction_success_honoured")(r),
        },
    ),
    "shared_migration_source": (
        "skip_claim",
        "private_migration_source",
        lambda r: {"shared_blocks": _count("private_migration_source")(r)},
    ),
    "kcompactd_cached_positions": (
        "skip_claim",
        "private_migration_source",
        lambda r: {
            "shared_blocks": _count("private_migration_source")(r),
            "thp_ok": r.ctx.findings["thp"]["ok"],
        },
    ),
    "final_compaction": (
        "whole_zone",
        "final_compaction_covers_zone",
        lambda r: {
            "partial_final_rounds": _count("final_compaction_covers_zone")(r),
            "compact_stall": r.ctx.machine.vm_events["compact_stall"],
        },
    ),
}


def _explored_one(item: tuple[str, dict[str, Any], int, int]) -> dict[str, Any]:
    """One PCT schedule (perturbed) of a race: whether it violated, and its effect figures."""
    name, overrides, seed, steps = item
    path = str(bundled_scenarios()[f"races/{name}"])
    sc = load_scenario(path)
    params = sc.resolve({**overrides, "strategy": "pct", "perturb": True})
    spec = RunSpec(path, params.as_json(), "pct", schedule_seed=seed, steps=steps, perturb=True)
    options = RunOptions(strategy=make_schedule_strategy(spec))
    res = run_scenario(sc, params, record=False, options=options)
    _, prop, effect = EXPLORED[name]
    return {"violated": any(v.property == prop for v in res.violations), "effect": effect(res)}


def explore_race(name: str, runs: int, overrides: dict[str, Any], jobs: int) -> dict[str, Any]:
    """N PCT schedules of ``races/name``, the first violating one shrunk and replayed."""
    path = str(bundled_scenarios()[f"races/{name}"])
    params = load_scenario(path).resolve({**overrides, "strategy": "pct", "perturb": True})
    fifo = run_schedule(RunSpec(path, params.as_json(), "fifo", perturb=True))
    steps = len(fifo.decisions)
    items = [(name, overrides, seed, steps) for seed in range(1, runs + 1)]
    c0 = _cpu()
    got = dict(run_many(_explored_one, items, jobs=jobs))
    cpu = (_cpu() - c0) / runs
    errors = [g for g in got.values() if isinstance(g, ItemError)]
    if errors:
        raise RuntimeError(f"{name}: {errors[0].error}")
    seeds = [items[i][2] for i in sorted(got) if got[i]["violated"]]  # type: ignore[index]
    figures: dict[str, int] = {}
    for g in got.values():
        for k, v in g["effect"].items():  # type: ignore[index]
            figures[k] = figures.get(k, 0) + v
    out: dict[str, Any] = {
        "fifo_violated": fifo.violated,
        "violating": len(seeds),
        "first": seeds[0] if seeds else None,
        "effect": figures,
        "cpu_s": round(cpu, 2),
    }
    if seeds:
        spec = RunSpec(path, params.as_json(), "pct", schedule_seed=seeds[0], steps=steps)
        found = run_schedule(attrs.evolve(spec, perturb=True))
        prop = EXPLORED[name][1]
        sig = next(sg for sg in found.signatures if sg.startswith(prop))
        r = shrink(found, sig, jobs=jobs)
        replay = run_schedule(
            RunSpec(path, params.as_json(), "replay", decisions=r.outcome.decisions, perturb=True)
        )
        out["shrink"] = (
            f"{r.before} -> {r.after} decisions, {r.delays_before} -> {r.delays_after} delays "
            f"({r.delay_ns_before} -> {r.delay_ns_after} ns), {r.runs} runs"
        )
        out["replay_exact"] = replay.events_sha256 == r.outcome.events_sha256
    return out


def _cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def explore_table(runs: int, names: list[str], jobs: int) -> None:
    print(
        "| race | setting | default schedule | first violating schedule | violating "
        "| effect (sum over schedules) | shrink of the first | replay | CPU s/schedule |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        switch = EXPLORED[name][0]
        for label, over in ((f"{switch}=off", {f"mitigation.{switch}": "off"}), ("on", {})):
            m = explore_race(name, runs, over, jobs)
            eff = ", ".join(f"{k} {v}" for k, v in m["effect"].items())
            print(
                f"| {name} | {label} | {'violates' if m['fifo_violated'] else 'passes'} "
                f"| {m['first'] or '-'} | {m['violating']}/{runs} | {eff} "
                f"| {m.get('shrink', '-')} | {m.get('replay_exact', '-')} | {m['cpu_s']} |",
                flush=True,
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", help="comma-separated race names")
    ap.add_argument("--explore", action="store_true", help="the races that need exploration")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (--explore)")
    args = ap.parse_args()
    if args.explore:
        names = args.only.split(",") if args.only else list(EXPLORED)
        explore_table(args.runs, names, args.jobs)
        return 0
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
