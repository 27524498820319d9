"""A generic virtual-time actor runtime on trio. It knows nothing of memory management.

* :class:`Sim` owns virtual time (integer ns), the actors and the scheduling strategy;
* :class:`SpinLock`, :class:`Mutex`, :class:`WaitQueue`, :class:`Completion` are what actors
  block on;
* strategies (:func:`make_strategy`: ``fifo``, ``random(seed)``, ``pct(seed, depth)``,
  :class:`Replay`) decide among actors ready at the same instant and inject bounded delays at
  named preemption points;
* :class:`Recorder` writes tracepoint-style events as JSON lines.
"""

from emulator.engine.actor import Actor
from emulator.engine.errors import (
    ActorCrashed,
    DeadlockError,
    PrimitiveMisuse,
    ReplayDivergence,
    ReplayEnd,
    SimError,
    WatchdogError,
)
from emulator.engine.lockstat import render_lock_stat
from emulator.engine.recorder import NULL_RECORDER, MemoryRecorder, NullRecorder, Recorder
from emulator.engine.sim import RunResult, Sim
from emulator.engine.strategy import PCT, Fifo, RandomStrategy, Replay, Strategy, make_strategy
from emulator.engine.sync import Completion, LockStats, Mutex, SpinLock, WaitQueue

__all__ = [
    "NULL_RECORDER",
    "PCT",
    "Actor",
    "ActorCrashed",
    "Completion",
    "DeadlockError",
    "Fifo",
    "LockStats",
    "MemoryRecorder",
    "Mutex",
    "NullRecorder",
    "PrimitiveMisuse",
    "RandomStrategy",
    "Recorder",
    "Replay",
    "ReplayDivergence",
    "ReplayEnd",
    "RunResult",
    "Sim",
    "SimError",
    "SpinLock",
    "Strategy",
    "WaitQueue",
    "WatchdogError",
    "make_strategy",
    "render_lock_stat",
]
