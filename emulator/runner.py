"""Run a scenario: boot the machine, start the actors, run virtual time, collect the results.

:func:`run_scenario` is what ``mmemu run`` and test suites call. It is the only place that
touches wall-clock time (``wall_s``, and the optional ``progress`` callback for the terminal),
outside the model: the model sees virtual time only.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import attrs
import trio

from emulator.engine import NULL_RECORDER, Recorder, Sim, SimError
from emulator.engine.lockstat import merge_lock_stats
from emulator.engine.sync import LockStats
from emulator.mm.allocator import PageAllocator
from emulator.mm.kswapd import kthreads_summary, start_kthreads
from emulator.mm.machine import Machine
from emulator.mm.slowpath import merged_stats as slowpath_summary
from emulator.mm.snapshot import NR_PAGE_ORDERS, MachineSnapshot
from emulator.mm.vmstat import MODEL_VMSTAT_NAMES, fragmentation_score_node
from emulator.scenario import Params, Scenario, ScenarioError
from emulator.workload.cpu import CpuProgram
from emulator.workload.writes import Write, check_writes, parse_writes, writer_actor

__all__ = ["RunContext", "RunResult", "build_context", "run_scenario"]


@attrs.define
class RunContext:
    """Everything a run is made of; scenario hooks receive it."""

    params: Params
    machine: Machine
    sim: Sim
    allocator: PageAllocator
    programs: list[CpuProgram]
    rng: random.Random
    samples: dict[str, list[Any]] = attrs.field(factory=dict)
    findings: dict[str, Any] = attrs.field(factory=dict)
    vm_events_at_start: dict[str, int] = attrs.field(factory=dict)
    scenario_result: Any = None
    """A scenario's verdict (any JSON), put in summary.json as ``scenario_result``."""
    #: the trace being written as the run goes (emulator.report.trace_capture), if any
    trace: Any = None


@attrs.define
class RunResult:
    """The outcome of one run (see :meth:`summary` for the machine-readable form)."""

    scenario: str
    params: Params
    reason: str  # done, deadline, interrupted
    virtual_ns: int
    wall_s: float
    ctx: RunContext
    error: str | None = None

    @property
    def snapshot(self) -> MachineSnapshot:
        return self.ctx.machine.snapshot()

    def vmstat(self) -> dict[str, int]:
        """/proc/vmstat counters the model keeps, kernel names, in kernel order."""
        m = self.ctx.machine
        values = dict(m.vm_events)
        values["nr_free_pages"] = m.nr_free_pages
        values["nr_free_cma"] = sum(z.nr_free_cma for z in m.all_zones())
        values.update(m.node_stat_totals())  # LRU, isolated, slab and mlock page counts
        return {n: int(values.get(n, 0)) for n in MODEL_VMSTAT_NAMES}

    def vmstat_delta(self) -> dict[str, int]:
        """Event counters accumulated during the run (after any scenario set-up)."""
        start = self.ctx.vm_events_at_start
        now = self.ctx.machine.vm_events
        return {
            n: now[n] - start.get(n, 0)
            for n in MODEL_VMSTAT_NAMES
            if now.get(n, 0) - start.get(n, 0)
        }

    def lock_classes(self) -> list[LockStats]:
        """Lock statistics per lock class, as lockdep groups them (all zones' locks are one
        class, ``&zone->lock``)."""
        pa = self.ctx.allocator
        classes: dict[str, list[LockStats]] = {}
        locks = [z.lock for z in pa.zones] + [p.lock for c in pa.cpus for p in c.pcp]
        locks += [lv.lru_lock for lv in pa.lruvecs]
        locks.append(pa.pcpu_drain_mutex)
        for lock in locks:
            classes.setdefault(lock.name, []).append(lock.stats)
        return [merge_lock_stats(name, stats) for name, stats in classes.items()]

    def lock_instances(self) -> dict[str, dict[str, Any]]:
        """Per-zone zone->lock statistics (more detail than lockdep's per-class view)."""
        return {
            f"&zone->lock Node {z.node} {z.name}": z.lock.stats.as_dict()
            for z in self.ctx.allocator.zones
        }

    def summary(self) -> dict[str, Any]:
        """The contents of summary.json."""
        pa = self.ctx.allocator
        sim = self.ctx.sim
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "seed": self.params.seed,
            "params": self.params.as_json(),
            "reason": self.reason,
            "virtual_ns": self.virtual_ns,
            "wall_s": round(self.wall_s, 3),
            "vmstat": self.vmstat(),
            "vmstat_delta": self.vmstat_delta(),
            "allocations": {str(o): s for o, s in pa.order_summary().items()},
            "lock_stat": {s.name: s.as_dict() for s in self.lock_classes()},
            "zone_locks": self.lock_instances(),
            "pcp": {
                "pages": pa.pcp_pages(),
                "per_cpu": {c.id: sum(p.count for p in c.pcp) for c in pa.cpus},
            },
            "kswapd_wakeups": pa.kswapd_wakeups,
            "slowpath": slowpath_summary(pa),
            **kthreads_summary(pa),
            "engine": {
                "strategy": sim.strategy.describe(),
                "quantum_ns": sim.quantum_ns,
                "driver": sim.driver,
                "switches": sim.switches,
                "syncs": sim.syncs,
                "decisions": len(sim.decisions),
                "events": sim.recorder.count,
                "events_dropped": sim.recorder.dropped,
                "events_filter": sim.recorder.events_filter,
            },
            "timeseries": self.ctx.samples,
        }
        if self.ctx.scenario_result is not None:
            out["scenario_result"] = self.ctx.scenario_result
        if self.ctx.findings:
            out["findings"] = self.ctx.findings
        if self.error:
            out["error"] = self.error
        return out


def build_context(
    scenario: Scenario,
    params: Params,
    recorder: Any = NULL_RECORDER,
    strategy: Any = None,
    strict: bool = False,
    driver: str | None = None,
) -> RunContext:
    """Boot the machine, apply sysctls, create the allocator and the CPU programs.

    ``strategy`` (e.g. a :class:`~emulator.engine.Replay`) overrides ``params["strategy"]``;
    ``driver`` picks the engine driver (``"fast"``, the default, or the reference ``"trio"``).
    """
    sim = Sim(
        strategy if strategy is not None else params["strategy"],
        seed=params.seed,
        recorder=recorder,
        quantum_ns=params["quantum"],
        strict=strict,
        driver=driver,
    )
    machine = Machine.x86_64(params.memory_mib, nodes=params.nodes, recorder=recorder)
    for name, value in params.sysctls.items():
        try:
            machine.sysctl.set(name, value)
        except ValueError as exc:
            raise ScenarioError(f"parameter {name}={value!r}: {exc}") from None
    pa = PageAllocator(machine, sim, params.cpus // params.nodes, params.costs)
    try:
        workload = scenario.build(params)
        workload.check(params.cpus)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"scenario {scenario.name}: bad workload: {exc}") from None
    use_inbox = any(c.remote_free > 0 for ph in workload.all_phases for c in ph.mix)
    programs = [CpuProgram(pa, cpu, workload, params.seed, use_inbox) for cpu in pa.cpus]
    for prog in programs:
        prog.peers = programs
    ctx = RunContext(params, machine, sim, pa, programs, random.Random(f"{params.seed}/scenario"))
    warnings = workload.warnings(params.cpus)
    if warnings:
        ctx.findings["workload_warnings"] = warnings
    return ctx


def _sampler(
    ctx: RunContext, progress: Callable[[int, int], None] | None
) -> tuple[Callable[[], Any], Callable[[], None]]:
    """The sampling daemon actor (every ``sample`` ns of virtual time) and its probe."""
    sim = ctx.sim
    interval = ctx.params["sample"]
    duration = ctx.params.duration_ns
    pa = ctx.allocator
    nodes = ctx.machine.nodes
    samples = ctx.samples
    for key in (
        "t_ns",
        "nr_free_pages",
        "pcp_pages",
        "free_pages_per_order",
        "fragmentation_score",
    ):
        samples[key] = []

    def take() -> None:
        samples["t_ns"].append(sim.now)
        samples["nr_free_pages"].append(sum(z.nr_free_pages for z in pa.zones))
        samples["pcp_pages"].append(pa.pcp_pages())
        per_order = [0] * NR_PAGE_ORDERS
        for z in pa.zones:
            for o, n in enumerate(z.nr_free):
                per_order[o] += n << o
        samples["free_pages_per_order"].append(per_order)
        samples["fragmentation_score"].append(
            [
                fragmentation_score_node(
                    SimpleNamespace(
                        zones=[
                            SimpleNamespace(
                                nr_free=z.nr_free, present=z.present_pages, populated=z.populated
                            )
                            for z in n.zones
                        ]
                    )
                )
                for n in nodes
            ]
        )

    async def sampler() -> None:
        await sim.sync()
        take()
        while True:
            await sim.delay(interval)
            await sim.sync()
            take()
            if progress is not None:
                progress(sim.now, duration)

    return sampler, take


def _scenario_writes(scenario: Scenario, params: Params, ctx: RunContext) -> tuple[Write, ...]:
    """The scenario's run-time writes, checked before the run (a bad one is a ScenarioError)."""
    items = scenario.writes(params) if callable(scenario.writes) else scenario.writes
    try:
        writes = parse_writes(items)
        check_writes(ctx.machine, writes, len(ctx.allocator.cpus))
    except ValueError as exc:
        raise ScenarioError(f"scenario {scenario.name}: {exc}") from None
    return writes


def run_scenario(
    scenario: Scenario,
    params: Params,
    *,
    events: IO[str] | Path | None = None,
    record: bool = True,
    progress: Callable[[int, int], None] | None = None,
    strategy: Any = None,
    strict: bool = False,
    trace: bool = False,
    events_filter: str | None = None,
    driver: str | None = None,
    trace_locks: str = "zone",
) -> RunResult:
    """Run ``scenario`` with ``params`` to its virtual deadline.

    ``trace`` (with ``record``) also records what a timeline needs: the lock events of
    include/trace/events/lock.h (:func:`emulator.report.perfetto.enable_lock_events`) and the
    mmemu-specific allocation, free and slow-path markers (``mmemu_*``). With ``events`` a
    path, they go to a :class:`~emulator.report.trace_capture.TraceCapture` writing
    ``trace.json`` beside it as the run goes (``ctx.trace``; ``trace_locks`` its lock policy),
    not to events.jsonl unless ``events_filter`` selects them.

    ``events`` is a path or open text file for events.jsonl (with ``record`` True); with
    ``events`` None and ``record`` True the events stay in memory (``ctx.sim.recorder``).
    ``events_filter`` (tracepoint globs, ``"mm_compaction_*,mm_page_alloc"``) records only the
    matching events; the summary counts the others as ``events_dropped``.
    Ctrl-C ends the run early with ``reason="interrupted"``: what was recorded is flushed and
    the results describe the state at that instant.
    """
    own_file = None
    if record:
        if isinstance(events, Path):
            own_file = events.open("w", encoding="utf-8")
            recorder: Any = Recorder(own_file, events=events_filter)
        else:
            recorder = Recorder(events, events=events_filter)
    else:
        recorder = NULL_RECORDER
    try:
        ctx = build_context(scenario, params, recorder, strategy, strict, driver)
        sim = ctx.sim
        for prog in ctx.programs:
            sim.spawn(f"cpu{prog.cpu.id}", prog.run, data=prog.cpu)
        sampler, take_sample = _sampler(ctx, progress)
        sim.spawn("sampler", sampler, daemon=True)
        start_kthreads(ctx.allocator)  # kswapdN and kcompactdN, daemons
        if scenario.setup is not None:
            # the set-up stands for the machine's past: not recorded, and the vmstat deltas
            # in the summary count from its end
            zones = list(ctx.machine.all_zones())
            for z in zones:
                z.rec = NULL_RECORDER
            scenario.setup(params, ctx)
            for z in zones:
                z.rec = recorder
        ctx.vm_events_at_start = dict(ctx.machine.vm_events)
        if trace and recorder.enabled:
            from emulator.report.perfetto import enable_lock_events

            markers: Any = recorder
            if isinstance(events, Path):
                from emulator.report.trace_capture import TraceCapture

                markers = ctx.trace = TraceCapture(
                    recorder, events.parent / "trace.json", trace_locks
                )
            enable_lock_events(ctx.allocator, markers)
            ctx.allocator.markers = markers
            for prog in ctx.programs:
                prog.markers = markers
        if scenario.actors is not None:
            for name, fn in scenario.actors(params, ctx):
                sim.spawn(name, fn)
        writes = _scenario_writes(scenario, params, ctx)
        if writes:
            log: list[dict[str, Any]] = []
            ctx.findings["writes"] = log
            sim.spawn("writes", writer_actor(ctx.allocator, writes, log))
        reason = "deadline"
        error = None
        t0 = time.perf_counter()
        # the machine built so far lives for the whole run: keep the cyclic GC from scanning it
        # again and again while the run (and its event tuples) allocate (unfrozen after)
        gc.collect()
        gc.freeze()
        try:
            result = trio.run(sim.run, params.duration_ns)
            reason = result.reason
        except KeyboardInterrupt:
            reason = "interrupted"
        except SimError as exc:
            # an actor crashed or the run deadlocked: keep what was recorded and the state
            reason, error = "error", str(exc)
        finally:
            gc.unfreeze()
        wall = time.perf_counter() - t0
        # a wait-for cycle on locks at the end: with daemons polling, a deadlock among CPUs
        # would otherwise pass as a plain deadline
        stuck = sim.lock_cycles()
        if stuck:
            ctx.findings["lock_deadlock_at_end"] = stuck
        # a phase that never ended leaves later phases unrun: say so, never a silent half-run
        unfinished = {f"cpu{p.cpu.id}": p.unfinished() for p in ctx.programs if p.unfinished()}
        if unfinished:
            ctx.findings["phases_not_run"] = unfinished
        if ctx.samples["t_ns"] and ctx.samples["t_ns"][-1] != sim.now:
            take_sample()  # the state at the end of the run
        if scenario.report is not None and error is None:
            ctx.findings.update(scenario.report(params, ctx))
        return RunResult(scenario.name, params, reason, sim.now, wall, ctx, error)
    finally:
        recorder.close()
        if own_file is not None:
            own_file.close()
