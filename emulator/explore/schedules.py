"""Exploring schedules: run one scenario under many schedules, find violations, shrink one.

A *schedule* is the list of decisions a strategy made in a run (see
:mod:`emulator.engine.strategy`): which of several actors tied at one instant ran first, and,
with ``perturb``, how long an actor was held back at a preemption point. :func:`run_schedule`
runs a scenario under one schedule (a seeded ``random`` or ``pct`` strategy, or a decision list
to follow) and returns what was violated; it is a top-level function of picklable items, so
``mmemu explore`` runs many of them at once with :func:`emulator.explore.executor.run_many`.

A violation is a :class:`~emulator.explore.properties.Violation`. The checks are:

* ``crash`` — an actor raised (``ActorCrashed``);
* ``deadlock`` — the run deadlocked (a lock cycle, or every actor blocked for good);
* ``watchdog`` — an actor stopped advancing its virtual clock;
* ``invariants`` — :meth:`PageAllocator.check` failed at a sample of the scenario's sampler or
  at the end, taken only when no lock is held or awaited (no operation is half done then);
* every property the scenario declares (checked by every run of it, ``mmemu run`` included);
* the standard properties of :data:`~emulator.explore.properties.STANDARD_PROPERTIES` that
  have no periodic hook (they only watch events and the end state).

No check changes a run: the scenario's own properties run in ``mmemu run`` too, and the others
only observe (no actor is added, nothing raises into the run), so ``mmemu run --replay``
reproduces a schedule found here byte for byte. A periodic property the scenario does not
declare would add a daemon actor, and so other schedules: :func:`available_checks` leaves it out.

:func:`shrink` minimises a violating schedule by delta debugging (Zeller and Hildebrandt,
"Simplifying and Isolating Failure-Inducing Input", TSE 2002) over its non-default decisions:
a decision is *default* when it is what FIFO would do (the first arrival runs; no delay). A
candidate keeps a subset of the non-default decisions and turns the others back to default; the
run then follows it with :class:`Guided` (a decision that no longer fits, because the program
went another way, is answered by default), and the candidate is kept when it violates with the
same signature. A second phase then shrinks what the delays that remain are worth: it halves
them (all at once, else one at a time, the first candidate in order that still violates kept)
until no halving keeps the violation, so a minimal schedule holds few delays and each no
longer than the failure needs (a delay of 1 ns halves to none). The result is recorded exactly
as the engine made it, so it replays with the strict :class:`Replay`.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from emulator.engine import PCT, RandomStrategy, Replay, Strategy
from emulator.engine.errors import ReplayDivergence
from emulator.explore.executor import ItemError, run_many
from emulator.explore.properties import STANDARD_PROPERTIES, Property, Violation, quiescent
from emulator.mm.invariants import InvariantViolation
from emulator.runner import RunContext, RunResult, run_scenario
from emulator.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from emulator.engine import Actor

__all__ = [
    "BUILTIN_CHECKS",
    "Guided",
    "Outcome",
    "RunSpec",
    "ShrinkResult",
    "available_checks",
    "ddmin",
    "default_checks",
    "delays_of",
    "is_default",
    "non_default",
    "run_schedule",
    "shrink",
    "signature",
]

Decision = tuple[int, int]

#: the checks of every exploration besides properties, in report order
BUILTIN_CHECKS = ("crash", "deadlock", "watchdog", "invariants")

_NUMBER = re.compile(r"\d+")


def signature(v: Violation) -> str:
    """What identifies a failure across schedules: the check (property) and its message with
    every number (times, pfns, counts, CPU numbers) replaced by ``N``."""
    return f"{v.property}: {_NUMBER.sub('N', ' '.join(v.message.split()))[:160]}"


def default_checks(scenario: Scenario) -> tuple[str, ...]:
    """What an exploration checks unless told: the built-in checks and the scenario's own
    properties (a standard property the scenario does not declare may not hold by design,
    e.g. a scenario that shows a failure: name it with ``--check`` to add it)."""
    return (*BUILTIN_CHECKS, *(p.name for p in scenario.properties))


def available_checks(scenario: Scenario) -> dict[str, Property | None]:
    """Every check an exploration of ``scenario`` can make, by name, in report order: the
    built-in ones (None), the scenario's properties, then the standard properties without a
    periodic hook (a periodic one would add a daemon actor to the run, and so change its
    schedules, unless the scenario declares it)."""
    out: dict[str, Property | None] = dict.fromkeys(BUILTIN_CHECKS)
    for p in scenario.properties:
        out[p.name] = p
    for name, p in STANDARD_PROPERTIES.items():
        if name not in out and p.periodic is None:
            out[name] = p
    return out


def is_default(d: Decision) -> bool:
    """Whether a decision is what FIFO does: choice 0 (the first arrival), or no delay."""
    return d[1] == 0


def non_default(decisions: Sequence[Decision]) -> list[int]:
    """The positions of the non-default decisions (preemptions and delays)."""
    return [i for i, d in enumerate(decisions) if not is_default(d)]


class Guided:
    """Follows a decision list where it fits and answers by default where it does not.

    Position ``k`` of the list answers the run's ``k``-th question if it is the same kind of
    question (a choice among the same number of actors, or a delay); otherwise, and past the
    list's end, the answer is the default (choice 0, no delay). Used by :func:`shrink`, whose
    candidates change some decisions and so may steer the run away from the recording.
    """

    name = "guided"

    def __init__(self, decisions: Sequence[Decision], delays: bool) -> None:
        self._decisions = list(decisions)
        self._pos = 0
        self.delays = delays

    def _next(self, n: int) -> int:
        pos = self._pos
        self._pos += 1
        if pos < len(self._decisions):
            rn, value = self._decisions[pos]
            if rn == n and (n == 0 or value < n):
                return value
        return 0

    def choose(self, candidates: Sequence[Actor]) -> int:
        return self._next(len(candidates))

    def preempt_delay(self, actor: Actor, point: str) -> int:
        return self._next(0)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "decisions": len(self._decisions)}


@attrs.frozen
class RunSpec:
    """One schedule of one scenario: a picklable item for :func:`run_schedule`.

    ``strategy`` is ``random``, ``pct`` (seeded with ``schedule_seed``), ``fifo`` (every
    decision the default), ``guided``
    (follow ``decisions`` leniently) or ``replay`` (follow ``decisions`` exactly).
    ``params`` are the scenario's parameter overrides (the workload's seed among them).
    """

    scenario_path: str
    params: dict[str, Any]
    strategy: str
    schedule_seed: int = 0
    depth: int = 3
    steps: int = 10_000
    perturb: bool = False
    #: the checks to make (names of :func:`available_checks`); empty: :func:`default_checks`
    checks: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = ()
    #: write events.jsonl to this path (else only their sha256 is kept)
    events_path: str | None = None


@attrs.frozen
class Outcome:
    """What one schedule did: its violations (first per check), its decisions, how it ended,
    and the sha256 of its event log."""

    spec: RunSpec
    violations: tuple[Violation, ...]
    decisions: tuple[Decision, ...]
    reason: str
    virtual_ns: int
    events_sha256: str

    @property
    def violated(self) -> bool:
        return bool(self.violations)

    @property
    def signatures(self) -> tuple[str, ...]:
        return tuple(signature(v) for v in self.violations)


def make_schedule_strategy(spec: RunSpec) -> Strategy:
    """The strategy object a spec asks for."""
    if spec.strategy == "random":
        return RandomStrategy(spec.schedule_seed, perturb=spec.perturb)
    if spec.strategy == "pct":
        return PCT(spec.schedule_seed, spec.depth, max(1, spec.steps), perturb=spec.perturb)
    if spec.strategy == "guided":
        return Guided(spec.decisions, delays=spec.perturb)
    if spec.strategy == "replay":
        return Replay(spec.decisions, delays=spec.perturb)
    if spec.strategy == "fifo":
        # every answer the default (with perturb, the preemption points are still asked and
        # recorded as no delay, so the decisions count every step PCT would count)
        return Guided((), delays=spec.perturb)
    raise ValueError(f"unknown schedule strategy {spec.strategy!r}")


_SCENARIOS: dict[str, Scenario] = {}


def _scenario(path: str) -> Scenario:
    """Load a scenario once per process (a worker runs many schedules of it)."""
    sc = _SCENARIOS.get(path)
    if sc is None:
        sc = _SCENARIOS[path] = load_scenario(path)
    return sc


class _Invariants:
    """The ``invariants`` check without an actor of its own: at every sample of the scenario's
    sampler (a synchronised instant) and at the end, when quiescent. Keeps the first violation
    and never raises into the run."""

    def __init__(self) -> None:
        self.found: Violation | None = None
        self.ctx: RunContext | None = None

    def sample(self, now: int, _duration: int) -> None:
        self.look(now)

    def look(self, now: int) -> None:
        ctx = self.ctx
        if ctx is None or self.found is not None or not quiescent(ctx):
            return
        try:
            ctx.allocator.check()
        except InvariantViolation as exc:
            self.found = Violation("invariants", " ".join(str(exc).split())[:300], now)


def _end_violations(result: RunResult) -> list[Violation]:
    if result.error is None:
        return []
    kind = {"deadlock": "deadlock", "watchdog": "watchdog"}.get(result.reason, "crash")
    return [Violation(kind, " ".join(result.error.split())[:300], result.virtual_ns)]


def run_schedule(spec: RunSpec) -> Outcome:
    """Run the spec's scenario under its schedule with its checks (top level: picklable)."""
    scenario = _scenario(spec.scenario_path)
    params = scenario.resolve(dict(spec.params))
    available = available_checks(scenario)
    checks = spec.checks or default_checks(scenario)
    own = {p.name for p in scenario.properties}
    extra = [p for n in checks if n not in own and isinstance(p := available.get(n), Property)]
    invariants = _Invariants() if "invariants" in checks and "invariants" not in own else None
    inner = scenario.actors

    def actors(p: Any, ctx: RunContext) -> list[Any]:
        if invariants is not None:
            invariants.ctx = ctx  # the machine exists from here on
        return list(inner(p, ctx)) if inner is not None else []

    wrapped = attrs.evolve(scenario, actors=actors)
    with tempfile.TemporaryDirectory(prefix="mmemu-explore-") as tmp:
        events = Path(spec.events_path) if spec.events_path else Path(tmp) / "events.jsonl"
        result = run_scenario(
            wrapped,
            params,
            events=events,
            record=True,
            progress=invariants.sample if invariants is not None else None,
            strategy=make_schedule_strategy(spec),
            properties=[*scenario.properties, *extra],
        )
        digest = hashlib.sha256(events.read_bytes()).hexdigest()
    if result.error is not None and "ReplayDivergence" in result.error:
        raise ReplayDivergence(result.error)
    found: dict[str, Violation] = {}
    for v in _end_violations(result) + list(result.violations):
        found.setdefault(v.property, v)
    if invariants is not None:
        if result.error is None:
            invariants.look(result.virtual_ns)
        if invariants.found is not None:
            found.setdefault("invariants", invariants.found)
    order = {c: i for i, c in enumerate(available)}
    violations = sorted(
        (v for name, v in found.items() if name in checks), key=lambda v: order.get(v.property, 0)
    )
    return Outcome(
        spec=spec,
        violations=tuple(violations),
        decisions=tuple(result.ctx.sim.decisions),
        reason=result.reason,
        virtual_ns=result.virtual_ns,
        events_sha256=digest,
    )


# -- shrinking ----------------------------------------------------------------------------


@attrs.frozen
class ShrinkResult:
    """A shrunk schedule: its outcome (decisions as the engine made them), the number of
    non-default decisions before and after, the delays (count and total ns) before and after,
    and the runs it took."""

    outcome: Outcome
    before: int
    after: int
    total_before: int
    total_after: int
    runs: int
    delays_before: int = 0
    delays_after: int = 0
    delay_ns_before: int = 0
    delay_ns_after: int = 0


def delays_of(decisions: Sequence[Decision]) -> tuple[int, int]:
    """How many injected delays a decision list holds and their total in ns."""
    values = [v for n, v in decisions if n == 0 and v > 0]
    return len(values), sum(values)


def _halved(decisions: Sequence[Decision], positions: Iterable[int]) -> tuple[Decision, ...]:
    at = set(positions)
    return tuple((n, v // 2) if i in at else (n, v) for i, (n, v) in enumerate(decisions))


T = TypeVar("T")


def ddmin(items: Sequence[T], first_failing: Callable[[list[list[T]]], int | None]) -> list[T]:
    """Delta debugging's ddmin (Zeller and Hildebrandt, TSE 2002): a 1-minimal sublist of
    ``items`` that still fails.

    ``first_failing(candidates)`` tests a round's candidate sublists (it may run them at once)
    and returns the index of the first that fails, or None (also when it will test no more).
    ``items`` itself is assumed to fail. The empty list is tried first; then, at granularity
    ``n``, the ``n`` chunks and (for ``n > 2``) their complements.
    """
    current = list(items)
    if first_failing([[]]) == 0:
        return []
    n = 2
    while len(current) >= 2:
        size = len(current)
        chunks = [current[i * size // n : (i + 1) * size // n] for i in range(n)]
        chunks = [c for c in chunks if c]
        i = first_failing(chunks)
        if i is not None:
            current, n = chunks[i], 2
            continue
        if n > 2:
            complements = [[x for x in current if x not in c] for c in chunks]
            i = first_failing(complements)
            if i is not None:
                current, n = complements[i], max(n - 1, 2)
                continue
        if n >= size:
            break
        n = min(size, 2 * n)
    return current


def _candidate(decisions: Sequence[Decision], keep: Iterable[int]) -> tuple[Decision, ...]:
    kept = set(keep)
    return tuple(d if i in kept or is_default(d) else (d[0], 0) for i, d in enumerate(decisions))


def shrink(
    found: Outcome,
    target: str,
    *,
    jobs: int | None = 1,
    max_runs: int = 400,
    progress: Callable[[int], None] | None = None,
) -> ShrinkResult:
    """Minimise ``found``'s schedule, keeping a violation with signature ``target``.

    ddmin over the positions of its non-default decisions: at granularity ``n`` it tries the
    ``n`` subsets and then their complements (each round's candidates run in parallel with
    ``jobs`` workers; the first in order that still violates is taken, so the result does not
    depend on ``jobs``), halving what is kept each time one does, until no single position can
    be dropped or ``max_runs`` runs are spent. ``progress(runs)`` is called after each round.
    """
    base = found.spec
    decisions = found.decisions
    runs = 0

    def spec_for(keep: Sequence[int]) -> RunSpec:
        return attrs.evolve(
            base, strategy="guided", decisions=_candidate(decisions, keep), events_path=None
        )

    found_runs: list[Outcome] = []

    def first_violating(cands: list[list[int]]) -> int | None:
        nonlocal runs
        cands = cands[: max(0, max_runs - runs)]
        if not cands:
            return None
        runs += len(cands)
        results = dict(run_many(run_schedule, [spec_for(c) for c in cands], jobs=jobs))
        if progress is not None:
            progress(runs)
        for i in range(len(cands)):
            out = results[i]
            if not isinstance(out, ItemError) and target in out.signatures:
                found_runs.append(out)
                return i
        return None

    current = ddmin(non_default(decisions), first_violating)
    # the last candidate that violated is ``current``'s run; none did: rerun the schedule as
    # found, to record it exactly as the engine makes it
    if found_runs:
        best = found_runs[-1]
    else:
        runs += 1
        best = run_schedule(spec_for(current))
    if target in best.signatures:
        best, runs = _shrink_delays(best, target, base, jobs, max_runs, runs, progress)
    # the run as the engine made it (strict replay), with its own non-default count
    final = best.decisions
    d_before, ns_before = delays_of(decisions)
    d_after, ns_after = delays_of(final)
    return ShrinkResult(
        outcome=best,
        before=len(non_default(decisions)),
        after=len(non_default(final)),
        total_before=len(decisions),
        total_after=len(final),
        runs=runs,
        delays_before=d_before,
        delays_after=d_after,
        delay_ns_before=ns_before,
        delay_ns_after=ns_after,
    )


def _shrink_delays(
    best: Outcome,
    target: str,
    base: RunSpec,
    jobs: int | None,
    max_runs: int,
    runs: int,
    progress: Callable[[int], None] | None,
) -> tuple[Outcome, int]:
    """Halve the delays of ``best`` while the violation stays: first every delay at once, then
    each alone (one round's candidates run together; the first in order that violates is
    kept), until no halving violates or ``max_runs`` is spent. Returns the last violating
    outcome and the runs count."""
    while runs < max_runs:
        decisions = best.decisions
        positions = [i for i, (n, v) in enumerate(decisions) if n == 0 and v > 0]
        if not positions:
            break
        rounds = [positions] + ([[i] for i in positions] if len(positions) > 1 else [])
        found: Outcome | None = None
        for group in (rounds[:1], rounds[1:]):
            group = group[: max(0, max_runs - runs)]
            if not group:
                continue
            runs += len(group)
            specs = [
                attrs.evolve(
                    base, strategy="guided", decisions=_halved(decisions, g), events_path=None
                )
                for g in group
            ]
            results = dict(run_many(run_schedule, specs, jobs=jobs))
            if progress is not None:
                progress(runs)
            for k in range(len(group)):
                out = results[k]
                if not isinstance(out, ItemError) and target in out.signatures:
                    found = out
                    break
            if found is not None:
                break
        if found is None:
            break
        best = found
    return best, runs
