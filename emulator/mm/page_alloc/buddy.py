"""The buddy allocator core of mm/page_alloc.c (Linux 6.12): functions over a
:class:`~emulator.mm.zone.Zone`.

Every function models one kernel function, named in its docstring, and runs with
``zone->lock`` held by the caller: no locking and no trio here, just synchronous state changes,
as the kernel's static functions taking ``struct zone *``. The pcp layer,
``get_page_from_freelist`` and the slow path are built on top of these by the actor layer.

This module holds the core: ``__free_one_page`` (:func:`free_to_buddy`: merging, the
cross-pageblock rule, ``buddy_merge_likely``, the capture hook), ``split_large_buddy``,
``free_one_page`` (:func:`free_one_page_locked`, its part under the lock),
``page_del_and_expand`` / ``expand`` and ``__rmqueue_smallest``. The mechanisms built on the
core each have their module, in the order they build on each other:

* :mod:`emulator.mm.page_alloc.fallback` — anti-fragmentation: ``__rmqueue_fallback``,
  ``steal_suitable_fallback``, ``boost_watermark`` and the ``move_freepages_block`` family;
* :mod:`emulator.mm.page_alloc.highatomic` — the highatomic reserve;
* :mod:`emulator.mm.page_alloc.isolation` — pageblock isolation (MIGRATE_ISOLATE);
* :mod:`emulator.mm.page_alloc.rmqueue` — ``__rmqueue`` (with the CMA balancing and the
  fallback), ``rmqueue_buddy`` and ``rmqueue_bulk``;
* :mod:`emulator.mm.page_alloc.watermark` — ``__zone_watermark_ok`` and friends.

The flag words (``ALLOC_*``, ``FPI_*``) live in :mod:`emulator.mm.page_alloc.alloc_flags`.

Page states: blocks handed out by the ``__rmqueue`` family are off the free lists and off the
counters; the public entry points mark them at once (``rmqueue_buddy_locked`` marks
``PG_ALLOC``, ``rmqueue_bulk`` marks ``PG_PCP``). :func:`free_to_buddy` /
:func:`free_one_page_locked` accept a block in any non-free state.

What is modelled of CMA and ISOLATE: both exist as migratetypes with their own free lists;
``account_freepages`` keeps ISOLATE out of NR_FREE_PAGES and counts CMA in NR_FREE_CMA_PAGES;
``__rmqueue`` uses CMA lists for ``ALLOC_CMA`` requests (including the "more than half of free is
CMA" balancing); ``__free_one_page`` refuses cross-pageblock merges with them; the watermark check
treats free CMA as unusable without ``ALLOC_CMA``; a pageblock is isolated and un-isolated with
``move_freepages_block_isolate`` / ``unset_migratetype_isolate`` (splitting and re-merging
buddies larger than a pageblock). Not modelled: ``cma_alloc`` / ``alloc_contig_range``,
``start_isolate_page_range``'s unmovable-page check and ``nr_isolate_pageblock``, page
reporting, shuffling, guard pages, hwpoison.
"""

from __future__ import annotations

from emulator.mm.lockdep import lockdep_assert_held
from emulator.mm.memmap import (
    OWNER_NONE,
    PG_BUDDY,
    PG_ISOLATED,
    PG_TAIL,
    tail_fill,
)
from emulator.mm.page_alloc.alloc_flags import (
    FPI_TO_TAIL,
)
from emulator.mm.snapshot import (
    MAX_PAGE_ORDER,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import Zone

_NT = MIGRATE_TYPES
_MAXO = MAX_PAGE_ORDER
_PBO = PAGEBLOCK_ORDER
_BUDDY_TAIL = PG_BUDDY | PG_TAIL
_BUDDY_TAIL_FILL = tuple(tail_fill(PG_BUDDY, o) for o in range(NR_PAGE_ORDERS))
_ZERO_FILL = tuple(bytes(1 << o) for o in range(NR_PAGE_ORDERS))


def free_to_buddy(zone: Zone, pfn: int, order: int, migratetype: int, fpi_flags: int = 0) -> None:
    """Models mm/page_alloc.c: __free_one_page.

    Accounts the block to ``migratetype``, then merges upwards while the buddy
    (``pfn ^ (1 << order)``) is a free head of the same order inside this zone; at
    ``order >= pageblock_order`` it refuses to merge a non-mergeable type (HIGHATOMIC, CMA,
    ISOLATE) with a different type, and otherwise rewrites the buddy's pageblock type to ours.
    The result goes to the head of its list, or to the tail with ``FPI_TO_TAIL`` or when
    ``buddy_merge_likely``. The capture hook is offered the block at every order.
    Simplified: no guard pages, no page shuffling, no page-reporting notification.
    """
    mm = zone.memmap
    st = mm.state
    od = mm.order
    nxt = mm.nxt
    prv = mm.prv
    pb_mt = mm.pb_mt
    n = 1 << order
    # the freed pages become tail pages of a free block; the final head is marked at the end
    st[pfn] = _BUDDY_TAIL
    if order:
        st[pfn + 1 : pfn + n] = _BUDDY_TAIL_FILL[order]
        mm.owner[pfn : pfn + n] = _ZERO_FILL[order]
    else:
        mm.owner[pfn] = OWNER_NONE
    if migratetype != MIGRATE_ISOLATE:  # account_freepages
        zone.nr_free_pages += n
        if migratetype == MIGRATE_CMA:
            zone.nr_free_cma += n
        elif migratetype == MIGRATE_HIGHATOMIC:
            zone.nr_free_highatomic += n
    zs = zone.zone_start_pfn
    ze = zone.zone_end_pfn
    capture = zone.capture
    nr_free = zone.nr_free
    nr_free_mt = zone.nr_free_mt
    steps = 0
    while order < _MAXO:
        if capture is not None and capture(pfn, order, migratetype):
            zone.account_freepages(-(1 << order), migratetype)
            mm.mark_block(pfn, order, PG_ISOLATED)
            zone.buddy_steps += steps + 1
            return
        buddy = pfn ^ (1 << order)
        if buddy < zs or buddy >= ze or st[buddy] != PG_BUDDY or od[buddy] != order:
            break
        buddy_mt = migratetype
        if order >= _PBO:
            buddy_mt = pb_mt[buddy >> _PBO]
            if buddy_mt != migratetype and (
                migratetype >= MIGRATE_PCPTYPES or buddy_mt >= MIGRATE_PCPTYPES
            ):
                break
        # __del_page_from_free_list(buddy)
        nb = nxt[buddy]
        pb = prv[buddy]
        nxt[pb] = nb
        prv[nb] = pb
        nr_free[order] -= 1
        nr_free_mt[order * _NT + buddy_mt] -= 1
        st[buddy] = _BUDDY_TAIL
        if buddy_mt != migratetype:
            pb_mt[buddy >> _PBO] = migratetype
        pfn &= buddy
        order += 1
        steps += 1
    # done_merging: set_buddy_order + __add_to_free_list
    st[pfn] = PG_BUDDY
    od[pfn] = order
    if fpi_flags & FPI_TO_TAIL:
        to_tail = True
    elif order < _MAXO - 1:
        # buddy_merge_likely: is the order+1 buddy of our parent free?
        higher = (pfn & ~(1 << order)) ^ (1 << (order + 1))
        to_tail = zs <= higher < ze and st[higher] == PG_BUDDY and od[higher] == order + 1
    else:
        to_tail = False
    i = order * _NT + migratetype
    head = zone.sbase + i
    if to_tail:
        p = prv[head]
        prv[pfn] = p
        nxt[pfn] = head
        nxt[p] = pfn
        prv[head] = pfn
    else:
        h = nxt[head]
        nxt[pfn] = h
        prv[pfn] = head
        prv[h] = pfn
        nxt[head] = pfn
    nr_free[order] += 1
    nr_free_mt[i] += 1
    zone.buddy_steps += steps + 1


def split_large_buddy(zone: Zone, pfn: int, order: int, fpi_flags: int = 0) -> None:
    """Models mm/page_alloc.c: split_large_buddy.

    A block larger than a pageblock is freed as pageblock-order chunks, each with its own
    pageblock's migratetype (compatible chunks merge again in ``__free_one_page``).
    """
    pb_mt = zone.memmap.pb_mt
    if order <= _PBO:
        free_to_buddy(zone, pfn, order, pb_mt[pfn >> _PBO], fpi_flags)
        return
    end = pfn + (1 << order)
    while pfn != end:
        free_to_buddy(zone, pfn, _PBO, pb_mt[pfn >> _PBO], fpi_flags)
        pfn += PAGEBLOCK_NR_PAGES


def free_one_page_locked(zone: Zone, pfn: int, order: int, fpi_flags: int = 0) -> None:
    """Models mm/page_alloc.c: free_one_page (the part under zone->lock, plus PGFREE).

    Used by frees that bypass the pcp lists; pcp drains call :meth:`free_to_buddy` directly
    (the kernel counts ``pgfree`` once, when the page is freed to the pcp list).
    """
    lockdep_assert_held(zone.lock_or_none)
    split_large_buddy(zone, pfn, order, fpi_flags)
    zone.vm_events["pgfree"] += 1 << order


def page_del_and_expand(zone: Zone, pfn: int, low: int, high: int, mt: int) -> None:
    """Models mm/page_alloc.c: page_del_and_expand (+ expand; page_alloc.c:1393).

    Removes the free block of order ``high`` at ``pfn`` from ``mt``'s list and splits it down
    to ``low``: each step puts the upper half at the head of the list one order lower (same
    migratetype). The caller keeps ``[pfn, pfn + 2**low)``; the counters drop by that much.
    """
    mm = zone.memmap
    st = mm.state
    od = mm.order
    nxt = mm.nxt
    prv = mm.prv
    nr_free = zone.nr_free
    nr_free_mt = zone.nr_free_mt
    # __del_page_from_free_list
    n = nxt[pfn]
    p = prv[pfn]
    nxt[p] = n
    prv[n] = p
    nr_free[high] -= 1
    nr_free_mt[high * _NT + mt] -= 1
    steps = 1
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        q = pfn + size
        i = high * _NT + mt
        head = zone.sbase + i
        h = nxt[head]
        nxt[q] = h
        prv[q] = head
        prv[h] = q
        nxt[head] = q
        st[q] = PG_BUDDY
        od[q] = high
        nr_free[high] += 1
        nr_free_mt[i] += 1
        steps += 1
    zone.buddy_steps += steps
    if mt != MIGRATE_ISOLATE:  # account_freepages(-(1 << low))
        n = 1 << low
        zone.nr_free_pages -= n
        if mt == MIGRATE_CMA:
            zone.nr_free_cma -= n
        elif mt == MIGRATE_HIGHATOMIC:
            zone.nr_free_highatomic -= n


def expand(zone: Zone, pfn: int, low: int, high: int, mt: int) -> int:
    """Models mm/page_alloc.c: expand. Returns the pages put back on free lists."""
    nr_added = 0
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        zone.add_to_free_list(pfn + size, high, mt, tail=False)
        nr_added += size
    return nr_added


def rmqueue_smallest(zone: Zone, order: int, migratetype: int) -> int:
    """Models mm/page_alloc.c: __rmqueue_smallest.

    Takes the first entry of the smallest non-empty ``free_list[migratetype]`` of order
    >= ``order`` and splits it. Returns the pfn (pages still unmarked) or -1.
    Emits ``mm_page_alloc_zone_locked`` on a hit.
    """
    nxt = zone.memmap.nxt
    s = zone.sbase + order * _NT + migratetype
    for cur in range(order, NR_PAGE_ORDERS):
        page = nxt[s]
        if page != s:
            page_del_and_expand(zone, page, order, cur, migratetype)
            rec = zone.rec
            if rec.enabled:
                rec.emit(
                    "mm_page_alloc_zone_locked",
                    pfn=page,
                    order=order,
                    migratetype=migratetype,
                    percpu_refill=int(
                        (order <= 3 or order == _PBO) and migratetype < MIGRATE_PCPTYPES
                    ),
                )
            return page
        s += _NT
    return -1


__all__ = [
    "expand",
    "free_one_page_locked",
    "free_to_buddy",
    "page_del_and_expand",
    "rmqueue_smallest",
    "split_large_buddy",
]
