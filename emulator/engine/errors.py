"""Exceptions raised by the engine. Each names the actor, the primitive and the virtual time."""

from __future__ import annotations

__all__ = [
    "ActorCrashed",
    "DeadlockError",
    "PrimitiveMisuse",
    "ReplayDivergence",
    "SimError",
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
    """No actor can run, none has a pending wake-up, and some are blocked.

    ``waiting`` maps each blocked actor's name to a description of what it waits on.
    """

    def __init__(self, now: int, waiting: dict[str, str]) -> None:
        lines = [f"deadlock at t={now} ns: no actor can run and none has a pending wake-up"]
        lines += [f"  {name} waits on {what}" for name, what in waiting.items()]
        super().__init__("\n".join(lines))
        self.now = now
        self.waiting = waiting


class ReplayDivergence(SimError):
    """A replayed run asked for a decision that the recorded run did not make."""
