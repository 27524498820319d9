"""Exceptions raised by the engine. Each names the actor, the primitive and the virtual time."""

from __future__ import annotations

__all__ = [
    "ActorCrashed",
    "DeadlockError",
    "PrimitiveMisuse",
    "ReplayDivergence",
    "ReplayEnd",
    "SimError",
    "WatchdogError",
]


class SimError(Exception):
    """Base class of every engine error."""


class PrimitiveMisuse(SimError):
    """An engine primitive was used wrongly (negative delay, releasing a lock not held, ...)."""


class ActorCrashed(SimError):
    """An actor raised: the run ends, and this names the actor and the virtual time.

    The actor's own exception is ``__cause__``.
    """

    def __init__(self, actor: str, now: int, exc: BaseException) -> None:
        super().__init__(f"actor {actor!r} crashed at t={now} ns: {type(exc).__name__}: {exc}")
        self.actor = actor
        self.now = now
        self.exc = exc


class DeadlockError(SimError):
    """The run deadlocked: no actor can run and none has a pending wake-up, or every
    non-daemon actor is blocked and some wait on locks that can never be released.

    ``waiting`` maps each blocked non-daemon actor's name to a description of what it waits on;
    ``cycle`` names the actors of a wait-for cycle on locks (each waits for a lock held by the
    next), empty if there is none. The first line of the message says it all.
    """

    def __init__(self, now: int, waiting: dict[str, str], cycle: list[str] | None = None) -> None:
        cycle = list(cycle or [])
        if cycle:
            first = f"deadlock at t={now} ns: lock cycle {' -> '.join([*cycle, cycle[0]])}"
        else:
            first = f"deadlock at t={now} ns: no actor can run and none has a pending wake-up"
        lines = [first]
        lines += [f"  {name} waits on {what}" for name, what in waiting.items()]
        super().__init__("\n".join(lines))
        self.now = now
        self.waiting = waiting
        self.cycle = cycle


class ReplayDivergence(SimError):
    """A replayed run asked for a decision that the recorded run did not make."""


class ReplayEnd(ReplayDivergence):
    """A replay of a run that was stopped early made every recorded decision and asked for
    one more: the replay has reached the point where the recorded run stopped."""


class WatchdogError(SimError):
    """The virtual-time watchdog: an actor made ``steps`` engine steps in a row (delays of 0,
    synchronisations) without its clock advancing, e.g. a loop on ``delay(0)`` or on a
    trylock that never waits. Left alone it would hang the run in one instant."""

    def __init__(self, actor: str, now: int, steps: int) -> None:
        super().__init__(
            f"watchdog: actor {actor!r} made no progress in virtual time: {steps} engine steps "
            f"in a row at t={now} ns (a loop on delay(0) or sync() that never advances its clock?)"
        )
        self.actor = actor
        self.now = now
        self.steps = steps
