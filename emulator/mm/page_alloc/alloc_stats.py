"""Per-CPU allocation outcomes by order: what ``summary.json``'s per-order table reports.

Not a kernel structure: the kernel counts allocations in /proc/vmstat (``pgalloc_*``,
``allocstall_*``) but keeps no per-order latency or pcp hit rate; this is the emulator's own
measurement, kept per CPU (:attr:`Cpu.stats <emulator.mm.page_alloc.allocator.Cpu.stats>`) so the
fast path touches no shared state for it.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from emulator.mm.snapshot import NR_PAGE_ORDERS

if TYPE_CHECKING:
    from emulator.mm.page_alloc.allocator import Cpu

__all__ = ["OrderStats", "order_summary"]


class OrderStats:
    """Allocation outcomes of one order: attempts, pcp hits, failures by reason, latencies."""

    __slots__ = ("attempts", "failure_reasons", "failures", "latencies", "pcp_hits", "refills")

    def __init__(self) -> None:
        self.attempts = 0
        self.pcp_hits = 0
        self.refills = 0
        self.failures = 0
        self.failure_reasons: Counter[str] = Counter()
        self.latencies = array("q")

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: int) -> int:
            if not lat:
                return 0
            return lat[min(len(lat) - 1, (len(lat) * p + 99) // 100 - 1)]

        return {
            "attempts": self.attempts,
            "pcp_hits": self.pcp_hits,
            "pcp_refills": self.refills,
            "failures": self.failures,
            "failure_reasons": dict(sorted(self.failure_reasons.items())),
            "latency_ns": {"p50": pct(50), "p99": pct(99), "max": lat[-1] if lat else 0},
        }


def order_summary(cpus: Iterable[Cpu]) -> dict[int, dict[str, Any]]:
    """Allocation outcomes per order, all CPUs merged (orders with attempts only)."""
    cpus = list(cpus)
    out = {}
    for order in range(NR_PAGE_ORDERS):
        merged = OrderStats()
        for c in cpus:
            s = c.stats[order]
            merged.attempts += s.attempts
            merged.pcp_hits += s.pcp_hits
            merged.refills += s.refills
            merged.failures += s.failures
            merged.failure_reasons.update(s.failure_reasons)
            merged.latencies.extend(s.latencies)
        if merged.attempts:
            out[order] = merged.summary()
    return out
