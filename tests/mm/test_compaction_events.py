"""Compaction's events are named and shaped after include/trace/events/compaction.h (6.12):
each carries exactly the tracepoint's fields (results as the COMPACTION_STATUS strings), and
the counters of /proc/vmstat move with them (compact_migrate_scanned is the sum of the
migrate scanner's nr_scanned plus the fast search's, compact_isolated the pages taken by
both scanners, pgmigrate_success the pages migrated).
"""

from __future__ import annotations

from emulator.engine import MemoryRecorder, Sim
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import CompactPriority
from emulator.mm.compaction.defer import defer_compaction
from emulator.mm.initstate import free_k_of_n
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.mm.tracepoints import TRACEPOINTS

FIELDS = {
    name: set(tp.field_names)
    for name, tp in TRACEPOINTS.items()
    if tp.system == "compaction" and "kcompactd" not in name
}
STATUS = {
    "not_suitable_zone", "skipped", "deferred", "no_suitable_page", "continue", "complete",
    "partial_skipped", "contended", "success",
}  # fmt: skip


async def test_events_have_the_tracepoint_fields_and_match_the_counters() -> None:
    rec = MemoryRecorder()
    m = Machine.simple(DMA32=4096, Normal=65536, recorder=rec)
    sim = Sim("fifo", strict=True, recorder=rec)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    for z in pa.zones:
        free_k_of_n(z, 1, 2)
        z.rec = rec
    adopt_allocated(pa)
    cpu = pa.cpus[0]
    ac, alloc_flags, _ = pa.prepare_alloc_pages(cpu, GFP_TRANSHUGE)

    async def compactor() -> None:
        for prio in (CompactPriority.COMPACT_PRIO_ASYNC, CompactPriority.COMPACT_PRIO_SYNC_LIGHT):
            await try_to_compact_pages(pa, cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, prio)
        defer_compaction(m.zone("Normal"), 9)
        await try_to_compact_pages(
            pa, cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, CompactPriority.COMPACT_PRIO_SYNC_LIGHT
        )

    sim.spawn("compactor", compactor)
    await sim.run()
    pa.check()
    events = [e for e in rec.events() if e["event"].startswith("mm_compaction_")]
    seen = {e["event"] for e in events}
    for name in (
        "mm_compaction_try_to_compact_pages",
        "mm_compaction_suitable",
        "mm_compaction_begin",
        "mm_compaction_end",
        "mm_compaction_finished",
        "mm_compaction_isolate_migratepages",
        "mm_compaction_migratepages",
        "mm_compaction_defer_compaction",
        "mm_compaction_deferred",
        "mm_compaction_defer_reset",
    ):
        assert name in seen, name
    for e in events:
        fields = set(e) - {"t", "actor", "event", "cpu"}
        assert fields == FIELDS[e["event"]], e
        for key in ("ret", "status"):
            if key in e:
                assert e[key] in STATUS
    ev = pa.vm_events
    taken = sum(
        e["nr_taken"]
        for e in events
        if e["event"]
        in (
            "mm_compaction_isolate_migratepages",
            "mm_compaction_isolate_freepages",
            "mm_compaction_fast_isolate_freepages",
        )
    )
    assert ev["compact_isolated"] == taken
    migrated = sum(e["nr_migrated"] for e in events if e["event"] == "mm_compaction_migratepages")
    assert ev["pgmigrate_success"] == migrated > 0
    free_scanned = sum(
        e["nr_scanned"]
        for e in events
        if e["event"] in ("mm_compaction_isolate_freepages", "mm_compaction_fast_isolate_freepages")
    )
    assert ev["compact_free_scanned"] == free_scanned
