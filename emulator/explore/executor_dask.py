"""The Dask distributed backend of the parallel executor (:mod:`emulator.explore.executor`).

``run_on_cluster(fn, items, "tcp://scheduler:8786")`` (or a ``distributed.Client``) runs the
items as tasks on a Dask cluster instead of local worker processes, with
:func:`~emulator.explore.executor.run_many`'s contract:
``(index, result or ItemError)`` pairs in completion order, ``progress(done, total)``. A run is
a pure function of its item, so the results are the same as local ones, whichever worker runs
an item. The workers need mmemu installed (the same version: ``pip install 'mmemu[cluster]'``),
since ``fn`` is sent by reference to its module. An item whose worker dies is retried by the
scheduler on another worker; one that kills its workers every time (Dask's ``KilledWorker``)
yields an ItemError of kind ``died``.

Needs the optional extra ``mmemu[cluster]`` (``dask[distributed]``); without it,
:class:`ClusterUnavailable` says how to install it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import attrs

from emulator.explore.executor import ItemError, ProgressFn, run_many

__all__ = ["ClusterUnavailable", "run_on_cluster"]

T = TypeVar("T")
R = TypeVar("R")


class ClusterUnavailable(Exception):
    """Dask is not installed, or the scheduler cannot be reached: one line saying which."""


def _task(fn: Callable[[T], R], index: int, item: T) -> tuple[int, R | ItemError]:
    """One item on a Dask worker, run as the local executor runs it in-process (a raised
    exception becomes the same ItemError)."""
    _, outcome = next(run_many(fn, [item], jobs=1))
    if isinstance(outcome, ItemError):
        outcome = attrs.evolve(outcome, index=index)
    return index, outcome


def run_on_cluster(
    fn: Callable[[T], R],
    items: Iterable[T],
    cluster: Any,
    progress: ProgressFn | None = None,
) -> Iterator[tuple[int, R | ItemError]]:
    """Run ``fn`` over ``items`` on the Dask cluster ``cluster`` (a scheduler address or a
    ``distributed.Client``); yield ``(index, result or ItemError)`` as each item finishes."""
    work = list(items)
    if progress is not None:
        progress(0, len(work))
    try:
        import distributed
    except ImportError:
        raise ClusterUnavailable(
            "the Dask backend needs the cluster extra: pip install 'mmemu[cluster]'"
        ) from None
    own = None
    if isinstance(cluster, distributed.Client):
        client = cluster
    else:
        try:
            client = own = distributed.Client(cluster, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterUnavailable(
                f"cannot reach the Dask scheduler {cluster!r}: {exc}"
            ) from None
    return _results(client, own, fn, work, progress)


def _results(
    client: Any,
    own: Any,
    fn: Callable[[T], R],
    work: list[T],
    progress: ProgressFn | None,
) -> Iterator[tuple[int, R | ItemError]]:
    import distributed

    total = len(work)
    try:
        futures = client.map(_task, [fn] * total, range(total), work, pure=False)
        index_of = {f.key: i for i, f in enumerate(futures)}
        for done, future in enumerate(distributed.as_completed(futures), start=1):
            outcome: R | ItemError
            try:
                got, outcome = future.result()
            except Exception as exc:  # KilledWorker, a lost connection: the item did not run
                got = index_of[future.key]
                outcome = ItemError(index=got, kind="died", error=f"{type(exc).__name__}: {exc}")
            if progress is not None:
                progress(done, total)
            yield got, outcome
    finally:
        if own is not None:
            own.close()
