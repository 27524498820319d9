"""Scheduling strategies: who runs next when several actors could, and where to inject delay.

The engine asks a strategy two questions:

* :meth:`Strategy.choose` — two or more actors are ready at the same virtual time; which one
  runs first? Candidates come in arrival order (the order in which they reached that instant).
* :meth:`Strategy.preempt_delay` — an actor reached a named preemption point (an unlocked window
  in the kernel); should it be held back, and by how many ns? Moving an actor in time is what
  reorders timing-dependent races when exact ties are rare (the BUGGIFY idea from FoundationDB).

Every answer given by a strategy that *can* choose is recorded by the engine as a decision, so
any run can be replayed with :class:`Replay`. A decision is a pair ``(n, value)``: ``n >= 2`` is
a choice among ``n`` candidates and ``value`` the chosen index; ``n == 0`` is a preemption-point
delay of ``value`` ns.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from emulator.engine.errors import PrimitiveMisuse, ReplayDivergence

if TYPE_CHECKING:
    from emulator.engine.actor import Actor

__all__ = ["PCT", "Fifo", "RandomStrategy", "Replay", "Strategy", "make_strategy"]

Decision = tuple[int, int]


class Strategy(Protocol):
    #: short name written into replay files and summaries
    name: str
    #: whether :meth:`preempt_delay` can return non-zero (if False the engine skips the call)
    delays: bool

    def choose(self, candidates: Sequence[Actor]) -> int: ...

    def preempt_delay(self, actor: Actor, point: str) -> int: ...

    def describe(self) -> dict: ...


class Fifo:
    """Deterministic: the actor that reached the instant first runs first; no injected delays."""

    name = "fifo"
    delays = False

    def choose(self, candidates: Sequence[Actor]) -> int:
        return 0

    def preempt_delay(self, actor: Actor, point: str) -> int:
        return 0

    def describe(self) -> dict:
        return {"name": self.name}


class RandomStrategy:
    """Uniform choice among tied actors; at each preemption point, with probability
    ``preempt_prob``, hold the actor back by a uniform delay in ``[1, max_delay_ns]``.

    Seeded: the same seed gives the same decisions for the same program.
    """

    name = "random"
    delays = True

    def __init__(self, seed: int, preempt_prob: float = 0.05, max_delay_ns: int = 20_000) -> None:
        if not 0.0 <= preempt_prob <= 1.0:
            raise PrimitiveMisuse(f"random strategy: preempt_prob {preempt_prob} not in [0, 1]")
        if max_delay_ns < 1:
            raise PrimitiveMisuse(f"random strategy: max_delay_ns {max_delay_ns} must be >= 1")
        self.seed = seed
        self.preempt_prob = preempt_prob
        self.max_delay_ns = max_delay_ns
        self._rng = random.Random(seed)

    def choose(self, candidates: Sequence[Actor]) -> int:
        return self._rng.randrange(len(candidates))

    def preempt_delay(self, actor: Actor, point: str) -> int:
        rng = self._rng
        if rng.random() < self.preempt_prob:
            return rng.randint(1, self.max_delay_ns)
        return 0

    def describe(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "preempt_prob": self.preempt_prob,
            "max_delay_ns": self.max_delay_ns,
        }


class PCT:
    """Probabilistic Concurrency Testing (Burckhardt et al., ASPLOS 2010), in virtual time.

    Each actor gets a random distinct initial priority (all above ``depth``). ``depth - 1``
    change points are drawn uniformly from ``[1, steps]``, where a step is a preemption point or
    a choice. When step ``k_i`` is reached, the running actor's priority drops to ``i`` (below
    every initial priority), and at a preemption point it is also held back by a uniform delay
    in ``[1, max_delay_ns]`` so that others overtake it in virtual time. Among tied actors the
    highest priority runs. A bug of depth ``d`` is found with probability at least
    ``1 / (n * steps^(d-1))`` per run for ``n`` actors.
    """

    name = "pct"
    delays = True

    def __init__(
        self, seed: int, depth: int = 3, steps: int = 10_000, max_delay_ns: int = 20_000
    ) -> None:
        if depth < 1:
            raise PrimitiveMisuse(f"pct strategy: depth {depth} must be >= 1")
        if steps < 1:
            raise PrimitiveMisuse(f"pct strategy: steps {steps} must be >= 1")
        self.seed = seed
        self.depth = depth
        self.steps = steps
        self.max_delay_ns = max_delay_ns
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

    def describe(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "depth": self.depth,
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

    def __init__(self, decisions: Sequence[Sequence[int]], delays: bool = True) -> None:
        self._decisions = [(int(n), int(v)) for n, v in decisions]
        self._pos = 0
        self.delays = delays

    def _next(self, n: int, what: str) -> int:
        if self._pos >= len(self._decisions):
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

    def describe(self) -> dict:
        return {"name": self.name, "decisions": len(self._decisions)}


_SPEC = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*$")


def make_strategy(spec: str | Strategy, seed: int = 0) -> Strategy:
    """Build a strategy from a spec: ``fifo``, ``random``, ``random(7)``, ``pct``,
    ``pct(7, 3)`` (seed, depth). A bare ``random``/``pct`` takes ``seed``. Unknown names raise
    :class:`PrimitiveMisuse` listing the valid ones.
    """
    if not isinstance(spec, str):
        return spec
    m = _SPEC.match(spec)
    if not m:
        raise PrimitiveMisuse(
            f"unknown strategy {spec!r}: valid are fifo, random(seed), pct(seed, depth)"
        )
    name, argtext = m.group(1).lower(), m.group(2)
    try:
        args = [int(a) for a in argtext.split(",")] if argtext and argtext.strip() else []
    except ValueError:
        raise PrimitiveMisuse(f"strategy {spec!r}: arguments must be integers") from None
    if name == "fifo" and not args:
        return Fifo()
    if name == "random" and len(args) <= 1:
        return RandomStrategy(args[0] if args else seed)
    if name == "pct" and len(args) <= 2:
        return PCT(args[0] if args else seed, *(args[1:]))
    raise PrimitiveMisuse(
        f"unknown strategy {spec!r}: valid are fifo, random(seed), pct(seed, depth)"
    )
