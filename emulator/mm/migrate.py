"""Page migration as compaction uses it: Models mm/migrate.c: migrate_pages (with
migrate_pages_batch / migrate_pages_sync's retry structure), migrate_folio_unmap's "freed from
under us" case, the copy (folio_copy + remove_migration_ptes) and migrate_folio_done.

A migration moves one isolated allocated block (a folio) to a free block taken from the free
scanner (``compaction_alloc``): the new block becomes allocated with the same owner kind, the
holder's reference moves to it (:func:`rmap_move`, the model of the reverse map and page
tables), and the old block is freed through the normal path (``pa.free_pages`` on the
compacting CPU: orders 0-3 and 9 land on its pcp lists, where an overflow drain can merge and
be captured).

Outcomes per folio, as the kernel has them:

* freed by its holder since isolation (``folio_ref_count == 1``): done, counted as succeeded,
  no target used;
* long-term pinned (the reference count is not the expected one): ``-EAGAIN`` on every pass;
  after the last pass (10 for MIGRATE_ASYNC; 3 async + 7 sync for the sync modes,
  ``NR_MAX_MIGRATE_PAGES_RETRY`` / ``NR_MAX_MIGRATE_ASYNC_RETRY`` / ``NR_MAX_MIGRATE_SYNC_RETRY``)
  it is a permanent failure and stays on the list for ``putback_movable_pages``; a pinned page
  never moves;
* no target (``compaction_alloc`` returned NULL): ``-ENOMEM`` ends the whole call, the rest
  stay on the list; the folio and the pass's retried folios count in ``pgmigrate_fail``
  (migrate.c:1836-1849; in the sync modes' one-by-one phase the folio alone).

The list is walked from its head, where ``isolate_migratepages_block``'s ``list_add`` put the
last isolated folio (migrate.c:1625, 1733): the highest pfn moves first.

``pgmigrate_success`` / ``pgmigrate_fail`` count base pages; ``thp_migration_success`` /
``thp_migration_fail`` count PMD-order folios. Time: each copied folio charges
``costs.migrate_page`` per base page, each failed attempt ``costs.migrate_fail``.

Simplified: the pin is checked before a target is taken (the kernel finds it in
``folio_migrate_mapping`` after unmapping and puts the target back); no batching into
``NR_MAX_BATCHED_MIGRATION`` chunks (compaction's lists are at most a pageblock); no large
folio splitting on -ENOMEM; no writeback, dirty or locked folios (so no other -EAGAIN).
"""

from __future__ import annotations

from collections.abc import Callable

from emulator.mm.compaction.isolate_free import (
    compaction_alloc,
    compaction_alloc_isolated,
    compaction_free,
)
from emulator.mm.compaction.isolate_migrate import putback_folios
from emulator.mm.internal import MIGRATE_ASYNC, Allocator, CompactControl
from emulator.mm.memmap import OWNER_PINNED, PG_ALLOC
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.reclaim.lru import putback_lru_page
from emulator.mm.reclaim.rmap import NO_HANDLE
from emulator.mm.snapshot import PAGEBLOCK_ORDER

__all__ = [
    "EAGAIN",
    "ENOMEM",
    "NR_MAX_MIGRATE_ASYNC_RETRY",
    "NR_MAX_MIGRATE_PAGES_RETRY",
    "NR_MAX_MIGRATE_SYNC_RETRY",
    "migrate_pages",
    "register_rmap_holder",
    "rmap_move",
]

ENOMEM = -12
EAGAIN = -11
#: migrate.c:1581-1588
NR_MAX_MIGRATE_PAGES_RETRY = 10
NR_MAX_MIGRATE_ASYNC_RETRY = 3
NR_MAX_MIGRATE_SYNC_RETRY = 7
HPAGE_PMD_ORDER = PAGEBLOCK_ORDER

RmapHolder = Callable[[int, int, int], None]


def register_rmap_holder(pa: Allocator, holder: RmapHolder) -> None:
    """Register ``holder(old_pfn, new_pfn, order)``, told whenever a block moves, after the
    machine's reverse map (``machine.rmap``, whose handles are the usual way to hold a page):
    for observers that keep pfns (tests). Kept in ``pa.extensions["rmap_holders"]``."""
    pa.extensions.setdefault("rmap_holders", []).append(holder)


def rmap_move(pa: Allocator, old_pfn: int, new_pfn: int, order: int) -> None:
    """Models remove_migration_ptes: every reference to the block at ``old_pfn`` now points at
    ``new_pfn`` (the machine's reverse map, then every registered holder)."""
    pa.machine.rmap.rmap_move(old_pfn, new_pfn, order)
    holders: list[RmapHolder] | None = pa.extensions.get("rmap_holders")
    if holders is not None:
        for holder in holders:
            holder(old_pfn, new_pfn, order)


async def migrate_pages(cc: CompactControl) -> tuple[int, int]:
    """Models mm/migrate.c: migrate_pages(&cc->migratepages, compaction_alloc,
    compaction_free, cc, cc->mode, MR_COMPACTION, &nr_succeeded).

    Migrates the folios on ``cc.migratepages``; migrated and vanished ones leave the list,
    permanent failures and (after -ENOMEM) the unattempted stay for the caller's putback.
    Returns ``(err, nr_succeeded)``: ``err`` is -ENOMEM, or the number of folios not migrated
    (0 when all moved); ``nr_succeeded`` in base pages.
    """
    pa = cc.pa
    assert pa is not None
    sim = pa.sim
    costs = pa.costs
    zone = cc.zone
    mm = zone.memmap
    od = mm.order
    ow = mm.owner
    cpu = cc.cpu if cc.cpu is not None else pa.cpus[0]
    ev = pa.vm_events
    passes = (
        NR_MAX_MIGRATE_PAGES_RETRY
        if cc.mode == MIGRATE_ASYNC
        else NR_MAX_MIGRATE_ASYNC_RETRY + NR_MAX_MIGRATE_SYNC_RETRY
    )
    nr_succeeded = 0
    nr_failed_pages = 0
    thp_ok = thp_fail = 0
    pending = list(cc.migratepages)
    holders: list[RmapHolder] = pa.extensions.get("rmap_holders") or []
    rmap = pa.machine.rmap
    moved: list[int] = []  # new folios, isolated until put on the LRU (folio_add_lru)
    await sim.sync()
    err = 0
    for pass_ in range(passes):
        retry: list[int] = []
        nr_retry_pages = 0
        thp_retry = 0
        for i, src in enumerate(pending):
            order = od[src]
            n = 1 << order
            if mm.handle[src] == NO_HANDLE:
                # folio_ref_count(src) == 1: its holder let go; migrate_folio_done frees it
                await putback_lru_page(pa, cpu, src)
                nr_succeeded += n
                continue
            if ow[src] == OWNER_PINNED:
                retry.append(src)  # -EAGAIN: the reference count is not the expected one
                nr_retry_pages += n
                thp_retry += order == HPAGE_PMD_ORDER
                await sim.delay(costs.migrate_fail)
                continue
            dst = compaction_alloc_isolated(cc, order)
            if dst < 0:
                dst = await compaction_alloc(cc, order)  # the free scanner runs
            if dst < 0:
                # -ENOMEM (migrate.c:1836-1849): this folio and the pass's retried ones count
                # as failed; in the sync phase each folio is its own batch (migrate_pages_sync,
                # 1988-1997), so only the folio itself
                err = ENOMEM
                in_batch = cc.mode == MIGRATE_ASYNC or pass_ < NR_MAX_MIGRATE_ASYNC_RETRY
                nr_failed_pages += n + (nr_retry_pages if in_batch else 0)
                thp_fail += (order == HPAGE_PMD_ORDER) + (thp_retry if in_batch else 0)
                retry.extend(pending[i:])
                break
            if mm.handle[src] == NO_HANDLE:  # let go while we scanned for a target
                compaction_free(cc, dst, order)
                await putback_lru_page(pa, cpu, src)
                nr_succeeded += n
                continue
            mm.mark_block(dst, order, PG_ALLOC)
            rmap.rmap_move(src, dst, order)  # remove_migration_ptes: the holder follows
            for holder in holders:
                holder(src, dst, order)
            moved.append(dst)
            await sim.delay(costs.migrate_page << order)
            # migrate_folio_done -> folio_put: the source goes back through the free path
            await free_pages(pa, cpu, src, order)
            nr_succeeded += n
            if order == HPAGE_PMD_ORDER:
                thp_ok += 1
        pending = retry
        if err or not pending:
            break
        await sim.sync()
    # the new folios join the LRU (folio_add_lru), NR_ISOLATED_* settled
    await putback_folios(pa, cpu, moved)
    cc.migratepages = pending
    failed = 0
    if err != ENOMEM:
        for src in pending:
            nr_failed_pages += 1 << od[src]
            if od[src] == HPAGE_PMD_ORDER:
                thp_fail += 1
        failed = len(pending)
    ev["pgmigrate_success"] += nr_succeeded
    ev["pgmigrate_fail"] += nr_failed_pages
    if thp_ok:
        ev["thp_migration_success"] += thp_ok
    if thp_fail:
        ev["thp_migration_fail"] += thp_fail
    return (err if err else failed), nr_succeeded
