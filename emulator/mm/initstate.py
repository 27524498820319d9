"""Initial memory states: fresh boot, documented fragmentation generators, and real machines.

* :func:`fresh_boot` — everything free and maximally merged, as memblock_free_all leaves it
  (order-10 blocks in MOVABLE pageblocks; smaller blocks only at range edges).
* Fragmentation generators. Each works on one zone *before* any CPU has pages on a pcp list (they
  rewrite the whole zone) and leaves every non-free managed page allocated, order 0, with the
  given owner kind; the free pages are then freed through ``__free_one_page`` in ascending pfn
  order with FPI_TO_TAIL, so the free lists are exactly what the kernel's merging gives.

  - :func:`random_alloc_free` (:func:`random_alloc_free_blocks`): allocate random orders and
    migratetypes from the buddy allocator until the zone's free ratio falls to
    ``target_free_ratio``, then ``churn`` times the number of held blocks, free a random held
    block and allocate a new random one. Fully determined by the seed (a
    ``numpy.random.Generator``).
  - :func:`free_k_of_n`: allocate everything, then in every 2 MiB pageblock free ``k`` of every
    ``n`` consecutive pages (the first ``k`` of each group, or ``k`` random ones with a seed).
  - :func:`every_other_chunk`: allocate everything, then free every other chunk of ``chunk_mib``
    MiB (chunks 0, 2, 4, ... counted from the zone start).

* :func:`machine_from_snapshot` — a machine whose free lists match a real machine's
  ``/proc/buddyinfo`` (and, when given, ``/proc/pagetypeinfo``'s per-migratetype counts and
  pageblock types, and ``/proc/zoneinfo``'s spans and watermarks). See its docstring.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from emulator.mm.machine import Machine, NodeSpec, ZoneSpec, bool_runs
from emulator.mm.memmap import (
    OWNER_FOR_MIGRATETYPE,
    OWNER_MOVABLE,
    OWNER_UNMOVABLE,
    PG_ALLOC,
    PG_BUDDY,
    PG_HOLE,
    PG_ISOLATED,
    PG_KIND_MASK,
    PG_PCP,
    PG_RESERVED,
)
from emulator.mm.page_alloc import watermark
from emulator.mm.page_alloc.alloc_flags import FPI_TO_TAIL
from emulator.mm.page_alloc.buddy import free_one_page_locked, free_to_buddy, split_large_buddy
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
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
from emulator.mm.zone import WMARK_HIGH, WMARK_LOW, WMARK_MIN, WMARK_PROMO, Zone

MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER


def fresh_boot(mem_mib: int = 4096, nodes: int = 1, **kwargs: Any) -> Machine:
    """A freshly booted x86-64 machine: all managed memory free and maximally merged."""
    return Machine.x86_64(mem_mib, nodes, **kwargs)


# ----------------------------------------------------------------------------- helpers


def _managed_mask(zone: Zone) -> np.ndarray:
    st = np.frombuffer(zone.memmap.state, dtype=np.uint8)[zone.zone_start_pfn : zone.zone_end_pfn]
    kind = st & PG_KIND_MASK
    mask: np.ndarray = (
        (kind == PG_BUDDY) | (kind == PG_ALLOC) | (kind == PG_PCP) | (kind == PG_ISOLATED)
    )
    return mask


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
                split_large_buddy(zone, pfn, order, FPI_TO_TAIL)
            else:
                free_to_buddy(zone, pfn, order, pb_mt[pfn >> PAGEBLOCK_ORDER], FPI_TO_TAIL)
            pfn += 1 << order


# ----------------------------------------------------------------------------- generators


class _Draws:
    """The draws ``rng.choice(n, p=...)`` and ``rng.integers(n)`` would make, from raw words
    fetched in batches: the per-call numpy overhead (about 10 µs) was 93% of building a used
    4 GiB machine.

    Exact for the PCG64 bit generators (``default_rng``'s): numpy draws a double as the top 53
    bits of one 64-bit word, and a bounded integer below 2**32 with Lemire's method from 32-bit
    halves (the low half of a fresh word first, the high half kept for the next 32-bit draw).
    :meth:`rounds` makes many allocations' draws at once with numpy (the same values).
    :meth:`finish` leaves the generator exactly where the per-call draws would have left it,
    so whatever the caller draws next is unchanged too. ``tests/mm/test_initstate_states.py``
    checks the draws and the state against numpy's own calls.
    """

    BATCH = 1 << 15

    def __init__(self, rng: np.random.Generator) -> None:
        self.bg = rng.bit_generator
        self.start = self.bg.state
        self.has32 = self.start["has_uint32"]
        self.u32: int = self.start["uinteger"]
        self.words: list[int] = []
        self.pos = 0
        self.used = 0

    @staticmethod
    def supports(rng: np.random.Generator) -> bool:
        return isinstance(rng.bit_generator, (np.random.PCG64, np.random.PCG64DXSM))

    def _word(self) -> int:
        if self.pos == len(self.words):
            self.words = self.bg.random_raw(self.BATCH).tolist()
            self.pos = 0
        w = self.words[self.pos]
        self.pos += 1
        self.used += 1
        return w

    def _uint32(self) -> int:
        if self.has32:
            self.has32 = 0
            return self.u32
        w = self._word()
        self.has32 = 1
        self.u32 = w >> 32
        return w & 0xFFFFFFFF

    def random(self) -> float:
        """``rng.random()``."""
        return (self._word() >> 11) * (1.0 / 9007199254740992.0)

    def integers(self, n: int) -> int:
        """``rng.integers(n)`` (``0 <= result < n``), for ``1 <= n <= 2**32``."""
        if n == 1:
            return 0
        if n == 1 << 32:
            return self._uint32()
        m = self._uint32() * n
        leftover = m & 0xFFFFFFFF
        if leftover < n:
            threshold = ((1 << 32) - n) % n
            while leftover < threshold:
                m = self._uint32() * n
                leftover = m & 0xFFFFFFFF
        return m >> 32

    def chooser(self, n: int, p: np.ndarray | None) -> Callable[[], int]:
        """A function making ``rng.choice(n, p=p)``'s draw."""
        if p is None:
            return lambda: self.integers(n)
        cdf = p.cumsum()
        cdf /= cdf[-1]
        bounds = cdf.tolist()
        rand = self.random
        return lambda: bisect.bisect_right(bounds, rand())

    def rounds(self, specs: Sequence[tuple[int, np.ndarray | None]], count: int) -> _Rounds | None:
        """``count`` rounds of the draws ``chooser(n, p)`` makes for each ``(n, p)`` of
        ``specs`` in turn, computed with numpy from the raw words: the same values as the
        per-call draws. Nothing is consumed until :meth:`_Rounds.commit` says how many rounds
        were used. Ends early before a round whose bounded draw would be retried (Lemire's
        rejection, about once in 10**9 draws); None if that is the first round (the caller
        then draws that round one call at a time)."""
        kinds = []  # per draw of a round: True for a 32-bit bounded draw, False for a double
        for n, p in specs:
            if p is not None:
                kinds.append(False)
            elif n > 1:
                kinds.append(True)
        per_round = len(kinds)
        is_u = np.tile(np.asarray(kinds, dtype=bool), count)
        # the j-th 32-bit draw takes a fresh word's low half when (j + has32) is even, else
        # the high half kept from the previous fresh one (for j = 0: the half kept already)
        j = np.cumsum(is_u) - 1
        fresh_u = is_u & ((j + self.has32) % 2 == 0)
        takes = ~is_u | fresh_u
        nwords = int(np.count_nonzero(takes))
        have = np.array(self.words[self.pos :], dtype=np.uint64)
        if have.size < nwords:
            have = np.concatenate((have, self.bg.random_raw(nwords - have.size)))
            self.words = have.tolist()  # fetched words stay in line whatever is drawn
            self.pos = 0
        raw = np.concatenate((have, np.zeros(1, dtype=np.uint64)))  # [-1]: no word yet
        word_of = np.cumsum(takes) - 1  # the word each draw takes
        w = raw[word_of]
        last_fresh = np.maximum.accumulate(np.where(fresh_u, np.arange(is_u.size), -1))
        kept = np.where(
            last_fresh >= 0,
            raw[word_of[np.maximum(last_fresh, 0)]] >> np.uint64(32),
            np.uint64(self.u32),
        )
        u32 = np.where(fresh_u, w & np.uint64(0xFFFFFFFF), kept)
        dbl = (w >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
        values: list[np.ndarray] = []
        bad = np.zeros(count, dtype=bool)
        d = 0
        for n, p in specs:
            if p is None and n <= 1:
                values.append(np.zeros(count, dtype=np.int64))
                continue
            col = np.arange(count) * per_round + d
            d += 1
            if p is not None:
                cdf = p.cumsum()
                cdf /= cdf[-1]
                values.append(np.searchsorted(cdf, dbl[col], side="right"))
            else:
                m = u32[col] * np.uint64(n)
                bad |= (m & np.uint64(0xFFFFFFFF)) < np.uint64(((1 << 32) - n) % n)
                values.append((m >> np.uint64(32)).astype(np.int64))
        if bad.any():
            count = int(np.flatnonzero(bad)[0])
            if not count:
                return None
        return _Rounds(
            self, [v[:count].tolist() for v in values], have, is_u, takes, fresh_u, per_round
        )

    def finish(self) -> None:
        """Put the generator where the per-call draws would have left it."""
        bg: Any = self.bg  # a PCG64 (supports() checked): BitGenerator's stubs lack advance()
        bg.state = self.start
        bg.advance(self.used)
        state = dict(bg.state)
        state["has_uint32"] = self.has32
        state["uinteger"] = self.u32
        bg.state = state


class _Rounds:
    """Rounds of draws made ahead by :meth:`_Draws.rounds`: ``values[i][r]`` is the value of
    the ``i``-th chooser in round ``r``; :meth:`commit` consumes the rounds used."""

    def __init__(
        self,
        draws: _Draws,
        values: list[list[int]],
        words: np.ndarray,
        is_u: np.ndarray,
        takes: np.ndarray,
        fresh_u: np.ndarray,
        per_round: int,
    ) -> None:
        self.draws = draws
        self.values = values
        self.words = words
        self.is_u = is_u
        self.takes = takes
        self.fresh_u = fresh_u
        self.per_round = per_round

    def commit(self, used: int) -> None:
        """The first ``used`` rounds were drawn: leave the draws' state (the next word, the
        kept 32-bit half) as the per-call draws of those rounds would have."""
        draws = self.draws
        end = used * self.per_round
        nwords = int(np.count_nonzero(self.takes[:end]))
        draws.has32 = (draws.has32 + int(np.count_nonzero(self.is_u[:end]))) % 2
        fresh = np.flatnonzero(self.fresh_u[:end])
        if fresh.size:  # the last fresh word's high half is kept (used or not)
            w = int(self.words[int(np.count_nonzero(self.takes[: int(fresh[-1]) + 1])) - 1])
            draws.u32 = w >> 32
        # the words fetched but not drawn come next
        draws.words = self.words[nwords:].tolist()
        draws.pos = 0
        draws.used += nwords


#: allocations whose draws :func:`random_alloc_free_blocks` makes at once
_ROUNDS_AHEAD = 1 << 14


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
    Returns the held blocks as (pfn, order): :func:`random_alloc_free_blocks` as a list."""
    pfns, block_orders = random_alloc_free_blocks(
        zone,
        target_free_ratio,
        rng,
        orders=orders,
        order_weights=order_weights,
        migratetypes=migratetypes,
        mt_weights=mt_weights,
        churn=churn,
    )
    return list(zip(pfns, block_orders, strict=True))


def random_alloc_free_blocks(
    zone: Zone,
    target_free_ratio: float,
    rng: np.random.Generator,
    *,
    orders: Sequence[int] = (0,),
    order_weights: Sequence[float] | None = None,
    migratetypes: Sequence[int] = (MIGRATE_MOVABLE,),
    mt_weights: Sequence[float] | None = None,
    churn: float = 1.0,
) -> tuple[array[int], array[int]]:
    """Random allocation and free in ``zone`` down to a free ratio, then churn (see module doc).

    Allocations go through :func:`~emulator.mm.page_alloc.rmqueue.rmqueue_buddy_locked` (so
    fallbacks, stealing and pageblock claims happen as in the kernel); allocated blocks are
    owned by their migratetype's owner.
    Returns the held blocks as two arrays, their pfns (``array('q')``) and orders
    (``array('B')``): 9 bytes a block, where a list of tuples takes about 100 (a 64 GiB
    machine holds millions of blocks).

    The random draws are, in order, per allocation ``rng.choice(len(orders), p=order_weights)``
    then ``rng.choice(len(migratetypes), p=mt_weights)``, and per churn step
    ``rng.integers(len(held))``; with a PCG64 generator they are made from batched raw words
    (:class:`_Draws`, the same values, much faster), otherwise by those calls.
    """
    if not 0.0 <= target_free_ratio <= 1.0:
        raise ValueError(f"target_free_ratio must be in [0, 1], got {target_free_ratio}")
    managed = zone.managed_pages
    target = int(managed * target_free_ratio)
    orders = list(orders)
    mts = list(migratetypes)
    op = None if order_weights is None else np.asarray(order_weights, float) / sum(order_weights)
    mp = None if mt_weights is None else np.asarray(mt_weights, float) / sum(mt_weights)
    held_pfn: array[int] = array("q")
    held_order: array[int] = array("B")
    draws = _Draws(rng) if _Draws.supports(rng) else None
    if draws is not None:
        pick_order = draws.chooser(len(orders), op)
        pick_mt = draws.chooser(len(mts), mp)
        pick_held = draws.integers
    else:
        nor, nmt = len(orders), len(mts)

        def pick_order() -> int:
            return int(rng.choice(nor, p=op))

        def pick_mt() -> int:
            return int(rng.choice(nmt, p=mp))

        def pick_held(n: int) -> int:
            return int(rng.integers(n))

    append_pfn = held_pfn.append
    append_order = held_order.append

    def alloc_one() -> bool:
        order = orders[pick_order()]
        mt = mts[pick_mt()]
        pfn = rmqueue_buddy_locked(zone, order, mt, 0)
        if pfn < 0:
            return False
        append_pfn(pfn)
        append_order(order)
        return True

    try:
        failures = 0
        specs = ((len(orders), op), (len(mts), mp))
        while zone.nr_free_pages > target and failures < 64:
            ahead = draws.rounds(specs, _ROUNDS_AHEAD) if draws is not None else None
            if ahead is None:
                failures = 0 if alloc_one() else failures + 1
                continue
            # the next allocations' draws made in one go; the loop's test comes first, as
            # each allocation draws its order and migratetype before rmqueue
            done = 0
            for oi, mi in zip(*ahead.values, strict=True):
                if zone.nr_free_pages <= target or failures >= 64:
                    break
                done += 1
                order = orders[oi]
                pfn = rmqueue_buddy_locked(zone, order, mts[mi], 0)
                if pfn < 0:
                    failures += 1
                else:
                    failures = 0
                    append_pfn(pfn)
                    append_order(order)
            ahead.commit(done)
        for _ in range(int(churn * len(held_pfn))):
            n = len(held_pfn)
            if not n:
                break
            i = pick_held(n)
            last = n - 1
            held_pfn[i], held_pfn[last] = held_pfn[last], held_pfn[i]
            held_order[i], held_order[last] = held_order[last], held_order[i]
            free_one_page_locked(zone, held_pfn.pop(), held_order.pop())
            alloc_one()
    finally:
        if draws is not None:
            draws.finish()
    return held_pfn, held_order


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

    Layout: a zone with ``start_pfn``/``spanned`` from zoneinfo is placed there; the free blocks
    are placed anywhere in the span, then the lowest non-free pages become the holes
    (spanned - present) and the reserved pages (present - managed), so present and managed
    match (a real ZONE_DMA comes out as holes and reserved pages below 1 MiB). Without
    spans, zones are packed from pfn 0 in node order, each ``managed`` pages or, for a bare
    buddyinfo, its free pages / ``free_fraction`` rounded up to 4 MiB.

    Free blocks: ``nr_free[o]`` blocks of every order are placed so that none would merge with
    another (see :class:`_Pool`: a block's buddy half only ever holds smaller blocks or
    allocated pages), per migratetype when ``nr_free_by_mt`` is given, in
    pageblocks of that type. The remaining pageblocks get types to approach
    ``pageblocks_by_mt`` (exact when the free blocks leave room), HighAtomic pageblocks are
    counted in ``nr_reserved_highatomic``. Every non-free managed page is allocated, order 0,
    owned according to its pageblock's type. Watermarks, boost and lowmem_reserve from zoneinfo
    replace the computed ones when present. Raises ValueError if the blocks do not fit.
    """
    zones = list(snap.zones) if isinstance(snap, MachineSnapshot) else list(snap)
    # zones without pages (an empty Movable, a Device zone) have nothing to build
    zones = [z for z in zones if z.spanned or z.managed or any(z.nr_free)]
    for z in zones:
        if z.name not in ZONE_NAMES:
            raise ValueError(f"node {z.node}: zone {z.name!r} has pages but is not modelled")
    specs: dict[int, list[ZoneSpec]] = {}
    sizes: dict[tuple[int, str], tuple[int, int]] = {}
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
        # built with every spanned page managed; after placing the free blocks, the lowest
        # non-free pages become the holes and reserved pages
        specs.setdefault(zs.node, []).append(ZoneSpec(zidx, start, spanned))
        sizes[(zs.node, zs.name)] = (present, managed)
        cursor = max(cursor, start + spanned)
    m = Machine(
        [NodeSpec(nid, tuple(zl)) for nid, zl in sorted(specs.items())],
        thp_enabled=thp_enabled,
        boot=False,
    )
    for zs in zones:
        zone = m.nodes[zs.node].zones[ZONE_NAMES.index(zs.name)]
        _place_free_blocks(zone, zs)
        present, managed = sizes[(zs.node, zs.name)]
        _unmanage(zone, zone.spanned_pages - present, present - managed)
    watermark.init_per_zone_wmark_min(m)
    for zs in zones:
        zone = m.nodes[zs.node].zones[ZONE_NAMES.index(zs.name)]
        if zs.wmark_min:
            zone.watermark_boost = zs.boost
            zone._watermark[WMARK_MIN] = zs.wmark_min - zs.boost
            zone._watermark[WMARK_LOW] = zs.wmark_low - zs.boost
            zone._watermark[WMARK_HIGH] = zs.wmark_high - zs.boost
            zone._watermark[WMARK_PROMO] = (zs.wmark_promo or zs.wmark_high) - zs.boost
        if len(zs.lowmem_reserve) >= len(zone.lowmem_reserve):
            zone.lowmem_reserve[:] = list(zs.lowmem_reserve[: len(zone.lowmem_reserve)])
    return m


def _unmanage(zone: Zone, holes: int, reserved: int) -> None:
    """Turn the lowest allocated pages of ``zone`` into ``holes`` absent and ``reserved``
    present-but-unmanaged pages (they are all allocated order-0 pages at this point).

    Pages of pageblocks without free pages go first, lowest pfn first."""
    if holes <= 0 and reserved <= 0:
        return
    lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
    st = np.frombuffer(zone.memmap.state, dtype=np.uint8)[lo:hi]
    owner = np.frombuffer(zone.memmap.owner, dtype=np.uint8)[lo:hi]
    idx = np.flatnonzero(st == PG_ALLOC)
    # prefer pageblocks without free pages, so holes come out as whole absent pageblocks
    first_pb = lo >> PAGEBLOCK_ORDER
    pb = ((idx + lo) >> PAGEBLOCK_ORDER) - first_pb
    has_free = np.zeros(((hi - 1) >> PAGEBLOCK_ORDER) - first_pb + 1, dtype=bool)
    free_idx = np.flatnonzero((st & PG_KIND_MASK) == PG_BUDDY)
    has_free[((free_idx + lo) >> PAGEBLOCK_ORDER) - first_pb] = True
    idx = idx[np.argsort(has_free[pb], kind="stable")][: holes + reserved]
    st[idx[:holes]] = PG_HOLE
    st[idx[holes:]] = PG_RESERVED
    owner[idx] = 0
    zone.present_pages -= holes
    zone.managed_pages -= holes + reserved


class _Pool:
    """Aligned regions of allocated pages by size order, for placing non-merging free blocks.

    ``avail[k]`` regions may be filled by one block of order k: their buddy can never become a
    free order-k block (roots of a canonical decomposition, and split remainders whose buddy
    holds a smaller block). ``cons[k]`` regions are the buddy halves of placed order-k blocks:
    they only take smaller blocks. A block of order o is placed in an exactly fitting fillable
    region, or else at the start of the smallest region of size >= 2**(o+1).
    """

    def __init__(self) -> None:
        self.avail: list[list[int]] = [[] for _ in range(MAX_PAGE_ORDER + 1)]
        self.cons: list[list[int]] = [[] for _ in range(MAX_PAGE_ORDER + 1)]

    def add_range(self, s: int, e: int) -> None:
        while s < e:
            o = MAX_PAGE_ORDER
            while s & ((1 << o) - 1) or s + (1 << o) > e:
                o -= 1
            self.avail[o].append(s)
            s += 1 << o

    def take(self, order: int) -> int:
        """Place a block of ``order``: returns its pfn or -1 if no region fits."""
        if self.avail[order]:
            return self.avail[order].pop()
        for k in range(order + 1, MAX_PAGE_ORDER + 1):
            for lst in (self.avail[k], self.cons[k]):
                if lst:
                    r = lst.pop()
                    self.cons[order].append(r + (1 << order))
                    for j in range(order + 1, k):
                        self.avail[j].append(r + (1 << j))
                    return r
        return -1


class _Supply:
    """The zone's managed memory handed out to per-migratetype pools a pageblock at a time.

    Fully managed 1024-aligned regions (``big``) serve order-10 and order-9 needs whole; other
    needs take one pageblock: first the pieces at the edges of managed runs (their canonical
    decomposition, grouped by pageblock), then halves of a big region (each half is only
    fillable below order 9, as the other half may get an order-9 block of another type, and
    mergeable types would merge).
    """

    def __init__(self, managed: np.ndarray, lo: int) -> None:
        self.big: list[int] = []
        self.units: list[list[tuple[int, int, bool]]] = []
        by_pb: dict[int, list[tuple[int, int, bool]]] = {}
        edges = _Pool()
        for s, e in (bool_runs(managed) + lo).tolist():
            a = -(-s // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES
            b = e // MAX_ORDER_NR_PAGES * MAX_ORDER_NR_PAGES
            if a >= b:
                edges.add_range(s, e)
                continue
            edges.add_range(s, a)
            self.big.extend(range(a, b, MAX_ORDER_NR_PAGES))
            edges.add_range(b, e)
        for o, starts in enumerate(edges.avail):
            for r in starts:
                by_pb.setdefault(r >> PAGEBLOCK_ORDER, []).append((r, o, True))
        self.units = [by_pb[k] for k in sorted(by_pb)]
        self.big.reverse()  # pop() hands out ascending pfns
        self.pools = {mt: _Pool() for mt in range(MIGRATE_TYPES)}

    def refill(self, mt: int, order: int) -> bool:
        """Give ``mt``'s pool room for a block of ``order``; False if the zone is full."""
        pool = self.pools[mt]
        if order < MAX_PAGE_ORDER:
            for i, unit in enumerate(self.units):
                if any((f and o == order) or o > order for _, o, f in unit):
                    for r, o, f in self.units.pop(i):
                        (pool.avail if f else pool.cons)[o].append(r)
                    return True
        if not self.big:
            return False
        r = self.big.pop()
        if order >= PAGEBLOCK_ORDER:
            pool.avail[MAX_PAGE_ORDER].append(r)
        else:
            pool.cons[PAGEBLOCK_ORDER].append(r)
            self.units.insert(0, [(r + PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, False)])
        return True


def _place_free_blocks(zone: Zone, zs: ZoneSnapshot) -> None:
    mm = zone.memmap
    lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
    managed = _managed_mask(zone)
    supply = _Supply(managed, lo)
    by_mt = zs.nr_free_by_mt
    if by_mt is None:
        by_mt = tuple(
            tuple(zs.nr_free) if mt == MIGRATE_MOVABLE else (0,) * NR_PAGE_ORDERS
            for mt in range(MIGRATE_TYPES)
        )
    used_blocks: dict[int, int] = {}  # pageblock index -> migratetype
    placements: list[tuple[int, int, int]] = []
    # the largest blocks first, across types, so order-10/9 blocks get the aligned regions
    for order in range(MAX_PAGE_ORDER, -1, -1):
        for mt in range(MIGRATE_TYPES):
            pool = supply.pools[mt]
            for _ in range(by_mt[mt][order]):
                pfn = pool.take(order)
                if pfn < 0 and supply.refill(mt, order):
                    pfn = pool.take(order)
                if pfn < 0:
                    raise ValueError(
                        f"zone {zs.name}: the free blocks do not fit in "
                        f"{zone.managed_pages} managed pages without merging "
                        f"(placing order {order}, type {mt})"
                    )
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
        free_to_buddy(zone, pfn, order, mt, FPI_TO_TAIL)
