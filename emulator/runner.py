"""Run a scenario: boot the machine, start the actors, run virtual time, collect the results.

:func:`run_scenario` is what ``mmemu run`` and test suites call. It is the only place that
touches wall-clock time (``wall_s``, and the optional ``progress`` callback for the terminal),
outside the model: the model sees virtual time only.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import trio

from emulator.engine import (
    NULL_RECORDER,
    ActorCrashed,
    DeadlockError,
    Recorder,
    ReplayEnd,
    Sim,
    SimError,
)
from emulator.engine.deadlock import lock_cycles
from emulator.engine.lockstat import merge_lock_stats
from emulator.engine.sync import LockStats
from emulator.explore.properties import Property, PropertyChecker, Violation
from emulator.mm.compaction.suitable import fragmentation_score_node
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.slowpath import merged_stats as slowpath_summary
from emulator.mm.reclaim.kswapd import kthreads_summary, start_kthreads
from emulator.mm.snapshot import (
    MIGRATE_TYPES,
    MIGRATETYPE_NAMES,
    NR_PAGE_ORDERS,
    MachineSnapshot,
)
from emulator.mm.vmstat import MODEL_VMSTAT_NAMES
from emulator.run.stop import STOP_SIGNALS, StopSignals
from emulator.scenario import Params, Scenario, ScenarioError
from emulator.setup_cache import SetupCache
from emulator.workload.cpu import CpuProgram
from emulator.workload.writes import Write, check_writes, parse_writes, writer_actor

__all__ = [
    "RunContext",
    "RunResult",
    "ScenarioHookError",
    "Stopped",
    "build_context",
    "run_scenario",
    "run_sim",
]


class ScenarioHookError(Exception):
    """A scenario's ``build``, ``setup`` or ``actors`` hook raised: one line naming the hook."""


class Stopped(Exception):
    """A stop signal arrived before the machine was booted: nothing but the reason to write."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def run_sim(stop: StopSignals, sim: Sim, until: int) -> Any:
    """``sim.run(until)`` under trio, cancelled cleanly by the first stop signal (one that
    came earlier, too)."""
    result = None
    stop.raise_now = False
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
                if stop.signum is not None:
                    nursery.cancel_scope.cancel()
                async for sig in signals:
                    stop.note(sig)
                    nursery.cancel_scope.cancel()

        async def main() -> None:
            nonlocal result
            result = await sim.run(until)
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        nursery.start_soon(main)
    return result


async def run_sim_unwrapped(stop: StopSignals, sim: Sim, until: int) -> Any:
    """:func:`run_sim`, raising the engine's own error rather than trio's group of one."""
    try:
        return await run_sim(stop, sim, until)
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        for kind in (KeyboardInterrupt, SimError):
            for exc in leaves:
                if isinstance(exc, kind):
                    raise exc from exc.__cause__
        raise


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


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
    reason: str  # done, deadline, interrupted, terminated, hangup, deadlock, watchdog, error
    virtual_ns: int
    wall_s: float
    ctx: RunContext
    error: str | None = None
    #: wall-clock seconds of boot and scenario set-up (``wall_s`` is the run alone)
    setup_s: float = 0.0
    #: the scenario's ``report`` hook raised: one line (the results are still written)
    report_error: str | None = None
    #: every property violation found (:mod:`emulator.explore.properties`), in order found
    violations: list[Violation] = attrs.field(factory=list)
    #: summary.json ``properties``: per checked property, its doc and violations
    properties: dict[str, Any] = attrs.field(factory=dict)
    #: for a run stopped by a signal, the phase it was in when the signal came
    #: (:data:`emulator.run.stop.PHASES`)
    stage: str | None = None

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
            **({"stage": self.stage} if self.stage is not None else {}),
            "virtual_ns": self.virtual_ns,
            "setup_s": round(self.setup_s, 3),
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
            "extfrag": extfrag_summary(pa),
            "mitigations": self.ctx.machine.mitigations.as_dict(),
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
        if self.properties:
            out["properties"] = self.properties
        if self.ctx.scenario_result is not None:
            out["scenario_result"] = self.ctx.scenario_result
        if self.ctx.findings:
            out["findings"] = self.ctx.findings
        if self.error:
            out["error"] = self.error
        if self.report_error:
            out["report_error"] = self.report_error
        return out


def extfrag_summary(pa: PageAllocator) -> dict[str, Any]:
    """Fragmenting fallbacks (``mm_page_alloc_extfrag`` with fallback_order < pageblock_order)
    over all zones: the total and by the requesting migratetype."""
    by_mt = [sum(z.extfrag_fragmenting[mt] for z in pa.zones) for mt in range(MIGRATE_TYPES)]
    return {
        "fragmenting_fallbacks": sum(by_mt),
        "by_alloc_migratetype": {MIGRATETYPE_NAMES[mt]: n for mt, n in enumerate(by_mt) if n},
    }


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
        perturb=params["perturb"],
    )
    if scenario.machine is not None:
        machine = scenario.machine(params, recorder)
    else:
        machine = Machine.x86_64(params.memory_mib, nodes=params.nodes, recorder=recorder)
    for name, value in params.sysctls.items():
        try:
            machine.sysctl.set(name, value)
        except ValueError as exc:
            raise ScenarioError(f"parameter {name}={value!r}: {exc}") from None
    pa = PageAllocator(machine, sim, params.cpus // params.nodes, params.costs)
    try:
        workload = scenario.build(params)
    except Exception as exc:
        raise ScenarioHookError(
            f"scenario {scenario.name}: build() failed: {_one_line(exc)}"
        ) from exc
    try:
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
        samples["fragmentation_score"].append([fragmentation_score_node(n) for n in nodes])

    async def sampler() -> None:
        await sim.sync()
        take()
        while True:
            await sim.delay(interval)
            await sim.sync()
            take()
            _no_lock_cycle(sim)
            if progress is not None:
                progress(sim.now, duration)

    return sampler, take


def _scenario_writes(scenario: Scenario, params: Params, ctx: RunContext) -> tuple[Write, ...]:
    """The scenario's run-time writes, checked before the run: a bad one (or a ``writes``
    function that raises) is a :class:`ScenarioError`. Writes timed after the run's end are
    not done: they are listed in findings (``writes_after_end``) and dropped."""
    items: Any = scenario.writes
    if callable(items):
        items = _hook(scenario, "writes", items, params)
    try:
        writes = parse_writes(items)
        check_writes(ctx.machine, writes, len(ctx.allocator.cpus))
    except ValueError as exc:
        raise ScenarioError(f"scenario {scenario.name}: {exc}") from None
    late = [w for w in writes if w.at_ns > params.duration_ns]
    if late:
        ctx.findings["writes_after_end"] = [
            {"at_ns": w.at_ns, "path": w.path, "value": w.value, "cpu": w.cpu} for w in late
        ]
    return tuple(w for w in writes if w.at_ns <= params.duration_ns)


def _no_lock_cycle(sim: Sim) -> None:
    """Raise :class:`DeadlockError` if actors wait for each other's locks in a cycle.

    The engine reports a deadlock once every non-daemon actor is blocked; a lock cycle among
    some actors while CPUs still tick (their periodic pcp decay) can never resolve either, so
    the sampler stops the run at its next sample, naming the cycle and when it formed.
    """
    cycles = lock_cycles(sim.actors)
    if cycles:
        since = max(a.blocked_since for a in cycles[0])
        raise DeadlockError(since, sim.lock_cycles(), [a.name for a in cycles[0]])


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sim_error(exc: SimError) -> tuple[str, str | None]:
    """(reason, one-line message) for an engine error that ended a run (``replay_end`` and
    no message for a replay that reached where its recorded run stopped)."""
    inner = exc.exc if isinstance(exc, ActorCrashed) else exc
    if isinstance(inner, ReplayEnd) or isinstance(exc.__cause__, ReplayEnd):
        return "replay_end", None
    if isinstance(exc, ActorCrashed) and isinstance(exc.exc, DeadlockError):
        exc = exc.exc  # found by the sampler (a lock cycle while other actors still run)
    msg = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    msg = msg.replace(":;", ":")
    if isinstance(exc, DeadlockError):
        return "deadlock", msg
    if "watchdog" in type(exc).__name__.lower():
        return "watchdog", msg
    return "error", msg


def run_scenario(
    scenario: Scenario,
    params: Params,
    *,
    events: IO[str] | Path | None = None,
    record: bool = True,
    progress: Callable[[int, int], None] | None = None,
    strategy: Any = None,
    strict: bool = False,
    stop: StopSignals | None = None,
    stage: Callable[[str], None] | None = None,
    trace: bool = False,
    events_filter: str | None = None,
    driver: str | None = None,
    trace_locks: str = "zone",
    properties: Sequence[Property] | None = None,
    until_ns: int | None = None,
    cache: SetupCache | None = None,
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
    Ctrl-C (and, with ``stop``, SIGTERM and SIGHUP) ends the run early with ``reason``
    ``interrupted`` (``terminated``, ``hangup``): what was recorded is flushed and the results
    describe the state at that instant. A deadlock or watchdog report from the engine ends it
    with ``reason`` ``deadlock`` or ``watchdog`` and ``error`` saying why, an actor crash with
    ``error``. ``stage(name)`` is called as boot, set-up and the run begin (for a progress
    display). With ``cache`` (:class:`~emulator.setup_cache.SetupCache`) the machine after the
    scenario's ``setup`` is loaded from it when stored there, and stored when it was not (same
    results either way). Raises :class:`ScenarioHookError` if the scenario's ``build``,
    ``setup`` or ``actors`` hook raises, and :class:`Stopped` if a stop signal came before the
    machine was booted.

    ``until_ns`` ends the run earlier than ``params.duration_ns`` (the replay of a run that
    a signal stopped goes to where it stopped).

    ``properties`` (default: the scenario's own) are checked during and after the run
    (:class:`~emulator.explore.properties.PropertyChecker`): ``RunResult.violations``. Properties
    with event hooks see every event even with ``record`` False.
    """
    props = list(scenario.properties if properties is None else properties)
    own_file = None
    if not record and any(p.on_event is not None for p in props):
        record, events = True, _DISCARD
    if record:
        if isinstance(events, Path):
            own_file = events.open("w", encoding="utf-8")
            recorder: Any = Recorder(own_file, events=events_filter)
        else:
            recorder = Recorder(events, events=events_filter)
    else:
        recorder = NULL_RECORDER
    stage = stage or (lambda _name: None)
    t_setup = time.perf_counter()
    try:
        try:
            stage("boot")
            ctx = build_context(scenario, params, recorder, strategy, strict, driver)
            # checked before anything runs: a bad write refuses the run as bad input
            writes = _scenario_writes(scenario, params, ctx)
        except KeyboardInterrupt:
            raise Stopped(stop.reason if stop and stop.reason else "interrupted") from None
        sim = ctx.sim
        reason = "deadline"
        error = None
        checker: PropertyChecker | None = None
        take_sample: Callable[[], None] | None = None  # none before the set-up has finished
        try:
            if scenario.setup is not None:
                stage("set-up")
                ctx = _set_up(scenario, params, ctx, recorder, cache, strict, driver)
            for prog in ctx.programs:
                sim.spawn(f"cpu{prog.cpu.id}", prog.run, data=prog.cpu)
            sampler, take_sample = _sampler(ctx, progress)
            sim.spawn("sampler", sampler, daemon=True)
            start_kthreads(ctx.allocator)  # kswapdN and kcompactdN, daemons
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
                for name, fn in _hook(scenario, "actors", _actor_list, scenario, params, ctx):
                    sim.spawn(name, fn)
            checker = PropertyChecker(props, ctx)
            checker.install()
            if writes:
                log: list[dict[str, Any]] = []
                ctx.findings["writes"] = log
                sim.spawn("writes", writer_actor(ctx.allocator, writes, log))
        except KeyboardInterrupt:
            reason = stop.reason if stop and stop.reason else "interrupted"
        setup_s = time.perf_counter() - t_setup
        t0 = time.perf_counter()
        if reason == "deadline":
            stage("run")
            # the machine built so far lives for the whole run: keep the cyclic GC from
            # scanning it again and again while the run allocates (unfrozen after)
            gc.collect()
            gc.freeze()
            try:
                until = params.duration_ns if until_ns is None else until_ns
                if stop is not None:
                    result = trio.run(run_sim_unwrapped, stop, sim, until)
                else:
                    result = trio.run(sim.run, until)
                if result is None or (stop is not None and stop.reason):
                    reason = (stop.reason if stop else None) or "interrupted"
                else:
                    reason = result.reason
            except KeyboardInterrupt:
                reason = stop.reason if stop and stop.reason else "interrupted"
            except SimError as exc:
                if isinstance(exc, ActorCrashed) and isinstance(exc.exc, OSError):
                    raise exc.exc from None  # writing the events failed (a full disk)
                # an actor crashed, the run deadlocked or an actor made no progress: keep what
                # was recorded and the state
                reason, error = _sim_error(exc)
            finally:
                gc.unfreeze()
        if stop is not None:
            stop.raise_now = False
        wall = time.perf_counter() - t0
        # a wait-for cycle on locks at the end: with daemons polling, a deadlock among CPUs
        # would otherwise pass as a plain deadline
        stuck = sim.lock_cycles()
        if stuck:
            ctx.findings["lock_deadlock_at_end"] = stuck
            if error is None and reason in ("deadline", "done"):
                # formed after the last sample: still a deadlock, never a success
                try:
                    _no_lock_cycle(sim)
                except DeadlockError as exc:
                    reason, error = _sim_error(exc)
        # a phase that never ended leaves later phases unrun: say so, never a silent half-run
        unfinished = {f"cpu{p.cpu.id}": p.unfinished() for p in ctx.programs if p.unfinished()}
        if unfinished:
            ctx.findings["phases_not_run"] = unfinished
        if take_sample is not None and (
            not ctx.samples.get("t_ns") or ctx.samples["t_ns"][-1] != sim.now
        ):
            take_sample()  # the state at the end of the run
        violations = checker.finish(reason, error) if checker is not None else []
        report_error = None
        if scenario.report is not None and error is None:
            try:
                ctx.findings.update(scenario.report(params, ctx))
            except Exception as exc:
                report_error = f"scenario {scenario.name}: report() failed: {_one_line(exc)}"
        return RunResult(
            scenario.name,
            params,
            reason,
            sim.now,
            wall,
            ctx,
            error,
            setup_s,
            report_error,
            violations,
            checker.summary() if checker is not None else {},
        )
    finally:
        recorder.close()
        if own_file is not None:
            own_file.close()


def _set_up(
    scenario: Scenario,
    params: Params,
    ctx: RunContext,
    recorder: Any,
    cache: SetupCache | None,
    strict: bool,
    driver: str | None,
) -> RunContext:
    """Run the scenario's ``setup`` hook on the booted machine, or load its result from
    ``cache``. The set-up stands for the machine's past: not recorded, and the vmstat deltas in
    the summary count from its end. It runs before any actor is spawned, so what it leaves is
    the machine alone (the cache keeps exactly that)."""
    assert scenario.setup is not None
    setup = scenario.setup

    def run_hook() -> None:
        zones = list(ctx.machine.all_zones())
        for z in zones:
            z.rec = NULL_RECORDER
        _hook(scenario, "setup", setup, params, ctx)
        for z in zones:
            z.rec = recorder

    if cache is None:
        run_hook()
        return ctx
    key = cache.key(scenario.path, params.as_json(), {"strict": strict, "driver": driver})
    external = {"sim": ctx.sim, "recorder": recorder, "null": NULL_RECORDER}
    loaded: RunContext = cache.run_setup(key, ctx, external, run_hook)
    return loaded


class _Discard:
    """A text sink that keeps nothing (events recorded only for property hooks)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


_DISCARD: Any = _Discard()


def _actor_list(scenario: Scenario, params: Params, ctx: RunContext) -> list[tuple[str, Any]]:
    assert scenario.actors is not None
    out = []
    for item in scenario.actors(params, ctx):
        name, fn = item
        if not isinstance(name, str) or not callable(fn):
            raise TypeError(f"expected (name, async function) pairs, got {item!r:.80}")
        out.append((name, fn))
    return out


def _hook(scenario: Scenario, name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call a scenario hook; anything it raises becomes one line naming the hook."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        raise ScenarioHookError(
            f"scenario {scenario.name}: {name}() failed: {_one_line(exc)}"
        ) from exc
