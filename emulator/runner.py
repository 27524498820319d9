"""Run a scenario: boot the machine, start the actors, run virtual time, collect the results.

:func:`run_scenario` is what ``mmemu run`` and test suites call. It is the only place that
touches wall-clock time (``wall_s``, and the optional ``progress`` callback for the terminal),
outside the model: the model sees virtual time only.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Iterable, Sequence
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
from emulator.engine.strategy import Strategy
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
from emulator.mm.vmstat_work import start_vmstat_work
from emulator.run.stop import STOP_SIGNALS, StopSignals
from emulator.run.summary import (
    EngineSummary,
    Extfrag,
    KcompactdSummary,
    KswapdSummary,
    LockClassStat,
    OrderAllocations,
    PcpSummary,
    PropertySummary,
    RunSummary,
    SlowpathOrder,
    Timeseries,
)
from emulator.scenario import Params, Scenario, ScenarioError, one_line
from emulator.setup_cache import SetupCache
from emulator.workload.cpu import CpuProgram
from emulator.workload.writes import Write, check_writes, parse_writes, writer_actor

__all__ = [
    "EventsLog",
    "Observer",
    "Run",
    "RunContext",
    "RunOptions",
    "RunResult",
    "Sampler",
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

    def summary(self) -> RunSummary:
        """summary.json, typed."""
        pa = self.ctx.allocator
        sim = self.ctx.sim
        kthreads = kthreads_summary(pa)  # none when the run stopped before they started
        kcompactd = kthreads.get("kcompactd")
        kswapd = kthreads.get("kswapd")
        samples = self.ctx.samples
        return RunSummary(
            scenario=self.scenario,
            seed=self.params.seed,
            params=self.params.as_json(),
            reason=self.reason,
            stage=self.stage,
            virtual_ns=self.virtual_ns,
            setup_s=round(self.setup_s, 3),
            wall_s=round(self.wall_s, 3),
            vmstat=self.vmstat(),
            vmstat_delta=self.vmstat_delta(),
            allocations={o: OrderAllocations.of(s) for o, s in pa.order_summary().items()},
            lock_stat={s.name: LockClassStat.of(s.as_dict()) for s in self.lock_classes()},
            zone_locks={k: LockClassStat.of(v) for k, v in self.lock_instances().items()},
            pcp=PcpSummary(
                pages=pa.pcp_pages(),
                per_cpu={c.id: sum(p.count for p in c.pcp) for c in pa.cpus},
            ),
            kswapd_wakeups=pa.kswapd_wakeups,
            slowpath={int(o): SlowpathOrder.of(s) for o, s in slowpath_summary(pa).items()},
            extfrag=extfrag_summary(pa),
            mitigations=self.ctx.machine.mitigations.as_dict(),
            kcompactd=None if kcompactd is None else [KcompactdSummary.of(k) for k in kcompactd],
            kswapd=None if kswapd is None else [KswapdSummary.of(k) for k in kswapd],
            engine=EngineSummary(
                strategy=sim.strategy.describe(),
                quantum_ns=sim.quantum_ns,
                driver=sim.driver,
                switches=sim.switches,
                syncs=sim.syncs,
                decisions=len(sim.decisions),
                events=sim.recorder.count,
                events_dropped=sim.recorder.dropped,
                events_filter=_filter_json(sim.recorder.events_filter),
            ),
            timeseries=Timeseries.of(samples) if samples else None,
            properties={k: PropertySummary.of(v) for k, v in self.properties.items()},
            scenario_result=self.ctx.scenario_result,
            findings=self.ctx.findings,
            error=self.error,
            report_error=self.report_error,
        )


def _filter_json(events: str | Iterable[str] | None) -> str | list[str] | None:
    return events if events is None or isinstance(events, str) else list(events)


def extfrag_summary(pa: PageAllocator) -> Extfrag:
    """Fragmenting fallbacks (``mm_page_alloc_extfrag`` with fallback_order < pageblock_order)
    over all zones: the total and by the requesting migratetype."""
    by_mt = [sum(z.extfrag_fragmenting[mt] for z in pa.zones) for mt in range(MIGRATE_TYPES)]
    return Extfrag(
        fragmenting_fallbacks=sum(by_mt),
        by_alloc_migratetype={MIGRATETYPE_NAMES[mt]: n for mt, n in enumerate(by_mt) if n},
    )


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
            f"scenario {scenario.name}: build() failed: {one_line(exc)}"
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
    some actors while others still run (the vmstat work, idle CPUs' timers) can never resolve
    either, so the sampler stops the run at its next sample, naming the cycle and when it
    formed.
    """
    cycles = lock_cycles(sim.actors)
    if cycles:
        since = max(a.blocked_since for a in cycles[0])
        raise DeadlockError(since, sim.lock_cycles(), [a.name for a in cycles[0]])


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


@attrs.frozen
class RunOptions:
    """How a run is driven (none of it changes what the scenario is)."""

    #: overrides ``params["strategy"]`` (a :class:`~emulator.engine.Replay` of a recorded run)
    strategy: Strategy | None = None
    #: fail if model code touches shared state without synchronising
    strict: bool = False
    #: the engine driver: ``"fast"`` (the default, None) or the reference ``"trio"``
    driver: str | None = None
    #: end earlier than ``params.duration_ns`` (the replay of a run a signal stopped)
    until_ns: int | None = None
    #: the machine after the scenario's ``setup``, loaded from or stored in this cache
    cache: SetupCache | None = None
    #: checked during and after the run (default: the scenario's own)
    properties: tuple[Property, ...] | None = None


class Observer:
    """Something that watches a run and writes one of its outputs; attached to a :class:`Run`.

    Each hook is called once, in the phase named, observers in the order given; the base class
    does nothing in each. ``enter``: a phase begins (``boot``, ``set-up``, ``run``);
    ``attach``: the machine is booted and set up, nothing spawned yet (wire tracing into it);
    ``spawn``: the CPUs are spawned, spawn the observer's own actors; ``sampled``: the sampler
    took a sample (virtual now, the run's end); ``collect``: virtual time has ended (take the
    final state); ``write``: put the observer's files in the results folder (summary.json is
    written by the first observer that writes it, so the views after it can read it);
    ``close``: always, last.
    """

    def enter(self, stage: str) -> None:
        pass

    def attach(self, run: Run) -> None:
        pass

    def spawn(self, run: Run) -> None:
        pass

    def sampled(self, now_ns: int, end_ns: int) -> None:
        pass

    def collect(self, run: Run) -> None:
        pass

    def write(self, result: RunResult, folder: Path) -> list[Path]:
        return []

    def close(self) -> None:
        pass


class EventsLog(Observer):
    """events.jsonl: the tracepoint log, to a path, an open text file, memory (``sink`` None:
    ``ctx.sim.recorder`` keeps them) or nowhere (``record`` False). ``events_filter``
    (tracepoint globs, ``"mm_compaction_*,mm_page_alloc"``) records only the matching events;
    the summary counts the others as ``events_dropped``."""

    def __init__(
        self,
        sink: IO[str] | Path | None = None,
        events_filter: str | None = None,
        record: bool = True,
    ) -> None:
        self.sink = sink
        self.events_filter = events_filter
        self.record = record
        self.recorder: Any = NULL_RECORDER
        self._own: IO[str] | None = None

    @property
    def path(self) -> Path | None:
        return self.sink if isinstance(self.sink, Path) else None

    def open(self) -> Any:
        """The recorder the machine and the engine emit to (before the boot)."""
        if not self.record:
            return NULL_RECORDER
        sink: Any = self.sink
        if isinstance(sink, Path):
            sink = self._own = sink.open("w", encoding="utf-8")
        self.recorder = Recorder(sink, events=self.events_filter)
        return self.recorder

    def close(self) -> None:
        self.recorder.close()
        if self._own is not None:
            self._own.close()


class Sampler(Observer):
    """summary.json's ``timeseries``: a daemon actor that samples the machine every ``sample``
    ns of virtual time, and once more at the end; it also stops a run whose actors wait for
    each other's locks in a cycle (:func:`_no_lock_cycle`)."""

    def __init__(self) -> None:
        self.started = False

    def _take(self, ctx: RunContext) -> None:
        samples = ctx.samples
        pa = ctx.allocator
        samples["t_ns"].append(ctx.sim.now)
        samples["nr_free_pages"].append(sum(z.nr_free_pages for z in pa.zones))
        samples["pcp_pages"].append(pa.pcp_pages())
        per_order = [0] * NR_PAGE_ORDERS
        for z in pa.zones:
            for o, n in enumerate(z.nr_free):
                per_order[o] += n << o
        samples["free_pages_per_order"].append(per_order)
        samples["fragmentation_score"].append(
            [fragmentation_score_node(n) for n in ctx.machine.nodes]
        )

    def spawn(self, run: Run) -> None:
        ctx = run.context
        sim = ctx.sim
        interval = ctx.params["sample"]
        end = ctx.params.duration_ns
        for key in SAMPLED:
            ctx.samples[key] = []

        async def sampler() -> None:
            await sim.sync()
            self._take(ctx)
            while True:
                await sim.delay(interval)
                await sim.sync()
                self._take(ctx)
                _no_lock_cycle(sim)
                for obs in run.observers:
                    obs.sampled(sim.now, end)

        sim.spawn("sampler", sampler, daemon=True)
        self.started = True

    def collect(self, run: Run) -> None:
        ctx = run.context
        if self.started and (not ctx.samples.get("t_ns") or ctx.samples["t_ns"][-1] != ctx.sim.now):
            self._take(ctx)  # the state at the end of the run


#: the sampler's series, in summary.json's order
SAMPLED = ("t_ns", "nr_free_pages", "pcp_pages", "free_pages_per_order", "fragmentation_score")


class Run:
    """One run of ``scenario`` with ``params``, in phases: :meth:`boot` (the machine),
    :meth:`set_up` (the scenario's set-up), :meth:`attach` (observers wire into it),
    :meth:`spawn` (CPUs, the sampler, the kernel threads, the scenario's actors, its run-time
    writes), :meth:`run` (virtual time to the deadline) and :meth:`collect` (the
    :class:`RunResult`);
    :meth:`execute` does them in turn and :meth:`write` has the observers write the results
    folder.

    It is the only place that touches wall-clock time (``wall_s``, ``setup_s``), outside the
    model: the model sees virtual time only.

    Ctrl-C (and, with ``stop``, SIGTERM and SIGHUP) ends the run early with ``reason``
    ``interrupted`` (``terminated``, ``hangup``): what was recorded is flushed and the results
    describe the state at that instant. A deadlock or watchdog report from the engine ends it
    with ``reason`` ``deadlock`` or ``watchdog`` and ``error`` saying why, an actor crash with
    ``error``. Raises :class:`ScenarioHookError` if the scenario's ``build``, ``setup`` or
    ``actors`` hook raises, and :class:`Stopped` if a stop signal came before the machine was
    booted. Properties with event hooks see every event even without an events log.
    """

    def __init__(
        self,
        scenario: Scenario,
        params: Params,
        *,
        options: RunOptions = RunOptions(),
        events: EventsLog | None = None,
        observers: Sequence[Observer] = (),
        stop: StopSignals | None = None,
    ) -> None:
        self.scenario = scenario
        self.params = params
        self.options = options
        self.stop = stop
        self.properties = list(
            scenario.properties if options.properties is None else options.properties
        )
        if events is None or not events.record:
            if any(p.on_event is not None for p in self.properties):
                events = EventsLog(_DISCARD, events.events_filter if events else None)
            else:
                events = events or EventsLog(record=False)
        self.events = events
        self.sampler = Sampler()
        self.observers: list[Observer] = [events, self.sampler, *observers]
        self._ctx: RunContext | None = None
        self.writes: tuple[Write, ...] = ()
        self.checker: PropertyChecker | None = None
        self.reason = "deadline"
        self.error: str | None = None
        self._t0 = 0.0
        self.setup_s = 0.0
        self.wall_s = 0.0

    @property
    def context(self) -> RunContext:
        """The booted machine and everything the run is made of (after :meth:`boot`)."""
        if self._ctx is None:
            raise RuntimeError("the run has not booted")
        return self._ctx

    @property
    def recorder(self) -> Any:
        return self.events.recorder

    def _enter(self, stage: str) -> None:
        for obs in self.observers:
            obs.enter(stage)
        if self.stop is not None:
            self.stop.enter(stage)

    def _stop_reason(self) -> str:
        return self.stop.reason if self.stop is not None and self.stop.reason else "interrupted"

    # -- the phases ------------------------------------------------------------------------

    def boot(self) -> None:
        """Boot the machine and check the scenario's run-time writes (a bad one refuses the run
        as bad input); :class:`Stopped` if a stop signal comes first."""
        self._t0 = time.perf_counter()
        recorder = self.events.open()
        opts = self.options
        try:
            self._enter("boot")
            self._ctx = build_context(
                self.scenario, self.params, recorder, opts.strategy, opts.strict, opts.driver
            )
            self.writes = _scenario_writes(self.scenario, self.params, self._ctx)
        except KeyboardInterrupt:
            raise Stopped(self._stop_reason()) from None

    def set_up(self) -> None:
        """Run the scenario's ``setup`` on the booted machine (or load its result from the
        cache): the machine's past, not recorded."""
        if self.scenario.setup is not None:
            opts = self.options
            self._enter("set-up")
            self._ctx = _set_up(
                self.scenario,
                self.params,
                self.context,
                self.recorder,
                opts.cache,
                opts.strict,
                opts.driver,
            )

    def attach(self) -> None:
        """The observers wire into the booted machine (before any actor is spawned)."""
        for obs in self.observers:
            obs.attach(self)

    def spawn(self) -> None:
        """Spawn the CPUs, the observers' actors (the sampler), the kernel threads (kswapdN,
        kcompactdN, each CPU's vmstat work), the scenario's actors and its run-time writes;
        install the property checker."""
        ctx = self.context
        sim = ctx.sim
        for prog in ctx.programs:
            sim.spawn(f"cpu{prog.cpu.id}", prog.run, data=prog.cpu)
        for obs in self.observers:
            obs.spawn(self)
        start_kthreads(ctx.allocator)  # kswapdN and kcompactdN, daemons
        start_vmstat_work(ctx.allocator)  # each CPU's vmstat work (pcp high decay), daemons
        ctx.vm_events_at_start = dict(ctx.machine.vm_events)
        if self.scenario.actors is not None:
            pairs = _hook(self.scenario, "actors", _actor_list, self.scenario, self.params, ctx)
            for name, fn in pairs:
                sim.spawn(name, fn)
        self.checker = PropertyChecker(self.properties, ctx)
        self.checker.install()
        if self.writes:
            log: list[dict[str, Any]] = []
            ctx.findings["writes"] = log
            sim.spawn("writes", writer_actor(ctx.allocator, self.writes, log))

    def run(self) -> None:
        """Run virtual time to the deadline (or ``until_ns``), cancelled cleanly by a stop
        signal."""
        sim = self.context.sim
        stop = self.stop
        self._enter("run")
        t0 = time.perf_counter()
        # the machine built so far lives for the whole run: keep the cyclic GC from scanning
        # it again and again while the run allocates (unfrozen after)
        gc.collect()
        gc.freeze()
        try:
            until = (
                self.params.duration_ns if self.options.until_ns is None else self.options.until_ns
            )
            if stop is not None:
                result = trio.run(run_sim_unwrapped, stop, sim, until)
            else:
                result = trio.run(sim.run, until)
            if result is None or (stop is not None and stop.reason):
                self.reason = (stop.reason if stop else None) or "interrupted"
            else:
                self.reason = result.reason
        except KeyboardInterrupt:
            self.reason = self._stop_reason()
        except SimError as exc:
            if isinstance(exc, ActorCrashed) and isinstance(exc.exc, OSError):
                raise exc.exc from None  # writing the events failed (a full disk)
            # an actor crashed, the run deadlocked or an actor made no progress: keep what was
            # recorded and the state
            self.reason, self.error = _sim_error(exc)
        finally:
            gc.unfreeze()
            self.wall_s = time.perf_counter() - t0

    def collect(self) -> RunResult:
        """The run's result: lock cycles and unrun phases found, the final sample, the
        properties' verdicts and the scenario's report."""
        ctx = self.context
        sim = ctx.sim
        if self.stop is not None:
            self.stop.raise_now = False
        # a wait-for cycle on locks at the end: with daemons polling, a deadlock among CPUs
        # would otherwise pass as a plain deadline
        stuck = sim.lock_cycles()
        if stuck:
            ctx.findings["lock_deadlock_at_end"] = stuck
            if self.error is None and self.reason in ("deadline", "done"):
                # formed after the last sample: still a deadlock, never a success
                try:
                    _no_lock_cycle(sim)
                except DeadlockError as exc:
                    self.reason, self.error = _sim_error(exc)
        # a phase that never ended leaves later phases unrun: say so, never a silent half-run
        unfinished = {f"cpu{p.cpu.id}": p.unfinished() for p in ctx.programs if p.unfinished()}
        if unfinished:
            ctx.findings["phases_not_run"] = unfinished
        for obs in self.observers:
            obs.collect(self)
        checker = self.checker
        violations = checker.finish(self.reason, self.error) if checker is not None else []
        report_error = None
        scenario = self.scenario
        if scenario.report is not None and self.error is None:
            try:
                ctx.findings.update(scenario.report(self.params, ctx))
            except Exception as exc:
                report_error = f"scenario {scenario.name}: report() failed: {one_line(exc)}"
        return RunResult(
            scenario.name,
            self.params,
            self.reason,
            sim.now,
            self.wall_s,
            ctx,
            self.error,
            self.setup_s,
            report_error,
            violations,
            checker.summary() if checker is not None else {},
        )

    def execute(self) -> RunResult:
        """Boot, attach, spawn, run and collect; the observers are closed whatever happens."""
        try:
            self.boot()
            try:
                self.set_up()
                self.attach()
                self.spawn()
            except KeyboardInterrupt:
                self.reason = self._stop_reason()
            self.setup_s = time.perf_counter() - self._t0
            if self.reason == "deadline":
                self.run()
            return self.collect()
        finally:
            self.close()

    def write(self, result: RunResult, folder: Path) -> list[Path]:
        """Each observer writes its files into the results folder, in order."""
        written: list[Path] = []
        for obs in self.observers:
            written.extend(obs.write(result, folder))
        return written

    def close(self) -> None:
        for obs in reversed(self.observers):
            obs.close()


def run_scenario(
    scenario: Scenario,
    params: Params,
    *,
    events: IO[str] | Path | None = None,
    record: bool = True,
    options: RunOptions = RunOptions(),
    observers: Sequence[Observer] = (),
) -> RunResult:
    """A :class:`Run` of ``scenario`` with ``params``, executed: the events go to ``events``
    (a path or an open text file; in memory, ``ctx.sim.recorder``, when None), or nowhere
    without ``record``."""
    log = EventsLog(events, record=record)
    return Run(scenario, params, options=options, events=log, observers=observers).execute()


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
    # a run that records nothing has the null recorder as its recorder: the pickle cannot tell
    # which references meant which, so such a machine is its own entry (a recording run that
    # loaded it would record nothing)
    engine = {"strict": strict, "driver": driver, "records": recorder is not NULL_RECORDER}
    key = cache.key(scenario.path, params.as_json(), engine)
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
            f"scenario {scenario.name}: {name}() failed: {one_line(exc)}"
        ) from exc
