"""Run one picklable function over many items in worker processes.

``run_many(fn, items, jobs=J)`` is the parallel executor under ``mmemu explore`` (and the other
commands that run many independent emulations): it runs ``fn(item)`` for every item and yields
``(index, result)`` pairs as the items finish, in completion order.

* ``jobs=None`` uses every core this process may run on; ``jobs=1`` runs the items in this process,
  in order, with no pool (tests, debuggers and profilers see ordinary frames).
* Workers are started with the ``spawn`` method on every platform: a worker is a fresh interpreter
  that imports ``fn``'s module, so no trio state, lock or open file is inherited from the parent.
  ``fn`` must therefore be a top-level function of an importable module, and the items and results
  must pickle.
* A run is a pure function of its item: the executor adds no randomness and no per-worker state,
  so an item carries everything that decides its result (its seed included), and the same items
  give the same results whatever ``jobs`` is and whichever worker runs them.
* An item whose function raises, whose result does not pickle, or whose worker process dies
  (``os._exit``, a signal, the OOM killer) yields an :class:`ItemError` in place of its result;
  the other items carry on, and a replacement worker is started.
* ``progress(done, total)`` is called once before the first item (``done=0``) and after every
  item.

Closing the iterator early (``break``, an exception in the consumer, Ctrl-C) stops the workers.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Literal, TypeVar

import attrs

__all__ = ["ItemError", "default_jobs", "run_many"]

T = TypeVar("T")
R = TypeVar("R")

ProgressFn = Callable[[int, int], None]


@attrs.frozen
class ItemError:
    """What an item produced instead of a result.

    ``kind`` is ``"raised"`` (the function raised; ``error`` is ``"Type: message"`` and
    ``traceback`` the frames from the function down), ``"unpicklable"`` (the result could not be
    sent back from the worker) or ``"died"`` (the worker process ended while running the item;
    ``error`` names its exit code or signal).
    """

    index: int
    kind: Literal["raised", "unpicklable", "died"]
    error: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"item {self.index}: {self.error}"


def default_jobs() -> int:
    """The number of cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def _call(fn: Callable[[T], R], index: int, item: T) -> R | ItemError:
    """Run one item, turning an exception into an ItemError.

    Used in-process (jobs=1) and in the workers, so both give the same ItemError text.
    """
    try:
        return fn(item)
    except Exception as exc:
        tb = exc.__traceback__
        frames = traceback.format_exception(type(exc), exc, tb.tb_next if tb else None)
        return ItemError(
            index=index,
            kind="raised",
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(frames),
        )


def _worker(fn: Callable[[T], R], conn: Connection) -> None:
    """A worker process's main loop: receive ``(index, item)``, send back ``(index, result)``.

    ``None`` asks it to stop. Ctrl-C is ignored here: the parent handles it and stops the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        index, item = message
        result = _call(fn, index, item)
        try:
            payload = pickle.dumps((index, result), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            payload = pickle.dumps(
                (
                    index,
                    ItemError(
                        index=index,
                        kind="unpicklable",
                        error=f"result does not pickle: {type(exc).__name__}: {exc}",
                    ),
                ),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        conn.send_bytes(payload)


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker process ended"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process killed by {name}"
    return f"worker process exited with status {exitcode}"


@attrs.define
class _Worker:
    process: BaseProcess
    conn: Connection
    current: int | None = None  # index of the item it is running


def run_many(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[tuple[int, R | ItemError]]:
    """Run ``fn`` over ``items``; yield ``(index, result or ItemError)`` as each item finishes.

    ``jobs`` is the number of worker processes (``None``: :func:`default_jobs`; ``1``: run in this
    process, no pool). Raises ValueError for ``jobs < 1``.
    """
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1 (got {jobs})")
    work = list(items)
    total = len(work)
    njobs = default_jobs() if jobs is None else jobs
    if progress is not None:
        progress(0, total)
    if njobs == 1 or total <= 1:
        return _run_inline(fn, work, progress)
    return _run_pool(fn, work, min(njobs, total), progress)


def _run_inline(
    fn: Callable[[T], R], work: list[T], progress: ProgressFn | None
) -> Iterator[tuple[int, R | ItemError]]:
    total = len(work)
    for index, item in enumerate(work):
        result = _call(fn, index, item)
        if progress is not None:
            progress(index + 1, total)
        yield index, result


def _run_pool(
    fn: Callable[[T], R], work: list[T], njobs: int, progress: ProgressFn | None
) -> Iterator[tuple[int, R | ItemError]]:
    ctx = multiprocessing.get_context("spawn")
    total = len(work)
    pending = iter(enumerate(work))
    workers: list[_Worker] = []
    done = 0

    def start() -> _Worker:
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_worker, args=(fn, child), daemon=True)
        process.start()
        child.close()
        return _Worker(process=process, conn=parent)

    def feed(worker: _Worker) -> bool:
        """Give the worker its next item; False when there is none."""
        nxt = next(pending, None)
        if nxt is None:
            worker.current = None
            return False
        worker.current = nxt[0]
        worker.conn.send(nxt)
        return True

    try:
        for _ in range(njobs):
            worker = start()
            workers.append(worker)
            feed(worker)
        while done < total:
            busy = [w for w in workers if w.current is not None]
            waitables: list[object] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
            ready = multiprocessing.connection.wait(waitables)  # type: ignore[arg-type]
            for worker in busy:
                index = worker.current
                assert index is not None
                outcome: R | ItemError
                if worker.conn in ready or worker.conn.poll():
                    try:
                        got_index, outcome = pickle.loads(worker.conn.recv_bytes())
                    except (EOFError, OSError):
                        # The worker died before its result arrived.
                        worker.process.join()
                        outcome = ItemError(
                            index=index,
                            kind="died",
                            error=_exit_description(worker.process.exitcode),
                        )
                        worker.conn.close()
                        replacement = start()
                        workers[workers.index(worker)] = replacement
                        worker = replacement
                    else:
                        assert got_index == index
                elif worker.process.sentinel in ready:
                    worker.process.join()
                    outcome = ItemError(
                        index=index,
                        kind="died",
                        error=_exit_description(worker.process.exitcode),
                    )
                    worker.conn.close()
                    replacement = start()
                    workers[workers.index(worker)] = replacement
                    worker = replacement
                else:
                    continue
                done += 1
                feed(worker)
                if progress is not None:
                    progress(done, total)
                yield index, outcome
    finally:
        _stop(workers)


def _stop(workers: list[_Worker]) -> None:
    """Ask idle workers to stop, terminate busy ones, and reap them all."""
    for worker in workers:
        if worker.process.is_alive():
            if worker.current is None:
                try:
                    worker.conn.send(None)
                except OSError:
                    worker.process.terminate()
            else:
                worker.process.terminate()
    for worker in workers:
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
