"""Models mm/page_alloc.c: page_alloc_sysctl_table[], the allocator's sysctls and their write
handlers (each runs after the parsed value is stored on the machine)."""

from __future__ import annotations

from typing import Protocol

from emulator.mm.page_alloc import watermark
from emulator.mm.page_alloc.watermark import WatermarkMachine
from emulator.mm.tunable import INT_MAX, IntMinMax, IntVecMinMax, Tunable
from emulator.mm.zone import MAX_NR_ZONES

__all__ = [
    "LOWMEM_RESERVE_RATIO",
    "MIN_FREE_KBYTES",
    "MIN_PERCPU_PAGELIST_HIGH_FRACTION",
    "PAGE_ALLOC_TUNABLES",
    "PERCPU_PAGELIST_HIGH_FRACTION",
    "WATERMARK_BOOST_FACTOR",
    "WATERMARK_SCALE_FACTOR",
    "PageAllocTunables",
]


class PageAllocTunables(WatermarkMachine, Protocol):
    """The machine as this table's handlers see it: the watermark setup's view and the
    sysctls they read."""

    watermark_boost_factor: int
    percpu_pagelist_high_fraction: int


#: mm/internal.h: MIN_PERCPU_PAGELIST_HIGH_FRACTION
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8


def min_free_kbytes_sysctl_handler(machine: PageAllocTunables, _old: int) -> None:
    """Models mm/page_alloc.c: min_free_kbytes_sysctl_handler."""
    machine.user_min_free_kbytes = machine.min_free_kbytes
    watermark.setup_per_zone_wmarks(machine)


def watermark_scale_factor_sysctl_handler(machine: PageAllocTunables, _old: int) -> None:
    """Models mm/page_alloc.c: watermark_scale_factor_sysctl_handler."""
    watermark.setup_per_zone_wmarks(machine)


def watermark_boost_factor_written(machine: PageAllocTunables, _old: int) -> None:
    """The kernel's boost_watermark reads the global; each zone here keeps a copy."""
    for z in machine.all_zones():
        z.watermark_boost_factor = machine.watermark_boost_factor


def lowmem_reserve_ratio_sysctl_handler(machine: PageAllocTunables, _old: tuple[int, ...]) -> None:
    """Models mm/page_alloc.c: lowmem_reserve_ratio_sysctl_handler: entries below 1 become 0,
    then setup_per_zone_lowmem_reserve. (The kernel ignores proc_dointvec_minmax's error and
    returns 0, keeping the entries parsed before a bad one; here a malformed write is refused
    whole, before anything runs.)"""
    machine.lowmem_reserve_ratio = [v if v >= 1 else 0 for v in machine.lowmem_reserve_ratio]
    watermark.setup_per_zone_lowmem_reserve(machine)


def percpu_pagelist_high_fraction_sysctl_handler(machine: PageAllocTunables, old: int) -> None:
    """Models mm/page_alloc.c: percpu_pagelist_high_fraction_sysctl_handler: on a change,
    zone_set_pageset_high_and_batch for every zone (the pcp layer's zone_pcp_update hooks).
    The 0-or-at-least-8 check is the parser's (:class:`IntMinMax` ``zero_or_from``)."""
    if machine.percpu_pagelist_high_fraction == old:
        return
    for hook in machine.wmark_observers:
        hook(machine)


MIN_FREE_KBYTES = Tunable(
    "vm.min_free_kbytes",
    "min_free_kbytes",
    None,
    IntMinMax(0, INT_MAX),
    "reserve below which only atomic/reserve allocations proceed (kB; computed at boot)",
    "mm/page_alloc.c: min_free_kbytes (init_per_zone_wmark_min)",
    min_free_kbytes_sysctl_handler,
)
WATERMARK_BOOST_FACTOR = Tunable(
    "vm.watermark_boost_factor",
    "watermark_boost_factor",
    15000,
    IntMinMax(0, INT_MAX),
    "maximum boost after a fragmenting fallback, in 1/10000 of the high mark",
    "mm/page_alloc.c: watermark_boost_factor",
    watermark_boost_factor_written,
)
WATERMARK_SCALE_FACTOR = Tunable(
    "vm.watermark_scale_factor",
    "watermark_scale_factor",
    10,
    IntMinMax(1, 3000),
    "distance between watermarks, in 1/10000 of managed pages",
    "mm/page_alloc.c: watermark_scale_factor",
    watermark_scale_factor_sysctl_handler,
)
PERCPU_PAGELIST_HIGH_FRACTION = Tunable(
    "vm.percpu_pagelist_high_fraction",
    "percpu_pagelist_high_fraction",
    0,
    IntMinMax(0, INT_MAX, zero_or_from=MIN_PERCPU_PAGELIST_HIGH_FRACTION),
    "fraction of a zone a pcp list may hold (0 = default sizing)",
    "mm/page_alloc.c: percpu_pagelist_high_fraction",
    percpu_pagelist_high_fraction_sysctl_handler,
)
LOWMEM_RESERVE_RATIO = Tunable(
    "vm.lowmem_reserve_ratio",
    "lowmem_reserve_ratio",
    (256, 256, 32, 0),  # DMA, DMA32, Normal, Movable (x86-64, no HIGHMEM)
    IntVecMinMax(MAX_NR_ZONES),
    "per-zone divisor of the lowmem reserve (values < 1 mean no reserve)",
    "mm/page_alloc.c: sysctl_lowmem_reserve_ratio[MAX_NR_ZONES]",
    lowmem_reserve_ratio_sysctl_handler,
)

#: page_alloc_sysctl_init: register_sysctl_init("vm", page_alloc_sysctl_table)
PAGE_ALLOC_TUNABLES = (
    MIN_FREE_KBYTES,
    WATERMARK_BOOST_FACTOR,
    WATERMARK_SCALE_FACTOR,
    PERCPU_PAGELIST_HIGH_FRACTION,
    LOWMEM_RESERVE_RATIO,
)
