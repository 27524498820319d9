"""One simulated thread of control: :class:`Actor` and its states.

The :class:`~emulator.engine.sim.Sim` owns the actors and moves them between the states; both
engine drivers (:mod:`emulator.engine._drivers`) and the primitives read them.
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["BLOCKED", "CRASHED", "DONE", "READY", "RUNNING", "Actor"]

# actor states
READY, RUNNING, BLOCKED, DONE, CRASHED = "ready", "running", "blocked", "done", "crashed"


class Actor:
    """One simulated thread of control (a CPU, kswapd, kcompactd, ...).

    ``now`` is its own virtual clock. ``spin_ns`` is time it spent spinning on locks (its CPU
    busy), ``sleep_ns`` time it slept on wait queues (its CPU idle). ``data`` is free for the
    model (e.g. the CPU number); so is ``clock``, the model's time accounting for the work the
    actor is doing (the engine never reads it).
    """

    __slots__ = (
        "blocked_on",
        "blocked_since",
        "clock",
        "coro",
        "crash",
        "daemon",
        "data",
        "id",
        "name",
        "now",
        "sleep_ns",
        "spin_ns",
        "stall_key",
        "stall_n",
        "state",
        "task",
        "timed",
        "woken",
    )

    def __init__(self, id: int, name: str, now: int, daemon: bool, data: Any) -> None:
        self.id = id
        self.name = name
        self.now = now
        self.daemon = daemon
        self.data = data
        self.state = READY
        self.task: trio.lowlevel.Task | None = None
        self.blocked_on: Any = None
        self.blocked_since = 0
        self.woken = False
        self.spin_ns = 0
        self.sleep_ns = 0
        #: blocked with a timer pending (a wait queue timeout): it has a wake-up coming
        self.timed = False
        #: the fast driver's coroutine, and the exception of a crash waiting for its instant
        self.coro: Any = None
        self.crash: BaseException | None = None
        #: the watchdog: ``2 * clock`` at the last engine step and the steps made at it
        self.stall_key = -1
        self.stall_n = 0
        #: the model's per-actor time accounting (e.g. an allocation's latency parts), or None
        self.clock: Any = None

    def __repr__(self) -> str:
        return f"<Actor {self.name} t={self.now} {self.state}>"
