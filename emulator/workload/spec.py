"""What CPUs do: allocation classes, lifetimes, phases and free patterns (plain data).

A :class:`Workload` is a list of :class:`Phase` objects that every CPU actor runs in order, or
a list of :class:`Stream` objects, each a sequence of phases on its own CPUs, that run
concurrently.
Each phase has an arrival process (Poisson or fixed rate per CPU), a mix of
:class:`AllocClass` entries chosen by weight, and optionally a :class:`FreePattern` applied to
the blocks the CPU still holds when the phase ends (how fragmentation is built on purpose).

Times are integer ns. Text forms accepted by :func:`parse_duration` (``"2s"``, ``"500us"``) and
:func:`parse_lifetime` (``"exp(1ms)"``, ``"fixed(10us)"``, ``"uniform(1ms,5ms)"``,
``"lognormal(1ms,1.0)"``, ``"forever"``) make scenario files short.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any, TypeVar

import attrs

from emulator.mm.memmap import OWNER_ALIASES
from emulator.mm.page_alloc.gfp import parse_gfp

__all__ = [
    "AllocClass",
    "FreePattern",
    "Lifetime",
    "Phase",
    "Stream",
    "Workload",
    "parse_duration",
    "parse_lifetime",
    "parse_size_mib",
]

_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_MIB = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_duration(text: str | int) -> int:
    """``"2s"``, ``"1.5ms"``, ``"250us"``, ``"40ns"`` or an int of ns -> int ns (>= 0)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"duration {text} is negative")
        return text
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"duration {text!r}: expected a number with ns, us, ms or s (e.g. 2s)")
    value = float(m.group(1)) * _UNITS_NS[m.group(2) or "ns"]
    return round(value)


def parse_size_mib(text: str | int) -> int:
    """``"4G"``, ``"512M"``, ``"64GiB"`` or an int of MiB -> int MiB (>= 1)."""
    if isinstance(text, int) and not isinstance(text, bool):
        mib = text
    else:
        m = _SIZE.match(str(text))
        if not m:
            raise ValueError(f"memory size {text!r}: expected e.g. 4G, 512M, 64GiB")
        unit = (m.group(2) or "M")[0].lower()
        if unit == "b":
            raise ValueError(f"memory size {text!r}: give it in K, M, G or T")
        mib = round(float(m.group(1)) * _SIZE_MIB[unit])
    if mib < 16:
        raise ValueError(f"memory size {text!r}: at least 16 MiB")
    return mib


@attrs.frozen
class Lifetime:
    """How long an allocation is held before its owner frees it (integer ns).

    ``kind`` is ``exp`` (mean a), ``fixed`` (a), ``uniform`` (a..b), ``lognormal`` (median a,
    sigma b) or ``forever`` (kept until a phase's free pattern or the end of the run).
    """

    kind: str
    a: int = 0
    b: float = 0

    def sample(self, rng: random.Random) -> int:
        """A lifetime in ns (>= 1), or -1 for ``forever``."""
        k = self.kind
        if k == "exp":
            v = int(rng.expovariate(1.0 / self.a)) if self.a else 0
        elif k == "fixed":
            v = self.a
        elif k == "uniform":
            v = rng.randint(self.a, int(self.b))
        elif k == "lognormal":
            v = int(self.a * math.exp(rng.gauss(0.0, self.b)))
        else:
            return -1
        return v if v > 0 else 1

    def __str__(self) -> str:
        if self.kind == "forever":
            return "forever"
        if self.kind in ("exp", "fixed"):
            return f"{self.kind}({self.a}ns)"
        return f"{self.kind}({self.a}ns,{self.b})"


FOREVER = Lifetime("forever")
_LIFETIME = re.compile(r"^\s*(exp|fixed|uniform|lognormal)\s*\((.*)\)\s*$")


def parse_lifetime(text: str | Lifetime) -> Lifetime:
    """Parse ``exp(1ms)``, ``fixed(10us)``, ``uniform(1ms,5ms)``, ``lognormal(1ms,1.0)``,
    ``forever``."""
    if isinstance(text, Lifetime):
        return text
    if text.strip() == "forever":
        return FOREVER
    m = _LIFETIME.match(text)
    if not m:
        raise ValueError(
            f"lifetime {text!r}: expected exp(T), fixed(T), uniform(T1,T2), lognormal(T,sigma) "
            "or forever"
        )
    kind, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
    if kind in ("exp", "fixed") and len(args) == 1:
        return Lifetime(kind, parse_duration(args[0]))
    if kind == "uniform" and len(args) == 2:
        lo, hi = parse_duration(args[0]), parse_duration(args[1])
        if hi < lo:
            raise ValueError(f"lifetime {text!r}: upper bound below lower bound")
        return Lifetime(kind, lo, hi)
    if kind == "lognormal" and len(args) == 2:
        return Lifetime(kind, parse_duration(args[0]), float(args[1]))
    raise ValueError(f"lifetime {text!r}: wrong number of arguments for {kind}")


def _gfp(value: int | str) -> int:
    return parse_gfp(value) if isinstance(value, str) else value


def _owner(value: str | None) -> str | None:
    if value is not None and value not in OWNER_ALIASES:
        raise ValueError(f"owner {value!r}: valid are {', '.join(OWNER_ALIASES)}")
    return value


def _probability(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} {value} is not a probability in [0, 1]")


def _order(_inst: object, _attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 10:
        raise ValueError(f"order {value} out of range 0..10 (MAX_PAGE_ORDER)")


@attrs.frozen
class AllocClass:
    """One kind of allocation in a mix.

    ``gfp`` in the kernel's spelling (``"GFP_KERNEL"``, ``"GFP_TRANSHUGE_LIGHT"``) or an int;
    ``owner`` is the kind of memory (see :mod:`emulator.mm.memmap`): ``"anon"``, ``"file"``
    (clean page cache), ``"mlocked"``, ``"pinned"`` (long-term pins compaction cannot move),
    ``"slab_reclaimable"``, ``"unmovable"`` (``"movable"`` and ``"reclaimable"`` are the old
    names of anon and slab_reclaimable); by default it follows the migratetype: movable ->
    anon, reclaimable -> slab_reclaimable, unmovable -> unmovable. ``pinned`` is the
    probability that an allocation is pinned; ``remote_free`` the probability that another CPU
    (chosen at random) frees it; ``refault``: when reclaim evicts one of these pages, the CPU
    reads it back in (allocates it again, same handle) at its next allocation.
    ``thp_fault``: the class is an anonymous THP fault (order 9; the gfp comes from
    ``vma_thp_gfp_mask`` for the machine's ``transparent_hugepage.defrag`` and
    ``madv_hugepage``, whether the region is MADV_HUGEPAGE); a failed fault falls back to one
    base page (:func:`emulator.mm.huge_memory.do_huge_pmd_anonymous_page`).
    """

    order: int = attrs.field(validator=_order)
    gfp: int = attrs.field(converter=_gfp)
    weight: float = 1.0
    lifetime: Lifetime = attrs.field(default=FOREVER, converter=parse_lifetime)
    pinned: float = attrs.field(default=0.0, validator=_probability)
    remote_free: float = attrs.field(default=0.0, validator=_probability)
    owner: str | None = attrs.field(default=None, converter=_owner)
    refault: bool = True
    thp_fault: bool = False
    madv_hugepage: bool = False

    def __attrs_post_init__(self) -> None:
        if self.thp_fault and self.order != 9:
            raise ValueError(f"a thp_fault class has order 9 (HPAGE_PMD_ORDER), got {self.order}")

    @property
    def owner_kind(self) -> int:
        """The memmap OWNER_* value of ``owner``, or -1 (follow the migratetype)."""
        return -1 if self.owner is None else OWNER_ALIASES[self.owner]


_Held = TypeVar("_Held", bound=tuple[int, ...])

_PATTERNS = ("none", "all", "every_other", "k_of_n", "random", "oldest", "every_other_chunk")


@attrs.frozen
class FreePattern:
    """Which held blocks a CPU frees when a phase ends.

    * ``all``: every held block;
    * ``every_other``: every second block in allocation order;
    * ``k_of_n``: in each 2 MiB region, the blocks whose index ``(pfn % 512) >> order`` modulo
      ``n`` is below ``k`` (``k`` of every ``n``);
    * ``random``: each block with probability ``p``;
    * ``oldest``: the oldest fraction ``p`` (FIFO);
    * ``every_other_chunk``: blocks in even-numbered chunks of ``chunk_mib`` MiB.
    """

    kind: str = "none"
    k: int = 1
    n: int = 2
    p: float = 0.5
    chunk_mib: int = 2

    def __attrs_post_init__(self) -> None:
        if self.kind not in _PATTERNS:
            raise ValueError(f"free pattern {self.kind!r}: valid are {', '.join(_PATTERNS)}")
        if self.kind == "k_of_n" and not 0 < self.k <= self.n:
            raise ValueError(f"free pattern k_of_n: need 0 < k <= n, got k={self.k} n={self.n}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"free pattern {self.kind}: p={self.p} not in [0, 1]")
        if self.chunk_mib < 1:
            raise ValueError("free pattern every_other_chunk: chunk_mib must be >= 1")

    def select(self, held: Sequence[_Held], rng: random.Random) -> tuple[list[_Held], list[_Held]]:
        """Split ``held`` blocks, tuples starting ``(pfn, order, ...)``, into (to free, to
        keep), keeping their order. (A CPU program passes the pfns its handles hold now.)"""
        kind = self.kind
        if kind == "none":
            return [], list(held)
        if kind == "all":
            return list(held), []
        if kind == "oldest":
            cut = round(len(held) * self.p)
            return list(held[:cut]), list(held[cut:])
        free: list[_Held] = []
        keep: list[_Held] = []
        chunk_pages = self.chunk_mib * 256
        for i, item in enumerate(held):
            pfn, order = item[0], item[1]
            if kind == "every_other":
                go = i % 2 == 0
            elif kind == "k_of_n":
                go = (((pfn & 511) >> order) % self.n) < self.k
            elif kind == "random":
                go = rng.random() < self.p
            else:  # every_other_chunk
                go = (pfn // chunk_pages) % 2 == 0
            (free if go else keep).append(item)
        return free, keep


@attrs.frozen
class Phase:
    """A stretch of a CPU's life: arrivals at ``rate`` per second (``poisson`` or ``fixed``)
    drawing from ``mix`` for ``duration`` ns (None: until the run ends), optionally stopping
    early when the machine's free memory falls below ``stop_below_free`` (a fraction), then
    applying ``free_at_end`` to the blocks still held.
    """

    name: str
    mix: tuple[AllocClass, ...] = attrs.field(converter=tuple)
    rate: float = 100_000.0
    duration: int | None = attrs.field(default=None)
    arrival: str = "poisson"
    stop_below_free: float = 0.0
    free_at_end: FreePattern = FreePattern()
    cpus: tuple[int, ...] | None = None

    def __attrs_post_init__(self) -> None:
        if not self.mix:
            raise ValueError(f"phase {self.name!r}: empty mix")
        if self.rate <= 0:
            raise ValueError(f"phase {self.name!r}: rate must be > 0 allocations/s per CPU")
        if self.arrival not in ("poisson", "fixed"):
            raise ValueError(f"phase {self.name!r}: arrival must be poisson or fixed")
        if self.duration is not None and self.duration < 0:
            raise ValueError(f"phase {self.name!r}: negative duration")
        if not 0.0 <= self.stop_below_free < 1.0:
            raise ValueError(f"phase {self.name!r}: stop_below_free must be in [0, 1)")


def _cpu_tuple(value: int | Iterable[int]) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    return tuple(int(c) for c in value)


@attrs.frozen
class Stream:
    """A sequence of phases on its own CPUs, running concurrently with the other streams.

    ``Stream("web", (0, 1, 2, 3), [fill, churn])``: CPUs 0-3 run ``fill`` then ``churn``
    while the CPUs of other streams run theirs at the same time.
    """

    name: str
    cpus: tuple[int, ...] = attrs.field(converter=_cpu_tuple)
    phases: tuple[Phase, ...] = attrs.field(converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not self.cpus:
            raise ValueError(f"stream {self.name!r}: no CPUs")
        if len(set(self.cpus)) != len(self.cpus):
            raise ValueError(f"stream {self.name!r}: a CPU is listed twice in {self.cpus}")
        if not self.phases:
            raise ValueError(f"stream {self.name!r}: no phases")
        for ph in self.phases:
            if ph.cpus is not None and not set(ph.cpus) <= set(self.cpus):
                raise ValueError(
                    f"stream {self.name!r}: phase {ph.name!r} names CPUs "
                    f"{sorted(set(ph.cpus) - set(self.cpus))} outside the stream's {self.cpus}"
                )


def _never_ends(phase: Phase) -> bool:
    return phase.duration is None and phase.stop_below_free == 0.0


@attrs.frozen
class Workload:
    """What the CPUs run: ``phases`` in order on every CPU (a phase with ``cpus`` set runs
    only on those; the others wait for its ``duration``), or ``streams`` that run concurrently,
    each on its own CPUs with its own phases in order. ``idle_cpus`` names CPUs left without
    work on purpose (they still free what others hand them).

    :meth:`check` rejects what would silently run half a workload: a phase that can never end
    (no ``duration``, no ``stop_below_free``) with phases after it, streams that share a CPU or
    name a CPU the machine lacks. :meth:`warnings` lists CPUs that get no work.
    """

    phases: tuple[Phase, ...] = attrs.field(converter=tuple, default=())
    streams: tuple[Stream, ...] = attrs.field(converter=tuple, default=())
    idle_cpus: tuple[int, ...] = attrs.field(converter=_cpu_tuple, default=())

    def __attrs_post_init__(self) -> None:
        if not self.phases and not self.streams:
            raise ValueError("a workload needs at least one phase (or stream)")
        if self.phases and self.streams:
            raise ValueError("a workload has either phases (every CPU) or streams, not both")
        seen: dict[int, str] = {}
        for st in self.streams:
            for c in st.cpus:
                if c in seen:
                    raise ValueError(
                        f"CPU {c} is in two streams ({seen[c]!r} and {st.name!r}): a CPU runs "
                        "one stream"
                    )
                seen[c] = st.name
        for where, phases in self._sequences():
            for ph, nxt in pairwise(phases):
                if _never_ends(ph):
                    raise ValueError(
                        f"phase {ph.name!r} never ends (no duration, no stop_below_free) but "
                        f"phase {nxt.name!r} follows it{where}: give {ph.name!r} a "
                        "duration, or run them at the same time as Streams on their own CPUs"
                    )

    def _sequences(self) -> list[tuple[str, tuple[Phase, ...]]]:
        if self.streams:
            return [(f" in stream {st.name!r}", st.phases) for st in self.streams]
        return [("", self.phases)]

    @property
    def all_phases(self) -> tuple[Phase, ...]:
        """Every phase of every stream."""
        return tuple(ph for _where, phases in self._sequences() for ph in phases)

    def phases_for(self, cpu: int) -> tuple[Phase, ...]:
        """The phases CPU ``cpu`` runs in order (empty: the CPU has no stream)."""
        if not self.streams:
            return self.phases
        for st in self.streams:
            if cpu in st.cpus:
                return st.phases
        return ()

    def check(self, nr_cpus: int) -> None:
        """Raise ValueError for CPUs the machine does not have (``nr_cpus`` CPUs)."""
        named = [c for st in self.streams for c in st.cpus] + list(self.idle_cpus)
        named += [c for ph in self.all_phases for c in (ph.cpus or ())]
        bad = sorted({c for c in named if not 0 <= c < nr_cpus})
        if bad:
            raise ValueError(
                f"CPU {', '.join(map(str, bad))} named by the workload, but the machine has "
                f"CPUs 0..{nr_cpus - 1} (set cpus=N)"
            )

    def warnings(self, nr_cpus: int) -> list[str]:
        """CPUs that get no allocation work (not in ``idle_cpus``), as sentences."""
        idle = []
        for c in range(nr_cpus):
            if c in self.idle_cpus:
                continue
            phases = self.phases_for(c)
            if not any(ph.cpus is None or c in ph.cpus for ph in phases):
                idle.append(c)
        if not idle:
            return []
        return [
            f"CPU {', '.join(map(str, idle))} has no work (in no stream or phase); list it in "
            "Workload(idle_cpus=...) if that is meant"
        ]
