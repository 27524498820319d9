"""Per-page and per-pageblock state in compact arrays: the model of ``struct page`` / mem_map.

There is no Python object per page. Every array is indexed by the global pfn (0 .. end_pfn) and
holds one small integer per page:

* ``state`` (bytearray): what the page is. The low 3 bits are the *kind* of the block the
  page belongs to (:data:`PG_BUDDY`, :data:`PG_ALLOC`, :data:`PG_PCP`, :data:`PG_ISOLATED`, or a
  page that is not managed: :data:`PG_HOLE`, :data:`PG_RESERVED`); :data:`PG_TAIL` is set on
  every page of a block except its first. So a free buddy of order 3 is one ``PG_BUDDY`` head
  (``PageBuddy``) and seven ``PG_BUDDY | PG_TAIL`` pages. This is stricter than the kernel,
  where only the head of a free block carries PageBuddy and the other pages are just "not
  PageBuddy"; the extra marking lets the invariant checker prove no page is in two states.
* ``order`` (bytearray): for a head page, the order of its block (``page_private`` of a buddy,
  ``compound_order`` of an allocated block, the pcp list order of a page on a pcp list).
* ``owner`` (bytearray): what kind of user holds an allocated page, the distinctions the kernel
  makes for compaction and reclaim: :data:`OWNER_ANON` (anonymous memory: LRU, movable, not
  reclaimable without swap), :data:`OWNER_FILE` (clean page cache: LRU, movable, reclaimable),
  :data:`OWNER_MLOCKED` (mlocked: the unevictable LRU; isolatable only with
  ``vm.compact_unevictable_allowed=1``), :data:`OWNER_PINNED` (long-term pinned anonymous memory:
  on the LRU, but migration fails), :data:`OWNER_RECLAIMABLE` (reclaimable slab: freed only by
  its shrinker, not movable), :data:`OWNER_UNMOVABLE` (other kernel memory). Set on every page
  of the block. 0 for free pages.
* ``pflags`` (bytearray): page flags of a head page, for the LRU: :data:`PF_LRU` (PageLRU: on
  an LRU list), :data:`PF_ACTIVE`, :data:`PF_UNEVICTABLE`, :data:`PF_LRU_BATCH` (in a CPU's
  lru-add batch, not yet on a list), :data:`PF_ISOLATED` (isolated from the LRU).
* ``handle`` (``array('i')``): the reverse map: the holder handle of an allocated block's head
  (-1: no holder), see :mod:`emulator.mm.reclaim.rmap`.
* ``nxt`` / ``prv`` (``array('i')``): intrusive doubly-linked lists (``page->buddy_list`` and
  ``page->pcp_list``: a page is on at most one list). Indices above ``end_pfn`` are list heads
  (sentinels); :meth:`Memmap.new_list` hands them out. ``list_add`` puts an entry at the head,
  ``list_add_tail`` at the tail, ``list_first_entry`` takes the head.

Per pageblock (``pfn >> PAGEBLOCK_ORDER``): ``pb_mt`` (the 3 migratetype bits of
``zone->pageblock_flags``) and ``pb_skip`` (``PB_migrate_skip``, the compaction skip hint).

Memory: 16 bytes per page (1+1+1+1+4+4+4) plus 2 bytes per pageblock.
"""

from __future__ import annotations

from array import array
from typing import Any, Final

from emulator.mm.snapshot import MAX_PAGE_ORDER, MIGRATE_MOVABLE, PAGEBLOCK_ORDER

# --- page kinds (low 3 bits of state) ---
PG_HOLE: Final = 0
"""No memory here (not present: a hole in the physical map)."""
PG_RESERVED: Final = 1
"""Present but not managed by the buddy allocator (memblock reserved: low 1 MiB, kernel, memmap)."""
PG_BUDDY: Final = 2
"""In a free block on a buddy free list (the head is ``PageBuddy`` with the order in ``order``)."""
PG_ALLOC: Final = 3
"""Allocated (the head's ``order`` is the allocation order, ``owner`` says who holds it)."""
PG_PCP: Final = 4
"""On a per-CPU page list: off the buddy lists, not counted in NR_FREE_PAGES."""
PG_ISOLATED: Final = 5
"""Free but isolated from the buddy allocator (compaction's free scanner, capture)."""
PG_KIND_MASK: Final = 0x7
PG_TAIL: Final = 0x8
"""Flag: a page of a block other than its first page."""

KIND_NAMES = {
    PG_HOLE: "hole",
    PG_RESERVED: "reserved",
    PG_BUDDY: "buddy",
    PG_ALLOC: "allocated",
    PG_PCP: "pcp",
    PG_ISOLATED: "isolated",
}

# --- owners of allocated pages ---
OWNER_NONE: Final = 0
OWNER_ANON: Final = 1
"""Anonymous memory: on the anon LRU, movable; reclaimable only with swap (not modelled)."""
OWNER_MOVABLE: Final = OWNER_ANON
"""The old name of :data:`OWNER_ANON` (a movable allocation defaults to anonymous memory)."""
OWNER_UNMOVABLE: Final = 2
"""Unmovable kernel memory (page tables, kernel stacks, unreclaimable slab): not on any list."""
OWNER_RECLAIMABLE: Final = 3
"""Reclaimable slab (NR_SLAB_RECLAIMABLE_B): freed only by its shrinker, not movable."""
OWNER_PINNED: Final = 4
"""Long-term pinned anonymous memory (FOLL_LONGTERM): on the anon LRU, but migration fails."""
OWNER_FILE: Final = 5
"""Clean page cache: on the file LRU, movable, and reclaimable (evicted, then refaulted)."""
OWNER_MLOCKED: Final = 6
"""mlocked memory: on the unevictable LRU; compaction isolates it only with
``vm.compact_unevictable_allowed=1``; never reclaimed."""
OWNER_NAMES = ("none", "anon", "unmovable", "slab_reclaimable", "pinned", "file", "mlocked")
#: Names accepted for an owner kind (scenario files): the kernel-style names, and the old ones.
OWNER_ALIASES = {
    **{name: i for i, name in enumerate(OWNER_NAMES) if i},
    "movable": OWNER_ANON,
    "reclaimable": OWNER_RECLAIMABLE,
}
#: The owner an allocation of a given migratetype gets by default.
OWNER_FOR_MIGRATETYPE = (OWNER_UNMOVABLE, OWNER_ANON, OWNER_RECLAIMABLE)
#: Owner kinds whose folios live on an LRU list (PageLRU once added): anon, pinned, file, mlocked
OWNER_ON_LRU = bytes(
    1 if k in (OWNER_ANON, OWNER_PINNED, OWNER_FILE, OWNER_MLOCKED) else 0
    for k in range(len(OWNER_NAMES))
)

# --- page flags of a head page (pflags) ---
PF_LRU: Final = 0x1
"""PG_lru: on an LRU list."""
PF_ACTIVE: Final = 0x2
"""PG_active: on an active list."""
PF_UNEVICTABLE: Final = 0x4
"""PG_unevictable: on (or bound for) the unevictable list."""
PF_LRU_BATCH: Final = 0x8
"""In a CPU's lru-add batch (cpu_fbatches.lru_add): held for the LRU, not yet PageLRU."""
PF_ISOLATED: Final = 0x10
"""Isolated from the LRU by compaction or reclaim (counted in nr_isolated_*). The kernel has no
such flag (the isolater's list says it); the model keeps one so the counters can be checked."""

MAX_SENTINELS: Final = 1 << 16
"""List heads available beyond end_pfn (zones x orders x migratetypes, plus pcp lists)."""

# Prebuilt fill patterns so marking a block of order o is one slice assignment (a memset).
_TAIL_FILL: dict[int, tuple[bytes, ...]] = {
    kind: tuple(bytes([kind | PG_TAIL]) * ((1 << o) - 1) for o in range(MAX_PAGE_ORDER + 1))
    for kind in (PG_BUDDY, PG_ALLOC, PG_PCP, PG_ISOLATED)
}
_OWNER_FILL: tuple[tuple[bytes, ...], ...] = tuple(
    tuple(bytes([owner]) * (1 << o) for o in range(MAX_PAGE_ORDER + 1))
    for owner in range(len(OWNER_NAMES))
)


def tail_fill(kind: int, order: int) -> bytes:
    """The bytes that mark the tail pages of a block of ``order`` as ``kind`` tails."""
    return _TAIL_FILL[kind][order]


class Memmap:
    """The mem_map of one machine: per-page and per-pageblock arrays, and the list store.

    All pages start as :data:`PG_HOLE`; the machine marks present and managed ranges.
    """

    __slots__ = (
        "_next_sentinel",
        "end_pfn",
        "handle",
        "nr_pageblocks",
        "nxt",
        "order",
        "owner",
        "pb_mt",
        "pb_skip",
        "pflags",
        "prv",
        "state",
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> Memmap:
        # unpickling (the set-up cache) makes the object with ``__new__`` alone and then sets
        # its state; with an explicit ``__new__``, a class compiled with mypyc
        # (emulator.native) does not run ``__init__`` there either
        return super().__new__(cls)

    def __init__(self, end_pfn: int) -> None:
        if end_pfn <= 0:
            raise ValueError(f"end_pfn must be positive, got {end_pfn}")
        self.end_pfn = end_pfn
        self.state = bytearray(end_pfn)
        self.order = bytearray(end_pfn)
        self.owner = bytearray(end_pfn)
        self.pflags = bytearray(end_pfn)
        self.handle = array("i", [-1]) * end_pfn
        n = end_pfn + MAX_SENTINELS
        self.nxt = array("i", [0]) * n
        self.prv = array("i", [0]) * n
        self.nr_pageblocks = (end_pfn + (1 << PAGEBLOCK_ORDER) - 1) >> PAGEBLOCK_ORDER
        # memmap_init_range: every pageblock starts MIGRATE_MOVABLE.
        self.pb_mt = bytearray([MIGRATE_MOVABLE]) * self.nr_pageblocks
        self.pb_skip = bytearray(self.nr_pageblocks)
        self._next_sentinel = end_pfn

    # --- list store (include/linux/list.h on page->buddy_list / page->pcp_list) ---

    def new_list(self) -> int:
        """Allocate an empty list head (INIT_LIST_HEAD) and return its index."""
        s = self._next_sentinel
        if s >= self.end_pfn + MAX_SENTINELS:
            raise RuntimeError(f"out of list heads (MAX_SENTINELS={MAX_SENTINELS})")
        self._next_sentinel = s + 1
        self.nxt[s] = s
        self.prv[s] = s
        return s

    def new_lists(self, count: int) -> int:
        """Allocate ``count`` consecutive empty list heads; return the first index."""
        first = self._next_sentinel
        for _ in range(count):
            self.new_list()
        return first

    def list_add(self, head: int, pfn: int) -> None:
        """list_add: insert ``pfn`` right after ``head`` (it becomes the first entry)."""
        nxt = self.nxt
        prv = self.prv
        n = nxt[head]
        nxt[pfn] = n
        prv[pfn] = head
        prv[n] = pfn
        nxt[head] = pfn

    def list_add_tail(self, head: int, pfn: int) -> None:
        """list_add_tail: insert ``pfn`` right before ``head`` (it becomes the last entry)."""
        nxt = self.nxt
        prv = self.prv
        p = prv[head]
        prv[pfn] = p
        nxt[pfn] = head
        nxt[p] = pfn
        prv[head] = pfn

    def list_del(self, pfn: int) -> None:
        """list_del: unlink ``pfn`` from whatever list it is on."""
        nxt = self.nxt
        prv = self.prv
        n = nxt[pfn]
        p = prv[pfn]
        nxt[p] = n
        prv[n] = p

    def list_first(self, head: int) -> int:
        """list_first_entry_or_null: the first entry, or -1 if the list is empty."""
        n = self.nxt[head]
        return -1 if n == head else n

    def list_last(self, head: int) -> int:
        """list_last_entry: the last entry, or -1 if the list is empty (kept for compaction:
        fast_isolate_freepages walks a free list from its tail)."""
        p = self.prv[head]
        return -1 if p == head else p

    def list_entries(self, head: int) -> list[int]:
        """Every entry from first to last (O(length); for checks and snapshots)."""
        out = []
        nxt = self.nxt
        p = nxt[head]
        while p != head:
            out.append(p)
            p = nxt[p]
        return out

    # --- marking blocks ---

    def mark_block(self, pfn: int, order: int, kind: int, owner: int = OWNER_NONE) -> None:
        """Mark the ``1 << order`` pages at ``pfn`` as one ``kind`` block with its head at pfn."""
        self.state[pfn] = kind
        self.order[pfn] = order
        if order:
            self.state[pfn + 1 : pfn + (1 << order)] = _TAIL_FILL[kind][order]
            self.owner[pfn : pfn + (1 << order)] = _OWNER_FILL[owner][order]
        else:
            self.owner[pfn] = owner

    def set_owner(self, pfn: int, order: int, owner: int) -> None:
        """Change the owner kind of every page of the block at ``pfn`` (e.g. pin/unpin)."""
        self.owner[pfn : pfn + (1 << order)] = _OWNER_FILL[owner][order]

    def kind(self, pfn: int) -> int:
        return self.state[pfn] & PG_KIND_MASK

    # pfn-walking helpers for compaction's scanners (a scanner can land inside a block)

    def is_tail(self, pfn: int) -> bool:
        """Whether ``pfn`` is a page of a block other than its first (PageTail for compound
        pages; here also the inner pages of free buddies)."""
        return bool(self.state[pfn] & PG_TAIL)

    def block_head(self, pfn: int) -> int:
        """The head pfn of the block containing ``pfn`` (walks down aligned candidates):
        compound_head() for an allocated page, the buddy head for a free one."""
        st = self.state
        if not st[pfn] & PG_TAIL:
            return pfn
        kind = st[pfn] & PG_KIND_MASK
        for o in range(1, MAX_PAGE_ORDER + 1):
            h = pfn & ~((1 << o) - 1)
            if st[h] == kind and self.order[h] >= o:
                return h
        raise ValueError(f"pfn {pfn:#x}: tail page without a head")

    # --- pageblock flags (get/set_pfnblock_flags_mask) ---

    def get_pageblock_migratetype(self, pfn: int) -> int:
        """Models include/linux/mmzone.h: get_pageblock_migratetype."""
        return self.pb_mt[pfn >> PAGEBLOCK_ORDER]

    def set_pageblock_migratetype(self, pfn: int, mt: int) -> None:
        """Models mm/page_alloc.c: set_pageblock_migratetype."""
        self.pb_mt[pfn >> PAGEBLOCK_ORDER] = mt

    def get_pageblock_skip(self, pfn: int) -> bool:
        """Models include/linux/pageblock-flags.h: get_pageblock_skip (PB_migrate_skip)."""
        return bool(self.pb_skip[pfn >> PAGEBLOCK_ORDER])

    def set_pageblock_skip(self, pfn: int) -> None:
        """Models include/linux/pageblock-flags.h: set_pageblock_skip."""
        self.pb_skip[pfn >> PAGEBLOCK_ORDER] = 1

    def clear_pageblock_skip(self, pfn: int) -> None:
        """Models include/linux/pageblock-flags.h: clear_pageblock_skip."""
        self.pb_skip[pfn >> PAGEBLOCK_ORDER] = 0

    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return (
            len(self.state)
            + len(self.order)
            + len(self.owner)
            + len(self.pflags)
            + self.handle.itemsize * len(self.handle)
            + self.nxt.itemsize * len(self.nxt)
            + self.prv.itemsize * len(self.prv)
            + len(self.pb_mt)
            + len(self.pb_skip)
        )


#: the per-pfn arrays of :class:`Memmap` (one item per page; ``nxt``/``prv`` also hold the list
#: heads past ``end_pfn``)
PER_PAGE_ARRAYS = ("state", "order", "owner", "pflags", "handle", "nxt", "prv")


def per_page_bytes(memmap: Memmap) -> int:
    """Bytes of state per page: the sum of the item sizes of the per-pfn arrays
    (:data:`PER_PAGE_ARRAYS`), read from the arrays themselves."""
    return sum(memoryview(getattr(memmap, name)).itemsize for name in PER_PAGE_ARRAYS)
