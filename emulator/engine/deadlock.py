"""Who waits for whom: naming a blocked actor's wait and finding lock cycles.

Used by the engine to tell a deadlock from a quiet moment. An actor blocked on a lock (an
object with a ``holder``) can only be woken by that holder's release; an actor blocked on a
wait queue or a completion can be woken by any running actor, daemons included. So a set of
actors is certainly stuck when each waits for a lock whose holder is itself stuck: a wait-for
cycle on locks, or a chain ending at a lock left held by an actor that has returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.engine.actor import Actor

__all__ = ["closes_cycle", "describe_wait", "lock_cycles", "stuck_on_locks"]

_BLOCKED = "blocked"
_ENDED = ("done", "crashed")


def describe_wait(actor: Actor) -> str:
    """What a blocked actor waits on and since when, e.g.
    ``"spinlock B (held by abba-2) since t=100 ns"``."""
    what = actor.blocked_on
    desc = what.describe_wait(actor) if hasattr(what, "describe_wait") else repr(what)
    return f"{desc} since t={actor.blocked_since} ns"


def _lock_holder(actor: Actor) -> Any:
    """The actor holding the lock ``actor`` is blocked on, or None if it waits on no lock."""
    if actor.state != _BLOCKED:
        return None
    return getattr(actor.blocked_on, "holder", None)


def lock_cycles(actors: Iterable[Actor]) -> list[list[Actor]]:
    """Every wait-for cycle on locks: each actor waits for a lock held by the next one."""
    cycles: list[list[Actor]] = []
    in_cycle: set[int] = set()
    for a in actors:
        if a.id in in_cycle:
            continue
        path: list[Actor] = []
        cur: Any = a
        while cur is not None and cur not in path:
            path.append(cur)
            cur = _lock_holder(cur)
        if cur is not None and cur.id not in in_cycle:
            cycle = path[path.index(cur) :]
            if len(cycle) > 1 or _lock_holder(cur) is cur:
                cycles.append(cycle)
                in_cycle.update(c.id for c in cycle)
    return cycles


def stuck_on_locks(actors: Iterable[Actor]) -> list[Actor]:
    """Actors blocked on a lock that can never be released: its holder is in a lock cycle,
    has returned (or crashed), or is itself stuck in the same way."""
    stuck: list[Actor] = []
    for a in actors:
        seen: list[Actor] = []
        cur: Any = a
        while True:
            holder = _lock_holder(cur)
            if holder is None:
                break
            if holder.state in _ENDED or holder in seen or holder is a:
                stuck.append(a)
                break
            seen.append(cur)
            cur = holder
    return stuck


def closes_cycle(me: Actor, lock: Any) -> bool:
    """Whether ``me`` blocking on ``lock`` closes a wait-for cycle on locks (the holder chain
    from ``lock`` leads back to ``me``)."""
    holder = getattr(lock, "holder", None)
    seen: list[Any] = []
    while holder is not None and holder not in seen:
        if holder is me:
            return True
        seen.append(holder)
        holder = getattr(holder.blocked_on, "holder", None)
    return False
