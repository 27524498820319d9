"""Zone watermarks and reserves: their setup (with khugepaged's minimum) and their checks.

Setup: these functions recompute, for every zone of a :class:`~emulator.mm.machine.Machine`,
what the kernel recomputes at boot and when the sysctls change:

* :func:`calculate_min_free_kbytes` (page_alloc.c:6119),
* :func:`setup_per_zone_wmarks` (``__setup_per_zone_wmarks``, page_alloc.c:6008),
* :func:`setup_per_zone_lowmem_reserve` (page_alloc.c:5978; the v6.12.0 rule, where an empty
  upper zone also gives 0 — 6.12.y stable dropped that special case),
* :func:`set_recommended_min_free_kbytes` (mm/khugepaged.c:2584),
* :func:`init_per_zone_wmark_min` (the postcore initcall) followed by khugepaged's start.

Checks: functions over a :class:`~emulator.mm.zone.Zone` model
``__zone_watermark_unusable_free``, ``__zone_watermark_ok`` (with the order > 0 free-list scan),
``zone_watermark_ok`` and ``zone_watermark_fast`` (the order-0 shortcut and the boost-ignoring
retry). They read the zone's counters and lists without taking ``zone->lock``, as the kernel
does.

Simplified: no HIGHMEM zones (x86-64), ``zone_pcp_update`` / ``refresh_zone_stat_thresholds``
are left to the pcp layer (it can register a sysctl observer), ``totalreserve_pages`` is not kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_CMA,
    ALLOC_HIGHATOMIC,
    ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_RESERVES,
    ALLOC_WMARK_MASK,
)
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
)
from emulator.mm.zone import (
    MAX_NR_ZONES,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    WMARK_PROMO,
    ZONE_MOVABLE,
    ZONE_NORMAL,
    Zone,
)


class _NodeZones(Protocol):
    @property
    def zones(self) -> Sequence[Zone]: ...


class WatermarkMachine(Protocol):
    """What the watermark setup reads and writes of a machine
    (:class:`~emulator.mm.machine.Machine`): its nodes' zones and the sysctls behind them."""

    min_free_kbytes: int
    user_min_free_kbytes: int
    watermark_scale_factor: int
    lowmem_reserve_ratio: list[int]
    thp_enabled: bool

    @property
    def nodes(self) -> Sequence[_NodeZones]: ...

    @property
    def wmark_observers(self) -> Sequence[Callable[[Any], None]]: ...

    def all_zones(self) -> Iterator[Zone]: ...


SWAP_CLUSTER_MAX = 32
MIN_FREE_KBYTES_FLOOR = 128
MIN_FREE_KBYTES_CEIL = 262144


def int_sqrt(x: int) -> int:
    """Models lib/math/int_sqrt.c: int_sqrt. Floor of the square root."""
    return math.isqrt(x)


def mult_frac(x: int, numer: int, denom: int) -> int:
    """mult_frac(x, n, d) = (x/d)*n + ((x%d)*n)/d, which is floor(x*n/d) for x >= 0."""
    q, r = divmod(x, denom)
    return q * numer + (r * numer) // denom


def nr_free_zone_pages(zones: Iterable[Zone], offset: int) -> int:
    """Models mm/page_alloc.c: nr_free_zone_pages. Sum of managed - high_wmark_pages over
    zones with index <= offset."""
    total = 0
    for z in zones:
        if z.zone_idx <= offset:
            high = z.high_wmark_pages
            if z.managed_pages > high:
                total += z.managed_pages - high
    return total


def nr_free_buffer_pages(machine: WatermarkMachine) -> int:
    """Models mm/page_alloc.c: nr_free_buffer_pages. nr_free_zone_pages(gfp_zone(GFP_USER) =
    ZONE_NORMAL)."""
    return nr_free_zone_pages(machine.all_zones(), ZONE_NORMAL)


def min_free_kbytes_for(lowmem_kbytes: int) -> int:
    """The boot formula: clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144)."""
    return min(max(int_sqrt(lowmem_kbytes * 16), MIN_FREE_KBYTES_FLOOR), MIN_FREE_KBYTES_CEIL)


def calculate_min_free_kbytes(machine: WatermarkMachine) -> None:
    """Models mm/page_alloc.c: calculate_min_free_kbytes (a user-set larger value wins)."""
    lowmem_kbytes = nr_free_buffer_pages(machine) * 4
    new = int_sqrt(lowmem_kbytes * 16)
    if new > machine.user_min_free_kbytes:
        machine.min_free_kbytes = min(max(new, MIN_FREE_KBYTES_FLOOR), MIN_FREE_KBYTES_CEIL)


def setup_per_zone_wmarks(machine: WatermarkMachine) -> None:
    """Models mm/page_alloc.c: __setup_per_zone_wmarks (and resets every watermark_boost).

    min = pages_min * managed / lowmem_pages (ZONE_MOVABLE: clamp(managed/1024, 32, 128));
    delta = max(min_share / 4, managed * watermark_scale_factor / 10000);
    low = min + delta, high = low + delta, promo = high + delta.
    """
    pages_min = machine.min_free_kbytes >> 2  # PAGE_SHIFT - 10
    wsf = machine.watermark_scale_factor
    zones = list(machine.all_zones())
    lowmem_pages = sum(z.managed_pages for z in zones if z.zone_idx != ZONE_MOVABLE)
    for z in zones:
        tmp = pages_min * z.managed_pages // lowmem_pages if lowmem_pages else 0
        if z.zone_idx == ZONE_MOVABLE:
            z._watermark[WMARK_MIN] = min(max(z.managed_pages // 1024, SWAP_CLUSTER_MAX), 128)
        else:
            z._watermark[WMARK_MIN] = tmp
        tmp = max(tmp >> 2, mult_frac(z.managed_pages, wsf, 10000))
        z.watermark_boost = 0
        z._watermark[WMARK_LOW] = z._watermark[WMARK_MIN] + tmp
        z._watermark[WMARK_HIGH] = z._watermark[WMARK_LOW] + tmp
        z._watermark[WMARK_PROMO] = z._watermark[WMARK_HIGH] + tmp
    for hook in machine.wmark_observers:
        hook(machine)


def setup_per_zone_lowmem_reserve(machine: WatermarkMachine) -> None:
    """Models mm/page_alloc.c: setup_per_zone_lowmem_reserve (v6.12.0).

    lowmem_reserve[j] of zone i = (managed pages of zones i+1..j) / ratio[i]; 0 when the ratio is
    0, zone i is empty, or zone j is empty.
    """
    ratios = machine.lowmem_reserve_ratio
    for node in machine.nodes:
        for i in range(MAX_NR_ZONES - 1):
            zone = node.zones[i]
            ratio = ratios[i]
            clear = not ratio or not zone.managed_pages
            managed = 0
            for j in range(i + 1, MAX_NR_ZONES):
                upper = node.zones[j]
                managed += upper.managed_pages
                if clear or not upper.managed_pages:
                    zone.lowmem_reserve[j] = 0
                else:
                    zone.lowmem_reserve[j] = managed // ratio


def recommended_min_free_kbytes(machine: WatermarkMachine) -> int:
    """khugepaged's value: pageblock_nr_pages * nr_zones * (2 + MIGRATE_PCPTYPES^2) pages, capped
    at 5% of nr_free_buffer_pages, in kB (nr_zones: populated zones up to ZONE_NORMAL)."""
    nr_zones = sum(1 for z in machine.all_zones() if z.populated and z.zone_idx <= ZONE_NORMAL)
    recommended = PAGEBLOCK_NR_PAGES * nr_zones * 2
    recommended += PAGEBLOCK_NR_PAGES * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
    recommended = min(recommended, nr_free_buffer_pages(machine) // 20)
    return recommended << 2


def set_recommended_min_free_kbytes(machine: WatermarkMachine) -> None:
    """Models mm/khugepaged.c: set_recommended_min_free_kbytes (raise only, then re-setup)."""
    if not machine.thp_enabled:
        calculate_min_free_kbytes(machine)
    else:
        rec = recommended_min_free_kbytes(machine)
        if rec > machine.min_free_kbytes:
            machine.min_free_kbytes = rec
    setup_per_zone_wmarks(machine)


def init_per_zone_wmark_min(machine: WatermarkMachine) -> None:
    """Boot: init_per_zone_wmark_min() then, with THP enabled, khugepaged's start
    (hugepage_init -> start_stop_khugepaged -> set_recommended_min_free_kbytes)."""
    calculate_min_free_kbytes(machine)
    setup_per_zone_wmarks(machine)
    setup_per_zone_lowmem_reserve(machine)
    if machine.thp_enabled:
        set_recommended_min_free_kbytes(machine)


# ---------------------------------------------------------------------------------- checks

_NT = MIGRATE_TYPES


def zone_watermark_unusable_free(zone: Zone, order: int, alloc_flags: int) -> int:
    """Models mm/page_alloc.c: __zone_watermark_unusable_free."""
    unusable = (1 << order) - 1
    if not alloc_flags & ALLOC_RESERVES:
        unusable += zone.nr_free_highatomic
    if not alloc_flags & ALLOC_CMA:
        unusable += zone.nr_free_cma
    return unusable


def zone_watermark_ok_free(
    zone: Zone, order: int, mark: int, highest_zoneidx: int, alloc_flags: int, free_pages: int
) -> bool:
    """Models mm/page_alloc.c: __zone_watermark_ok (exactly, including the order>0 rule).

    ``free_pages`` is the caller's count (NR_FREE_PAGES, or a snapshot); it may go negative.
    """
    mn = mark
    free_pages -= zone_watermark_unusable_free(zone, order, alloc_flags)
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            mn -= mn // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                mn -= mn // 4
        if alloc_flags & ALLOC_OOM:
            mn -= mn // 2
    if free_pages <= mn + zone.lowmem_reserve[highest_zoneidx]:
        return False
    if not order:
        return True
    nxt = zone.memmap.nxt
    base = zone.sbase
    for o in range(order, NR_PAGE_ORDERS):
        if not zone.nr_free[o]:
            continue
        s = base + o * _NT
        for mt in range(MIGRATE_PCPTYPES):
            if nxt[s + mt] != s + mt:
                return True
        if alloc_flags & ALLOC_CMA and nxt[s + MIGRATE_CMA] != s + MIGRATE_CMA:
            return True
        if (
            alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM)
            and nxt[s + MIGRATE_HIGHATOMIC] != s + MIGRATE_HIGHATOMIC
        ):
            return True
    return False


def zone_watermark_ok(
    zone: Zone, order: int, mark: int, highest_zoneidx: int, alloc_flags: int = 0
) -> bool:
    """Models mm/page_alloc.c: zone_watermark_ok (free_pages = NR_FREE_PAGES)."""
    return zone_watermark_ok_free(
        zone, order, mark, highest_zoneidx, alloc_flags, zone.nr_free_pages
    )


def zone_watermark_fast(
    zone: Zone, order: int, mark: int, highest_zoneidx: int, alloc_flags: int = 0
) -> bool:
    """Models mm/page_alloc.c: zone_watermark_fast (order-0 shortcut, boost-ignoring retry).

    The kernel's __GFP_HIGH test is expressed by ALLOC_MIN_RESERVE, which
    gfp_to_alloc_flags sets from it.
    """
    free_pages = zone.nr_free_pages
    if not order:
        usable_free = free_pages
        reserved = zone_watermark_unusable_free(zone, 0, alloc_flags)
        usable_free -= min(usable_free, reserved)
        if usable_free > mark + zone.lowmem_reserve[highest_zoneidx]:
            return True
    if zone_watermark_ok_free(zone, order, mark, highest_zoneidx, alloc_flags, free_pages):
        return True
    if (
        not order
        and alloc_flags & ALLOC_MIN_RESERVE
        and zone.watermark_boost
        and (alloc_flags & ALLOC_WMARK_MASK) == WMARK_MIN
    ):
        mark = zone._watermark[WMARK_MIN]
        return zone_watermark_ok_free(zone, order, mark, highest_zoneidx, alloc_flags, free_pages)
    return False


__all__ = [
    "WatermarkMachine",
    "calculate_min_free_kbytes",
    "init_per_zone_wmark_min",
    "min_free_kbytes_for",
    "mult_frac",
    "nr_free_buffer_pages",
    "recommended_min_free_kbytes",
    "set_recommended_min_free_kbytes",
    "setup_per_zone_lowmem_reserve",
    "setup_per_zone_wmarks",
    "zone_watermark_fast",
    "zone_watermark_ok",
    "zone_watermark_ok_free",
    "zone_watermark_unusable_free",
]
