"""The virtual-time actor runtime: :class:`Sim` and :class:`Actor`.

Actors are trio tasks in one nursery, but trio's run queue never decides who runs: at any
moment exactly one actor is *current*, and the others are parked in
``trio.lowlevel.wait_task_rescheduled``. When the current actor must wait, it picks its
successor (through the strategy) and hands over with ``trio.lowlevel.reschedule``.

How a step of virtual time flows
--------------------------------
Every actor has its own clock, ``actor.now`` (integer ns). Work that touches only the actor's
own state — :meth:`Sim.delay` — just advances that clock: no task switch, no heap operation.
This is conservative-simulation *lookahead*. Before an operation on shared state (a lock, a wait
queue, a preemption point, or any model code that calls :meth:`Sim.sync`), the actor
*synchronises*: it may go on only if no other actor could act at an earlier virtual time. The
engine keeps one heap of ``(key, seq, item)``:

* a *ready* actor parked at its next shared operation, ``key = 2 * time``;
* a *timer* (a :class:`~emulator.engine.sync.WaitQueue` timeout), ``key = 2 * time + 1``.

The current actor at time ``t`` continues at once if ``2 * t`` is below the heap's smallest
key. Otherwise it pushes itself and the smallest entry runs next; actors tied at the same key
are a choice for the strategy (recorded as a decision). Timers sort after actors of the same
instant, which gives the documented rule for a wake-up at exactly the timeout instant: **the
wake-up wins** (see :meth:`WaitQueue.wait`). Shared operations therefore happen in global
virtual-time order, and a run is a pure function of the program, its inputs and the strategy.

The run ends when every actor has returned, when the next event lies beyond the deadline
(``until``), or with :class:`DeadlockError` when actors are blocked and nothing is pending (or
every non-daemon actor is blocked and some are in a lock cycle, whatever the daemons still
have pending). An actor that raises ends the run with :class:`ActorCrashed` naming it and its
virtual time; one that stops advancing its clock ends it with :class:`WatchdogError`.

Drivers
-------
Two drivers run the same actors with the same heap, strategy and primitives, and give
byte-identical results:

* ``driver="fast"`` (the default): the actors are plain coroutines that the engine steps
  itself (``coro.send``) inside the task that awaits :meth:`Sim.run`. Parking an actor is a
  bare ``yield`` back to that loop, which then sends into the next actor. The loop checks in
  with trio (``trio.lowlevel.checkpoint``) every :data:`CHECKIN_EVERY` steps, so cancellation,
  timeouts around ``run()`` and Ctrl-C still reach the run.
* ``driver="trio"`` (the reference): one trio task per actor, handed over with
  ``trio.lowlevel.reschedule`` / ``wait_task_rescheduled``.

The drivers' run loops live in :mod:`emulator.engine._drivers`; :class:`Actor` and its states in
:mod:`emulator.engine.actor` (both re-exported here).
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from emulator.engine._drivers import (
    CHECKIN_EVERY,
    actor_main,
    fast_checkin,
    fast_park,
    run_fast,
    run_trio,
    single_exception,
    start_coro,
)
from emulator.engine.actor import BLOCKED, CRASHED, DONE, READY, RUNNING, Actor
from emulator.engine.deadlock import closes_cycle, describe_wait, lock_cycles, stuck_on_locks
from emulator.engine.errors import (
    ActorCrashed,
    DeadlockError,
    PrimitiveMisuse,
    WatchdogError,
)
from emulator.engine.recorder import NULL_RECORDER, NullRecorder, Recorder
from emulator.engine.strategy import Decision, Fifo, Strategy, make_strategy

__all__ = [
    "DRIVERS",
    "WATCHDOG_STEPS",
    "RunResult",
    "Sim",
]

_heappush = heapq.heappush
_heappop = heapq.heappop
_heappushpop = heapq.heappushpop
_reschedule = trio.lowlevel.reschedule
_wait_rescheduled = trio.lowlevel.wait_task_rescheduled
_checkpoint = trio.lowlevel.checkpoint

#: the virtual-time watchdog: an actor that calls :meth:`Sim.delay` or :meth:`Sim.sync` this many
#: times in a row without its clock advancing raises :class:`WatchdogError`
WATCHDOG_STEPS = 1_000_000
#: the engine drivers (see the module docstring), and the one a ``Sim`` uses by default
DRIVERS = ("fast", "trio")
DEFAULT_DRIVER = "fast"
_NEVER = 1 << 126


@attrs.frozen
class RunResult:
    """How a run ended: ``reason`` is ``"done"`` (every actor returned) or ``"deadline"``."""

    reason: str
    now: int
    decisions: tuple[Decision, ...]
    switches: int
    syncs: int


class Sim:
    """Owns virtual time, the actors and the strategy.

    Build it, add actors with :meth:`spawn`, then ``await sim.run(until=ns)`` inside trio.
    Actors block only on engine primitives: :meth:`delay`, :meth:`preempt`, :meth:`sync`,
    ``SpinLock.acquire``, ``WaitQueue.wait``, ``Completion.wait``.

    ``driver`` is ``"fast"`` (the engine steps the actors' coroutines itself, the default) or
    ``"trio"`` (one trio task per actor, the reference); both give the same results.
    ``watchdog_steps`` bounds how many engine steps in a row an actor may make without its
    clock advancing (0 disables the watchdog). With ``stop_on_lock_cycle`` the run stops with
    :class:`DeadlockError` as soon as a wait-for cycle on locks forms, even while other actors
    could go on running (by default only once no non-daemon actor can run). ``perturb`` lets a
    ``random`` or ``pct`` strategy given by name inject delays at preemption points (see
    :mod:`emulator.engine.strategy`).
    """

    def __init__(
        self,
        strategy: str | Strategy = "fifo",
        seed: int = 0,
        recorder: Recorder | NullRecorder = NULL_RECORDER,
        quantum_ns: int = 0,
        strict: bool = False,
        driver: str | None = None,
        watchdog_steps: int = WATCHDOG_STEPS,
        stop_on_lock_cycle: bool = False,
        perturb: bool = False,
    ) -> None:
        if driver is None:
            driver = DEFAULT_DRIVER
        if driver not in DRIVERS:
            raise PrimitiveMisuse(f"driver {driver!r}: expected one of {', '.join(DRIVERS)}")
        if not isinstance(watchdog_steps, int) or watchdog_steps < 0:
            raise PrimitiveMisuse(
                f"watchdog_steps must be a non-negative int (0 = off), got {watchdog_steps!r}"
            )
        self.strategy: Strategy = make_strategy(strategy, seed, perturb)
        self.seed = seed
        self.recorder = recorder
        recorder.bind_clock(lambda: self.now, self._current_name, self._frontier, self)
        self.decisions: list[Decision] = []
        self.actors: list[Actor] = []
        self._heap: list[tuple[int, int, Any]] = []
        self._seq = 0
        self._current: Actor | None = None
        self._time = 0  # virtual time of the last dispatch (what outsiders see as "now")
        self._until_key = _NEVER
        self._until = _NEVER
        self._nursery: trio.Nursery | None = None
        self._main: trio.lowlevel.Task | None = None
        self._main_parked = False
        self._end: tuple[str, Any] | None = None
        self._pending: list[tuple[Actor, Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []
        self._running = False
        self._checkin = CHECKIN_EVERY
        self._delays = self.strategy.delays
        self._fifo = isinstance(self.strategy, Fifo)
        #: non-daemon actors that are running, ready, or blocked with a timer pending: when it
        #: drops to 0 with some of them blocked, the engine looks for a lock cycle
        self._live = 0
        self.driver = driver
        self._fast = driver == "fast"
        if self._fast:
            self._park: Callable[[], Awaitable[Any]] = fast_park
            self._checkpoint: Callable[[], Awaitable[Any]] = fast_checkin
        else:
            self._park = self._trio_park
            self._checkpoint = _checkpoint
        self.watchdog_steps = watchdog_steps or _NEVER
        self.stop_on_lock_cycle = stop_on_lock_cycle
        # Set when trio cancels a parked engine task (the run is being cancelled from outside,
        # or an actor crashed): that task has already been rescheduled by trio, so the engine
        # must never reschedule it again (trio would fail an internal assertion).
        self._cancelled = False
        self._abort_fn: Callable[[Any], trio.lowlevel.Abort] = self._abort  # one, not one per park
        self.switches = 0
        self.syncs = 0
        if not isinstance(quantum_ns, int) or quantum_ns < 0:
            raise PrimitiveMisuse(f"quantum_ns must be a non-negative int, got {quantum_ns!r}")
        #: sync quantum: an actor may pass a synchronisation point while it is less than this
        #: far ahead of the earliest other actor (0 = exact global order; see :meth:`sync`)
        self.quantum_ns = quantum_ns
        #: with ``strict``, primitives that assume their caller has just synchronised
        #: (``SpinLock.try_acquire_now``, model code calling :meth:`assert_synchronised`) check
        #: it and raise instead of silently acting out of virtual-time order
        self.strict = strict
        self._qkey = quantum_ns << 1

    # -- time -------------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """Virtual time in ns: the current actor's clock, or the last dispatch time outside."""
        cur = self._current
        return cur.now if cur is not None else self._time

    @property
    def current(self) -> Actor:
        """The actor that is running now (only valid inside an actor)."""
        cur = self._current
        if cur is None:
            raise PrimitiveMisuse("no actor is running: engine primitives are for actors only")
        return cur

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        """Abort callback of a parked actor: trio is cancelling it, so stop scheduling."""
        self._cancelled = True
        return trio.lowlevel.Abort.SUCCEEDED

    def _abort_main(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._cancelled = True
        self._main_parked = False
        return trio.lowlevel.Abort.SUCCEEDED

    def _trio_park(self) -> Awaitable[Any]:
        return _wait_rescheduled(self._abort_fn)

    def _frontier(self) -> int:
        """A virtual time before which no more events can be emitted (for the recorder): the
        running actor's clock and every heap entry (ready actors, timers) are at or after it,
        and blocked actors are only woken at the waker's clock or at a timer."""
        cur = self._current
        t = cur.now if cur is not None else self._time
        heap = self._heap
        if heap:
            h = heap[0][0] >> 1
            if h < t:
                t = h
        return t

    def _current_name(self) -> str | None:
        cur = self._current
        return cur.name if cur is not None else None

    # -- actors -----------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        start: int = 0,
        daemon: bool = False,
        data: Any = None,
    ) -> Actor:
        """Add an actor that will run ``await fn(*args)`` from virtual time ``start``.

        Before :meth:`run` only; during a run use :meth:`start_actor`. A ``daemon`` actor
        (the sampler, kswapd, kcompactd) does not keep a deadlock hidden: the run stops with
        :class:`DeadlockError` when every non-daemon actor is blocked and nothing can wake them
        (see :meth:`_check_stuck`), whatever the daemons still have pending.
        """
        if self._running:
            raise PrimitiveMisuse(f"spawn({name!r}) during a run: use 'await sim.start_actor(...)'")
        if not isinstance(start, int) or start < 0:
            raise PrimitiveMisuse(f"spawn({name!r}): start must be a non-negative int of ns")
        if start < self._time:
            # before another run on this Sim: an actor cannot start in the virtual past (its
            # events would land before lines the recorder has already written)
            raise PrimitiveMisuse(
                f"spawn({name!r}, start={start}): the previous run already reached "
                f"t={self._time} ns"
            )
        actor = Actor(len(self.actors), name, start, daemon, data)
        self.actors.append(actor)
        self._pending.append((actor, fn, args))
        return actor

    async def start_actor(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        daemon: bool = False,
        data: Any = None,
    ) -> Actor:
        """Start a new actor during the run, at the calling actor's virtual time."""
        me = self.current
        actor = Actor(len(self.actors), name, me.now, daemon, data)
        self.actors.append(actor)
        if self._fast:
            start_coro(self, actor, fn, args)
        else:
            assert self._nursery is not None
            await self._nursery.start(actor_main, self, actor, fn, args)
        if not daemon:
            self._live += 1
        return actor

    def _crashed(self, actor: Actor, exc: BaseException) -> BaseException:
        """What the run raises for ``actor``'s crash (at its instant: the run stops there)."""
        actor.state = CRASHED
        if self._current is actor:
            self._time = actor.now
        if isinstance(exc, (KeyboardInterrupt, WatchdogError)):
            return exc
        return ActorCrashed(actor.name, actor.now, exc)

    def _returned(self, actor: Actor) -> None:
        actor.state = DONE
        if self._current is actor:
            self._time = actor.now
            self._current = None
        if not actor.daemon:
            self._live -= 1
            if self._live == 0:
                self._check_stuck(actor.now)

    # -- the scheduler ----------------------------------------------------------------------

    def _push(self, actor: Actor) -> None:
        self._seq += 1
        actor.state = READY
        _heappush(self._heap, (actor.now << 1, self._seq, actor))

    def push_timer(self, at: int, item: Any) -> None:
        """Schedule ``item`` (an object with ``active``, ``actor`` and ``on_timeout()``) to fire
        at virtual time ``at`` unless it is deactivated first. Used by wait queues."""
        self._seq += 1
        _heappush(self._heap, ((at << 1) | 1, self._seq, item))

    def make_ready(self, actor: Actor, at: int) -> None:
        """Wake a blocked actor: it will resume at virtual time ``at`` (engine primitives only)."""
        if at > actor.now:
            actor.now = at
        actor.blocked_on = None
        if actor.timed:
            actor.timed = False
        elif not actor.daemon:
            self._live += 1
        self._push(actor)

    def _pop_next(self) -> Actor | None:
        """Pop the next actor to run (firing timers and resolving ties), or None to stop."""
        heap = self._heap
        until = self._until_key
        while heap:
            entry = heap[0]
            key = entry[0]
            if key & 1 and not entry[2].active:
                _heappop(heap)  # a timer whose waiter was woken: drop it before any test
                continue
            if key > until:
                return None
            _heappop(heap)
            if key & 1:
                timer = entry[2]
                timer.active = False
                actor: Actor = timer.actor
                actor.now = key >> 1
                actor.timed = False
                timer.on_timeout()
                return actor
            if heap and heap[0][0] == key:
                return self._choose(entry, key)
            ready: Actor = entry[2]
            return ready
        return None

    def _choose(self, first: tuple[int, int, Any], key: int) -> Actor:
        heap = self._heap
        if self._fifo:
            # FIFO picks the first arrival, which is the entry already popped: leave the other
            # tied entries where they are and only count them for the decision record (equal
            # keys at the top of a heap form a subtree under the root)
            n = 1
            stack = [0]
            size = len(heap)
            while stack:
                i = stack.pop()
                if i < size and heap[i][0] == key:
                    n += 1
                    stack.append(2 * i + 1)
                    stack.append(2 * i + 2)
            self.decisions.append((n, 0))
            first_actor: Actor = first[2]
            return first_actor
        tied = [first]
        while heap and heap[0][0] == key:
            tied.append(_heappop(heap))
        actors = [e[2] for e in tied]
        i = self.strategy.choose(actors)
        self.decisions.append((len(tied), i))
        chosen = tied.pop(i)
        for e in tied:
            _heappush(heap, e)
        chosen_actor: Actor = chosen[2]
        return chosen_actor

    def _dispatch(self) -> None:
        """The current actor has parked or ended: run the next one, or end the run."""
        if self._cancelled:
            return
        if self._end is not None:
            self._current = None
            self._wake_main()
            return
        nxt = self._pop_next()
        if nxt is None:
            self._finish()
            return
        self._hand_over(nxt)

    async def _switch_from(self, me: Actor) -> None:
        """``me`` is in the heap (ready) or blocked: let the next actor run, maybe ``me``."""
        aw = self._switch(me)
        if aw is not None:
            await aw

    def _switch(self, me: Actor) -> Awaitable[Any] | None:
        """The body of :meth:`_switch_from` as a plain call: None when ``me`` goes on at once,
        else what ``me`` must await (its park). Primitives await it themselves, which saves a
        coroutine frame on every park and resume."""
        if self._cancelled:
            return self._cancelled_switch(me)
        if self._end is not None:
            # the run was stopped at this step (a deadlock found by _check_stuck)
            self._current = None
            self._wake_main()
            return self._park()
        nxt = self._pop_next()
        if nxt is me:
            me.state = RUNNING
            self._time = me.now
            return None
        if nxt is None:
            self._current = None
            self._finish()
        else:
            self._hand_over(nxt)
        return self._park()

    async def _cancelled_switch(self, me: Actor) -> None:
        # trio is cancelling the run and has already woken the parked tasks: take our
        # Cancelled at a checkpoint instead of handing over to one of them
        await _checkpoint()
        raise RuntimeError(
            f"actor {me.name!r}: an engine task was cancelled by a trio cancel scope inside "
            "the run; actors must not wrap engine primitives in trio timeouts"
        )

    def _hand_over(self, nxt: Actor) -> None:
        """Make ``nxt`` the running actor (trio driver: wake its task; the caller then parks)."""
        self._current = nxt
        self._time = nxt.now
        nxt.state = RUNNING
        self.switches += 1
        if not self._fast:
            _reschedule(nxt.task)  # type: ignore[arg-type]  # every trio actor has its task

    def _wake_main(self) -> None:
        if self._main_parked and not self._cancelled:
            self._main_parked = False
            _reschedule(self._main)  # type: ignore[arg-type]  # set while parked

    def _finish(self) -> None:
        if self._end is not None:
            return
        heap = self._heap
        if heap and heap[0][0] > self._until_key:
            self._end = ("deadline", None)
            self._time = self._until_key >> 1  # the run covered virtual time up to `until`
        else:
            # the latest clock reached (an actor that ran ahead may end after the last dispatch)
            for a in self.actors:
                if a.now > self._time:
                    self._time = a.now
            waiting = {
                a.name: self._describe_wait(a)
                for a in self.actors
                if a.state == BLOCKED and not a.daemon
            }
            self._end = ("deadlock", (waiting, self._first_cycle())) if waiting else ("done", None)
        self._wake_main()

    def _check_stuck(self, now: int) -> None:
        """No non-daemon actor can run or has a timer: if some are blocked on locks that only
        blocked actors can release (a lock cycle, or a lock left held by an actor that
        returned), nothing can ever wake them, whatever the daemons do: stop the run now with
        a deadlock. Actors blocked on wait queues or completions are left to the daemons, which
        may wake them; the run then ends at its deadline, or here once nothing is pending."""
        if self._end is not None:
            return
        if stuck_on_locks(self.actors):
            self._stop_deadlocked(now)

    def _stop_deadlocked(self, now: int) -> None:
        """End the run at ``now`` with a deadlock (the current actor then parks for good)."""
        waiting = {
            a.name: self._describe_wait(a)
            for a in self.actors
            if a.state == BLOCKED and not a.daemon
        }
        self._time = now
        self._end = ("deadlock", (waiting, self._first_cycle()))

    def _first_cycle(self) -> list[str]:
        cycles = lock_cycles(self.actors)
        return [a.name for a in cycles[0]] if cycles else []

    def _describe_wait(self, actor: Actor) -> str:
        return describe_wait(actor)

    def lock_cycles(self) -> dict[str, str]:
        """Actors in a wait-for cycle on locks (each waits for a lock held by the next), with
        what each waits on: the engine's view of a lock deadlock, for reports."""
        return {a.name: self._describe_wait(a) for cycle in lock_cycles(self.actors) for a in cycle}

    # -- primitives for actors --------------------------------------------------------------

    def _stalled(self, me: Actor) -> None:
        me.stall_n += 1
        if me.stall_n >= self.watchdog_steps:
            raise WatchdogError(me.name, me.now, me.stall_n)

    async def sync(self) -> None:
        """Wait until no other actor can act at an earlier virtual time.

        Call before touching shared state (the engine's primitives do it themselves). With a
        sync quantum ``Q > 0`` (as multi-core simulators such as Sniper and SST use), the actor
        may also go on while it is less than ``Q`` ns ahead of the earliest other actor: shared
        operations are then ordered only to within ``Q``, still deterministically.
        """
        aw = self._sync_step()
        if aw is not None:
            await aw

    def _sync_step(self) -> Awaitable[Any] | None:
        """:meth:`sync` as a plain call (engine primitives): None when the current actor may go
        on at once, else the awaitable it must await before going on (its park, or a check-in
        with trio). Saves a coroutine frame per synchronisation, and one level on every resume."""
        me = self._current
        if me is None:
            raise PrimitiveMisuse("sync() outside an actor")
        self.syncs += 1
        key = me.now << 1
        if key == me.stall_key:
            self._stalled(me)
        else:
            me.stall_key = key
            me.stall_n = 0
        heap = self._heap
        top = heap[0][0] if heap else _NEVER
        if key < top + self._qkey and key <= self._until_key:
            self._checkin -= 1
            if self._checkin <= 0:
                self._checkin = CHECKIN_EVERY
                return self._checkpoint()
            return None
        self._seq += 1
        entry = (key, self._seq, me)
        if top < key and not top & 1 and top <= self._until_key and not self._cancelled:
            # the common switch: a plain earlier actor runs next. One heappushpop instead of a
            # push and a pop; a tie among the others at its instant goes the general way.
            first = _heappushpop(heap, entry)
            if heap[0][0] != top:
                me.state = READY
                # _hand_over, inline
                nxt = first[2]
                self._current = nxt
                self._time = nxt.now
                nxt.state = RUNNING
                self.switches += 1
                if not self._fast:
                    _reschedule(nxt.task)
                return self._park()
            _heappush(heap, first)
        else:
            _heappush(heap, entry)
        me.state = READY
        return self._switch(me)

    def is_synchronised(self) -> bool:
        """Whether no other actor or timer is pending at an earlier virtual time (to within
        the sync quantum): what :meth:`sync` guarantees on return."""
        me = self._current
        if me is None:
            return True
        heap = self._heap
        while heap and heap[0][0] & 1 and not heap[0][2].active:
            _heappop(heap)  # a timer whose waiter was woken: it orders nothing
        return not heap or (me.now << 1) <= heap[0][0] + self._qkey

    def assert_synchronised(self, what: str) -> None:
        """In ``strict`` mode, raise if the current actor touches shared state (``what``)
        without having synchronised at its current time. Free when not strict."""
        if self.strict and not self.is_synchronised():
            me = self._current
            assert me is not None
            raise PrimitiveMisuse(
                f"actor {me.name!r}: {what} at t={me.now} ns without synchronising: an actor "
                f"or timer at t={self._heap[0][0] >> 1} ns has not acted yet"
            )

    def sleep_through(self, at: int) -> bool:
        """For a wait primitive that has just synchronised: if nothing (no actor, no live
        timer) is pending at or before virtual time ``at``, nobody can act before then, so
        a wait with its timeout at ``at`` would time out with nothing else happening. Then
        advance the caller's clock to ``at`` and return True: the cheap "wait until ``at``
        unless woken" of an idle CPU, without a timer, a block or a switch. Same outcome as
        the full wait (the timer would have been the next entry of the heap)."""
        heap = self._heap
        while heap and heap[0][0] & 1 and not heap[0][2].active:
            _heappop(heap)  # a timer whose waiter was woken: it orders nothing
        key = (at << 1) | 1
        if (heap and heap[0][0] <= key) or key > self._until_key:
            return False
        me = self._current
        assert me is not None
        me.now = at
        self._time = at
        return True

    async def delay(self, ns: int) -> None:
        """Spend ``ns`` of the current actor's time on its own work (no shared state touched).

        Lookahead: this never switches actors, except that an actor crossing the run's deadline
        synchronises so the run can stop.
        """
        me = self._current
        if ns.__class__ is int and ns > 0 and me is not None:  # the hot path first
            now = me.now + ns
            me.now = now
            if now <= self._until:
                # an actor doing only delays never syncs: check in with trio now and then
                c = self._checkin - 1
                self._checkin = c
                if c > 0:
                    return
                self._checkin = CHECKIN_EVERY
                await self._checkpoint()
                return
            aw = self._sync_step()  # crossing the deadline: synchronise so the run can stop
            if aw is not None:
                await aw
            return
        if me is None:
            raise PrimitiveMisuse("delay() outside an actor")
        if ns.__class__ is not int or ns < 0:  # type first: None/str must not TypeError
            raise PrimitiveMisuse(
                f"actor {me.name!r}: delay({ns!r}) at t={me.now} ns: need a non-negative int of ns"
            )
        key = me.now << 1  # delay(0): no progress, for the watchdog
        if key == me.stall_key:
            self._stalled(me)
        else:
            me.stall_key = key
            me.stall_n = 0

    async def preempt(self, point: str) -> None:
        """A named preemption point: a place where the kernel has an unlocked window.

        The strategy may hold the actor back here by a bounded number of ns (recorded as a
        decision); then the actor synchronises, so any actor that is earlier runs first.
        """
        me = self._current
        if me is None:
            raise PrimitiveMisuse(f"preempt({point!r}) outside an actor")
        if self._delays:
            d = self.strategy.preempt_delay(me, point)
            self.decisions.append((0, d))
            me.now += d
        await self.sync()

    async def block(self, on: Any) -> None:
        """Park the current actor until a primitive calls :meth:`make_ready` (engine use).

        Set ``actor.timed`` first when a timer will wake it (a wait with a timeout)."""
        aw = self._block_step(on)
        if aw is not None:
            await aw

    def _block_step(self, on: Any) -> Awaitable[Any] | None:
        """:meth:`block` as a plain call (engine primitives): what the caller must await."""
        me = self._current
        assert me is not None
        me.state = BLOCKED
        me.blocked_on = on
        me.blocked_since = me.now
        if not me.timed and not me.daemon:
            self._live -= 1
            if self._live == 0:
                self._check_stuck(me.now)
        if self.stop_on_lock_cycle and self._end is None and closes_cycle(me, on):
            self._stop_deadlocked(me.now)
        return self._switch(me)

    # -- running ----------------------------------------------------------------------------

    async def run(self, until: int | None = None) -> RunResult:
        """Run every spawned actor until all return or virtual time passes ``until`` (ns).

        Events at exactly ``until`` still happen. Raises :class:`ActorCrashed` if an actor
        raised, :class:`WatchdogError` if one stopped advancing its clock, and
        :class:`DeadlockError` if the run deadlocked. However the run stops, the recorder
        keeps no event later than the instant it stopped at (``sim.now`` afterwards).
        """
        if self._running:
            raise PrimitiveMisuse("Sim.run() is already running")
        if until is not None and (not isinstance(until, int) or until < 0):
            raise PrimitiveMisuse(f"run(until={until!r}): need a non-negative int of ns")
        if self._main is not None:
            # Another run on the same Sim (spawn more actors, run again) continues virtual time,
            # but only if every earlier actor returned: the others' tasks were cancelled when
            # the previous run ended, and the old end state would otherwise be returned as is.
            new = {id(p[0]) for p in self._pending}
            left = [a.name for a in self.actors if a.state != DONE and id(a) not in new]
            if left:
                raise PrimitiveMisuse(
                    f"Sim.run() again: actors {left} did not return in the previous run (it "
                    f"ended by {self._end[0] if self._end else 'cancellation'}); a Sim can run "
                    "again only after every actor returned"
                )
            self._end = None
            self._cancelled = False
            self._main_parked = False
        self._until_key = _NEVER if until is None else (until << 1) | 1
        self._until = _NEVER if until is None else until
        self._running = True
        self._main = trio.lowlevel.current_task()
        self._live = sum(1 for a, _, _ in self._pending if not a.daemon)
        try:
            if self._fast:
                await run_fast(self)
            else:
                await run_trio(self)
        except BaseExceptionGroup as group:
            exc = single_exception(group)
            # keep ActorCrashed.__cause__ (the actor's own exception); drop the group context
            raise exc from exc.__cause__
        finally:
            if self._end is None:
                # stopped by a crash, Ctrl-C or a cancellation: at the processing frontier
                # (the crash's instant for a crash); nothing later is kept
                self._time = self._frontier()
            self._running = False
            self._current = None
            self.recorder.close(until=self._time)
        assert self._end is not None
        reason, info = self._end
        if reason == "deadlock":
            waiting, cycle = info
            raise DeadlockError(self._time, waiting, cycle)
        return RunResult(reason, self._time, tuple(self.decisions), self.switches, self.syncs)


def is_fifo(strategy: Strategy) -> bool:
    return isinstance(strategy, Fifo)
