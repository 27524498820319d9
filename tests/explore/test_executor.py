"""The parallel executor: results per item whatever the number of workers, errors and worker
deaths as results, progress, early close."""

from __future__ import annotations

import os
import random

import pytest

from emulator.explore.executor import ItemError, default_jobs, run_many


def seeded_draws(seed: int) -> list[int]:
    """A pure function of its item: a seeded generator's first draws."""
    rng = random.Random(seed)
    return [rng.randrange(1 << 30) for _ in range(5)]


def fails_on_three(x: int) -> int:
    if x == 3:
        raise RuntimeError(f"item value {x} is refused")
    return x * x


def dies_on_two(x: int) -> int:
    if x == 2:
        os._exit(7)
    return x + 100


def unpicklable_result(x: int) -> object:
    return (lambda: x) if x == 1 else x


def test_jobs_1_and_jobs_2_give_identical_results_per_item() -> None:
    items = list(range(40))
    inline = dict(run_many(seeded_draws, items, jobs=1))
    pooled = dict(run_many(seeded_draws, items, jobs=2))
    assert sorted(inline) == items
    assert inline == pooled
    assert inline[7] == seeded_draws(7)


def test_jobs_1_yields_in_item_order_in_process() -> None:
    assert [i for i, _ in run_many(fails_on_three, range(6), jobs=1)] == list(range(6))


def test_an_exception_becomes_an_item_error_and_the_batch_goes_on() -> None:
    for jobs in (1, 2):
        results = dict(run_many(fails_on_three, range(6), jobs=jobs))
        error = results.pop(3)
        assert isinstance(error, ItemError)
        assert error.kind == "raised"
        assert error.index == 3
        assert error.error == "RuntimeError: item value 3 is refused"
        assert "fails_on_three" in error.traceback
        assert results == {i: i * i for i in (0, 1, 2, 4, 5)}


def test_item_errors_are_the_same_in_process_and_in_workers() -> None:
    inline = dict(run_many(fails_on_three, range(5), jobs=1))
    pooled = dict(run_many(fails_on_three, range(5), jobs=2))
    assert inline == pooled


def test_a_dying_worker_becomes_an_item_error_and_is_replaced() -> None:
    results = dict(run_many(dies_on_two, range(8), jobs=2))
    error = results.pop(2)
    assert isinstance(error, ItemError)
    assert error.kind == "died"
    assert error.error == "worker process exited with status 7"
    assert results == {i: i + 100 for i in range(8) if i != 2}


def test_an_unpicklable_result_becomes_an_item_error() -> None:
    results = dict(run_many(unpicklable_result, range(3), jobs=2))
    assert results[0] == 0 and results[2] == 2
    error = results[1]
    assert isinstance(error, ItemError) and error.kind == "unpicklable"


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_counts_every_item_once_from_zero(jobs: int) -> None:
    calls: list[tuple[int, int]] = []

    def record(done: int, total: int) -> None:
        calls.append((done, total))

    list(run_many(seeded_draws, range(9), jobs=jobs, progress=record))
    assert calls == [(i, 9) for i in range(10)]


def test_closing_the_iterator_early_stops_the_workers() -> None:
    import multiprocessing

    it = run_many(seeded_draws, range(50), jobs=2)
    first = next(it)
    assert first[1] == seeded_draws(first[0])
    it.close()
    assert multiprocessing.active_children() == []


def test_no_items_yield_nothing() -> None:
    assert list(run_many(seeded_draws, [], jobs=2)) == []


def test_jobs_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_many(seeded_draws, [1], jobs=0)


def test_default_jobs_is_at_least_one() -> None:
    assert default_jobs() >= 1
