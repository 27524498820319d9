"""GFP flags and what the allocator derives from them.

Models include/linux/gfp_types.h (bit values of Linux 6.12 on x86-64: no CONFIG_KASAN_HW_TAGS,
so ``__GFP_SKIP_ZERO`` and ``__GFP_SKIP_KASAN`` are 0, and no CONFIG_LOCKDEP), include/linux/gfp.h
(``gfp_migratetype``, ``gfp_zone``, ``gfpflags_allow_blocking``) and the mm/page_alloc.c
helpers ``gfp_to_alloc_flags``, ``gfp_to_alloc_flags_cma`` and ``alloc_flags_nofragment``.

Simplifies: no cpusets (``ALLOC_CPUSET`` is set as the kernel sets it but never consulted), no
realtime tasks (the rt/dl ``ALLOC_MIN_RESERVE`` boost does not apply), no HIGHMEM zone (x86-64
has none). ``parse_gfp`` accepts the kernel's own spelling (``GFP_KERNEL|__GFP_NORETRY``), which
is also how /sys/kernel/tracing prints gfp_flags.
"""

from __future__ import annotations

from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_CMA as ALLOC_CMA,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_CPUSET as ALLOC_CPUSET,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_HIGHATOMIC as ALLOC_HIGHATOMIC,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_KSWAPD as ALLOC_KSWAPD,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_MIN_RESERVE as ALLOC_MIN_RESERVE,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_NO_WATERMARKS as ALLOC_NO_WATERMARKS,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_NOFRAGMENT as ALLOC_NOFRAGMENT,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_NON_BLOCK as ALLOC_NON_BLOCK,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_OOM as ALLOC_OOM,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_RESERVES as ALLOC_RESERVES,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_WMARK_HIGH as ALLOC_WMARK_HIGH,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_WMARK_LOW as ALLOC_WMARK_LOW,
)
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_WMARK_MASK as ALLOC_WMARK_MASK,
)

# ALLOC_* (mm/internal.h) are defined once, in emulator.mm.page_alloc.alloc_flags; re-exported here
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_WMARK_MIN as ALLOC_WMARK_MIN,
)
from emulator.mm.snapshot import MIGRATE_MOVABLE
from emulator.mm.zone import (
    ZONE_DMA as ZONE_DMA,
)
from emulator.mm.zone import (
    ZONE_DMA32 as ZONE_DMA32,
)
from emulator.mm.zone import (
    ZONE_MOVABLE as ZONE_MOVABLE,
)
from emulator.mm.zone import (
    ZONE_NORMAL as ZONE_NORMAL,
)

# enum ___GFP_*_BIT (gfp_types.h, 6.12; ___GFP_UNUSED_BIT is 9)
__GFP_DMA = 1 << 0
__GFP_HIGHMEM = 1 << 1
__GFP_DMA32 = 1 << 2
__GFP_MOVABLE = 1 << 3
__GFP_RECLAIMABLE = 1 << 4
__GFP_HIGH = 1 << 5
__GFP_IO = 1 << 6
__GFP_FS = 1 << 7
__GFP_ZERO = 1 << 8
__GFP_DIRECT_RECLAIM = 1 << 10
__GFP_KSWAPD_RECLAIM = 1 << 11
__GFP_WRITE = 1 << 12
__GFP_NOWARN = 1 << 13
__GFP_RETRY_MAYFAIL = 1 << 14
__GFP_NOFAIL = 1 << 15
__GFP_NORETRY = 1 << 16
__GFP_MEMALLOC = 1 << 17
__GFP_COMP = 1 << 18
__GFP_NOMEMALLOC = 1 << 19
__GFP_HARDWALL = 1 << 20
__GFP_THISNODE = 1 << 21
__GFP_ACCOUNT = 1 << 22
__GFP_ZEROTAGS = 1 << 23
# ___GFP_SKIP_ZERO / ___GFP_SKIP_KASAN are bits only with CONFIG_KASAN_HW_TAGS (arm64 MTE)
__GFP_SKIP_ZERO = 0
__GFP_SKIP_KASAN = 0

__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM
GFP_MOVABLE_MASK = __GFP_RECLAIMABLE | __GFP_MOVABLE
GFP_MOVABLE_SHIFT = 3

GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE | __GFP_SKIP_KASAN
GFP_TRANSHUGE_LIGHT = (
    GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN
) & ~__GFP_RECLAIM
GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM

#: __def_gfpflag_names of include/trace/events/mmflags.h, in its order: show_gfp_flags matches
#: these greedily (composites first), then prints any leftover bits in hex
GFP_NAMES: dict[str, int] = {
    "GFP_TRANSHUGE": GFP_TRANSHUGE,
    "GFP_TRANSHUGE_LIGHT": GFP_TRANSHUGE_LIGHT,
    "GFP_HIGHUSER_MOVABLE": GFP_HIGHUSER_MOVABLE,
    "GFP_HIGHUSER": GFP_HIGHUSER,
    "GFP_USER": GFP_USER,
    "GFP_KERNEL_ACCOUNT": GFP_KERNEL_ACCOUNT,
    "GFP_KERNEL": GFP_KERNEL,
    "GFP_NOFS": GFP_NOFS,
    "GFP_ATOMIC": GFP_ATOMIC,
    "GFP_NOIO": GFP_NOIO,
    "GFP_NOWAIT": GFP_NOWAIT,
    "GFP_DMA": GFP_DMA,
    "__GFP_HIGHMEM": __GFP_HIGHMEM,
    "GFP_DMA32": GFP_DMA32,
    "__GFP_HIGH": __GFP_HIGH,
    "__GFP_IO": __GFP_IO,
    "__GFP_FS": __GFP_FS,
    "__GFP_NOWARN": __GFP_NOWARN,
    "__GFP_RETRY_MAYFAIL": __GFP_RETRY_MAYFAIL,
    "__GFP_NOFAIL": __GFP_NOFAIL,
    "__GFP_NORETRY": __GFP_NORETRY,
    "__GFP_COMP": __GFP_COMP,
    "__GFP_ZERO": __GFP_ZERO,
    "__GFP_NOMEMALLOC": __GFP_NOMEMALLOC,
    "__GFP_MEMALLOC": __GFP_MEMALLOC,
    "__GFP_HARDWALL": __GFP_HARDWALL,
    "__GFP_THISNODE": __GFP_THISNODE,
    "__GFP_RECLAIMABLE": __GFP_RECLAIMABLE,
    "__GFP_MOVABLE": __GFP_MOVABLE,
    "__GFP_ACCOUNT": __GFP_ACCOUNT,
    "__GFP_WRITE": __GFP_WRITE,
    "__GFP_RECLAIM": __GFP_RECLAIM,
    "__GFP_DIRECT_RECLAIM": __GFP_DIRECT_RECLAIM,
    "__GFP_KSWAPD_RECLAIM": __GFP_KSWAPD_RECLAIM,
    "__GFP_ZEROTAGS": __GFP_ZEROTAGS,
}

#: names parse_gfp accepts besides GFP_NAMES: the other kernel spellings of the same bits
#: (and the two KASAN bits, which are 0 on this configuration, as in the kernel)
GFP_ALIASES: dict[str, int] = {
    "__GFP_DMA": __GFP_DMA,
    "__GFP_DMA32": __GFP_DMA32,
    "__GFP_SKIP_ZERO": __GFP_SKIP_ZERO,
    "__GFP_SKIP_KASAN": __GFP_SKIP_KASAN,
}


def gfp_migratetype(gfp: int) -> int:
    """Models include/linux/gfp.h: gfp_migratetype. (gfp & (RECLAIMABLE|MOVABLE)) >> 3."""
    return (gfp & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT


def gfp_zone(gfp: int) -> int:
    """Models include/linux/gfp.h: gfp_zone. The highest zone the request may use (GFP_ZONE_TABLE
    for x86-64: CONFIG_ZONE_DMA and CONFIG_ZONE_DMA32, no HIGHMEM).

    __GFP_DMA -> DMA, __GFP_DMA32 -> DMA32, __GFP_HIGHMEM|__GFP_MOVABLE -> MOVABLE (whether or
    not a Movable zone is populated: the zonelist walk then simply starts at Normal, but the
    watermark checks use ``lowmem_reserve[ZONE_MOVABLE]``), anything else -> NORMAL.
    """
    if gfp & __GFP_DMA:
        return ZONE_DMA
    if gfp & __GFP_DMA32:
        return ZONE_DMA32
    if (gfp & (__GFP_HIGHMEM | __GFP_MOVABLE)) == (__GFP_HIGHMEM | __GFP_MOVABLE):
        return ZONE_MOVABLE
    return ZONE_NORMAL


def gfpflags_allow_blocking(gfp: int) -> bool:
    """Models include/linux/gfp.h: gfpflags_allow_blocking. __GFP_DIRECT_RECLAIM is set."""
    return bool(gfp & __GFP_DIRECT_RECLAIM)


def gfp_compaction_allowed(gfp_mask: int) -> bool:
    """Models include/linux/gfp.h: gfp_compaction_allowed — CONFIG_COMPACTION and __GFP_IO."""
    return bool(gfp_mask & __GFP_IO)


def gfp_to_alloc_flags_cma(gfp: int, alloc_flags: int) -> int:
    """Models mm/page_alloc.c: gfp_to_alloc_flags_cma. Movable requests may use CMA pageblocks."""
    if gfp_migratetype(gfp) == MIGRATE_MOVABLE:
        alloc_flags |= ALLOC_CMA
    return alloc_flags


def gfp_to_alloc_flags(gfp: int, order: int) -> int:
    """Models mm/page_alloc.c: gfp_to_alloc_flags. The slow path's alloc_flags (MIN watermark).

    __GFP_HIGH maps to ALLOC_MIN_RESERVE and __GFP_KSWAPD_RECLAIM to ALLOC_KSWAPD bit for bit;
    a request that cannot reclaim directly gets ALLOC_NON_BLOCK (and ALLOC_HIGHATOMIC for
    order > 0) unless __GFP_NOMEMALLOC; non-blocking __GFP_HIGH drops ALLOC_CPUSET.
    """
    alloc_flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    alloc_flags |= gfp & (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
    if not gfp & __GFP_DIRECT_RECLAIM:
        if not gfp & __GFP_NOMEMALLOC:
            alloc_flags |= ALLOC_NON_BLOCK
            if order > 0:
                alloc_flags |= ALLOC_HIGHATOMIC
        if alloc_flags & ALLOC_MIN_RESERVE:
            alloc_flags &= ~ALLOC_CPUSET
    return gfp_to_alloc_flags_cma(gfp, alloc_flags)


def alloc_flags_nofragment(preferred_zone_idx: int, gfp: int, dma32_populated: bool) -> int:
    """Models mm/page_alloc.c: alloc_flags_nofragment. ALLOC_KSWAPD from the gfp, plus
    ALLOC_NOFRAGMENT when the preferred zone is Normal and DMA32 is populated.

    (The kernel skips the DMA32 populated test on single-node machines; the caller passes
    ``dma32_populated=True`` there.)
    """
    alloc_flags = gfp & __GFP_KSWAPD_RECLAIM
    if preferred_zone_idx == ZONE_NORMAL and dma32_populated:
        alloc_flags |= ALLOC_NOFRAGMENT
    return alloc_flags


def fast_path_alloc_flags(gfp: int, preferred_zone_idx: int, dma32_populated: bool) -> int:
    """Models mm/page_alloc.c: __alloc_pages_noprof. The first attempt's flags: ALLOC_WMARK_LOW,
    ALLOC_CMA for movable requests (prepare_alloc_pages), and alloc_flags_nofragment."""
    flags = gfp_to_alloc_flags_cma(gfp, ALLOC_WMARK_LOW)
    return flags | alloc_flags_nofragment(preferred_zone_idx, gfp, dma32_populated)


def format_gfp(gfp: int) -> str:
    """Render gfp flags the way tracepoints print them (show_gfp_flags / __print_flags): names
    of :data:`GFP_NAMES` in order, greedily, then any remaining bits as one hex number;
    ``0`` prints as ``none``."""
    if gfp == 0:
        return "none"
    parts = []
    rest = gfp
    for name, bits in GFP_NAMES.items():
        if rest & bits == bits:
            parts.append(name)
            rest &= ~bits
            if not rest:
                break
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def parse_gfp(text: str) -> int:
    """Parse ``GFP_KERNEL|__GFP_NORETRY`` (names as in the kernel, ``|``-separated, or an int;
    ``none`` is 0, as show_gfp_flags prints it).

    Raises ValueError naming the unknown flag and listing the valid composite names.
    """
    value = 0
    for raw in text.split("|"):
        name = raw.strip()
        if not name:
            raise ValueError(f"empty gfp flag in {text!r}")
        if name in GFP_NAMES:
            value |= GFP_NAMES[name]
            continue
        if name in GFP_ALIASES:
            value |= GFP_ALIASES[name]
            continue
        if name == "none":
            continue
        try:
            value |= int(name, 0)
        except ValueError:
            composites = ", ".join(n for n in GFP_NAMES if not n.startswith("__"))
            raise ValueError(
                f"unknown gfp flag {name!r}; composites are {composites}, "
                "bits are the kernel's __GFP_* names"
            ) from None
    return value
