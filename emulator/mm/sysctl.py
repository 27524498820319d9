"""The registry of kernel tunables, and one machine's view of them by kernel name.

:data:`TUNABLES` gathers what each mechanism declares (:class:`~emulator.mm.tunable.Tunable`):
mm/page_alloc.c's ``page_alloc_sysctl_table[]`` (:mod:`emulator.mm.page_alloc.sysctl`),
mm/compaction.c's ``vm_compaction[]`` (:mod:`emulator.mm.compaction.sysctl`) and the THP sysfs
knobs of mm/huge_memory.c (:mod:`emulator.mm.huge_memory_sysctl`), and the model's kernel
mitigation switches ``mitigation.NAME`` (:mod:`emulator.mm.mitigations`). It is the one place
a machine's defaults, ``--set``, run-time writes, ``/proc/sys`` reads, ``mmemu inspect`` and
``mmemu list --params`` look a tunable up.

:class:`Sysctl` is a machine's interface: the values live on the
:class:`~emulator.mm.machine.Machine` (``machine.min_free_kbytes`` etc.), where the model reads
them; :meth:`Sysctl.set` parses a write as the kernel's proc handler does (a
:class:`~emulator.mm.tunable.TunableError` naming the tunable and its valid range instead of
-EINVAL), stores it and runs the tunable's handler.
"""

from __future__ import annotations

from typing import Any

from emulator.engine.tracepoint import Field, TraceEvent
from emulator.mm.compaction.sysctl import COMPACTION_TUNABLES
from emulator.mm.huge_memory_sysctl import THP_TUNABLES
from emulator.mm.mitigations import MITIGATION_TUNABLES
from emulator.mm.page_alloc.sysctl import PAGE_ALLOC_TUNABLES
from emulator.mm.tunable import Tunable

__all__ = ["SYSCTL_EVENTS", "TUNABLES", "Sysctl", "lookup", "tunable_names"]


def _gather(*tables: tuple[Tunable, ...]) -> dict[str, Tunable]:
    out: dict[str, Tunable] = {}
    for table in tables:
        for t in table:
            if t.name in out:
                raise ValueError(f"tunable {t.name} is declared twice")
            out[t.name] = t
    return out


#: every tunable by name, sorted
TUNABLES: dict[str, Tunable] = dict(
    sorted(
        _gather(PAGE_ALLOC_TUNABLES, COMPACTION_TUNABLES, THP_TUNABLES, MITIGATION_TUNABLES).items()
    )
)


#: the model's marker of a run-time write (emulator.workload.writes), before its handler runs
SYSCTL_EVENTS = (
    TraceEvent(
        "mmemu",
        "sysctl_write",
        (Field("path", str), Field("value", str), Field("cpu", int)),
        "path=%s value=%s cpu=%d",
    ),
)


def tunable_names() -> list[str]:
    """Every tunable's name, sorted."""
    return list(TUNABLES)


def lookup(name: str) -> Tunable:
    """The tunable called ``name`` (``vm.X``, ``X`` for a vm sysctl, ``/proc/sys/vm/X``,
    ``transparent_hugepage/X``); KeyError listing the valid names."""
    key = name.strip()
    if key.startswith("/proc/sys/"):
        key = key[len("/proc/sys/") :]
    elif key.startswith("/sys/kernel/mm/"):
        key = key[len("/sys/kernel/mm/") :]
    key = key.replace("/", ".")
    if not key.startswith(("vm.", "transparent_hugepage.", "mitigation.")):
        key = "vm." + key
    t = TUNABLES.get(key)
    if t is None:
        raise KeyError(f"unknown sysctl {name!r}; valid names: {', '.join(TUNABLES)}")
    return t


class Sysctl:
    """The tunables of one machine, read and written by kernel name."""

    def __init__(self, machine: object) -> None:
        #: the machine whose attributes hold the values (each tunable's ``attr``, or its
        #: ``load`` / ``store``)
        self._machine = machine

    @staticmethod
    def names() -> list[str]:
        return tunable_names()

    def get(self, name: str) -> Any:
        """The current value (a tuple for vm.lowmem_reserve_ratio)."""
        t = lookup(name)
        value = t.load(self._machine) if t.load is not None else getattr(self._machine, t.attr)
        return tuple(value) if isinstance(value, list) else value

    __getitem__ = get

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def as_dict(self) -> dict[str, Any]:
        return {n: self.get(n) for n in self.names()}

    def read(self, name: str) -> str:
        """The file's text, as ``cat /proc/sys/vm/NAME`` prints it."""
        return lookup(name).render(self.get(name))

    def set(self, name: str, value: Any) -> None:
        """Write a tunable as ``echo value > /proc/sys/vm/...`` would: parse (TunableError,
        nothing changed, if the kernel refuses it), store, run the handler."""
        t = lookup(name)
        old = self.get(t.name)
        new = t.check(value, old)
        if t.store is not None:
            t.store(self._machine, new)
        else:
            setattr(self._machine, t.attr, list(new) if isinstance(new, tuple) else new)
        if t.handler is not None:
            t.handler(self._machine, old)
