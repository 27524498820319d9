"""ddmin finds a 1-minimal failing sublist (hypothesis over random inputs and culprits)."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from emulator.explore.schedules import ddmin


def _tester(
    fails: Callable[[set[int]], bool],
) -> tuple[Callable[[list[list[int]]], int | None], list[list[int]]]:
    calls: list[list[int]] = []

    def first_failing(cands: list[list[int]]) -> int | None:
        calls.extend(cands)
        return next((i for i, c in enumerate(cands) if fails(set(c))), None)

    return first_failing, calls


@given(st.data())
def test_ddmin_isolates_exactly_the_culprits_a_failure_needs_all_of(data: st.DataObject) -> None:
    items = data.draw(st.lists(st.integers(0, 10_000), min_size=1, max_size=80, unique=True))
    culprits = set(data.draw(st.lists(st.sampled_from(items), max_size=4, unique=True)))
    first_failing, calls = _tester(lambda kept: culprits <= kept)
    result = ddmin(items, first_failing)
    assert set(result) == culprits
    # never more tests than the quadratic bound of ddmin
    assert len(calls) <= 1 + 2 * len(items) ** 2


@given(st.data())
def test_ddmin_keeps_one_culprit_when_any_one_suffices(data: st.DataObject) -> None:
    items = data.draw(st.lists(st.integers(0, 10_000), min_size=1, max_size=80, unique=True))
    culprits = set(data.draw(st.lists(st.sampled_from(items), min_size=1, unique=True)))
    first_failing, _ = _tester(lambda kept: bool(culprits & kept))
    result = ddmin(items, first_failing)
    assert len(result) == 1 and result[0] in culprits


@given(st.lists(st.integers(), max_size=50, unique=True))
def test_a_result_is_one_minimal_for_any_monotone_failure(items: list[int]) -> None:
    # fails when at least two even numbers are kept (monotone): the result keeps exactly two,
    # or everything when the input never had two
    def fails(kept: set[int]) -> bool:
        return sum(1 for x in kept if x % 2 == 0) >= 2

    first_failing, _ = _tester(fails)
    result = ddmin(items, first_failing)
    if fails(set(items)):
        assert fails(set(result)) and len(result) == 2
        assert all(not fails(set(result) - {x}) for x in result)
