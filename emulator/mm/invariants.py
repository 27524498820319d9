"""An invariant checker for the physical memory model, usable at any point between operations.

:func:`check_machine` (or :func:`check_zone`) raises :class:`InvariantViolation`, naming the
invariant, the zone and the first offending pfn. What it proves, per zone:

* ``list-links``: every free list is a well-formed doubly-linked list (prv[nxt[p]] == p);
* ``free-block-head``: every entry of free_area[o].free_list[mt] is inside the zone, aligned to
  2**o, marked ``PG_BUDDY`` with order o, its other pages ``PG_BUDDY|PG_TAIL``;
* ``free-block-type``: every pageblock a free block covers has the list's migratetype (6.12 keeps
  free-list type and pageblock type equal);
* ``single-list``: no block is on two lists;
* ``buddy-on-list``: every ``PG_BUDDY`` head in the zone is on a free list;
* ``nr_free``: ``free_area[o].nr_free`` and the per-migratetype counts equal the lists;
* ``NR_FREE_PAGES`` / ``NR_FREE_CMA_PAGES`` / ``nr_free_highatomic``: equal to the lists (ISOLATE
  excluded from NR_FREE_PAGES, as account_freepages does);
* ``unmerged-buddies``: no two free buddies of equal order below pageblock_order (same zone).
  From pageblock_order up the kernel itself leaves mergeable buddies apart at times: merging
  happens only when a block is freed, and a pageblock that changes from HIGHATOMIC (or CMA) to a
  normal type keeps its free order-9 block next to its free buddy
  (``unreserve_highatomic_pageblock`` does not re-merge);
* ``block-marking``: every allocated / pcp / isolated block head's tail pages carry its kind, and
  no tail page is orphaned (tail counts match the heads' sizes);
* ``conservation``: buddy + pcp + allocated + isolated pages = managed pages (and, if given, the
  pcp pages equal what the pcp layer says it holds).

:func:`check_pcp_lists` proves the pcp side (``struct per_cpu_pages`` of every CPU and zone of a
page allocator) and returns the pages it found on the lists, which is what ``check_machine``'s
``pcp_pages`` wants:

* ``pcp-list-links``: every pcp list is a well-formed doubly-linked list that ends;
* ``pcp-entry``: every entry is inside the pcp's zone, aligned to the list's order, marked
  ``PG_PCP`` with that order (``pindex_to_order``);
* ``pcp-single-list``: no block is on two pcp lists (of any CPU);
* ``pcp-count``: ``pcp->count`` equals the pages on its lists, and ``count``, ``free_count``
  and ``alloc_factor`` are in range;
* ``pcp-stray``: every ``PG_PCP`` head in the zone is on some pcp list.

:func:`check_lru` proves the LRU side (every node's ``lruvec``, the CPUs' lru-add batches and
the reverse map):

* ``lru-links`` / ``lru-entry``: every LRU list is well formed and holds allocated heads of its
  node with ``PF_LRU`` and no batch or isolation flag, on the list ``folio_lru_list`` names;
* ``lru-single-list``: no folio is on two lists, and every ``PF_LRU`` head is on one;
* ``lru-count``: ``nr_inactive_anon`` ... and ``nr_zone_*`` equal the pages on the lists;
* ``lru-batch``: the ``PF_LRU_BATCH`` heads are exactly the folios in the CPUs' batches;
* ``lru-isolated``: ``nr_isolated_anon/file`` equal the pages of ``PF_ISOLATED`` folios;
* ``lru-mlock``: ``nr_mlock`` equals the pages of unevictable mlocked folios per zone;
* ``rmap``: ``Memmap.handle`` and ``Rmap.handle_pfn`` agree both ways.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from emulator.mm.internal import Allocator
from emulator.mm.machine import Machine
from emulator.mm.memmap import (
    KIND_NAMES,
    OWNER_FILE,
    OWNER_MLOCKED,
    PF_ISOLATED,
    PF_LRU,
    PF_LRU_BATCH,
    PF_UNEVICTABLE,
    PG_ALLOC,
    PG_BUDDY,
    PG_ISOLATED,
    PG_KIND_MASK,
    PG_PCP,
    PG_TAIL,
    tail_fill,
)
from emulator.mm.page_alloc.pcp import CONFIG_PCP_BATCH_SCALE_MAX, NR_PCP_LISTS, pindex_to_order
from emulator.mm.reclaim.lru import folio_lru_list
from emulator.mm.reclaim.lruvec import NR_LRU_LISTS
from emulator.mm.snapshot import (
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import Zone


class InvariantViolation(AssertionError):
    """A broken invariant: ``invariant`` names it, ``pfn`` is the first offending page (or -1)."""

    def __init__(self, invariant: str, zone: Zone | None, pfn: int, detail: str) -> None:
        where = f" in node {zone.node} zone {zone.name}" if zone is not None else ""
        at = f" at pfn {pfn:#x}" if pfn >= 0 else ""
        super().__init__(f"invariant {invariant!r} violated{at}{where}: {detail}")
        self.invariant = invariant
        self.pfn = pfn
        self.zone = zone


def _walk_free_lists(zone: Zone) -> tuple[list[int], dict[int, int], list[int]]:
    """Check every free list; return (free pages per mt, {head pfn: order}, blocks per list)."""
    mm = zone.memmap
    st, od, nxt, prv, pb_mt = mm.state, mm.order, mm.nxt, mm.prv, mm.pb_mt
    seen: dict[int, int] = {}
    pages_by_mt = [0] * MIGRATE_TYPES
    counts = [0] * (NR_PAGE_ORDERS * MIGRATE_TYPES)
    limit = mm.end_pfn
    for order in range(NR_PAGE_ORDERS):
        n = 1 << order
        fill = tail_fill(PG_BUDDY, order)
        for mt in range(MIGRATE_TYPES):
            head = zone.free_list(order, mt)
            p = head
            count = 0
            while True:
                q = nxt[p]
                if prv[q] != p:
                    raise InvariantViolation(
                        "list-links",
                        zone,
                        q if q < limit else -1,
                        f"free_area[{order}].free_list[{mt}] is broken (prv[nxt[p]] != p)",
                    )
                if q == head:
                    break
                p = q
                count += 1
                if count > limit:
                    raise InvariantViolation(
                        "list-links", zone, p, f"free_area[{order}].free_list[{mt}] loops"
                    )
                if not zone.spans(p):
                    raise InvariantViolation(
                        "free-block-head", zone, p, f"block on order-{order} list outside zone"
                    )
                if p & (n - 1):
                    raise InvariantViolation(
                        "free-block-head", zone, p, f"order-{order} block not aligned"
                    )
                if st[p] != PG_BUDDY or od[p] != order:
                    raise InvariantViolation(
                        "free-block-head",
                        zone,
                        p,
                        f"on order-{order} list but state={st[p]:#x} order={od[p]}",
                    )
                if order and st[p + 1 : p + n] != fill:
                    bad = next(i for i in range(p + 1, p + n) if st[i] != PG_BUDDY | PG_TAIL)
                    raise InvariantViolation(
                        "free-block-head",
                        zone,
                        bad,
                        f"page of the free order-{order} block at {p:#x} has state {st[bad]:#x}",
                    )
                for b in range(p >> PAGEBLOCK_ORDER, ((p + n - 1) >> PAGEBLOCK_ORDER) + 1):
                    if pb_mt[b] != mt:
                        raise InvariantViolation(
                            "free-block-type",
                            zone,
                            p,
                            f"block on free_list[{mt}] but pageblock {b} has type {pb_mt[b]}",
                        )
                if p in seen:
                    raise InvariantViolation("single-list", zone, p, "block on two free lists")
                seen[p] = order
                pages_by_mt[mt] += n
            counts[order * MIGRATE_TYPES + mt] = count
    return pages_by_mt, seen, counts


def check_zone(zone: Zone, pcp_pages: int | None = None) -> None:
    """Check every invariant of one zone; raise :class:`InvariantViolation` on the first failure."""
    mm = zone.memmap
    pages_by_mt, heads, counts = _walk_free_lists(zone)

    for order in range(NR_PAGE_ORDERS):
        row = counts[order * MIGRATE_TYPES : (order + 1) * MIGRATE_TYPES]
        if zone.nr_free[order] != sum(row):
            raise InvariantViolation(
                "nr_free",
                zone,
                -1,
                f"free_area[{order}].nr_free={zone.nr_free[order]} but lists hold {sum(row)}",
            )
        for mt in range(MIGRATE_TYPES):
            if zone.nr_free_mt[order * MIGRATE_TYPES + mt] != row[mt]:
                raise InvariantViolation(
                    "nr_free",
                    zone,
                    -1,
                    f"count for order {order} type {mt} is "
                    f"{zone.nr_free_mt[order * MIGRATE_TYPES + mt]} but the list holds {row[mt]}",
                )
    nr_free_pages = sum(pages_by_mt) - pages_by_mt[MIGRATE_ISOLATE]
    if zone.nr_free_pages != nr_free_pages:
        raise InvariantViolation(
            "NR_FREE_PAGES",
            zone,
            -1,
            f"NR_FREE_PAGES={zone.nr_free_pages} but the buddy lists hold {nr_free_pages}",
        )
    if zone.nr_free_cma != pages_by_mt[MIGRATE_CMA]:
        raise InvariantViolation(
            "NR_FREE_CMA_PAGES",
            zone,
            -1,
            f"NR_FREE_CMA_PAGES={zone.nr_free_cma} but CMA lists hold {pages_by_mt[MIGRATE_CMA]}",
        )
    if zone.nr_free_highatomic != pages_by_mt[MIGRATE_HIGHATOMIC]:
        raise InvariantViolation(
            "nr_free_highatomic",
            zone,
            -1,
            f"nr_free_highatomic={zone.nr_free_highatomic} but HighAtomic lists hold "
            f"{pages_by_mt[MIGRATE_HIGHATOMIC]}",
        )

    # unmerged buddies
    st, od = mm.state, mm.order
    for p, o in heads.items():
        if o >= PAGEBLOCK_ORDER:
            continue
        b = p ^ (1 << o)
        if b < p or not zone.spans(b) or st[b] != PG_BUDDY or od[b] != o:
            continue
        raise InvariantViolation(
            "unmerged-buddies", zone, p, f"free order-{o} buddies {p:#x} and {b:#x} not merged"
        )

    if not zone.spanned_pages:
        return
    lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
    state = np.frombuffer(mm.state, dtype=np.uint8)[lo:hi]
    orders = np.frombuffer(mm.order, dtype=np.uint8)[lo:hi]
    nb_heads = int(np.count_nonzero(state == PG_BUDDY))
    if nb_heads != len(heads):
        idx = np.flatnonzero(state == PG_BUDDY)
        missing = next(int(i) + lo for i in idx if int(i) + lo not in heads)
        raise InvariantViolation("buddy-on-list", zone, missing, "PageBuddy head on no free list")
    kinds = {}
    for kind in (PG_BUDDY, PG_ALLOC, PG_PCP, PG_ISOLATED):
        tail_val = kind | PG_TAIL
        head_idx = np.flatnonzero(state == kind)
        covered = np.zeros(hi - lo, dtype=bool)
        ncovered = 0
        for i in head_idx[orders[head_idx] > 0].tolist():
            n = 1 << int(orders[i])
            seg = state[i + 1 : i + n]
            bad = np.flatnonzero(seg != tail_val)
            if seg.size != n - 1 or bad.size:
                at = i + 1 + int(bad[0]) if bad.size else hi - lo
                raise InvariantViolation(
                    "block-marking",
                    zone,
                    at + lo,
                    f"page inside the order-{n.bit_length() - 1} {KIND_NAMES[kind]} block at "
                    f"{i + lo:#x} is not one of its tail pages",
                )
            covered[i + 1 : i + n] = True
            ncovered += n - 1
        if int(np.count_nonzero(state == tail_val)) != ncovered:
            orphan = int(np.flatnonzero((state == tail_val) & ~covered)[0]) + lo
            raise InvariantViolation(
                "block-marking", zone, orphan, f"{KIND_NAMES[kind]} tail page without a head"
            )
        kinds[kind] = len(head_idx) + ncovered
    if kinds[PG_BUDDY] != sum(pages_by_mt):
        raise InvariantViolation(
            "conservation",
            zone,
            -1,
            f"{kinds[PG_BUDDY]} pages marked free but the lists hold {sum(pages_by_mt)}",
        )
    total = sum(kinds.values())
    if total != zone.managed_pages:
        raise InvariantViolation(
            "conservation",
            zone,
            -1,
            f"buddy {kinds[PG_BUDDY]} + pcp {kinds[PG_PCP]} + allocated {kinds[PG_ALLOC]} + "
            f"isolated {kinds[PG_ISOLATED]} = {total} != managed {zone.managed_pages}",
        )
    if pcp_pages is not None and pcp_pages != kinds[PG_PCP]:
        raise InvariantViolation(
            "conservation",
            zone,
            -1,
            f"{kinds[PG_PCP]} pages marked pcp but the pcp lists hold {pcp_pages}",
        )


def check_machine(machine: Machine, pcp_pages: dict[tuple[int, int], int] | None = None) -> None:
    """Check every zone. ``pcp_pages`` maps (node, zone_idx) to the pages the pcp layer holds."""
    for z in machine.all_zones():
        check_zone(z, None if pcp_pages is None else pcp_pages.get((z.node, z.zone_idx), 0))


def check_pcp_lists(allocator: Any) -> dict[tuple[int, int], int]:
    """Walk every pcp list of ``allocator``; raise :class:`InvariantViolation` on the first failure.

    ``allocator`` is duck-typed like :class:`~emulator.mm.page_alloc.allocator.PageAllocator`:
    ``cpus`` is a
    sequence of CPUs whose ``pcp`` lists hold :class:`~emulator.mm.page_alloc.pcp.PerCpuPages`
    (``cpu``,
    ``zone``, ``lists``, ``count``, ``free_count``, ``alloc_factor``). Returns the pages found on
    the lists per ``(node, zone_idx)`` (every zone that has a pcp, 0 if empty), to hand to
    :func:`check_machine` as ``pcp_pages``: ``check_machine(machine, check_pcp_lists(pa))``.
    """
    # zone -> the blocks seen on its pcps; keyed by identity, in first-seen order
    zones: dict[int, Zone] = {}
    seen: dict[int, dict[int, tuple[int, int]]] = {}
    pages: dict[tuple[int, int], int] = {}
    for cpu in allocator.cpus:
        for pcp in cpu.pcp:
            zone = pcp.zone
            key = id(zone)
            if key not in zones:
                zones[key] = zone
                seen[key] = {}
                pages[(zone.node, zone.zone_idx)] = 0
            found = _walk_pcp(pcp, seen[key])
            if found != pcp.count:
                raise InvariantViolation(
                    "pcp-count",
                    zone,
                    -1,
                    f"cpu {pcp.cpu}: pcp->count is {pcp.count} but its lists hold {found} pages",
                )
            if pcp.count < 0 or pcp.free_count < 0:
                raise InvariantViolation(
                    "pcp-count",
                    zone,
                    -1,
                    f"cpu {pcp.cpu}: negative count {pcp.count} or free_count {pcp.free_count}",
                )
            if not 0 <= pcp.alloc_factor <= CONFIG_PCP_BATCH_SCALE_MAX:
                raise InvariantViolation(
                    "pcp-count",
                    zone,
                    -1,
                    f"cpu {pcp.cpu}: alloc_factor {pcp.alloc_factor} outside "
                    f"0..{CONFIG_PCP_BATCH_SCALE_MAX}",
                )
            pages[(zone.node, zone.zone_idx)] += found
    for key, zone in zones.items():
        if not zone.spanned_pages:
            continue
        lo = zone.zone_start_pfn
        state = np.frombuffer(zone.memmap.state, dtype=np.uint8)[lo : zone.zone_end_pfn]
        heads = np.flatnonzero(state == PG_PCP)
        on_lists = seen[key]
        if len(heads) != len(on_lists):
            stray = next(int(i) + lo for i in heads.tolist() if int(i) + lo not in on_lists)
            raise InvariantViolation(
                "pcp-stray",
                zone,
                stray,
                f"PG_PCP head (order {zone.memmap.order[stray]}) on no CPU's pcp list "
                f"({len(heads)} PG_PCP heads, {len(on_lists)} blocks on the pcp lists)",
            )
    return pages


def _walk_lru_lists(allocator: Allocator) -> set[int]:
    """The LRU lists walked entry by entry, raising at the first violation in walk order;
    returns the folios on them (what :func:`_lru_lists` checks in bulk, and the report of
    what it found wrong)."""
    mm = allocator.memmap
    st, od, nxt, prv, fl = mm.state, mm.order, mm.nxt, mm.prv, mm.pflags
    limit = mm.end_pfn
    seen: set[int] = set()
    for lv in allocator.lruvecs:
        zone_pages = [[0] * NR_LRU_LISTS for _ in lv.nr_zone_pages]
        for lst in range(NR_LRU_LISTS):
            head = lv.lists + lst
            where = f"node {lv.nid} LRU list {lst}"
            p, pages = head, 0
            while True:
                q = nxt[p]
                if prv[q] != p:
                    raise InvariantViolation("lru-links", None, -1, f"{where} is broken")
                if q == head:
                    break
                p = q
                if p >= limit or len(seen) > limit:
                    raise InvariantViolation("lru-links", None, -1, f"{where} loops or strays")
                zone = allocator.zone_of(p)
                bad = (
                    st[p] != PG_ALLOC
                    or fl[p] & (PF_LRU | PF_LRU_BATCH | PF_ISOLATED) != PF_LRU
                    or folio_lru_list(mm, p) != lst
                    or zone.node != lv.nid
                )
                if bad:
                    raise InvariantViolation(
                        "lru-entry",
                        zone,
                        p,
                        f"on {where}: a {_kind(st[p])} page, flags {fl[p]:#x}, owner "
                        f"{mm.owner[p]}, belongs on list {folio_lru_list(mm, p)}",
                    )
                if p in seen:
                    raise InvariantViolation("lru-single-list", zone, p, f"twice, on {where}")
                seen.add(p)
                pages += 1 << od[p]
                zone_pages[zone.zone_idx][lst] += 1 << od[p]
            if pages != lv.nr_pages[lst]:
                raise InvariantViolation(
                    "lru-count", None, -1, f"{where}: counter {lv.nr_pages[lst]}, lists {pages}"
                )
        if zone_pages != lv.nr_zone_pages:
            raise InvariantViolation(
                "lru-count", None, -1, f"node {lv.nid}: nr_zone_* {lv.nr_zone_pages} != lists"
            )
    return seen


def _lru_lists(allocator: Allocator) -> np.ndarray:
    """Check the LRU lists (``lru-links``, ``lru-entry``, ``lru-single-list`` within the lists,
    ``lru-count``) in bulk, without walking them: the list heads and the ``PF_LRU`` folios
    must be closed under ``nxt`` with ``prv[nxt[p]] == p`` (so ``nxt`` permutes them: every
    one is on exactly one cycle), each head on its own cycle and each folio on a head's
    (found by pointer doubling: every node learns the smallest head number on its cycle),
    then every folio is checked against its list. At the first sign of a violation the lists
    are walked entry by entry (:func:`_walk_lru_lists`), which raises for the first one in
    walk order, as a walk finds it. Returns a mask over the pfns: True for every folio on a
    list."""
    mm = allocator.memmap
    limit = mm.end_pfn
    nxt = np.frombuffer(mm.nxt, dtype=np.int32)
    prv = np.frombuffer(mm.prv, dtype=np.int32)
    st = np.frombuffer(mm.state, dtype=np.uint8)
    fl = np.frombuffer(mm.pflags, dtype=np.uint8)
    owner = np.frombuffer(mm.owner, dtype=np.uint8)
    od = np.frombuffer(mm.order, dtype=np.uint8)
    lruvecs = allocator.lruvecs
    heads = np.array(
        [lv.lists + lst for lv in lruvecs for lst in range(NR_LRU_LISTS)], dtype=np.int64
    )
    nheads = heads.size
    folios = np.flatnonzero(fl & PF_LRU)
    # the nodes, sorted: the folios (below end_pfn), then the heads (list store, above it)
    order = np.argsort(heads, kind="stable")
    nodes = np.concatenate((folios, heads[order]))
    n = nodes.size
    succ_pfn = nxt[nodes].astype(np.int64)
    succ = np.searchsorted(nodes, succ_pfn)
    if (succ >= n).any() or (nodes[succ] != succ_pfn).any() or (prv[succ_pfn] != nodes).any():
        _report_lru(allocator)
    # the smallest head number on each node's cycle (heads: their number, folios: none)
    label = np.full(n, nheads, dtype=np.int64)
    label[folios.size + np.arange(nheads)] = order
    jump = succ
    span = 1
    while span < n:
        label = np.minimum(label, label[jump])
        jump = jump[jump]
        span <<= 1
    on_own_cycle = label[folios.size + np.arange(nheads)] == order
    if not on_own_cycle.all() or (label[: folios.size] >= nheads).any():
        _report_lru(allocator)
    which = label[: folios.size]  # the list of each folio: lruvec * NR_LRU_LISTS + lru
    lst = which % NR_LRU_LISTS
    zones = allocator.zones
    starts = np.array([z.zone_start_pfn for z in zones], dtype=np.int64)
    ends = np.array([z.zone_end_pfn for z in zones], dtype=np.int64)
    znode = np.array([z.node for z in zones], dtype=np.int64)
    g = np.searchsorted(starts, folios, side="right") - 1
    gz = np.maximum(g, 0)
    flags = fl[folios]
    # folio_lru_list reads a folio's pflags and owner: ask it once per pair found
    key = (flags.astype(np.int64) << 8) | owner[folios]
    first = np.full(1 << 16, -1, dtype=np.int64)
    first[key[::-1]] = np.arange(folios.size - 1, -1, -1)
    pairs = np.flatnonzero(first >= 0)
    lru_of = np.zeros(1 << 16, dtype=np.int64)
    lru_of[pairs] = [folio_lru_list(mm, int(folios[i])) for i in first[pairs].tolist()]
    nid = np.array([lv.nid for lv in lruvecs], dtype=np.int64)[which // NR_LRU_LISTS]
    bad = (
        (g < 0)
        | (folios >= ends[gz])
        | (st[folios] != PG_ALLOC)
        | ((flags & (PF_LRU | PF_LRU_BATCH | PF_ISOLATED)) != PF_LRU)
        | (lru_of[key] != lst)
        | (znode[gz] != nid)
    )
    if bad.any():
        _report_lru(allocator)
    sizes = np.left_shift(1, od[folios].astype(np.int64))
    per_list = np.bincount(which, weights=sizes, minlength=nheads).astype(np.int64).tolist()
    zidx = np.array([z.zone_idx for z in zones], dtype=np.int64)
    per_zone = np.bincount(
        which * len(zones) + gz, weights=sizes, minlength=nheads * len(zones)
    ).astype(np.int64)
    for v, lv in enumerate(lruvecs):
        zone_pages = [[0] * NR_LRU_LISTS for _ in lv.nr_zone_pages]
        for lru in range(NR_LRU_LISTS):
            k = v * NR_LRU_LISTS + lru
            if per_list[k] != lv.nr_pages[lru]:
                _report_lru(allocator)
            for i in range(len(zones)):
                nr = int(per_zone[k * len(zones) + i])
                if nr:
                    zone_pages[int(zidx[i])][lru] += nr
        if zone_pages != lv.nr_zone_pages:
            _report_lru(allocator)
    on_list = np.zeros(limit, dtype=bool)
    on_list[folios] = True
    return on_list


def _report_lru(allocator: Allocator) -> NoReturn:
    """Raise for the first violation of the LRU lists in walk order (one was found)."""
    _walk_lru_lists(allocator)
    raise AssertionError("the LRU lists' bulk check and their walk disagree")


def check_lru(allocator: Allocator) -> None:
    """Check every LRU invariant of ``allocator`` (see the module docstring)."""
    mm = allocator.memmap
    st, od, fl = mm.state, mm.order, mm.pflags
    on_list = _lru_lists(allocator)
    flags = np.frombuffer(fl, dtype=np.uint8)
    state = np.frombuffer(st, dtype=np.uint8)
    orders = np.frombuffer(od, dtype=np.uint8).astype(np.int64)
    owner = np.frombuffer(mm.owner, dtype=np.uint8)
    if int(np.count_nonzero(flags & PF_LRU)) != int(np.count_nonzero(on_list)):
        stray = int(np.flatnonzero((flags & PF_LRU).astype(bool) & ~on_list)[0])
        raise InvariantViolation("lru-single-list", None, stray, "PF_LRU head on no LRU list")
    batched = sorted(p for c in allocator.cpus for p in c.lru_add)
    if np.flatnonzero(flags & PF_LRU_BATCH).tolist() != batched:
        raise InvariantViolation("lru-batch", None, -1, "PF_LRU_BATCH heads != batch contents")
    starts = np.array([z.zone_start_pfn for z in allocator.zones], dtype=np.int64)
    for lv in allocator.lruvecs:
        iso = np.flatnonzero(flags & PF_ISOLATED)
        iso = iso[[allocator.zone_of(int(p)).node == lv.nid for p in iso]]
        file = owner[iso] == OWNER_FILE
        got = (int((1 << orders[iso[~file]]).sum()), int((1 << orders[iso[file]]).sum()))
        if got != (lv.nr_isolated_anon, lv.nr_isolated_file):
            raise InvariantViolation(
                "lru-isolated",
                None,
                -1,
                f"node {lv.nid}: nr_isolated_anon/file {lv.nr_isolated_anon}/"
                f"{lv.nr_isolated_file}, isolated folios hold {got[0]}/{got[1]} pages",
            )
    mlocked = np.flatnonzero(
        (flags & PF_UNEVICTABLE).astype(bool) & (owner == OWNER_MLOCKED) & (state == PG_ALLOC)
    )
    gidx = np.searchsorted(starts, mlocked, side="right") - 1
    for i, z in enumerate(allocator.zones):
        n = int((1 << orders[mlocked[gidx == i]]).sum())
        if n != allocator.lruvecs[z.node].nr_mlock[z.zone_idx]:
            raise InvariantViolation(
                "lru-mlock",
                z,
                -1,
                f"nr_mlock {allocator.lruvecs[z.node].nr_mlock[z.zone_idx]}"
                f" but mlocked folios hold {n} pages",
            )
    rmap = allocator.machine.rmap
    handle = np.frombuffer(mm.handle, dtype=np.int32)
    held = np.flatnonzero(handle >= 0)
    hpfn = np.frombuffer(rmap.handle_pfn, dtype=np.int32)
    if held.size and (hpfn[handle[held]] != held).any():
        p = int(held[np.flatnonzero(hpfn[handle[held]] != held)[0]])
        raise InvariantViolation("rmap", None, p, f"handle {handle[p]} holds {hpfn[handle[p]]}")
    live = np.flatnonzero(hpfn >= 0)
    if live.size and (handle[hpfn[live]] != live).any():
        h = int(live[np.flatnonzero(handle[hpfn[live]] != live)[0]])
        raise InvariantViolation("rmap", None, int(hpfn[h]), f"handle {h} not on its page")


def _kind(state: int) -> str:
    """A page state as words: "pcp head", "allocated tail", ..."""
    kind = KIND_NAMES.get(state & PG_KIND_MASK, f"state {state:#x}")
    return f"{kind} {'tail' if state & PG_TAIL else 'head'}"


def _walk_pcp(pcp: Any, seen: dict[int, tuple[int, int]]) -> int:
    """Check the lists of one pcp, recording each block in ``seen`` (pfn -> (cpu, pindex));
    return the pages they hold."""
    zone = pcp.zone
    mm = zone.memmap
    st, od, nxt, prv = mm.state, mm.order, mm.nxt, mm.prv
    limit = mm.end_pfn
    cpu = pcp.cpu
    found = 0
    for pindex in range(NR_PCP_LISTS):
        order = pindex_to_order(pindex)
        where = f"cpu {cpu}'s order-{order} pcp list {pindex}"
        head = pcp.lists + pindex
        p = head
        n = 0
        while True:
            q = nxt[p]
            if prv[q] != p:
                raise InvariantViolation(
                    "pcp-list-links",
                    zone,
                    q if q < limit else -1,
                    f"{where} is broken after {p:#x} (prv[nxt[p]] != p)"
                    if p < limit
                    else f"{where} is broken at its head (prv[nxt[head]] != head)",
                )
            if q == head:
                break
            p = q
            n += 1
            if n > limit:
                raise InvariantViolation("pcp-list-links", zone, p, f"{where} loops")
            if not zone.spans(p) or p & ((1 << order) - 1):
                raise InvariantViolation(
                    "pcp-entry",
                    zone,
                    p,
                    f"block on {where} is outside the zone or not aligned to its order",
                )
            if st[p] != PG_PCP or od[p] != order:
                raise InvariantViolation(
                    "pcp-entry",
                    zone,
                    p,
                    f"block on {where} is a {_kind(st[p])} page of order {od[p]}, not a "
                    f"PG_PCP head of order {order}",
                )
            other = seen.get(p)
            if other is not None:
                raise InvariantViolation(
                    "pcp-single-list",
                    zone,
                    p,
                    f"block on {where} and on cpu {other[0]}'s pcp list {other[1]}",
                )
            seen[p] = (cpu, pindex)
            found += 1 << order
    return found
