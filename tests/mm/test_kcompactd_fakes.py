"""Fakes of the compaction and reclaim bodies for the kcompactd/kswapd tests (no tests here).

They act on the real zone state (free lists, watermarks, fragmentation score), so the daemons'
decisions are taken on real numbers; only the mechanism below them is simplified:

* :class:`FakeCompaction` "migrates" a pageblock's allocated pages by freeing them and
  allocating as many order-0 pages elsewhere (what migration does to the free lists), one
  pageblock after the other from the zone start, and for proactive passes stops at the low
  mark as ``__compact_finished`` does (a kcompactd_do_work call only spends time and returns
  ``status``); with ``movable=False`` it moves nothing (unmovable
  memory) and returns COMPACT_COMPLETE;
* :class:`FakeReclaim` frees allocated pages (page cache) from the top of the zone, every
  other pfn, so the freed pages do not merge.
"""

from __future__ import annotations

import attrs
import numpy as np

from emulator.mm.compaction.control import CompactResult
from emulator.mm.compaction.kcompactd import CompactionOps
from emulator.mm.compaction.suitable import (
    fragmentation_score_node,
    fragmentation_score_wmark,
    fragmentation_score_zone,
)
from emulator.mm.internal import CompactControl
from emulator.mm.memmap import OWNER_MOVABLE, PG_ALLOC
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.reclaim.kswapd import ReclaimOps
from emulator.mm.reclaim.vmscan import ScanControl
from emulator.mm.snapshot import MIGRATE_MOVABLE, PAGEBLOCK_ORDER
from emulator.mm.zone import ZONE_RECLAIM_ACTIVE

PB = 1 << PAGEBLOCK_ORDER


@attrs.define
class CompactCall:
    t: int
    zone: str
    order: int
    mode: int
    whole_zone: bool
    proactive: bool
    ignore_skip_hint: bool


@attrs.define(eq=False)
class FakeCompaction:
    pa: object
    movable: bool = True
    cost_ns: int = 1_000_000  # per compact_zone call
    status: CompactResult = CompactResult.COMPACT_COMPLETE  # for non-proactive calls
    suitable_answer: bool = True
    calls: list[CompactCall] = attrs.Factory(list)
    deferred_zones: set = attrs.Factory(set)
    defers: list[tuple[str, int]] = attrs.Factory(list)
    resets: int = 0
    migrated: int = 0
    _next_block: int = 0

    def ops(self) -> CompactionOps:
        return CompactionOps(
            compact_zone=self.compact_zone,
            suitable=lambda z, o, hz: self.suitable_answer,
            deferred=lambda z, o: z.name in self.deferred_zones,
            defer=lambda z, o: self.defers.append((z.name, o)),
            defer_reset=lambda z, o: None,
            reset_isolation_suitable=self._reset,
            pages_migrated=lambda: self.migrated,
        )

    def _reset(self, node: object) -> None:
        self.resets += 1

    async def compact_zone(self, cc: CompactControl) -> CompactResult:
        pa = self.pa
        sim = pa.sim
        await sim.sync()
        zone = cc.zone
        self.calls.append(
            CompactCall(
                sim.current.now,
                zone.name,
                cc.order,
                cc.mode,
                cc.whole_zone,
                cc.proactive_compaction,
                cc.ignore_skip_hint,
            )
        )
        cc.total_migrate_scanned = 0
        cc.total_free_scanned = 0
        if not cc.proactive_compaction:
            cc.total_migrate_scanned = cc.total_free_scanned = 32
            await sim.delay(self.cost_ns)
            return self.status
        if not self.movable:
            await sim.delay(self.cost_ns)
            return CompactResult.COMPACT_COMPLETE
        low = fragmentation_score_wmark(True, pa.machine.compaction_proactiveness)
        st = np.frombuffer(zone.memmap.state, dtype=np.uint8)
        first = zone.zone_start_pfn // PB
        nblocks = zone.spanned_pages // PB
        result = CompactResult.COMPACT_COMPLETE
        while self._next_block < nblocks:
            if fragmentation_score_zone(zone) <= low:
                result = CompactResult.COMPACT_SUCCESS
                break
            b = first + self._next_block
            self._next_block += 1
            lo = b * PB
            used = np.flatnonzero(st[lo : lo + PB] == PG_ALLOC) + lo
            cc.total_migrate_scanned += PB
            async with pa.zone_locked(zone, "fake_compact_zone"):
                for pfn in used.tolist():
                    free_one_page_locked(zone, pfn, 0)
                for _ in range(len(used)):
                    if rmqueue_buddy_locked(zone, 0, MIGRATE_MOVABLE, 0, OWNER_MOVABLE) < 0:
                        break
                    cc.total_free_scanned += 1
            self.migrated += len(used)
            await sim.delay(self.cost_ns // 16)
            await sim.sync()
        await sim.delay(self.cost_ns)
        return result


@attrs.define(eq=False)
class FakeReclaim:
    pa: object
    cost_ns: int = 1_000_000
    writes_seen: list[tuple[bool, bool]] = attrs.Factory(list)
    reclaim_active_seen: list[bool] = attrs.Factory(list)
    boost_during: int = 0  # raise the zone's boost by this much during the first call
    limit: int | None = None  # reclaim at most this many pages per call

    def ops(self) -> ReclaimOps:
        return ReclaimOps(shrink_node=self.shrink_node)

    async def shrink_node(self, node: object, sc: ScanControl) -> None:
        pa = self.pa
        sim = pa.sim
        await sim.sync()
        self.writes_seen.append((sc.may_writepage, sc.may_swap))
        zone = next(z for z in reversed(node.zones) if z.populated)
        self.reclaim_active_seen.append(bool(zone.flags & (1 << ZONE_RECLAIM_ACTIVE)))
        if self.boost_during:
            zone.watermark_boost += self.boost_during
            self.boost_during = 0
        want = sc.nr_to_reclaim if self.limit is None else min(self.limit, sc.nr_to_reclaim)
        st = np.frombuffer(zone.memmap.state, dtype=np.uint8)
        lo, hi = zone.zone_start_pfn, zone.zone_end_pfn
        cand = np.flatnonzero(st[lo:hi] == PG_ALLOC)[::-1] + lo
        cand = cand[(cand & 1) == 0][:want]
        async with pa.zone_locked(zone, "fake_shrink_node"):
            for pfn in cand.tolist():
                free_one_page_locked(zone, pfn, 0)
        sc.nr_scanned += 2 * len(cand)
        sc.nr_reclaimed += len(cand)
        pa.vm_events["pgscan_kswapd"] += 2 * len(cand)
        pa.vm_events["pgsteal_kswapd"] += len(cand)
        await sim.delay(self.cost_ns)


def node_score(pa: object) -> int:
    return fragmentation_score_node(pa.machine.nodes[0])
