"""Models include/linux/lockdep.h: lockdep_assert_held, for the functions the kernel documents
as "zone->lock held" (or lru_lock, pcp->lock held).

A low module of its own, so that the buddy core, the pcp lists and the LRU can assert their
locking without importing the context structs of :mod:`emulator.mm.internal`.
"""

from __future__ import annotations

from emulator.engine.errors import PrimitiveMisuse
from emulator.engine.sync import SpinLock

__all__ = ["lockdep_assert_held"]


def lockdep_assert_held(lock: SpinLock | None) -> None:
    """lockdep_assert_held(lock): in a strict sim, raise unless the running actor holds it.

    Free when the sim is not strict, and a no-op for a zone with no lock yet (synchronous unit
    tests drive a bare :class:`~emulator.mm.zone.Zone`)."""
    if lock is None:
        return
    sim = lock.sim
    if sim.strict and lock.holder is not sim._current:
        me = sim._current
        who = me.name if me is not None else "no actor"
        held = lock.holder.name if lock.holder is not None else "nobody"
        raise PrimitiveMisuse(f"{who!r} needs {lock.name} held, but it is held by {held}")
