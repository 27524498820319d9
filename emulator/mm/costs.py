"""The virtual-time cost table: what each modelled mechanism charges, in integer ns.

Contention in mmemu is not scripted: it emerges from these charges, because time spent inside a
critical section is time other actors wait. Each default carries a one-line note of where the
number comes from. They are deliberately round: the order of magnitude and the ratios between
them matter, not the last digit. A scenario overrides any of them with ``--set cost.NAME=NS``.

Sources, where a note says "measured": single-socket x86-64 servers of the Skylake/Zen
generation, as reported in the kernel commit messages cited and in will-it-scale/page_fault and
mm microbenchmark threads on linux-mm; "estimate" means reasoned from cache-miss latencies
(~80-100 ns for a cache line owned by another core, ~5 ns for an L1 hit).
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["COST_NOTES", "Costs"]


def _cost(default: int, note: str) -> Any:
    return attrs.field(default=default, metadata={"note": note}, validator=_non_negative)


def _non_negative(_inst: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"cost.{attribute.name} must be a non-negative integer of ns, got {value!r}"
        )


@attrs.frozen
class Costs:
    """Virtual-time charges in ns. Frozen: build a new one with :meth:`with_overrides`."""

    alloc_entry: int = _cost(
        40, "__alloc_pages_noprof entry: gfp/alloc_context setup, zonelist lookup (estimate)"
    )
    watermark_check: int = _cost(
        10, "__zone_watermark_ok / zone_watermark_fast: a few counter loads (estimate)"
    )
    pcp_lock: int = _cost(
        10, "pcp_spin_trylock/unlock on this CPU's pcp->lock: uncontended, line local (estimate)"
    )
    pcp_list_op: int = _cost(
        20, "list_del/list_add on a pcp list, page struct usually cache-hot (estimate)"
    )
    prep_new_page: int = _cost(
        60, "prep_new_page: post_alloc_hook, set refcount, clear flags; no zeroing (estimate)"
    )
    clear_page: int = _cost(
        250, "clear_page per 4 KiB for __GFP_ZERO: ~16 GB/s rep stosb (measured order)"
    )
    free_prepare: int = _cost(
        50, "free_pages_prepare per block: page flag checks, memcg uncharge stub (estimate)"
    )
    zone_lock: int = _cost(
        25, "spin_lock_irqsave + unlock on zone->lock when uncontended (estimate)"
    )
    lock_bounce: int = _cost(
        90, "zone->lock cache line last held by another CPU: one remote transfer (estimate)"
    )
    buddy_step: int = _cost(
        30,
        "one free-list operation or split/merge step in the buddy core: struct page "
        "misses dominate (estimate)",
    )
    bulk_per_block: int = _cost(
        35,
        "rmqueue_bulk / free_pcppages_bulk per block (list entry) moved, besides buddy steps: "
        "list_add_tail, tracepoint off; for order 0 a block is a page (estimate)",
    )
    drain_cpu: int = _cost(
        150,
        "drain_pages_zone per remote CPU visited: pcp->lock line transfer, count check (estimate)",
    )
    lru_lock: int = _cost(
        25, "spin_lock_irqsave + unlock on lruvec->lru_lock when uncontended (estimate)"
    )
    lru_op: int = _cost(
        20,
        "one folio added to or deleted from an LRU list under lru_lock (lruvec_add_folio / "
        "lruvec_del_folio: list op, counter update, flag bits) (estimate)",
    )

    lru_isolate: int = _cost(
        40,
        "isolate_lru_folios per page under lru_lock: folio_test_clear_lru, list_move, "
        "struct page miss (estimate)",
    )
    shrink_folio: int = _cost(
        1000,
        "shrink_folio_list per clean unmapped page-cache page: trylock, folio_referenced, "
        "__remove_mapping under the i_pages lock, shadow entry: ~1 us per 4 KiB, i.e. ~4 GB/s "
        "of clean cache per core. Source: estimate, built up from the steps (a few cache misses "
        "each in folio_referenced's rmap walk, the i_pages xa_lock and the shadow store, plus "
        "the free); no published per-page measurement is cited",
    )
    shrink_slab_object: int = _cost(
        2000,
        "a reclaimable slab page freed by its shrinker (dentry/inode cache objects of one page "
        "disposed: list walks, RCU-deferred frees; estimate)",
    )
    kswapd_pass: int = _cost(
        2000,
        "one balance_pgdat priority pass besides the LRU scan: pgdat_balanced, kswapd_age_node, "
        "shrink_node's memcg walk and shrinker calls (estimate; bounds a pass that finds nothing)",
    )
    compact_scan_page: int = _cost(
        5,
        "compaction migrate scanner, per pfn: a sequential struct page read (PageBuddy/LRU "
        "flags, order), mostly prefetched (estimate)",
    )
    throttle_cond_resched: int = _cost(
        200,
        "kcompactd's too_many_isolated re-test loop: reclaim_throttle returns at once for a "
        "kthread other than kswapd, cond_resched() with nothing else to run, then three "
        "node_page_state reads (estimate)",
    )
    compact_free_scan_page: int = _cost(
        5, "compaction free scanner, per pfn sampled: a struct page read (estimate)"
    )
    compact_block_check: int = _cost(
        20,
        "compaction, per pageblock passed over without scanning (skip bit, migratetype, "
        "pageblock_pfn_to_page): a few flag reads (estimate)",
    )
    compact_isolate_page: int = _cost(
        60,
        "isolate_migratepages_block / putback per folio: refcount get, folio_test_clear_lru, "
        "lruvec_del_folio, NR_ISOLATED update (estimate)",
    )
    migrate_page: int = _cost(
        2000,
        "migrate_pages per 4 KiB page moved: try_to_migrate (unmap, TLB flush), folio_copy "
        "(~250 ns like clear_page), remove_migration_ptes; order of magnitude of the per-page "
        "cost in the 'migrate_pages(): batch TLB flushing' series (Huang Ying, v6.4) (estimate)",
    )
    migrate_fail: int = _cost(
        500,
        "one failed migration attempt (-EAGAIN: unexpected reference count) with its undo "
        "(estimate)",
    )

    def with_overrides(self, **overrides: int) -> Costs:
        """A copy with some charges changed; unknown names raise ValueError listing valid ones."""
        unknown = sorted(set(overrides) - {a.name for a in attrs.fields(Costs)})
        if unknown:
            raise ValueError(
                f"unknown cost {unknown[0]!r}; valid: "
                + ", ".join(a.name for a in attrs.fields(Costs))
            )
        return attrs.evolve(self, **overrides)

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


#: name -> the note that explains its default
COST_NOTES: dict[str, str] = {a.name: a.metadata["note"] for a in attrs.fields(Costs)}
