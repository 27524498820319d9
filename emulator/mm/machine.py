"""Topology: NUMA nodes, their zones, and the machine that holds them (mm/mm_init.c, memblock).

A :class:`Machine` is built from :class:`NodeSpec` / :class:`ZoneSpec` (spans, holes and
memblock-reserved ranges). Every node gets a zone struct for every zone type (DMA, DMA32,
Normal, Movable), empty ones with no pages, as the kernel's ``pgdat->node_zones[]``.
Spanned pages = the zone's pfn range; present = spanned minus holes; managed = present minus
reserved pages (``zone_managed_pages``).

:func:`x86_64_layout` gives a realistic default: ZONE_DMA from pfn 1 to 16 MiB with the
640 KiB-1 MiB legacy hole and the whole first 1 MiB reserved (the kernel reserves it since
v5.13), ZONE_DMA32 up to 3 GiB of RAM then the PCI hole to 4 GiB, ZONE_NORMAL above 4 GiB, a
32 MiB kernel image reserved at 16 MiB, and each node's memmap (64 bytes per page) reserved at the
top of the node. Extra nodes get equal shares of ZONE_NORMAL memory.

Booting (``boot=True``) frees every managed page the way memblock_free_all does (maximal aligned
blocks, each merged and added to the tail, so lists are in ascending pfn order) into MOVABLE
pageblocks, then runs :func:`~emulator.mm.page_alloc.watermark.init_per_zone_wmark_min`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np

from emulator.engine.recorder import NULL_RECORDER, NullRecorder, Recorder
from emulator.mm.compaction.sysctl import ProactiveTrigger
from emulator.mm.memmap import (
    OWNER_UNMOVABLE,
    PG_ALLOC,
    PG_BUDDY,
    PG_HOLE,
    PG_RESERVED,
    PG_TAIL,
    Memmap,
)
from emulator.mm.mitigations import Mitigations
from emulator.mm.page_alloc import watermark
from emulator.mm.reclaim.lruvec import Lruvec
from emulator.mm.reclaim.rmap import Rmap
from emulator.mm.snapshot import (
    MAX_PAGE_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_TYPES,
    MachineSnapshot,
    NodeSnapshot,
)
from emulator.mm.sysctl import TUNABLES, Sysctl
from emulator.mm.vmstat import NODE_STAT_NAMES, NUMA_STAT_NAMES, ZONE_STAT_NAMES
from emulator.mm.zone import MAX_NR_ZONES, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, Zone

MiB_PAGES = 256  # 4 KiB pages per MiB
#: A typical x86-64 server's LLC share per CPU: 2 MiB (a 32 MiB L3 shared by 16 hardware
#: threads, as on an AMD EPYC 9004 CCD; a Xeon Sapphire Rapids has ~0.94 MiB per thread). Both
#: exceed 3 * 63 pages (756 KiB), so zones of 1 GiB and more get PCPF_FREE_HIGH_BATCH.
DEFAULT_PER_CPU_DATA_SLICE_SIZE = 2 << 20
GiB_PAGES = 1 << 18
DMA_END_PFN = 16 * MiB_PAGES  # MAX_DMA_PFN: 16 MiB
DMA32_END_PFN = 4 * GiB_PAGES  # MAX_DMA32_PFN: 4 GiB

Range = tuple[int, int]


@attrs.frozen
class ZoneSpec:
    """One zone's span [start_pfn, start_pfn + spanned) with absent and reserved pfn ranges."""

    zone_idx: int
    start_pfn: int
    spanned: int
    holes: tuple[Range, ...] = ()
    reserved: tuple[Range, ...] = ()

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned


@attrs.frozen
class NodeSpec:
    nid: int
    zones: tuple[ZoneSpec, ...]


def _clip(ranges: Sequence[Range], lo: int, hi: int) -> tuple[Range, ...]:
    out = []
    for s, e in ranges:
        s, e = max(s, lo), min(e, hi)
        if s < e:
            out.append((s, e))
    return tuple(out)


def x86_64_layout(
    mem_mib: int,
    nodes: int = 1,
    *,
    low_ram_top_mib: int = 3072,
    kernel_mib: int = 32,
    reserve_memmap: bool = True,
) -> list[NodeSpec]:
    """A realistic x86-64 physical map for ``mem_mib`` MiB of RAM (see the module docstring)."""
    if mem_mib < 64:
        raise ValueError(f"mem_mib must be at least 64, got {mem_mib}")
    total = mem_mib * MiB_PAGES
    low_top = min(total, low_ram_top_mib * MiB_PAGES)
    high_pages = total - low_top
    # RAM ranges (pfn): [1, 0x9f) legacy, [0x100, low_top), [4 GiB, 4 GiB + high_pages)
    ram: list[Range] = [(1, 0x9F), (0x100, low_top)]
    if high_pages:
        ram.append((DMA32_END_PFN, DMA32_END_PFN + high_pages))
    node_end = DMA32_END_PFN + high_pages if high_pages else low_top
    # split Normal memory among nodes; node 0 also has DMA/DMA32
    if nodes > 1 and not high_pages:
        raise ValueError("more than one node needs memory above 4 GiB")
    per_node = high_pages // nodes if nodes > 1 else high_pages
    per_node &= ~((1 << MAX_PAGE_ORDER) - 1)
    bounds = [DMA32_END_PFN + i * per_node for i in range(nodes)] + [node_end]
    specs = []
    for nid in range(nodes):
        if nid == 0:
            lo, hi = 0, bounds[1] if nodes > 1 else node_end
        else:
            lo, hi = bounds[nid], bounds[nid + 1]
        node_ram = _clip(ram, lo, hi)
        reserved: list[Range] = []
        if nid == 0:
            reserved.append((1, 0x100))  # the first 1 MiB
            k0 = DMA_END_PFN
            reserved.append((k0, k0 + kernel_mib * MiB_PAGES))
        if reserve_memmap:
            present = sum(e - s for s, e in node_ram)
            memmap_pages = -(-present * 64 // 4096)
            top_s, top_e = node_ram[-1]
            reserved.append((max(top_s, top_e - memmap_pages), top_e))
        zones = []
        for zidx, (zlo, zhi) in enumerate(
            ((0, DMA_END_PFN), (DMA_END_PFN, DMA32_END_PFN), (DMA32_END_PFN, 1 << 62))
        ):
            zram = _clip(node_ram, zlo, zhi)
            if not zram:
                continue
            start, end = zram[0][0], zram[-1][1]
            holes = []
            for (_, e1), (s2, _) in itertools.pairwise(zram):
                holes.append((e1, s2))
            zones.append(
                ZoneSpec(zidx, start, end - start, tuple(holes), _clip(reserved, start, end))
            )
        specs.append(NodeSpec(nid, tuple(zones)))
    return specs


def simple_layout(**zone_pages: int) -> list[NodeSpec]:
    """One node with contiguous zones of the given page counts (``DMA=``, ``DMA32=``, ``Normal=``),
    packed from pfn 0 (not at the real 16 MiB / 4 GiB boundaries), no holes, nothing reserved.
    Sizes should be multiples of 1024 for whole order-10 blocks. For tests and benchmarks."""
    pfn = 0
    zones = []
    for zidx, name in ((ZONE_DMA, "DMA"), (ZONE_DMA32, "DMA32"), (ZONE_NORMAL, "Normal")):
        n = zone_pages.pop(name, 0)
        if n:
            zones.append(ZoneSpec(zidx, pfn, n))
            pfn += n
    if zone_pages:
        raise ValueError(f"unknown zone names {sorted(zone_pages)}; use DMA, DMA32, Normal")
    if not zones:
        raise ValueError("simple_layout needs at least one non-empty zone")
    return [NodeSpec(0, tuple(zones))]


def bool_runs(mask: np.ndarray) -> np.ndarray:
    """The runs of True in a boolean array, as an (n, 2) array of [start, end) indices.

    Uses only byte-sized temporaries (np.diff with int prepends would upcast to int64)."""
    n = mask.size
    if not n:
        return np.zeros((0, 2), dtype=np.int64)
    edges = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    parts = [edges]
    if mask[0]:
        parts.insert(0, np.array([0]))
    if mask[-1]:
        parts.append(np.array([n]))
    return np.concatenate(parts).astype(np.int64).reshape(-1, 2)


class Node:
    """Models include/linux/mmzone.h: struct pglist_data (``pg_data_t``): a node and its zones
    (indexed by zone type, empty ones included), and its ``lruvec``."""

    def __init__(self, nid: int, zones: list[Zone], lruvec: Lruvec) -> None:
        self.nid = nid
        self.zones = zones
        self.lruvec = lruvec
        #: ``pgdat->kcompactd`` once the kthreads are started (emulator.mm.kswapd.start_kthreads)
        self.kcompactd: ProactiveTrigger | None = None

    @property
    def populated_zones(self) -> list[Zone]:
        return [z for z in self.zones if z.populated]

    @property
    def present_pages(self) -> int:
        return sum(z.present_pages for z in self.zones)


class Machine:
    """The physical memory of one machine: nodes, zones, mem_map, sysctls and vm events."""

    # the tunables (emulator.mm.sysctl.TUNABLES), set from their defaults in __init__
    min_free_kbytes: int
    watermark_scale_factor: int
    watermark_boost_factor: int
    lowmem_reserve_ratio: list[int]
    percpu_pagelist_high_fraction: int
    extfrag_threshold: int
    compaction_proactiveness: int
    compact_unevictable_allowed: int
    transparent_hugepage_defrag: str

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        *,
        thp_enabled: bool = True,
        recorder: Recorder | NullRecorder = NULL_RECORDER,
        boot: bool = True,
        per_cpu_data_slice_size: int = DEFAULT_PER_CPU_DATA_SLICE_SIZE,
    ) -> None:
        if per_cpu_data_slice_size < 0:
            raise ValueError(f"per_cpu_data_slice_size {per_cpu_data_slice_size}: need bytes >= 0")
        self.thp_enabled = thp_enabled
        #: drivers/base/cacheinfo.c: ``per_cpu_data_slice_size``, the last-level cache's size
        #: over the CPUs sharing it (bytes); sets PCPF_FREE_HIGH_BATCH (zone_pcp_update_cacheinfo)
        self.per_cpu_data_slice_size = per_cpu_data_slice_size
        self.recorder = recorder
        self.vm_events: defaultdict[str, int] = defaultdict(int)
        # the tunables' values, at their defaults (emulator.mm.sysctl.TUNABLES; a default of
        # None is computed at boot: min_free_kbytes by init_per_zone_wmark_min)
        for t in TUNABLES.values():
            if t.store is not None:  # kept elsewhere (the mitigations, below)
                continue
            default = t.default
            if isinstance(default, tuple):
                setattr(self, t.attr, list(default))
            else:
                setattr(self, t.attr, 0 if default is None else default)
        #: mm/page_alloc.c: user_min_free_kbytes (-1 until vm.min_free_kbytes is written)
        self.user_min_free_kbytes = -1
        #: which kernel mitigations are on (emulator.mm.mitigations; all on: 6.12)
        self.mitigations = Mitigations()
        self.wmark_observers: list[Callable[[Machine], None]] = []
        """Called after every watermark recomputation and percpu_pagelist_high_fraction change
        (the pcp layer's zone_pcp_update)."""
        end_pfn = max(z.end_pfn for n in nodes for z in n.zones)
        self.memmap = Memmap(end_pfn)
        self.nodes: list[Node] = []
        state = np.frombuffer(self.memmap.state, dtype=np.uint8)
        managed = np.zeros(end_pfn, dtype=bool)
        for ns in nodes:
            zones: list[Zone] = []
            by_idx = {z.zone_idx: z for z in ns.zones}
            for zidx in range(MAX_NR_ZONES):
                spec = by_idx.get(zidx)
                start, spanned = (spec.start_pfn, spec.spanned) if spec else (0, 0)
                z = Zone(
                    self.memmap,
                    ns.nid,
                    zidx,
                    start,
                    spanned,
                    vm_events=self.vm_events,
                    recorder=recorder,
                    watermark_boost_factor=self.watermark_boost_factor,
                )
                if spec:
                    end = start + spanned
                    state[start:end] = PG_RESERVED
                    managed[start:end] = True
                    for s, e in _clip(spec.holes, start, end):
                        state[s:e] = PG_HOLE
                        managed[s:e] = False
                    for s, e in _clip(spec.reserved, start, end):
                        managed[s:e] = False
                    z.present_pages = int(np.count_nonzero(state[start:end]))
                    z.managed_pages = int(np.count_nonzero(managed[start:end]))
                zones.append(z)
            self.nodes.append(Node(ns.nid, zones, Lruvec(self.memmap, ns.nid)))
        #: the reverse map: holder handles of allocated blocks
        self.rmap = Rmap(self.memmap)
        self.sysctl = Sysctl(self)
        if boot:
            self.memblock_free_all(managed)
        else:
            # memmap_init: every page starts "allocated" (refcount 1) until freed
            state[managed] = PG_ALLOC
            np.frombuffer(self.memmap.owner, dtype=np.uint8)[managed] = OWNER_UNMOVABLE
        del managed
        watermark.init_per_zone_wmark_min(self)

    # --- construction helpers ---

    @classmethod
    def x86_64(cls, mem_mib: int, nodes: int = 1, **kwargs: Any) -> Machine:
        """A machine with the :func:`x86_64_layout` of ``mem_mib`` MiB."""
        layout_kw = {
            k: kwargs.pop(k)
            for k in ("low_ram_top_mib", "kernel_mib", "reserve_memmap")
            if k in kwargs
        }
        return cls(x86_64_layout(mem_mib, nodes, **layout_kw), **kwargs)

    @classmethod
    def simple(cls, **kwargs: Any) -> Machine:
        """A one-node machine from :func:`simple_layout` (zone sizes in pages as DMA=, DMA32=,
        Normal=); other keyword arguments go to the constructor."""
        zone_kw = {k: kwargs.pop(k) for k in ("DMA", "DMA32", "Normal") if k in kwargs}
        return cls(simple_layout(**zone_kw), **kwargs)

    def memblock_free_all(self, managed: np.ndarray) -> None:
        """Models mm/memblock.c: memblock_free_all (-> __free_pages_memory ->
        __free_pages_core(FPI_TO_TAIL)).

        Each run of managed pages is cut into maximal aligned blocks (order <= MAX_PAGE_ORDER);
        freeing them in ascending order with FPI_TO_TAIL and merging gives exactly these blocks,
        each at the tail of its MOVABLE list, so that is built directly. Counts ``pgfree`` like
        __free_pages_ok does not (boot frees are accounted to totalram, not vm events).
        """
        state = np.frombuffer(self.memmap.state, dtype=np.uint8)
        state[managed] = PG_BUDDY | PG_TAIL
        runs = bool_runs(managed)
        for z in self.all_zones():
            if not z.spanned_pages:
                continue
            lo = np.searchsorted(runs[:, 1], z.zone_start_pfn, side="right")
            for s, e in runs[lo:].tolist():
                if s >= z.zone_end_pfn:
                    break
                s, e = max(s, z.zone_start_pfn), min(e, z.zone_end_pfn)
                self._free_range(z, s, e)

    @staticmethod
    def _free_range(z: Zone, start: int, end: int) -> None:
        mm = z.memmap
        st = mm.state
        od = mm.order
        add_tail = mm.list_add_tail
        pfn = start
        while pfn < end:
            order = MAX_PAGE_ORDER
            while pfn & ((1 << order) - 1) or pfn + (1 << order) > end:
                order -= 1
            st[pfn] = PG_BUDDY
            od[pfn] = order
            i = order * MIGRATE_TYPES + MIGRATE_MOVABLE
            add_tail(z.sbase + i, pfn)
            z.nr_free[order] += 1
            z.nr_free_mt[i] += 1
            z.nr_free_pages += 1 << order
            pfn += 1 << order

    # --- views ---

    def all_zones(self) -> Iterator[Zone]:
        """for_each_zone: every zone struct of every node (empty ones included)."""
        for n in self.nodes:
            yield from n.zones

    def populated_zones(self) -> list[Zone]:
        """for_each_populated_zone."""
        return [z for z in self.all_zones() if z.populated]

    def zone(self, name: str, node: int = 0) -> Zone:
        """The zone called ``name`` (DMA, DMA32, Normal, Movable) on ``node``."""
        for z in self.nodes[node].zones:
            if z.name.lower() == name.lower():
                return z
        raise KeyError(f"no zone {name!r}; zones are {[z.name for z in self.nodes[node].zones]}")

    def zonelist(self, nid: int, highest_zoneidx: int) -> list[Zone]:
        """The node's fallback zonelist (ZONELIST_FALLBACK): its own populated zones from
        ``highest_zoneidx`` down, then the other nodes' in node order (a simplification of the
        distance-sorted order)."""
        order = [nid] + [n.nid for n in self.nodes if n.nid != nid]
        out: list[Zone] = []
        for n in order:
            node = self.nodes[n]
            out.extend(z for z in reversed(node.zones[: highest_zoneidx + 1]) if z.populated)
        return out

    @property
    def managed_pages(self) -> int:
        return sum(z.managed_pages for z in self.all_zones())

    @property
    def nr_free_pages(self) -> int:
        return sum(z.nr_free_pages for z in self.all_zones())

    def node_stat_totals(self) -> dict[str, int]:
        """The node and zone stat items the model keeps, summed over nodes, under their
        /proc/vmstat names (the LRU sizes, isolated and slab pages, nr_mlock)."""
        out: dict[str, int] = {}
        for n in self.nodes:
            for name, v in n.lruvec.node_stats().items():
                out[name] = out.get(name, 0) + v
            for z in n.zones:
                for name, v in n.lruvec.zone_stats(z.zone_idx).items():
                    out[name] = out.get(name, 0) + v
        return out

    def _zone_stats(self, z: Zone) -> tuple[tuple[str, int], ...]:
        """zoneinfo's zone stat lines after nr_free_pages (every zone_stat_item, then the NUMA
        items), the unmodelled ones 0."""
        known = self.nodes[z.node].lruvec.zone_stats(z.zone_idx)
        known["nr_free_cma"] = z.nr_free_cma
        return tuple((name, known.get(name, 0)) for name in ZONE_STAT_NAMES[1:]) + tuple(
            (name, 0) for name in NUMA_STAT_NAMES
        )

    def snapshot(self, populated_only: bool = True) -> MachineSnapshot:
        """Freeze every node's (populated) zones into a MachineSnapshot, with the zone and
        node stat lines /proc/zoneinfo prints (the model's counters, the others 0)."""
        nodes = []
        for n in self.nodes:
            known = n.lruvec.node_stats()
            nodes.append(
                NodeSnapshot(
                    node=n.nid,
                    zones=tuple(
                        attrs.evolve(z.snapshot(), zone_stats=self._zone_stats(z))
                        if z.populated
                        else z.snapshot()
                        for z in n.zones
                        if z.populated or not populated_only
                    ),
                    node_stats=tuple((name, known.get(name, 0)) for name in NODE_STAT_NAMES),
                )
            )
        return MachineSnapshot(
            nodes=tuple(nodes),
            compaction_proactiveness=self.compaction_proactiveness,
            extfrag_threshold=self.extfrag_threshold,
        )

    def __repr__(self) -> str:
        return f"<Machine {len(self.nodes)} node(s), {self.managed_pages} managed pages>"
