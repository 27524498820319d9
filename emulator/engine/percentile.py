"""Nearest-rank percentiles, the one definition the summary, the latency report and the
scenarios' reports use.

The p-th percentile of n sorted values is the value of rank ceil(n * p / 100) (1-based, at
least 1): a value that occurred, never an interpolation, so p50/p99/max of a run are latencies
some allocation had. No values give 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["nearest_rank", "percentile"]


class SortedValues(Protocol):
    """Values in ascending order: a list, an array or a NumPy vector."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Any: ...


def nearest_rank(sorted_values: SortedValues, p: int) -> int:
    """The ``p``-th percentile (0 < p <= 100) of values already sorted ascending; 0 if none."""
    n = len(sorted_values)
    if not n:
        return 0
    return int(sorted_values[min(n - 1, (n * p + 99) // 100 - 1)])


def percentile(values: Iterable[int], p: int) -> int:
    """The ``p``-th percentile (nearest rank) of ``values`` in any order; 0 if none."""
    return nearest_rank(sorted(values), p)
