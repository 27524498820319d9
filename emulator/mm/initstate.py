"""Initial memory states: fresh boot, documented fragmentation generators, and real machines.

* :func:`fresh_boot` — everything free and maximally merged, as memblock_free_all leaves it
  (order-10 blocks in MOVABLE pageblocks; smaller blocks only at range edges).
* Fragmentation generators. Each works on one zone *before* any CPU has pages on a pcp list (they
  rewrite the whole zone) and leaves every non-free managed page allocated, order 0, with the
  given owner kind; the free pages are then freed through ``__free_one_page`` in ascending pfn
  order with FPI_TO_TAIL, so the free lists are exactly what the kernel's merging gives.

  - :func:`random_alloc_free`: allocate random orders and migratetypes from the buddy allocator
    until the zone's free ratio falls to ``target_free_ratio``, then ``churn`` times the number
    of held blocks, free a random held block and allocate a new random one. Fully determined by
    the seed (a ``numpy.random.Generator``).
  - :func:`free_k_of_n`: allocate everything, then in every 2 MiB pageblock free ``k`` of every
    ``n`` consecutive pages (the first ``k`` of each group, or ``k`` random ones with a seed).
  - :func:`every_other_chunk`: allocate everything, then free every other chunk of ``chunk_mib``
    MiB (chunks 0, 2, 4, ... counted from the zone start).

* :func:`machine_from_snapshot` — a machine whose free lists match a real machine's
  ``/proc/buddyinfo`` (and, when given, ``/proc/pagetypeinfo``'s per-migratetype counts and
  pageblock types, and ``/proc/zoneinfo``'s spans and watermarks). See its docstring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emulator.mm.machine import Machine, NodeSpec, ZoneSpec, bool_runs
from emulator.mm.memmap import (
    OWNER_FOR_MIGRATETYPE,
    OWNER_MOVABLE,
    OWNER_UNMOVABLE,
    PG_ALLOC,
    PG_BUDDY,
    PG_ISOLATED,
    PG_KIND_MASK,
    PG_PCP,
)
from emulator.mm.page_alloc import FPI_TO_TAIL, Zone
from emulator.mm.snapshot import (
    MAX_PAGE_ORDER,
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
    ZONE_NAMES,
    MachineSnapshot,
    ZoneSnapshot,
)
from emulator.mm.zone import WMARK_HIGH, WMARK_LOW, WMARK_MIN, WMARK_PROMO

MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER


def fresh_boot(mem_mib: int = 4096, nodes: int = 1, **kwargs) -> Machine:
    """A freshly booted x86-64 machine: all managed memory free and maximally merged."""
    return Machine.x86_64(mem_mib, nodes, **kwargs)


# ----------------------------------------------------------------------------- helpers


def _managed_mask(zone: Zone) -> np.ndarray:
    st = np.frombuffer(zone.memmap.state, dtype=np.uint8)[zone.zone_start_pfn : zone.zone_end_pfn]
    kind = st & PG_KIND_MASK
    return (kind == PG_BUDDY) | (kind == PG_ALLOC) | (kind == PG_PCP) | (kind == PG_ISOLATED)


def allocate_everything(zone: Zone, owner: int = OWNER_MOVABLE) -> None:
    """Empty the zone's free lists and mark every managed page allocated (order 0, ``owner``).

    Rewrites the zone wholesale: there must be no pages on pcp lists (their lists would dangle).
    """
    if not zone.spanned_pages:
        return
    lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
    mask = _managed_mask(zone)
    st = np.frombuffer(zone.memmap.state, dtype=np.uint8)[lo:hi]
    if np.any(st == PG_PCP):
        raise ValueError(f"zone {zone.name} has pages on pcp lists; drain them first")
    st[mask] = PG_ALLOC
    np.frombuffer(zone.memmap.order, dtype=np.uint8)[lo:hi][mask] = 0
    np.frombuffer(zone.memmap.owner, dtype=np.uint8)[lo:hi][mask] = owner
    mm = zone.memmap
    for i in range(NR_PAGE_ORDERS * MIGRATE_TYPES):
        s = zone.sbase + i
        mm.nxt[s] = s
        mm.prv[s] = s
        zone.nr_free_mt[i] = 0
    zone.nr_free[:] = [0] * NR_PAGE_ORDERS
    zone.nr_free_pages = zone.nr_free_cma = zone.nr_free_highatomic = 0


def free_pages_mask(zone: Zone, free: np.ndarray) -> None:
    """Free the allocated order-0 pages where ``free`` (indexed from zone_start_pfn) is True.

    Each run is cut into maximal aligned blocks freed in ascending order with FPI_TO_TAIL through
    ``__free_one_page`` (so merging, pageblock rules and accounting are the kernel's).
    """
    lo = zone.zone_start_pfn
    st = np.frombuffer(zone.memmap.state, dtype=np.uint8)[lo : zone.zone_end_pfn]
    free = free & (st == PG_ALLOC)
    idx = bool_runs(free)
    pb_mt = zone.memmap.pb_mt
    for s, e in (idx + lo).tolist():
        pfn = s
        while pfn < e:
            order = MAX_PAGE_ORDER
            while pfn & ((1 << order) - 1) or pfn + (1 << order) > e:
                order -= 1
            if order > PAGEBLOCK_ORDER:
                zone.split_large_buddy(pfn, order, FPI_TO_TAIL)
            else:
                zone.free_to_buddy(pfn, order, pb_mt[pfn >> PAGEBLOCK_ORDER], FPI_TO_TAIL)
            pfn += 1 << order


# ----------------------------------------------------------------------------- generators


def random_alloc_free(
    zone: Zone,
    target_free_ratio: float,
    rng: np.random.Generator,
    *,
    orders: Sequence[int] = (0,),
    order_weights: Sequence[float] | None = None,
    migratetypes: Sequence[int] = (MIGRATE_MOVABLE,),
    mt_weights: Sequence[float] | None = None,
    churn: float = 1.0,
) -> list[tuple[int, int]]:
    """Random allocation and free in ``zone`` down to a free ratio, then churn (see module doc).

    Allocations go through :meth:`Zone.rmqueue_buddy` (so fallbacks, stealing and pageblock
    claims happen as in the kernel); allocated blocks are owned by their migratetype's owner.
    Returns the held blocks as (pfn, order).
    """
    if not 0.0 <= target_free_ratio <= 1.0:
        raise ValueError(f"target_free_ratio must be in [0, 1], got {target_free_ratio}")
    managed = zone.managed_pages
    target = int(managed * target_free_ratio)
    orders = list(orders)
    mts = list(migratetypes)
    op = None if order_weights is None else np.asarray(order_weights, float) / sum(order_weights)
    mp = None if mt_weights is None else np.asarray(mt_weights, float) / sum(mt_weights)
    held: list[tuple[int, int]] = []

    def alloc_one() -> bool:
        order = int(orders[rng.choice(len(orders), p=op)])
        mt = int(mts[rng.choice(len(mts), p=mp)])
        pfn = zone.rmqueue_buddy(order, mt, 0)
        if pfn < 0:
            return False
        held.append((pfn, order))
        return True

    failures = 0
    while zone.nr_free_pages > target and failures < 64:
        failures = 0 if alloc_one() else failures + 1
    for _ in range(int(churn * len(held))):
        if not held:
            break
        i = int(rng.integers(len(held)))
        held[i], held[-1] = held[-1], held[i]
        pfn, order = held.pop()
        zone.free_one_page(pfn, order)
        alloc_one()
    return held


def free_k_of_n(
    zone: Zone,
    k: int,
    n: int,
    *,
    owner: int = OWNER_MOVABLE,
    rng: np.random.Generator | None = None,
) -> None:
    """Allocate everything, then free ``k`` of every ``n`` pages in each 2 MiB pageblock.

    Groups of ``n`` consecutive pages start at each pageblock's first pfn (a trailing partial
    group frees min(k, its length) pages). Without ``rng`` the first ``k`` pages of each group are
    freed, with it ``k`` random ones.
    """
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k} n={n}")
    allocate_everything(zone, owner)
    lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
    pfns = np.arange(lo, hi)
    pos = (pfns & (PAGEBLOCK_NR_PAGES - 1)) % n
    if rng is None:
        free = pos < k
    else:
        group = (pfns >> PAGEBLOCK_ORDER) * PAGEBLOCK_NR_PAGES + (
            (pfns & (PAGEBLOCK_NR_PAGES - 1)) // n
        )
        keys = rng.random(hi - lo)
        order = np.lexsort((keys, group))
        rank = np.empty(hi - lo, dtype=np.int64)
        starts = np.flatnonzero(np.diff(group[order], prepend=-1))
        ranks_sorted = np.arange(hi - lo) - np.repeat(starts, np.diff(np.append(starts, hi - lo)))
        rank[order] = ranks_sorted
        free = rank < k
    free_pages_mask(zone, free)


def every_other_chunk(zone: Zone, chunk_mib: int, *, owner: int = OWNER_MOVABLE) -> None:
    """Allocate everything, then free chunks 0, 2, 4, ... of ``chunk_mib`` MiB from zone start."""
    if chunk_mib <= 0:
        raise ValueError(f"chunk_mib must be positive, got {chunk_mib}")
    allocate_everything(zone, owner)
    chunk = chunk_mib * 256
    rel = np.arange(zone.spanned_pages)
    free_pages_mask(zone, (rel // chunk) % 2 == 0)


# ----------------------------------------------------------------------------- real machines


def _zone_size(zs: ZoneSnapshot, free_fraction: float) -> int:
    if zs.managed:
        return zs.managed
    need = sum(n << o for o, n in enumerate(zs.nr_free))
    size = int(need / free_fraction) if free_fraction > 0 else need
    return max(-(-size // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES, MAX_ORDER_NR_PAGES)


def machine_from_snapshot(
    snap: MachineSnapshot | Sequence[ZoneSnapshot],
    *,
    free_fraction: float = 0.5,
    thp_enabled: bool = True,
) -> Machine:
    """Build a machine whose free lists match ``snap`` (parsed buddyinfo/pagetypeinfo/zoneinfo).

    Layout: a zone with ``start_pfn``/``spanned`` from zoneinfo is placed there; holes
    (spanned - present) and reserved pages (present - managed) are put at the zone's end. Without
    spans, zones are packed from pfn 0 in node order, each ``managed`` pages or, for a bare
    buddyinfo, its free pages / ``free_fraction`` rounded up to 4 MiB.

    Free blocks: ``nr_free[o]`` blocks of every order are placed so that none would merge with
    another (a block of order o takes the start of an aligned 2**(o+1) region whose other half
    only ever holds smaller blocks), per migratetype when ``nr_free_by_mt`` is given, in
    pageblocks of that type. The remaining pageblocks get types to approach
    ``pageblocks_by_mt`` (exact when the free blocks leave room), HighAtomic pageblocks are
    counted in ``nr_reserved_highatomic``. Every non-free managed page is allocated, order 0,
    owned according to its pageblock's type. Watermarks, boost and lowmem_reserve from zoneinfo
    replace the computed ones when present. Raises ValueError if the blocks do not fit.
    """
    zones = list(snap.zones) if isinstance(snap, MachineSnapshot) else list(snap)
    specs: dict[int, list[ZoneSpec]] = {}
    cursor = 0
    for zs in zones:
        zidx = ZONE_NAMES.index(zs.name)
        if zs.spanned:
            start, spanned = zs.start_pfn, zs.spanned
            present = zs.present or spanned
            managed = zs.managed or present
        else:
            start = -(-cursor // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES
            spanned = present = managed = _zone_size(zs, free_fraction)
        end = start + spanned
        holes = ((start + present, end),) if present < spanned else ()
        reserved = ((start + managed, start + present),) if managed < present else ()
        specs.setdefault(zs.node, []).append(ZoneSpec(zidx, start, spanned, holes, reserved))
        cursor = max(cursor, end)
    m = Machine(
        [NodeSpec(nid, tuple(zl)) for nid, zl in sorted(specs.items())],
        thp_enabled=thp_enabled,
        boot=False,
    )
    for zs in zones:
        zone = m.nodes[zs.node].zones[ZONE_NAMES.index(zs.name)]
        _place_free_blocks(zone, zs)
        if zs.wmark_min:
            zone.watermark_boost = zs.boost
            zone._watermark[WMARK_MIN] = zs.wmark_min - zs.boost
            zone._watermark[WMARK_LOW] = zs.wmark_low - zs.boost
            zone._watermark[WMARK_HIGH] = zs.wmark_high - zs.boost
            zone._watermark[WMARK_PROMO] = (zs.wmark_promo or zs.wmark_high) - zs.boost
        if len(zs.lowmem_reserve) >= len(zone.lowmem_reserve):
            zone.lowmem_reserve[:] = list(zs.lowmem_reserve[: len(zone.lowmem_reserve)])
    return m


class _Pool:
    """Free aligned regions by size order, for placing non-merging free blocks."""

    def __init__(self) -> None:
        self.avail: list[list[int]] = [[] for _ in range(MAX_PAGE_ORDER + 1)]

    def add_range(self, s: int, e: int) -> None:
        while s < e:
            o = MAX_PAGE_ORDER
            while s & ((1 << o) - 1) or s + (1 << o) > e:
                o -= 1
            self.avail[o].append(s)
            s += 1 << o

    def take(self, order: int) -> int:
        """Place a block of ``order``: returns its pfn or -1 if no region fits."""
        need = order if order == MAX_PAGE_ORDER else order + 1
        for k in range(need, MAX_PAGE_ORDER + 1):
            if self.avail[k]:
                r = self.avail[k].pop()
                if order < MAX_PAGE_ORDER:
                    self.avail[order].append(r + (1 << order))  # the constrained buddy half
                    for j in range(order + 1, k):
                        self.avail[j].append(r + (1 << j))
                return r
        return -1


def _place_free_blocks(zone: Zone, zs: ZoneSnapshot) -> None:
    mm = zone.memmap
    lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
    managed = _managed_mask(zone)
    # 1024-aligned fully managed regions, in ascending order, handed out to migratetypes
    big: list[int] = []
    edges = _Pool()
    runs = bool_runs(managed)
    for s, e in (runs + lo).tolist():
        a = -(-s // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES
        b = e // MAX_ORDER_NR_PAGES * MAX_ORDER_NR_PAGES
        if a >= b:
            edges.add_range(s, e)
            continue
        edges.add_range(s, a)
        big.extend(range(a, b, MAX_ORDER_NR_PAGES))
        edges.add_range(b, e)
    big.reverse()  # pop() hands out ascending pfns
    by_mt = zs.nr_free_by_mt
    if by_mt is None:
        by_mt = tuple(
            tuple(zs.nr_free) if mt == MIGRATE_MOVABLE else (0,) * NR_PAGE_ORDERS
            for mt in range(MIGRATE_TYPES)
        )
    used_blocks: dict[int, int] = {}  # pageblock index -> migratetype
    placements: list[tuple[int, int, int]] = []
    pools = {mt: _Pool() for mt in range(MIGRATE_TYPES)}
    # the edge regions (not 1024-aligned) go to MOVABLE, the boot type
    pools[MIGRATE_MOVABLE].avail = edges.avail
    for mt in sorted(range(MIGRATE_TYPES), key=lambda t: t != MIGRATE_MOVABLE):
        pool = pools[mt]
        for order in range(MAX_PAGE_ORDER, -1, -1):
            for _ in range(by_mt[mt][order]):
                pfn = pool.take(order)
                if pfn < 0:
                    if not big:
                        raise ValueError(
                            f"zone {zs.name}: the free blocks do not fit in "
                            f"{zone.managed_pages} managed pages without merging"
                        )
                    r = big.pop()
                    pool.avail[MAX_PAGE_ORDER].append(r)
                    pfn = pool.take(order)
                placements.append((pfn, order, mt))
                last = (pfn + (1 << order) - 1) >> PAGEBLOCK_ORDER
                for b in range(pfn >> PAGEBLOCK_ORDER, last + 1):
                    used_blocks[b] = mt
    # pageblock types: used ones fixed, the rest to approach pageblocks_by_mt
    pb_mt = mm.pb_mt
    blocks = [
        b
        for b in zone.pageblock_range()
        if managed[
            max(b << PAGEBLOCK_ORDER, lo) - lo : min((b + 1) << PAGEBLOCK_ORDER, hi) - lo
        ].any()
    ]
    for b, mt in used_blocks.items():
        pb_mt[b] = mt
    if zs.pageblocks_by_mt is not None:
        want = list(zs.pageblocks_by_mt)
        for mt in used_blocks.values():
            want[mt] -= 1
        free_blocks = [b for b in blocks if b not in used_blocks]
        for b in free_blocks:
            mt = next((t for t in range(MIGRATE_TYPES) if want[t] > 0), MIGRATE_MOVABLE)
            want[mt] -= 1
            pb_mt[b] = mt
    zone.nr_reserved_highatomic = (
        sum(1 for b in blocks if pb_mt[b] == MIGRATE_HIGHATOMIC) * PAGEBLOCK_NR_PAGES
    )
    # owners of the allocated pages follow their pageblock's type
    owner = np.frombuffer(mm.owner, dtype=np.uint8)[lo:hi]
    pbt = np.frombuffer(pb_mt, dtype=np.uint8)[np.arange(lo, hi) >> PAGEBLOCK_ORDER]
    owner_of = np.array(
        [
            OWNER_FOR_MIGRATETYPE[t] if t < MIGRATE_PCPTYPES else OWNER_UNMOVABLE
            for t in range(MIGRATE_TYPES)
        ],
        dtype=np.uint8,
    )
    owner[managed] = owner_of[pbt[managed]]
    # free the placed blocks (ascending pfn, to the tail): none merges by construction
    st = mm.state
    for pfn, order, mt in sorted(placements):
        if st[pfn] != PG_ALLOC:
            raise AssertionError(f"placement overlap at pfn {pfn:#x}")
        zone.free_to_buddy(pfn, order, mt, FPI_TO_TAIL)
