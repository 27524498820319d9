"""The page allocator's internal flag words: ``ALLOC_*`` (mm/internal.h) and ``fpi_t`` (FPI_*).

Models the ``ALLOC_*`` bits of mm/internal.h:1141-1178 (the watermark index in the low bits,
then the reserve, CPUSET, CMA, NOFRAGMENT, HIGHATOMIC and KSWAPD bits) and the ``fpi_t`` flags
of mm/page_alloc.c:67-89 that the freeing paths take.

They are defined here once, below every module that uses them: the buddy core
(:mod:`emulator.mm.page_alloc.buddy`, which re-exports them), the fallback, highatomic and isolation
mixins, the watermark checks (:mod:`emulator.mm.page_alloc.watermark`) and
:mod:`emulator.mm.page_alloc.gfp`.
"""

from __future__ import annotations

# --- ALLOC_* flags (mm/internal.h:1141-1178) ---
ALLOC_WMARK_MIN = 0
ALLOC_WMARK_LOW = 1
ALLOC_WMARK_HIGH = 2
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM = 0x08
ALLOC_NON_BLOCK = 0x10
ALLOC_MIN_RESERVE = 0x20
ALLOC_CPUSET = 0x40
ALLOC_CMA = 0x80
ALLOC_NOFRAGMENT = 0x100
ALLOC_HIGHATOMIC = 0x200
ALLOC_KSWAPD = 0x800
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

# --- fpi_t flags (page_alloc.c:67-89) ---
FPI_NONE = 0
FPI_SKIP_REPORT_NOTIFY = 1 << 0
FPI_TO_TAIL = 1 << 1

__all__ = [
    "ALLOC_CMA",
    "ALLOC_CPUSET",
    "ALLOC_HIGHATOMIC",
    "ALLOC_KSWAPD",
    "ALLOC_MIN_RESERVE",
    "ALLOC_NOFRAGMENT",
    "ALLOC_NON_BLOCK",
    "ALLOC_NO_WATERMARKS",
    "ALLOC_OOM",
    "ALLOC_RESERVES",
    "ALLOC_WMARK_HIGH",
    "ALLOC_WMARK_LOW",
    "ALLOC_WMARK_MASK",
    "ALLOC_WMARK_MIN",
    "FPI_NONE",
    "FPI_SKIP_REPORT_NOTIFY",
    "FPI_TO_TAIL",
]
