"""The buddy allocator core of mm/page_alloc.c (Linux 6.12), on :class:`Zone`.

Every method models one kernel function, named in its docstring, and runs with ``zone->lock``
held by the caller: no locking and no trio here, just synchronous state changes. The pcp layer,
``get_page_from_freelist`` and the slow path are built on top of these by the actor layer.

Page states: blocks handed out by the ``__rmqueue`` family are off the free lists and off the
counters; the public entry points mark them at once (:meth:`Zone.rmqueue_buddy` marks
``PG_ALLOC``, :meth:`Zone.rmqueue_bulk` marks ``PG_PCP``). ``free_to_buddy`` /
``free_one_page`` accept a block in any non-free state.

What is modelled of CMA and ISOLATE: both exist as migratetypes with their own free lists;
``account_freepages`` keeps ISOLATE out of NR_FREE_PAGES and counts CMA in NR_FREE_CMA_PAGES;
``__rmqueue`` uses CMA lists for ``ALLOC_CMA`` requests (including the "more than half of free is
CMA" balancing); ``__free_one_page`` refuses cross-pageblock merges with them; the watermark check
treats free CMA as unusable without ``ALLOC_CMA``; a pageblock is isolated and un-isolated with
``move_freepages_block_isolate`` / ``unset_migratetype_isolate`` (splitting and re-merging
buddies larger than a pageblock). Not modelled: ``cma_alloc`` / ``alloc_contig_range``,
``start_isolate_page_range``'s unmovable-page check and ``nr_isolate_pageblock``, page
reporting, shuffling, guard pages, hwpoison.

The flag words (``ALLOC_*``, ``FPI_*``) are defined in :mod:`emulator.mm.alloc_flags` and
re-exported here.
"""

from __future__ import annotations

from emulator.mm.alloc_flags import (
    ALLOC_CMA,
    ALLOC_CPUSET,
    ALLOC_HIGHATOMIC,
    ALLOC_KSWAPD,
    ALLOC_MIN_RESERVE,
    ALLOC_NO_WATERMARKS,
    ALLOC_NOFRAGMENT,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_RESERVES,
    ALLOC_WMARK_HIGH,
    ALLOC_WMARK_LOW,
    ALLOC_WMARK_MASK,
    ALLOC_WMARK_MIN,
    FPI_NONE,
    FPI_SKIP_REPORT_NOTIFY,
    FPI_TO_TAIL,
)
from emulator.mm.memmap import (
    OWNER_FOR_MIGRATETYPE,
    OWNER_MOVABLE,
    OWNER_NONE,
    OWNER_PINNED,
    PG_ALLOC,
    PG_BUDDY,
    PG_ISOLATED,
    PG_KIND_MASK,
    PG_PCP,
    PG_TAIL,
    tail_fill,
)
from emulator.mm.snapshot import (
    MAX_PAGE_ORDER,
    MIGRATE_CMA,
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from emulator.mm.zone import WMARK_HIGH, WMARK_MIN, ZONE_BOOSTED_WATERMARK, ZoneBase

#: fallbacks[] (page_alloc.c:1618): the types a pcp type falls back to, in order.
FALLBACKS: tuple[tuple[int, int], ...] = (
    (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),  # UNMOVABLE
    (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),  # MOVABLE
    (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),  # RECLAIMABLE
)

_NT = MIGRATE_TYPES
_MAXO = MAX_PAGE_ORDER
_PBO = PAGEBLOCK_ORDER
_BUDDY_TAIL = PG_BUDDY | PG_TAIL
_BUDDY_TAIL_FILL = tuple(tail_fill(PG_BUDDY, o) for o in range(NR_PAGE_ORDERS))
_ZERO_FILL = tuple(bytes(1 << o) for o in range(NR_PAGE_ORDERS))


def migratetype_is_mergeable(mt: int) -> bool:
    """migratetype_is_mergeable() (mmzone.h:98): UNMOVABLE, MOVABLE and RECLAIMABLE only."""
    return mt < MIGRATE_PCPTYPES


def can_steal_fallback(order: int, start_mt: int, mobility_disabled: bool = False) -> bool:
    """can_steal_fallback() (page_alloc.c:1845). ``order`` is the *found* block's order."""
    if order >= PAGEBLOCK_ORDER:
        return True
    return (
        order >= PAGEBLOCK_ORDER // 2
        or start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)
        or mobility_disabled
    )


class Zone(ZoneBase):
    """A zone with the buddy allocator's operations (caller holds zone->lock)."""

    # ------------------------------------------------------------------ freeing

    def free_to_buddy(self, pfn: int, order: int, migratetype: int, fpi_flags: int = 0) -> None:
        """Models mm/page_alloc.c: __free_one_page.

        Accounts the block to ``migratetype``, then merges upwards while the buddy
        (``pfn ^ (1 << order)``) is a free head of the same order inside this zone; at
        ``order >= pageblock_order`` it refuses to merge a non-mergeable type (HIGHATOMIC, CMA,
        ISOLATE) with a different type, and otherwise rewrites the buddy's pageblock type to ours.
        The result goes to the head of its list, or to the tail with ``FPI_TO_TAIL`` or when
        ``buddy_merge_likely``. The capture hook is offered the block at every order.
        Simplified: no guard pages, no page shuffling, no page-reporting notification.
        """
        mm = self.memmap
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
            self.nr_free_pages += n
            if migratetype == MIGRATE_CMA:
                self.nr_free_cma += n
            elif migratetype == MIGRATE_HIGHATOMIC:
                self.nr_free_highatomic += n
        zs = self.zone_start_pfn
        ze = self.zone_end_pfn
        capture = self.capture
        nr_free = self.nr_free
        nr_free_mt = self.nr_free_mt
        steps = 0
        while order < _MAXO:
            if capture is not None and capture(pfn, order, migratetype):
                self.account_freepages(-(1 << order), migratetype)
                mm.mark_block(pfn, order, PG_ISOLATED)
                self.buddy_steps += steps + 1
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
        head = self.sbase + i
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
        self.buddy_steps += steps + 1

    def split_large_buddy(self, pfn: int, order: int, fpi_flags: int = 0) -> None:
        """Models mm/page_alloc.c: split_large_buddy.

        A block larger than a pageblock is freed as pageblock-order chunks, each with its own
        pageblock's migratetype (compatible chunks merge again in ``__free_one_page``).
        """
        pb_mt = self.memmap.pb_mt
        if order <= _PBO:
            self.free_to_buddy(pfn, order, pb_mt[pfn >> _PBO], fpi_flags)
            return
        end = pfn + (1 << order)
        while pfn != end:
            self.free_to_buddy(pfn, _PBO, pb_mt[pfn >> _PBO], fpi_flags)
            pfn += PAGEBLOCK_NR_PAGES

    def free_one_page(self, pfn: int, order: int, fpi_flags: int = 0) -> None:
        """Models mm/page_alloc.c: free_one_page (the part under zone->lock, plus PGFREE).

        Used by frees that bypass the pcp lists; pcp drains call :meth:`free_to_buddy` directly
        (the kernel counts ``pgfree`` once, when the page is freed to the pcp list).
        """
        self.split_large_buddy(pfn, order, fpi_flags)
        self.vm_events["pgfree"] += 1 << order

    # ------------------------------------------------------------------ allocation

    def _del_and_expand(self, pfn: int, low: int, high: int, mt: int) -> None:
        """Models page_del_and_expand() + expand() (page_alloc.c:1393).

        Removes the free block of order ``high`` at ``pfn`` from ``mt``'s list and splits it down
        to ``low``: each step puts the upper half at the head of the list one order lower (same
        migratetype). The caller keeps ``[pfn, pfn + 2**low)``; the counters drop by that much.
        """
        mm = self.memmap
        st = mm.state
        od = mm.order
        nxt = mm.nxt
        prv = mm.prv
        nr_free = self.nr_free
        nr_free_mt = self.nr_free_mt
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
            head = self.sbase + i
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
        self.buddy_steps += steps
        if mt != MIGRATE_ISOLATE:  # account_freepages(-(1 << low))
            n = 1 << low
            self.nr_free_pages -= n
            if mt == MIGRATE_CMA:
                self.nr_free_cma -= n
            elif mt == MIGRATE_HIGHATOMIC:
                self.nr_free_highatomic -= n

    def expand(self, pfn: int, low: int, high: int, mt: int) -> int:
        """Models mm/page_alloc.c: expand. Returns the pages put back on free lists."""
        nr_added = 0
        size = 1 << high
        while high > low:
            high -= 1
            size >>= 1
            self.add_to_free_list(pfn + size, high, mt, tail=False)
            nr_added += size
        return nr_added

    def rmqueue_smallest(self, order: int, migratetype: int) -> int:
        """Models mm/page_alloc.c: __rmqueue_smallest.

        Takes the first entry of the smallest non-empty ``free_list[migratetype]`` of order
        >= ``order`` and splits it. Returns the pfn (pages still unmarked) or -1.
        Emits ``mm_page_alloc_zone_locked`` on a hit.
        """
        nxt = self.memmap.nxt
        s = self.sbase + order * _NT + migratetype
        for cur in range(order, NR_PAGE_ORDERS):
            page = nxt[s]
            if page != s:
                self._del_and_expand(page, order, cur, migratetype)
                rec = self.rec
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

    def find_suitable_fallback(
        self, order: int, migratetype: int, only_stealable: bool
    ) -> tuple[int, bool]:
        """Models mm/page_alloc.c: find_suitable_fallback. Returns (fallback_mt|-1, can_steal)."""
        if not self.nr_free[order]:
            return -1, False
        can_steal = False
        nxt = self.memmap.nxt
        for fallback_mt in FALLBACKS[migratetype]:
            s = self.sbase + order * _NT + fallback_mt
            if nxt[s] == s:
                continue
            if can_steal_fallback(order, migratetype, self.page_group_by_mobility_disabled):
                can_steal = True
            if not only_stealable or can_steal:
                return fallback_mt, can_steal
        return -1, can_steal

    def boost_watermark(self) -> bool:
        """Models mm/page_alloc.c: boost_watermark (uses vm.watermark_boost_factor)."""
        factor = self.watermark_boost_factor
        if not factor:
            return False
        if self.managed_pages < PAGEBLOCK_NR_PAGES * 4:
            return False
        max_boost = self._watermark[WMARK_HIGH] * factor // 10000  # mult_frac
        if not max_boost:
            return False
        max_boost = max(PAGEBLOCK_NR_PAGES, max_boost)
        self.watermark_boost = min(self.watermark_boost + PAGEBLOCK_NR_PAGES, max_boost)
        return True

    def change_pageblock_range(self, pfn: int, start_order: int, mt: int) -> None:
        """Models change_pageblock_range: set every pageblock of a >= pageblock_order block."""
        b = pfn >> _PBO
        pb_mt = self.memmap.pb_mt
        for i in range(1 << (start_order - _PBO)):
            pb_mt[b + i] = mt

    def prep_move_freepages_block(self, pfn: int) -> tuple[bool, int, int, int]:
        """Models prep_move_freepages_block with counting. Returns (ok, start, free, movable).

        ``free`` counts pages in PageBuddy blocks, ``movable`` pages that are PageLRU (owner
        movable or pinned; __PageMovable non-LRU pages are not modelled separately). Fails if the
        pageblock straddles the zone's span.
        """
        start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
        end = start + PAGEBLOCK_NR_PAGES
        if not (self.spans(start) and self.spans(end - 1)):
            return False, start, 0, 0
        mm = self.memmap
        st = mm.state
        od = mm.order
        ow = mm.owner
        free = movable = 0
        p = start
        while p < end:
            s = st[p]
            if s == PG_BUDDY:
                nr = 1 << od[p]
                free += nr
                p += nr
                continue
            if s == PG_ALLOC:
                nr = min(1 << od[p], end - p)
                o = ow[p]
                if o in (OWNER_MOVABLE, OWNER_PINNED):
                    movable += nr
                p += nr
                continue
            o = ow[p]
            if s & PG_KIND_MASK == PG_ALLOC and o in (OWNER_MOVABLE, OWNER_PINNED):
                movable += 1
            p += 1
        self.buddy_steps += 1
        return True, start, free, movable

    def move_freepages_block_range(self, start_pfn: int, old_mt: int, new_mt: int) -> int:
        """Models mm/page_alloc.c: __move_freepages_block.

        Moves every free buddy in the pageblock to the tail of ``new_mt``'s lists and sets the
        pageblock's type. Returns the pages moved.
        """
        mm = self.memmap
        st = mm.state
        od = mm.order
        moved = 0
        p = start_pfn
        end = start_pfn + PAGEBLOCK_NR_PAGES
        while p < end:
            s = st[p]
            if s == PG_BUDDY:
                o = od[p]
                self.move_to_free_list(p, o, old_mt, new_mt)
                p += 1 << o
                moved += 1 << o
            elif s & PG_TAIL:
                p += 1
            else:
                p += 1 << od[p] if s & PG_KIND_MASK >= PG_ALLOC else 1
        mm.pb_mt[start_pfn >> _PBO] = new_mt
        return moved

    def move_freepages_block(self, pfn: int, old_mt: int, new_mt: int) -> int:
        """Models mm/page_alloc.c: move_freepages_block. Returns pages moved or -1."""
        ok, start, _, _ = self.prep_move_freepages_block(pfn)
        if not ok:
            return -1
        return self.move_freepages_block_range(start, old_mt, new_mt)

    def find_large_buddy(self, start_pfn: int) -> int:
        """Models mm/page_alloc.c: find_large_buddy — the head of a free buddy straddling
        ``start_pfn`` from below, or ``start_pfn`` itself if there is none."""
        st = self.memmap.state
        od = self.memmap.order
        order = 0
        pfn = start_pfn
        while st[pfn] != PG_BUDDY:
            order += 1
            if order > _MAXO:
                return start_pfn
            pfn &= ~0 << order
            if pfn < self.zone_start_pfn:
                return start_pfn
        if pfn + (1 << od[pfn]) > start_pfn:
            return pfn
        return start_pfn

    def move_freepages_block_isolate(self, pfn: int, migratetype: int) -> bool:
        """Models mm/page_alloc.c: move_freepages_block_isolate (CONFIG_MEMORY_ISOLATION).

        Sets the pageblock of ``pfn`` to ``migratetype`` (usually ISOLATE, or back) and moves its
        free pages; a free buddy larger than a pageblock that covers it is first taken off its
        list and re-freed pageblock by pageblock (``split_large_buddy``).
        """
        ok, start, _, _ = self.prep_move_freepages_block(pfn)
        if not ok:
            return False
        mm = self.memmap
        head = self.find_large_buddy(start)
        if head == start and not (mm.state[start] == PG_BUDDY and mm.order[start] > _PBO):
            self.move_freepages_block_range(start, mm.pb_mt[start >> _PBO], migratetype)
            return True
        order = mm.order[head]
        head_mt = mm.pb_mt[head >> _PBO]
        self.del_from_free_list(head, order, head_mt)
        self.account_freepages(-(1 << order), head_mt)
        mm.pb_mt[start >> _PBO] = migratetype
        self.split_large_buddy(head, order, FPI_NONE)
        return True

    def unset_migratetype_isolate(self, pfn: int, migratetype: int) -> None:
        """Models mm/page_isolation.c: unset_migratetype_isolate (under zone->lock).

        An isolated pageblock whose first page is a free buddy of order 9 with a non-isolated
        free buddy is taken off the ISOLATE list and re-freed to the tail so it merges
        (``__isolate_free_page`` + ``__putback_isolated_page``); otherwise its free pages are
        moved with ``move_freepages_block_isolate``. ``nr_isolate_pageblock`` is not kept.
        """
        mm = self.memmap
        start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
        if mm.pb_mt[start >> _PBO] != MIGRATE_ISOLATE:
            return
        if mm.state[start] == PG_BUDDY:
            order = mm.order[start]
            if _PBO <= order < _MAXO:
                buddy = start ^ (1 << order)
                if (
                    self.spans(buddy)
                    and mm.state[buddy] == PG_BUDDY
                    and mm.order[buddy] == order
                    and mm.pb_mt[buddy >> _PBO] != MIGRATE_ISOLATE
                ):
                    self.del_from_free_list(start, order, MIGRATE_ISOLATE)
                    mm.pb_mt[start >> _PBO] = migratetype
                    self.free_to_buddy(
                        start, order, migratetype, FPI_SKIP_REPORT_NOTIFY | FPI_TO_TAIL
                    )
                    return
        self.move_freepages_block_isolate(start, migratetype)

    def steal_suitable_fallback(
        self,
        page: int,
        current_order: int,
        order: int,
        start_type: int,
        alloc_flags: int,
        whole_block: bool,
    ) -> int:
        """Models mm/page_alloc.c: steal_suitable_fallback (v6.12).

        A block of order >= pageblock_order is claimed outright. Otherwise the watermark is
        boosted, and if ``whole_block`` the pageblock is claimed when its free plus "alike" pages
        reach half a pageblock (256); failing that, exactly ``order`` is cut out of the fallback
        buddy and the remainder stays on the fallback type's lists (the 6.10-6.14 behaviour).
        """
        mm = self.memmap
        block_type = mm.pb_mt[page >> _PBO]
        if block_type != MIGRATE_HIGHATOMIC:
            if current_order >= _PBO:
                self.del_from_free_list(page, current_order, block_type)
                self.account_freepages(-(1 << current_order), block_type)
                self.change_pageblock_range(page, current_order, start_type)
                nr_added = self.expand(page, order, current_order, start_type)
                self.account_freepages(nr_added, start_type)
                return page
            if self.boost_watermark() and alloc_flags & ALLOC_KSWAPD:
                self.flags |= 1 << ZONE_BOOSTED_WATERMARK
            if whole_block:
                ok, start_pfn, free_pages, movable_pages = self.prep_move_freepages_block(page)
                if ok:
                    if start_type == MIGRATE_MOVABLE:
                        alike_pages = movable_pages
                    elif block_type == MIGRATE_MOVABLE:
                        alike_pages = PAGEBLOCK_NR_PAGES - (free_pages + movable_pages)
                    else:
                        alike_pages = 0
                    if (
                        free_pages + alike_pages >= (1 << (_PBO - 1))
                        or self.page_group_by_mobility_disabled
                    ):
                        self.move_freepages_block_range(start_pfn, block_type, start_type)
                        return self.rmqueue_smallest(order, start_type)
        # single_page
        self._del_and_expand(page, order, current_order, block_type)
        return page

    def rmqueue_fallback(self, order: int, start_migratetype: int, alloc_flags: int) -> int:
        """Models mm/page_alloc.c: __rmqueue_fallback (v6.12).

        Searches orders 10 down to ``order`` (down to pageblock_order only, with
        ALLOC_NOFRAGMENT and order < pageblock_order) for the largest fallback block; a movable
        request that cannot steal switches to the smallest one. Emits ``mm_page_alloc_extfrag``.
        """
        min_order = order
        if order < _PBO and alloc_flags & ALLOC_NOFRAGMENT:
            min_order = _PBO
        found = False
        fallback_mt = -1
        can_steal = False
        current_order = _MAXO
        while current_order >= min_order:
            fallback_mt, can_steal = self.find_suitable_fallback(
                current_order, start_migratetype, False
            )
            if fallback_mt != -1:
                found = True
                break
            current_order -= 1
        if not found:
            return -1
        if not can_steal and start_migratetype == MIGRATE_MOVABLE and current_order > order:
            # find_smallest
            for current_order in range(order, NR_PAGE_ORDERS):
                fallback_mt, can_steal = self.find_suitable_fallback(
                    current_order, start_migratetype, False
                )
                if fallback_mt != -1:
                    break
        page = self.memmap.nxt[self.sbase + current_order * _NT + fallback_mt]
        page = self.steal_suitable_fallback(
            page, current_order, order, start_migratetype, alloc_flags, can_steal
        )
        rec = self.rec
        if rec.enabled:
            rec.emit(
                "mm_page_alloc_extfrag",
                pfn=page,
                alloc_order=order,
                fallback_order=current_order,
                alloc_migratetype=start_migratetype,
                fallback_migratetype=fallback_mt,
                change_ownership=int(start_migratetype == self.memmap.pb_mt[page >> _PBO]),
            )
        return page

    def rmqueue_locked(self, order: int, migratetype: int, alloc_flags: int) -> int:
        """Models mm/page_alloc.c: __rmqueue (CMA balancing, smallest, CMA, fallback).

        Returns the pfn of a block taken off the free lists and counters (pages unmarked: the
        caller marks them) or -1.
        """
        if alloc_flags & ALLOC_CMA and self.nr_free_cma > self.nr_free_pages // 2:
            page = self.rmqueue_smallest(order, MIGRATE_CMA)
            if page >= 0:
                return page
        page = self.rmqueue_smallest(order, migratetype)
        if page < 0:
            if alloc_flags & ALLOC_CMA:
                page = self.rmqueue_smallest(order, MIGRATE_CMA)
            if page < 0:
                page = self.rmqueue_fallback(order, migratetype, alloc_flags)
        return page

    def rmqueue_buddy(
        self, order: int, migratetype: int, alloc_flags: int = 0, owner: int | None = None
    ) -> int:
        """Models mm/page_alloc.c: rmqueue_buddy (the part under zone->lock, plus PGALLOC).

        Tries the HIGHATOMIC list first with ALLOC_HIGHATOMIC, then ``__rmqueue``, then HIGHATOMIC
        as a last chance for ALLOC_OOM / ALLOC_NON_BLOCK. Marks the block ``PG_ALLOC`` with
        ``owner`` (default: the owner kind matching ``migratetype``) and counts ``pgalloc_<zone>``.
        Returns the pfn or -1. Simplified: no check_new_pages retry (no bad pages).
        """
        page = -1
        if alloc_flags & ALLOC_HIGHATOMIC:
            page = self.rmqueue_smallest(order, MIGRATE_HIGHATOMIC)
        if page < 0:
            page = self.rmqueue_locked(order, migratetype, alloc_flags)
            if page < 0 and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
                page = self.rmqueue_smallest(order, MIGRATE_HIGHATOMIC)
            if page < 0:
                return -1
        if owner is None:
            owner = OWNER_FOR_MIGRATETYPE[migratetype] if migratetype < 3 else OWNER_NONE
        self.memmap.mark_block(page, order, PG_ALLOC, owner)
        self.vm_events[self.pgalloc_key] += 1 << order
        return page

    rmqueue = rmqueue_buddy

    def rmqueue_bulk(
        self, order: int, count: int, migratetype: int, alloc_flags: int = 0
    ) -> list[int]:
        """Models mm/page_alloc.c: rmqueue_bulk (under one hold of zone->lock).

        Takes up to ``count`` blocks of ``order`` with ``__rmqueue`` and marks them ``PG_PCP``;
        the caller adds them to its pcp list (list_add_tail, in this order).
        """
        out = []
        mark = self.memmap.mark_block
        for _ in range(count):
            page = self.rmqueue_locked(order, migratetype, alloc_flags)
            if page < 0:
                break
            mark(page, order, PG_PCP)
            out.append(page)
        return out

    # ------------------------------------------------------------------ highatomic

    def reserve_highatomic_pageblock(self, pfn: int, order: int) -> None:
        """Models mm/page_alloc.c: reserve_highatomic_pageblock.

        Called after a successful ALLOC_HIGHATOMIC allocation of ``order`` at ``pfn``. The kernel
        takes zone->lock inside; here the caller holds it (the unlocked pre-check is the same).
        """
        managed = self.managed_pages
        if managed // 100 < PAGEBLOCK_NR_PAGES:
            return
        max_managed = -(-(managed // 100) // PAGEBLOCK_NR_PAGES) * PAGEBLOCK_NR_PAGES  # ALIGN
        if self.nr_reserved_highatomic >= max_managed:
            return
        mt = self.memmap.pb_mt[pfn >> _PBO]
        if not migratetype_is_mergeable(mt):
            return
        if order < _PBO:
            if self.move_freepages_block(pfn, mt, MIGRATE_HIGHATOMIC) == -1:
                return
            self.nr_reserved_highatomic += PAGEBLOCK_NR_PAGES
        else:
            self.change_pageblock_range(pfn, order, MIGRATE_HIGHATOMIC)
            self.nr_reserved_highatomic += 1 << order

    def unreserve_highatomic_pageblock(self, migratetype: int, force: bool) -> int:
        """Models mm/page_alloc.c: unreserve_highatomic_pageblock for this one zone.

        The kernel walks the zonelist; the caller loops over zones and stops at the first
        non-zero result. Returns the kernel's ``ret`` (pages moved, or 1), 0 if nothing was done.
        """
        if not force and self.nr_reserved_highatomic <= PAGEBLOCK_NR_PAGES:
            return 0
        nxt = self.memmap.nxt
        pb_mt = self.memmap.pb_mt
        for order in range(NR_PAGE_ORDERS):
            s = self.sbase + order * _NT + MIGRATE_HIGHATOMIC
            page = nxt[s]
            if page == s:
                continue
            mt = pb_mt[page >> _PBO]
            if mt == MIGRATE_HIGHATOMIC:
                size = max(PAGEBLOCK_NR_PAGES, 1 << order)
                size = min(size, self.nr_reserved_highatomic)
                self.nr_reserved_highatomic -= size
            if order < _PBO:
                ret = self.move_freepages_block(page, mt, migratetype)
            else:
                self.move_to_free_list(page, order, mt, migratetype)
                self.change_pageblock_range(page, order, migratetype)
                ret = 1
            if ret > 0:
                return ret
        return 0

    # ------------------------------------------------------------------ watermarks

    def zone_watermark_unusable_free(self, order: int, alloc_flags: int) -> int:
        """Models mm/page_alloc.c: __zone_watermark_unusable_free."""
        unusable = (1 << order) - 1
        if not alloc_flags & ALLOC_RESERVES:
            unusable += self.nr_free_highatomic
        if not alloc_flags & ALLOC_CMA:
            unusable += self.nr_free_cma
        return unusable

    def zone_watermark_ok_free(
        self, order: int, mark: int, highest_zoneidx: int, alloc_flags: int, free_pages: int
    ) -> bool:
        """Models mm/page_alloc.c: __zone_watermark_ok (exactly, including the order>0 rule).

        ``free_pages`` is the caller's count (NR_FREE_PAGES, or a snapshot); it may go negative.
        """
        mn = mark
        free_pages -= self.zone_watermark_unusable_free(order, alloc_flags)
        if alloc_flags & ALLOC_RESERVES:
            if alloc_flags & ALLOC_MIN_RESERVE:
                mn -= mn // 2
                if alloc_flags & ALLOC_NON_BLOCK:
                    mn -= mn // 4
            if alloc_flags & ALLOC_OOM:
                mn -= mn // 2
        if free_pages <= mn + self.lowmem_reserve[highest_zoneidx]:
            return False
        if not order:
            return True
        nxt = self.memmap.nxt
        base = self.sbase
        for o in range(order, NR_PAGE_ORDERS):
            if not self.nr_free[o]:
                continue
            s = base + o * _NT
            for mt in range(MIGRATE_PCPTYPES):
                if nxt[s + mt] != s + mt:
                    return True
            if alloc_flags & ALLOC_CMA and nxt[s + MIGRATE_CMA] != s + MIGRATE_CMA:
                return True
            if (
                alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM)
                and nxt[s + MIGRATE_HIGHATOMIC] != s + MIGRATE_HIGHATOMIC
            ):
                return True
        return False

    def zone_watermark_ok(
        self, order: int, mark: int, highest_zoneidx: int, alloc_flags: int = 0
    ) -> bool:
        """Models mm/page_alloc.c: zone_watermark_ok (free_pages = NR_FREE_PAGES)."""
        return self.zone_watermark_ok_free(
            order, mark, highest_zoneidx, alloc_flags, self.nr_free_pages
        )

    def zone_watermark_fast(
        self, order: int, mark: int, highest_zoneidx: int, alloc_flags: int = 0
    ) -> bool:
        """Models mm/page_alloc.c: zone_watermark_fast (order-0 shortcut, boost-ignoring retry).

        The kernel's __GFP_HIGH test is expressed by ALLOC_MIN_RESERVE, which
        gfp_to_alloc_flags sets from it.
        """
        free_pages = self.nr_free_pages
        if not order:
            usable_free = free_pages
            reserved = self.zone_watermark_unusable_free(0, alloc_flags)
            usable_free -= min(usable_free, reserved)
            if usable_free > mark + self.lowmem_reserve[highest_zoneidx]:
                return True
        if self.zone_watermark_ok_free(order, mark, highest_zoneidx, alloc_flags, free_pages):
            return True
        if (
            not order
            and alloc_flags & ALLOC_MIN_RESERVE
            and self.watermark_boost
            and (alloc_flags & ALLOC_WMARK_MASK) == WMARK_MIN
        ):
            mark = self._watermark[WMARK_MIN]
            return self.zone_watermark_ok_free(
                order, mark, highest_zoneidx, alloc_flags, free_pages
            )
        return False

    # ------------------------------------------------------------------ marking helpers

    @property
    def pgalloc_key(self) -> str:
        """The /proc/vmstat event this zone's allocations count under (pgalloc_<zone>)."""
        return "pgalloc_" + self.name.lower()

    def mark_allocated(self, pfn: int, order: int, owner: int) -> None:
        """Mark a block allocated (e.g. a page leaving a pcp list for a user)."""
        self.memmap.mark_block(pfn, order, PG_ALLOC, owner)

    def mark_pcp(self, pfn: int, order: int) -> None:
        """Mark a block as sitting on a pcp list (e.g. a page freed to the pcp)."""
        self.memmap.mark_block(pfn, order, PG_PCP)

    def mark_isolated(self, pfn: int, order: int) -> None:
        """Mark a block as isolated free pages (off the buddy lists, not allocated)."""
        self.memmap.mark_block(pfn, order, PG_ISOLATED)

    def isolate_free_block(self, pfn: int) -> int:
        """Take a free buddy block off its list as isolated pages (the core of __isolate_free_page,
        without its watermark check or pageblock retyping). Returns its order."""
        mm = self.memmap
        if mm.state[pfn] != PG_BUDDY:
            raise ValueError(f"pfn {pfn:#x} is not the head of a free buddy block")
        order = mm.order[pfn]
        mt = mm.pb_mt[pfn >> _PBO]
        self.del_from_free_list(pfn, order, mt)
        self.account_freepages(-(1 << order), mt)
        mm.mark_block(pfn, order, PG_ISOLATED)
        return order


__all__ = [
    "ALLOC_CMA",
    "ALLOC_CPUSET",
    "ALLOC_HIGHATOMIC",
    "ALLOC_KSWAPD",
    "ALLOC_MIN_RESERVE",
    "ALLOC_NOFRAGMENT",
    "ALLOC_NON_BLOCK",
    "ALLOC_NO_WATERMARKS",
    "ALLOC_OOM",
    "ALLOC_RESERVES",
    "ALLOC_WMARK_HIGH",
    "ALLOC_WMARK_LOW",
    "ALLOC_WMARK_MASK",
    "ALLOC_WMARK_MIN",
    "FALLBACKS",
    "FPI_NONE",
    "FPI_SKIP_REPORT_NOTIFY",
    "FPI_TO_TAIL",
    "MIGRATE_UNMOVABLE",
    "Zone",
    "can_steal_fallback",
    "migratetype_is_mergeable",
]
