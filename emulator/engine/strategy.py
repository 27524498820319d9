"""Scheduling strategies: who runs next when several actors could, and where to inject delay.

The engine asks a strategy two questions:

* :meth:`Strategy.choose` — two or more actors are ready at the same virtual time; which one
  runs first? Candidates come in arrival order (the order in which they reached that instant).
* :meth:`Strategy.preempt_delay` — an actor reached a named preemption point (an unlocked window
  in the kernel); should it be held back, and by how many ns? Moving an actor in time is what
  reorders timing-dependent races when exact ties are rare (the BUGGIFY idea from FoundationDB).

The two are separate on purpose. Choosing among actors tied at one instant only reorders what
happens at that instant: no actor's clock moves, so throughput and latency figures keep their
meaning under any choice. Injecting delays moves actors in time and changes those figures;
``random`` and ``pct`` do it only when asked (``perturb=True``, ``--perturb`` on the command
line), and their :attr:`Strategy.delays` says which.

Every answer given by a strategy that *can* choose is recorded by the engine as a decision, so
any run can be replayed with :class:`Replay`. A decision is a pair ``(n, value)``: ``n >= 2`` is
a choice among ``n`` candidates and ``value`` the chosen index; ``n == 0`` is a preemption-point
delay of ``value`` ns.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from emulator.engine.errors import PrimitiveMisuse, ReplayDivergence, ReplayEnd

if TYPE_CHECKING:
    from emulator.engine.actor import Actor

__all__ = [
    "PCT",
    "VALID_FORMS",
    "Fifo",
    "RandomStrategy",
    "Replay",
    "Strategy",
    "make_strategy",
    "parse_strategy",
]

Decision = tuple[int, int]


class Strategy(Protocol):
    #: short name written into replay files and summaries
    name: str
    #: whether :meth:`preempt_delay` can return non-zero (if False the engine skips the call)
    delays: bool

    def choose(self, candidates: Sequence[Actor]) -> int: ...

    def preempt_delay(self, actor: Actor, point: str) -> int: ...

    def describe(self) -> dict[str, Any]: ...


class Fifo:
    """Deterministic: the actor that reached the instant first runs first; no injected delays."""

    name = "fifo"
    delays = False

    def choose(self, candidates: Sequence[Actor]) -> int:
        return 0

    def preempt_delay(self, actor: Actor, point: str) -> int:
        return 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class RandomStrategy:
    """Uniform choice among tied actors. With ``perturb``, also at each preemption point, with
    probability ``preempt_prob``, hold the actor back by a uniform delay in
    ``[1, max_delay_ns]``.

    Seeded: the same seed gives the same decisions for the same program.
    """

    name = "random"

    def __init__(
        self,
        seed: int,
        preempt_prob: float = 0.05,
        max_delay_ns: int = 20_000,
        perturb: bool = False,
    ) -> None:
        if not 0.0 <= preempt_prob <= 1.0:
            raise PrimitiveMisuse(f"random strategy: preempt_prob {preempt_prob} not in [0, 1]")
        if max_delay_ns < 1:
            raise PrimitiveMisuse(f"random strategy: max_delay_ns {max_delay_ns} must be >= 1")
        self.seed = seed
        self.preempt_prob = preempt_prob
        self.max_delay_ns = max_delay_ns
        self.delays = perturb
        self._rng = random.Random(seed)

    def choose(self, candidates: Sequence[Actor]) -> int:
        return self._rng.randrange(len(candidates))

    def preempt_delay(self, actor: Actor, point: str) -> int:
        rng = self._rng
        if rng.random() < self.preempt_prob:
            return rng.randint(1, self.max_delay_ns)
        return 0

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "perturb": self.delays,
            "preempt_prob": self.preempt_prob,
            "max_delay_ns": self.max_delay_ns,
        }


#: PCT's depth when the spec does not give one
PCT_DEFAULT_DEPTH = 3


class PCT:
    """Probabilistic Concurrency Testing (Burckhardt et al., ASPLOS 2010), in virtual time.

    Each actor gets a random distinct initial priority (all above ``depth``). ``depth - 1``
    change points are drawn uniformly from ``[1, steps]``, where a step is a choice (and, with
    ``perturb``, also a preemption point). When step ``k_i`` is reached, the running actor's
    priority drops to ``i`` (below every initial priority); with ``perturb``, at a preemption
    point it is also held back by a uniform delay in ``[1, max_delay_ns]`` so that others
    overtake it in virtual time. Among tied actors the highest priority runs. A bug of depth
    ``d`` is found with probability at least ``1 / (n * steps^(d-1))`` per run for ``n``
    actors.
    """

    name = "pct"

    def __init__(
        self,
        seed: int,
        depth: int = PCT_DEFAULT_DEPTH,
        steps: int = 10_000,
        max_delay_ns: int = 20_000,
        perturb: bool = False,
    ) -> None:
        if depth < 1:
            raise PrimitiveMisuse(f"pct strategy: depth {depth} must be >= 1")
        if steps < 1:
            raise PrimitiveMisuse(f"pct strategy: steps {steps} must be >= 1")
        self.seed = seed
        self.depth = depth
        self.steps = steps
        self.max_delay_ns = max_delay_ns
        self.delays = perturb
        self._rng = random.Random(seed)
        # depth - 1 *distinct* change points (independent draws could collide and silently
        # lower the depth: with steps=10, depth=5 about half the seeds lost one)
        points = self._rng.sample(range(1, steps + 1), min(depth - 1, steps))
        self._change_points = {k: i for k, i in zip(points, range(depth - 1, 0, -1), strict=False)}
        self._prio: dict[int, float] = {}
        self._step = 0

    def _priority(self, actor: Actor) -> float:
        p = self._prio.get(actor.id)
        if p is None:
            p = self._prio[actor.id] = self.depth + self._rng.random()
        return p

    def _tick(self, actor: Actor) -> bool:
        self._step += 1
        i = self._change_points.get(self._step)
        if i is None:
            return False
        self._priority(actor)
        self._prio[actor.id] = float(i)
        return True

    def choose(self, candidates: Sequence[Actor]) -> int:
        best = max(range(len(candidates)), key=lambda k: self._priority(candidates[k]))
        self._tick(candidates[best])
        return best

    def preempt_delay(self, actor: Actor, point: str) -> int:
        if self._tick(actor):
            return self._rng.randint(1, self.max_delay_ns)
        return 0

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "depth": self.depth,
            "perturb": self.delays,
            "steps": self.steps,
            "max_delay_ns": self.max_delay_ns,
        }


class Replay:
    """Replays a recorded decision list exactly.

    ``delays`` must match the recorded strategy's (a replay file stores it). Running out of
    decisions, or being asked a different question than the recording answered, raises
    :class:`ReplayDivergence`: the program or its inputs changed.
    """

    name = "replay"

    def __init__(
        self, decisions: Sequence[Sequence[int]], delays: bool = True, partial: bool = False
    ) -> None:
        self._decisions = [(int(n), int(v)) for n, v in decisions]
        self._pos = 0
        self.delays = delays
        #: the recording is of a run stopped early: running out of decisions is its end
        #: (:class:`ReplayEnd`), not a divergence
        self.partial = partial

    def _next(self, n: int, what: str) -> int:
        if self._pos >= len(self._decisions):
            if self.partial:
                raise ReplayEnd(
                    f"replay: all {len(self._decisions)} recorded decisions made; the recorded "
                    "run stopped here"
                )
            raise ReplayDivergence(
                f"replay: recording has {len(self._decisions)} decisions; {what} asked for one more"
            )
        rn, value = self._decisions[self._pos]
        if rn != n:
            raise ReplayDivergence(
                f"replay: decision {self._pos} was recorded as "
                f"{'a delay' if rn == 0 else f'a choice among {rn}'} but now {what}"
            )
        self._pos += 1
        return value

    def choose(self, candidates: Sequence[Actor]) -> int:
        return self._next(len(candidates), f"a choice among {len(candidates)}")

    def preempt_delay(self, actor: Actor, point: str) -> int:
        return self._next(0, f"a delay at {point!r}")

    @property
    def exhausted(self) -> bool:
        return self._pos == len(self._decisions)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "decisions": len(self._decisions)}


#: the forms :func:`make_strategy` accepts, for error messages
VALID_FORMS = "fifo, random, random(SEED), pct, pct(SEED), pct(SEED, DEPTH)"
#: the range of a seed inside a spec (the same as the ``seed`` parameter's)
MAX_SEED = 2**32 - 1
#: the largest PCT depth (the number of priority change points is depth - 1)
MAX_DEPTH = 64

_SPEC = re.compile(r"^\s*([A-Za-z]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_DECIMAL = re.compile(r"^-?[0-9]{1,10}$")


def parse_strategy(spec: str) -> tuple[str, tuple[int, ...]]:
    """Split a strategy spec into its name and integer arguments, refusing anything else.

    Arguments are plain decimal ASCII integers (no ``+``, ``_``, ``0x`` or non-ASCII digits), a
    seed in ``0..2^32-1`` and a depth in ``1..64``; ``fifo`` takes none, and empty parentheses
    are refused. Raises :class:`PrimitiveMisuse` naming the problem and the valid forms.
    """

    def bad(why: str) -> PrimitiveMisuse:
        shown = spec if len(spec) <= 60 else spec[:60] + "..."
        return PrimitiveMisuse(f"strategy {shown!r}: {why}; valid are {VALID_FORMS}")

    m = _SPEC.match(spec)
    if not m:
        raise bad("not a strategy")
    name, argtext = m.group(1).lower(), m.group(2)
    if name not in ("fifo", "random", "pct"):
        raise bad(f"unknown strategy {m.group(1)!r}")
    if argtext is None:
        return name, ()
    parts = [a.strip() for a in argtext.split(",")]
    if parts == [""]:
        raise bad("empty parentheses (leave them out for the run's seed)")
    if not all(_DECIMAL.match(a) for a in parts):
        raise bad("arguments must be plain decimal integers")
    args = tuple(int(a) for a in parts)
    if name == "fifo":
        raise bad("fifo takes no arguments")
    if len(args) > (1 if name == "random" else 2):
        raise bad(f"too many arguments for {name}")
    if not 0 <= args[0] <= MAX_SEED:
        raise bad(f"seed {args[0]} out of range: valid 0..{MAX_SEED}")
    if len(args) == 2 and not 1 <= args[1] <= MAX_DEPTH:
        raise bad(f"depth {args[1]} out of range: valid 1..{MAX_DEPTH}")
    return name, args


def make_strategy(spec: str | Strategy, seed: int = 0, perturb: bool = False) -> Strategy:
    """Build a strategy from a spec: ``fifo``, ``random``, ``random(7)``, ``pct``, ``pct(7)``,
    ``pct(7, 3)`` (seed, depth). A bare ``random``/``pct`` takes ``seed``; ``perturb`` lets
    ``random`` and ``pct`` inject delays (see the module docstring). A malformed spec raises
    :class:`PrimitiveMisuse` naming the problem and the valid forms (:func:`parse_strategy`).
    """
    if not isinstance(spec, str):
        return spec
    name, args = parse_strategy(spec)
    if name == "fifo":
        return Fifo()
    if name == "random":
        return RandomStrategy(args[0] if args else seed, perturb=perturb)
    depth = args[1] if len(args) > 1 else PCT_DEFAULT_DEPTH
    return PCT(args[0] if args else seed, depth, perturb=perturb)
