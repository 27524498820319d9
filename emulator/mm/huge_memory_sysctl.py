"""Models mm/huge_memory.c: the /sys/kernel/mm/transparent_hugepage knobs the model has
(``defrag``: defrag_show / defrag_store; read by :func:`~emulator.mm.huge_memory.vma_thp_gfp_mask`).
"""

from __future__ import annotations

from emulator.mm.tunable import Tunable, Words

__all__ = ["DEFRAG_DEFAULT", "DEFRAG_MODES", "THP_DEFRAG", "THP_TUNABLES"]

#: the values defrag_store accepts, in defrag_show's order
DEFRAG_MODES = ("always", "defer", "defer+madvise", "madvise", "never")
#: CONFIG_TRANSPARENT_HUGEPAGE_MADVISE distro default: TRANSPARENT_HUGEPAGE_DEFRAG_REQ_MADV_FLAG
DEFRAG_DEFAULT = "madvise"

#: /sys/kernel/mm/transparent_hugepage/defrag (defrag_show / defrag_store)
THP_DEFRAG = Tunable(
    "transparent_hugepage.defrag",
    "transparent_hugepage_defrag",
    DEFRAG_DEFAULT,
    Words(DEFRAG_MODES),
    "how THP faults reclaim and compact (vma_thp_gfp_mask)",
    "mm/huge_memory.c: transparent_hugepage_flags (defrag_store)",
)
#: hugepage_attr_group: the THP sysfs knobs the model has
THP_TUNABLES = (THP_DEFRAG,)
