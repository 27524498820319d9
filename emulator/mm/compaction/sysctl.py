"""Models mm/compaction.c: vm_compaction[], the compaction sysctls and their write handlers.

``vm.compact_memory`` (a write-only trigger, sysctl_compaction_handler) is a run-time write
action, not a stored value: see :mod:`emulator.workload.writes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from emulator.mm.tunable import IntMinMax, Tunable

__all__ = [
    "COMPACTION_PROACTIVENESS",
    "COMPACTION_TUNABLES",
    "COMPACT_UNEVICTABLE_ALLOWED",
    "EXTFRAG_THRESHOLD",
    "ProactiveTrigger",
]


class ProactiveTrigger(Protocol):
    """A node's kcompactd as the proactiveness handler sees it (``NODE_DATA(nid)``'s
    ``proactive_compact_trigger`` and ``kcompactd_wait``)."""

    def proactiveness_written(self, value: int) -> None: ...


class _Node(Protocol):
    kcompactd: ProactiveTrigger | None


class _Machine(Protocol):
    @property
    def nodes(self) -> Iterable[_Node]: ...

    compaction_proactiveness: int


def compaction_proactiveness_sysctl_handler(machine: _Machine, _old: int) -> None:
    """Models mm/compaction.c: compaction_proactiveness_sysctl_handler: on a non-zero write,
    trigger every node's kcompactd (each node's part is
    :meth:`~emulator.mm.kcompactd.Kcompactd.proactiveness_written`)."""
    value = machine.compaction_proactiveness
    for node in machine.nodes:
        if node.kcompactd is not None:
            node.kcompactd.proactiveness_written(value)


COMPACTION_PROACTIVENESS = Tunable(
    "vm.compaction_proactiveness",
    "compaction_proactiveness",
    20,
    IntMinMax(0, 100),
    "how aggressively kcompactd compacts in the background",
    "mm/compaction.c: sysctl_compaction_proactiveness",
    compaction_proactiveness_sysctl_handler,
)
EXTFRAG_THRESHOLD = Tunable(
    "vm.extfrag_threshold",
    "extfrag_threshold",
    500,
    IntMinMax(0, 1000),
    "fragmentation index above which compaction is preferred to reclaim",
    "mm/compaction.c: sysctl_extfrag_threshold",
)
COMPACT_UNEVICTABLE_ALLOWED = Tunable(
    "vm.compact_unevictable_allowed",
    "compact_unevictable_allowed",
    1,
    IntMinMax(0, 1),
    "whether compaction may migrate unevictable (mlocked) pages",
    "mm/compaction.c: sysctl_compact_unevictable_allowed (1 without CONFIG_PREEMPT_RT)",
)

#: register_sysctl_init("vm", vm_compaction)
COMPACTION_TUNABLES = (COMPACTION_PROACTIVENESS, EXTFRAG_THRESHOLD, COMPACT_UNEVICTABLE_ALLOWED)
