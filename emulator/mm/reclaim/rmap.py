"""Who points at a page: holder handles, the model of the reverse map and the page tables.

Models the part of mm/rmap.c and the page tables that compaction and reclaim act through: a
workload never keeps a raw pfn, it keeps a *handle*; the reverse map says which handle holds a
block (``Memmap.handle[pfn]``, the model of ``folio->mapping`` + the PTEs that map it) and which
pfn a handle holds now (``Rmap.handle_pfn[handle]``). Both are compact arrays.

* Migration (mm/migrate.c ``remove_migration_ptes``) moves the holder's reference to the new
  pfn: :meth:`Rmap.rmap_move`; the holder later frees or touches the new pfn.
* Reclaim (mm/vmscan.c ``shrink_folio_list``: ``try_to_unmap`` + ``__remove_mapping``) evicts
  a page and tells its holder: :meth:`Rmap.evict` leaves :data:`EVICTED` in ``handle_pfn`` and
  queues a notice for the holder (a page-cache workload refaults it later).

A handle is a small int, reused after :meth:`Rmap.release` (lowest-freed-last, so runs are
deterministic). ``holder`` is an int naming who holds the handle (the CPU program's CPU id).

Locking: the kernel changes these under the folio lock and the page table locks, which no
other CPU contends for in the model's workloads; the arrays are changed at the caller's
instant without an engine lock.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from typing import Any

from emulator.mm.memmap import (
    OWNER_NONE,
    PF_ACTIVE,
    PF_ISOLATED,
    PF_UNEVICTABLE,
    PG_ALLOC,
    Memmap,
)

__all__ = ["EVICTED", "NO_HANDLE", "Rmap"]

NO_HANDLE = -1
"""``Memmap.handle[pfn]`` of a block nobody holds (free, kernel-internal, or its holder gone)."""
EVICTED = -2
"""``Rmap.handle_pfn[h]`` of a handle whose page reclaim evicted (the holder was told)."""


class Rmap:
    """The reverse map of one machine (see the module docstring)."""

    __slots__ = ("_free", "evicted", "handle_holder", "handle_pfn", "memmap")

    def __init__(self, memmap: Memmap) -> None:
        self.memmap = memmap
        #: handle -> the pfn of the block it holds, :data:`EVICTED`, or -1 (a free slot)
        self.handle_pfn = array("i")
        #: handle -> who holds it (a CPU id)
        self.handle_holder = array("i")
        #: free handle slots (a stack)
        self._free: list[int] = []
        #: holder -> handles of its pages that reclaim evicted, in eviction order
        self.evicted: defaultdict[int, list[int]] = defaultdict(list)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (the set-up cache) as its constructor's arguments and its state: compiled
        # with mypyc (emulator.native), the class runs ``__init__`` when it is unpickled
        return (type(self), (self.memmap,), self.__getstate__())

    # -- the holder's side -----------------------------------------------------------------

    def add(self, pfn: int, holder: int) -> int:
        """Map the allocated block at ``pfn`` for ``holder`` (the fault that maps it, or the
        page cache insertion); returns its new handle."""
        if self._free:
            h = self._free.pop()
            self.handle_pfn[h] = pfn
            self.handle_holder[h] = holder
        else:
            h = len(self.handle_pfn)
            self.handle_pfn.append(pfn)
            self.handle_holder.append(holder)
        self.memmap.handle[pfn] = h
        return h

    def pfn(self, handle: int) -> int:
        """The pfn ``handle`` holds now (after any migration), or :data:`EVICTED`."""
        return self.handle_pfn[handle]

    def release(self, handle: int) -> int:
        """The holder lets go (munmap, truncation): unmap the page, free the handle. Returns
        the pfn it held (or :data:`EVICTED`); the page itself is the caller's to free."""
        pfn = self.handle_pfn[handle]
        if pfn >= 0 and self.memmap.handle[pfn] == handle:
            self.memmap.handle[pfn] = NO_HANDLE
        self.handle_pfn[handle] = -1
        self._free.append(handle)
        return pfn

    def remap(self, handle: int, pfn: int) -> None:
        """The holder faults an evicted page back in at ``pfn`` (a refault): same handle."""
        if self.handle_pfn[handle] != EVICTED:
            raise ValueError(f"remap of handle {handle}: it is not evicted")
        self.handle_pfn[handle] = pfn
        self.memmap.handle[pfn] = handle

    def take_evicted(self, holder: int) -> list[int]:
        """The eviction notices for ``holder`` since the last call (handles, oldest first)."""
        notes = self.evicted.pop(holder, None)
        return notes if notes is not None else []

    # -- the kernel's side -------------------------------------------------------------------

    def holder(self, pfn: int) -> int:
        """The handle holding the block at ``pfn``, or :data:`NO_HANDLE` (its holder freed it
        while it was isolated, as when ``folio_ref_count`` drops to the isolater's own ref)."""
        return self.memmap.handle[pfn]

    def rmap_move(self, old_pfn: int, new_pfn: int, order: int) -> None:
        """Models mm/migrate.c: remove_migration_ptes (+ folio_migrate_flags, the mapping
        transfer of __folio_migrate_mapping). The holder's reference moves to ``new_pfn``.

        The caller has isolated the source, allocated the destination block (``PG_ALLOC``,
        same order) and copied the data. The owner kind and the ``PF_ACTIVE``,
        ``PF_UNEVICTABLE`` and ``PF_ISOLATED`` bits move to the new block, which is left
        isolated (the caller puts it back with ``putback_lru_page``, which settles
        ``nr_isolated_*``); the old block is left ``PG_ALLOC`` with no owner, no flags and no
        holder, for the caller to free (``page_free.free_pages``). A source whose holder
        let go while isolated (:meth:`holder` is :data:`NO_HANDLE`) moves with no holder, and
        its putback frees it.
        """
        mm = self.memmap
        if mm.state[new_pfn] != PG_ALLOC or mm.order[new_pfn] != order:
            raise ValueError(f"rmap_move to pfn {new_pfn:#x}: not an allocated order-{order} head")
        h = mm.handle[old_pfn]
        mm.set_owner(new_pfn, order, mm.owner[old_pfn])
        mm.set_owner(old_pfn, order, OWNER_NONE)
        mm.pflags[new_pfn] = mm.pflags[old_pfn] & (PF_ACTIVE | PF_UNEVICTABLE | PF_ISOLATED)
        mm.pflags[old_pfn] = 0
        mm.handle[old_pfn] = NO_HANDLE
        mm.handle[new_pfn] = h
        if h >= 0:
            self.handle_pfn[h] = new_pfn

    def evict(self, pfn: int) -> int:
        """Models mm/vmscan.c: shrink_folio_list's unmap and removal from the page cache for a
        clean page (try_to_unmap, __remove_mapping): the holder is told (its handle reads
        :data:`EVICTED`, a notice is queued for it). Returns the handle, or :data:`NO_HANDLE`
        when the holder had already let go. The block keeps ``PG_ALLOC``; the caller frees it.
        """
        mm = self.memmap
        h = mm.handle[pfn]
        mm.handle[pfn] = NO_HANDLE
        if h >= 0:
            self.handle_pfn[h] = EVICTED
            self.evicted[self.handle_holder[h]].append(h)
        return h

    def nr_handles(self) -> int:
        """Handles in use."""
        return len(self.handle_pfn) - len(self._free)
