"""/proc/sys/vm tunables with the kernel's names, defaults, ranges and write handlers.

:class:`Sysctl` is the writable interface; the values live on the
:class:`~emulator.mm.machine.Machine` (``machine.min_free_kbytes`` etc.), where the model reads
them. Writing through :meth:`Sysctl.set` validates like ``proc_dointvec_minmax`` (a ValueError
naming the sysctl and its valid range instead of -EINVAL) and runs the kernel's handler:

* ``vm.min_free_kbytes`` (0..INT_MAX; boot value computed): sets ``user_min_free_kbytes`` and
  recomputes the watermarks (``min_free_kbytes_sysctl_handler``);
* ``vm.watermark_scale_factor`` (1..3000, default 10): recomputes the watermarks;
* ``vm.watermark_boost_factor`` (0..INT_MAX, default 15000): read by ``boost_watermark``;
* ``vm.lowmem_reserve_ratio`` (one int per zone type, default 256 256 32 0): values < 1 become 0,
  then ``setup_per_zone_lowmem_reserve``;
* ``vm.extfrag_threshold`` (0..1000, default 500), ``vm.compaction_proactiveness`` (0..100,
  default 20), ``vm.compact_unevictable_allowed`` (0..1, default 1);
* ``vm.percpu_pagelist_high_fraction`` (0, or 8..INT_MAX; default 0).

Other layers (pcp, kcompactd) register observers with :meth:`Sysctl.on_change` for their parts of
the handlers (``zone_pcp_update``, waking kcompactd on a proactiveness increase).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from emulator.mm.page_alloc import watermark
from emulator.mm.zone import MAX_NR_ZONES

if TYPE_CHECKING:
    from emulator.mm.machine import Machine

INT_MAX = 2**31 - 1
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8

#: sysctl_lowmem_reserve_ratio[] (page_alloc.c:228): DMA, DMA32, Normal, Movable
DEFAULT_LOWMEM_RESERVE_RATIO = (256, 256, 32, 0)


@attrs.frozen
class SysctlSpec:
    """One tunable: its /proc/sys name, the Machine attribute, default and valid range."""

    name: str
    attr: str
    default: Any
    lo: int
    hi: int
    doc: str
    #: for a sysfs word setting (transparent_hugepage/defrag): the words it accepts
    choices: tuple[str, ...] = ()


SPECS: dict[str, SysctlSpec] = {
    s.name: s
    for s in (
        SysctlSpec(
            "vm.min_free_kbytes",
            "min_free_kbytes",
            None,
            0,
            INT_MAX,
            "reserve below which only atomic/reserve allocations proceed (kB)",
        ),
        SysctlSpec(
            "vm.watermark_scale_factor",
            "watermark_scale_factor",
            10,
            1,
            3000,
            "distance between watermarks, in 1/10000 of managed pages",
        ),
        SysctlSpec(
            "vm.watermark_boost_factor",
            "watermark_boost_factor",
            15000,
            0,
            INT_MAX,
            "maximum boost after a fragmenting fallback, in 1/10000 of the high mark",
        ),
        SysctlSpec(
            "vm.lowmem_reserve_ratio",
            "lowmem_reserve_ratio",
            DEFAULT_LOWMEM_RESERVE_RATIO,
            -INT_MAX - 1,
            INT_MAX,
            "per-zone divisor of the lowmem reserve (values < 1 mean no reserve)",
        ),
        SysctlSpec(
            "vm.extfrag_threshold",
            "extfrag_threshold",
            500,
            0,
            1000,
            "fragmentation index above which compaction is preferred to reclaim",
        ),
        SysctlSpec(
            "vm.compaction_proactiveness",
            "compaction_proactiveness",
            20,
            0,
            100,
            "how aggressively kcompactd compacts in the background",
        ),
        SysctlSpec(
            "vm.percpu_pagelist_high_fraction",
            "percpu_pagelist_high_fraction",
            0,
            0,
            INT_MAX,
            "fraction of a zone a pcp list may hold (0 = default sizing)",
        ),
        SysctlSpec(
            "vm.compact_unevictable_allowed",
            "compact_unevictable_allowed",
            1,
            0,
            1,
            "whether compaction may migrate unevictable (mlocked) pages",
        ),
        SysctlSpec(
            "transparent_hugepage.defrag",
            "transparent_hugepage_defrag",
            "madvise",
            0,
            0,
            "/sys/kernel/mm/transparent_hugepage/defrag: how THP faults reclaim and compact",
            choices=("always", "defer", "defer+madvise", "madvise", "never"),
        ),
    )
}


class Sysctl:
    """The vm.* tunables of one machine, read and written by kernel name."""

    def __init__(self, machine: Machine) -> None:
        self._machine = machine
        self._observers: dict[str, list[Callable[[str, Any], None]]] = {}

    @staticmethod
    def names() -> list[str]:
        return sorted(SPECS)

    def _spec(self, name: str) -> SysctlSpec:
        key = name.replace("/", ".")
        if not key.startswith(("vm.", "transparent_hugepage.")):
            key = "vm." + key
        spec = SPECS.get(key)
        if spec is None:
            raise KeyError(f"unknown sysctl {name!r}; valid names: {', '.join(self.names())}")
        return spec

    def get(self, name: str) -> Any:
        """The current value (a tuple for vm.lowmem_reserve_ratio)."""
        value = getattr(self._machine, self._spec(name).attr)
        return tuple(value) if isinstance(value, list) else value

    __getitem__ = get

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def as_dict(self) -> dict[str, Any]:
        return {n: self.get(n) for n in self.names()}

    def on_change(self, name: str, fn: Callable[[str, Any], None]) -> None:
        """Call ``fn(name, new_value)`` after every successful write of ``name``."""
        self._observers.setdefault(self._spec(name).name, []).append(fn)

    def set(self, name: str, value: Any) -> None:
        """Write a tunable as ``echo value > /proc/sys/vm/...`` would, running its handler."""
        spec = self._spec(name)
        m = self._machine
        if spec.name == "vm.lowmem_reserve_ratio":
            vals = _int_list(spec, value)
            if len(vals) != MAX_NR_ZONES:
                raise ValueError(
                    f"{spec.name} takes {MAX_NR_ZONES} integers (one per zone type), "
                    f"got {len(vals)}"
                )
            m.lowmem_reserve_ratio = [v if v >= 1 else 0 for v in vals]
            watermark.setup_per_zone_lowmem_reserve(m)
        elif spec.choices:
            word = str(value).strip()
            if word not in spec.choices:
                raise ValueError(
                    f"{spec.name}={value!r} is invalid: valid {', '.join(spec.choices)}"
                )
            setattr(m, spec.attr, word)
        else:
            v = _int(spec, value)
            if not spec.lo <= v <= spec.hi:
                raise ValueError(f"{spec.name}={v} is out of range: valid {spec.lo}..{spec.hi}")
            if (
                spec.name == "vm.percpu_pagelist_high_fraction"
                and v
                and v < MIN_PERCPU_PAGELIST_HIGH_FRACTION
            ):
                raise ValueError(
                    f"{spec.name}={v} is invalid: valid 0 or "
                    f"{MIN_PERCPU_PAGELIST_HIGH_FRACTION}..{INT_MAX}"
                )
            setattr(m, spec.attr, v)
            if spec.name == "vm.min_free_kbytes":
                m.user_min_free_kbytes = v
                watermark.setup_per_zone_wmarks(m)
            elif spec.name == "vm.watermark_scale_factor":
                watermark.setup_per_zone_wmarks(m)
            elif spec.name == "vm.watermark_boost_factor":
                for z in m.all_zones():
                    z.watermark_boost_factor = v
        for fn in self._observers.get(spec.name, ()):
            fn(spec.name, self.get(spec.name))


def _int(spec: SysctlSpec, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{spec.name} takes an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{spec.name} takes an integer, got {value!r}") from None


def _int_list(spec: SysctlSpec, value: Any) -> list[int]:
    if isinstance(value, str):
        parts: Sequence[Any] = value.split()
    elif isinstance(value, Sequence):
        parts = value
    else:
        raise ValueError(f"{spec.name} takes {MAX_NR_ZONES} integers, got {value!r}")
    return [_int(spec, p) for p in parts]
