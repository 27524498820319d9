"""The two engine drivers: how :meth:`Sim.run <emulator.engine.sim.Sim.run>` steps the actors.

Both run the same actors with the same heap, strategy and primitives (all in
:mod:`emulator.engine.sim`), and give byte-identical results:

* the fast driver (:func:`run_fast`, :func:`start_coro`): the actors are plain coroutines that
  the engine steps itself (``coro.send``) inside the task that awaits ``Sim.run``. Parking an
  actor is a bare ``yield`` (:func:`fast_park`) back to that loop, which then sends into the
  next actor; :func:`fast_checkin` lets the loop check in with trio;
* the trio driver (:func:`run_trio`, :func:`actor_main`): one trio task per actor, handed over
  with ``trio.lowlevel.reschedule`` / ``wait_task_rescheduled``.

Only the run loops live here; the scheduler's hot path (``Sim.sync``, ``Sim.delay``, the
primitives' park) stays in :mod:`emulator.engine.sim`, which binds the driver's park and
check-in once per ``Sim``.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Protocol

import trio

from emulator.engine.actor import CRASHED, DONE, RUNNING, Actor
from emulator.engine.errors import (
    ActorCrashed,
    PrimitiveMisuse,
    ReplayDivergence,
    WatchdogError,
)

__all__ = [
    "CHECKIN_EVERY",
    "DriverSim",
    "actor_main",
    "fast_checkin",
    "fast_park",
    "run_fast",
    "run_trio",
    "single_exception",
    "start_coro",
]


class DriverSim(Protocol):
    """What the drivers use of the :class:`~emulator.engine.sim.Sim` they run: its actors, the
    current one, the actors waiting to start, the run's end, the trio hooks, and the
    scheduler's steps (push, pop, dispatch, hand over, switch, crash and return). The
    scheduler lives in :mod:`emulator.engine.sim`, which imports the drivers; this names the
    part of it they call back, so that the drivers do not import it."""

    actors: list[Actor]
    _current: Actor | None
    _cancelled: bool
    _nursery: trio.Nursery | None
    _main_parked: bool
    _end: tuple[str, Any] | None
    _pending: list[tuple[Actor, Callable[..., Awaitable[Any]], tuple[Any, ...]]]
    _abort_fn: Callable[[Any], trio.lowlevel.Abort]

    def _abort_main(self, _raise_cancel: Any) -> trio.lowlevel.Abort: ...
    def _crashed(self, actor: Actor, exc: BaseException) -> BaseException: ...
    def _returned(self, actor: Actor) -> None: ...
    def _push(self, actor: Actor) -> None: ...
    def _pop_next(self) -> Actor | None: ...
    def _dispatch(self) -> None: ...
    async def _switch_from(self, me: Actor) -> None: ...
    def _hand_over(self, nxt: Actor) -> None: ...


_wait_rescheduled = trio.lowlevel.wait_task_rescheduled
_checkpoint = trio.lowlevel.checkpoint

#: how many fast-path synchronisations (no task switch) between check-ins with trio, so that
#: cancellation and Ctrl-C are seen even when one actor runs ahead for a long time
CHECKIN_EVERY = 4096
_CHECKIN = object()  # what an actor yields to the fast driver to let it check in with trio


@types.coroutine
def fast_park() -> Generator[None, None, None]:
    """Park the current actor under the fast driver: back to the loop in :func:`run_fast`,
    which has already been told (``sim._current``) whom to run next."""
    yield None


@types.coroutine
def fast_checkin() -> Generator[object, None, None]:
    """Under the fast driver: let the loop check in with trio, then continue the same actor."""
    yield _CHECKIN


def _reraise(exc: BaseException) -> Generator[None, None, None]:
    """Stands in for a crashed actor's coroutine while its crash waits for its instant."""
    raise exc
    yield  # pragma: no cover  (makes this a generator)


def start_coro(
    sim: DriverSim, actor: Actor, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
) -> None:
    """The fast driver's start of an actor: its coroutine, ready at its start time."""
    try:
        coro = fn(*args)
    except Exception as exc:  # raised before its first await: crash at its first step
        coro = _raise(exc)
    if not isinstance(coro, Coroutine):
        coro = _await(coro)
    actor.coro = coro
    sim._push(actor)


async def actor_main(
    sim: DriverSim,
    actor: Actor,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The trio driver's task of one actor."""
    actor.task = trio.lowlevel.current_task()
    sim._push(actor)
    task_status.started()
    await _wait_rescheduled(sim._abort_fn)
    actor.state = RUNNING
    try:
        await fn(*args)
    except trio.Cancelled:
        raise
    except BaseException as exc:
        if sim._current is actor and not sim._cancelled and not isinstance(exc, ReplayDivergence):
            # A crash is an event like any other: with lookahead the actor may be far ahead
            # of the others, so let every actor that is earlier in virtual time run first.
            # The run then stops at the crash's instant, not at the processing frontier.
            # (Cancelled out of this: another actor crashed earlier, and that crash wins.)
            # A KeyboardInterrupt that hits an actor is ordered the same way: the catch-up
            # is bounded by how far that actor had run ahead.
            sim._push(actor)
            await sim._switch_from(actor)
        err = sim._crashed(actor, exc)
        if err is exc:
            raise
        raise err from exc
    was_current = sim._current is actor
    sim._returned(actor)
    if was_current:
        sim._dispatch()


async def run_trio(sim: DriverSim) -> None:
    async with trio.open_nursery() as nursery:
        sim._nursery = nursery
        pending, sim._pending = sim._pending, []
        for actor, fn, args in pending:
            await nursery.start(actor_main, sim, actor, fn, args)
        sim._dispatch()
        if sim._end is None:
            sim._main_parked = True
            await _wait_rescheduled(sim._abort_main)
        nursery.cancel_scope.cancel()


async def run_fast(sim: DriverSim) -> None:
    """The fast driver: step the current actor's coroutine until it parks (it has then set
    ``_current`` to its successor) or returns, checking in with trio now and then."""
    pending, sim._pending = sim._pending, []
    for actor, fn, args in pending:
        start_coro(sim, actor, fn, args)
    try:
        sim._dispatch()
        left = CHECKIN_EVERY
        while True:
            cur = sim._current
            if cur is None:
                break
            try:
                v = cur.coro.send(None)
            except StopIteration:
                sim._returned(cur)
                sim._dispatch()
                continue
            except BaseException as exc:
                fast_crash(sim, cur, exc)
                continue
            left -= 1
            if v is not None:
                if v is not _CHECKIN:
                    foreign_await(sim, cur, v)
                    continue
                left = 0
            if left <= 0:
                left = CHECKIN_EVERY
                await _checkpoint()
    finally:
        for a in sim.actors:
            coro = a.coro
            if coro is not None and a.state not in (DONE, CRASHED):
                a.coro = None
                try:
                    coro.close()
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    pass  # an actor's clean-up cannot act any more: the run is over


def fast_crash(sim: DriverSim, actor: Actor, exc: BaseException) -> None:
    """An actor raised under the fast driver: order the crash at its instant (as the trio
    driver does), then raise what :meth:`run` reports."""
    if actor.crash is None and not isinstance(exc, ReplayDivergence):
        actor.crash = exc
        actor.coro = _reraise(exc)
        sim._push(actor)
        sim._current = None
        nxt = sim._pop_next()
        if nxt is not None:
            sim._hand_over(nxt)
            return
    exc = actor.crash or exc
    actor.coro = None
    err = sim._crashed(actor, exc)
    if err is exc:
        raise exc
    raise err from exc


def foreign_await(sim: DriverSim, actor: Actor, value: Any) -> None:
    """An actor awaited something that is not an engine primitive (e.g. ``trio.sleep``)."""
    misuse = PrimitiveMisuse(
        f"actor {actor.name!r} at t={actor.now} ns awaited {value!r}, which is not an engine "
        "primitive: actors block only on sim.delay/sync/preempt, locks, wait queues and "
        "completions"
    )
    try:
        actor.coro.throw(misuse)
    except BaseException as exc:
        fast_crash(sim, actor, exc)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _raise(exc: BaseException) -> None:
    raise exc


def single_exception(group: BaseExceptionGroup) -> BaseException:
    """The one exception worth reporting from a nursery's group (an actor crash first)."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for e in exc.exceptions:
                walk(e)
        else:
            leaves.append(exc)

    walk(group)
    for kind in (KeyboardInterrupt, WatchdogError, ActorCrashed):
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0] if leaves else group
