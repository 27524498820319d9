"""Per-CPU allocation outcomes by order: what ``summary.json``'s per-order table reports.

Not a kernel structure: the kernel counts allocations in /proc/vmstat (``pgalloc_*``,
``allocstall_*``) but keeps no per-order latency or pcp hit rate; this is the emulator's own
measurement, kept per CPU (:attr:`Cpu.stats <emulator.mm.page_alloc.pcp.Cpu.stats>`) so the
fast path touches no shared state for it.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from emulator.engine.percentile import nearest_rank
from emulator.mm.alloc_latency import FAST_PATH, INTERLEAVING, NR_PARTS, PARTS
from emulator.mm.snapshot import NR_PAGE_ORDERS


class SlowpathStats:
    """Slow-path outcomes of one order (summary.json ``slowpath``)."""

    __slots__ = (
        "captured",
        "entered",
        "failed",
        "succeeded_after_compaction",
        "succeeded_after_reclaim",
        "succeeded_freelist",
        "would_oom",
    )

    def __init__(self) -> None:
        self.entered = 0
        self.succeeded_freelist = 0
        self.succeeded_after_reclaim = 0
        self.succeeded_after_compaction = 0
        self.captured = 0
        self.failed: Counter[str] = Counter()
        self.would_oom = 0

    def merge(self, other: SlowpathStats) -> None:
        for name in self.__slots__:
            if name == "failed":
                self.failed.update(other.failed)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, Any]:
        return {
            "entered": self.entered,
            "succeeded_freelist": self.succeeded_freelist,
            "succeeded_after_reclaim": self.succeeded_after_reclaim,
            "succeeded_after_compaction": self.succeeded_after_compaction,
            "captured": self.captured,
            "failed": dict(sorted(self.failed.items())),
            "would_oom": self.would_oom,
        }


__all__ = ["OrderStats", "SlowpathStats", "latency_parts", "order_summary", "part_columns"]


class OrderStats:
    """Allocation outcomes of one order: attempts, pcp hits, failures by reason, latencies."""

    __slots__ = (
        "attempts",
        "failure_reasons",
        "failures",
        "latencies",
        "parts",
        "pcp_hits",
        "refills",
        "starts",
    )

    def __init__(self) -> None:
        self.attempts = 0
        self.pcp_hits = 0
        self.refills = 0
        self.failures = 0
        self.failure_reasons: Counter[str] = Counter()
        self.latencies = array("q")
        #: when each allocation began (virtual ns), in the order of ``latencies``
        self.starts = array("q")
        #: the allocations that crossed a part boundary (emulator.mm.alloc_latency): flat rows
        #: of (index into ``latencies``, ns per part); the others were all ``fast_path``
        self.parts = array("q")

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        return {
            "attempts": self.attempts,
            "pcp_hits": self.pcp_hits,
            "pcp_refills": self.refills,
            "failures": self.failures,
            "failure_reasons": dict(sorted(self.failure_reasons.items())),
            "latency_ns": {
                "p50": nearest_rank(lat, 50),
                "p99": nearest_rank(lat, 99),
                "max": lat[-1] if lat else 0,
            },
            "latency_parts": latency_parts(self),
        }


def part_columns(stats: OrderStats) -> list[list[int]]:
    """Every allocation's ns per part (one list per part of
    :data:`~emulator.mm.alloc_latency.PARTS`, in the order of ``stats.latencies``)."""
    n = len(stats.latencies)
    cols = [[0] * n for _ in range(NR_PARTS)]
    cols[FAST_PATH] = list(stats.latencies)
    rows = stats.parts
    width = NR_PARTS + 1
    for r in range(0, len(rows), width):
        i = rows[r]
        for p in range(NR_PARTS):
            cols[p][i] = rows[r + 1 + p]
    return cols


def latency_parts(stats: OrderStats) -> dict[str, Any]:
    """summary.json ``allocations.N.latency_parts``: per part the total ns, its share of the
    order's total latency, and per-allocation p50, p99 and max; ``interleaving`` names the
    parts that come from the simulated interleaving (the others restate the cost table)."""
    cols = part_columns(stats)
    total = sum(stats.latencies)
    parts = {}
    for name, col in zip(PARTS, cols, strict=True):
        s = sum(col)
        v = sorted(col)
        parts[name] = {
            "total_ns": s,
            "share": round(s / total, 4) if total else 0.0,
            "p50": nearest_rank(v, 50),
            "p99": nearest_rank(v, 99),
            "max": v[-1] if v else 0,
        }
    return {
        "total_ns": total,
        "timed": len(stats.parts) // (NR_PARTS + 1),
        "interleaving": sorted(INTERLEAVING),
        "parts": parts,
    }


def order_summary(per_cpu: Iterable[Sequence[OrderStats]]) -> dict[int, dict[str, Any]]:
    """Allocation outcomes per order, every CPU's ``stats`` merged (orders with attempts
    only)."""
    cpus = list(per_cpu)
    out = {}
    for order in range(NR_PAGE_ORDERS):
        merged = OrderStats()
        for c in cpus:
            s = c[order]
            merged.attempts += s.attempts
            merged.pcp_hits += s.pcp_hits
            merged.refills += s.refills
            merged.failures += s.failures
            merged.failure_reasons.update(s.failure_reasons)
            base = len(merged.latencies)
            merged.latencies.extend(s.latencies)
            merged.starts.extend(s.starts)
            rows = array("q", s.parts)
            for r in range(0, len(rows), NR_PARTS + 1):
                rows[r] += base
            merged.parts.extend(rows)
        if merged.attempts:
            out[order] = merged.summary()
    return out
