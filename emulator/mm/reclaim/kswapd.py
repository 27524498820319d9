"""kswapd: the per-node background reclaim thread, and how the kthreads are started.

Models mm/vmscan.c of Linux 6.12: kswapd (the thread loop), kswapd_try_to_sleep,
prepare_kswapd_sleep, pgdat_balanced, pgdat_watermark_boosted, balance_pgdat (with boosted
reclaim and ZONE_RECLAIM_ACTIVE), kswapd_shrink_node, kswapd_highest_zoneidx and wakeup_kswapd.

One :class:`Kswapd` per node holds the ``pg_data_t`` fields the kernel keeps for it
(``kswapd_order``, ``kswapd_highest_zoneidx``, ``kswapd_failures``, ``kswapd_wait``) and runs
:meth:`Kswapd.kswapd` as a daemon actor:

* woken by an allocation that found a zone below its low mark (``wakeup_kswapd``, from the slow
  path, or from ``rmqueue`` after a watermark boost), it reclaims in ``balance_pgdat`` at the
  requested order until one eligible zone passes its HIGH mark at that order;
  ``kswapd_shrink_node`` drops to order 0 once ``compact_gap(order)`` = ``2 << order`` pages are
  reclaimed (kswapd does not build the high-order page itself: it hands over to kcompactd);
* a watermark boost (from a fragmenting fallback) makes it reclaim ``nr_boost_reclaim`` pages
  even on a balanced node, without writeback or swap; at the end it subtracts from each zone
  only the boost it saw at entry and wakes kcompactd at ``pageblock_order``;
* going to sleep (``kswapd_try_to_sleep``), once the node is balanced for the order it finished
  reclaiming at, it clears compaction's skip bits (``reset_isolation_suitable``), wakes
  kcompactd for the order it was asked for, sleeps 100 ms (HZ/10), and sleeps for good only if
  the node is still balanced, counting ``kswapd_low_wmark_hit_quickly`` (woken during the short
  sleep) or ``kswapd_high_wmark_hit_quickly`` (unbalanced again after it) otherwise;
* ``wakeup_kswapd`` wakes kcompactd instead of kswapd for allocations that cannot direct-reclaim
  when the node is hopeless (``kswapd_failures >= MAX_RECLAIM_RETRIES``) or already balanced and
  not boosted.

Reclaim itself (``shrink_node``: LRU scanning under the lru_lock, pgscan_kswapd/pgsteal_kswapd)
is reached through :class:`ReclaimOps`, so kswapd reuses the direct-reclaim ``shrink_node``.
Simplifies: no memcg (soft limit reclaim), no kswapd_age_node aging pass, no pfmemalloc
throttling, no buffer_heads_over_limit, no cache_trim_mode restart, no freezer, no
memory-tiering PROMO mark, no per-cpu vmstat threshold changes (counters are exact here).

:func:`start_kthreads` creates both daemons of every node, links them and wires the allocator's
``wakeup_kswapd`` and the ``vm.compaction_proactiveness`` handler; :func:`kthreads_summary` is
the runner's hook for summary.json.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from emulator.engine import Sim
from emulator.mm.compaction.control import compact_gap
from emulator.mm.compaction.kcompactd import CompactionOps, Kcompactd, KthreadWait, compaction_ops
from emulator.mm.internal import Allocator
from emulator.mm.machine import Node
from emulator.mm.page_alloc.gfp import __GFP_DIRECT_RECLAIM as _GFP_DIRECT_RECLAIM
from emulator.mm.page_alloc.gfp import GFP_KERNEL, format_gfp
from emulator.mm.page_alloc.watermark import zone_watermark_ok
from emulator.mm.reclaim.vmscan import (
    DEF_PRIORITY,
    MAX_RECLAIM_RETRIES,
    SWAP_CLUSTER_MAX,
    ScanControl,
    shrink_node,
)
from emulator.mm.snapshot import PAGEBLOCK_ORDER
from emulator.mm.zone import MAX_NR_ZONES, ZONE_RECLAIM_ACTIVE, Zone

__all__ = [
    "KSWAPD_SHORT_SLEEP_NS",
    "Kswapd",
    "Kthreads",
    "ReclaimOps",
    "kthreads_summary",
    "start_kthreads",
]

#: kswapd_try_to_sleep's schedule_timeout(HZ/10): 100 ms
KSWAPD_SHORT_SLEEP_NS = 100_000_000

_RECLAIM_ACTIVE = 1 << ZONE_RECLAIM_ACTIVE


@attrs.frozen
class ReclaimOps:
    """The mm/vmscan.c reclaim body kswapd calls: ``shrink_node(node, sc)`` scans the node's
    LRU lists at ``sc.priority`` for ``sc.nr_to_reclaim`` pages, adds to ``sc.nr_scanned`` and
    ``sc.nr_reclaimed``, counts pgscan/pgsteal (``_kswapd`` when ``sc.kswapd``) and resets
    ``kswapd_failures`` on progress as the kernel's shrink_node does."""

    shrink_node: Callable[[Node, ScanControl], Awaitable[None]]


class Kswapd:
    """One node's kswapd and the ``pg_data_t`` fields it owns.

    ``wakeups`` counts wake-ups delivered to a sleeping kswapd, ``runs`` balance_pgdat runs,
    ``pages_reclaimed`` the pages its runs reclaimed.
    """

    def __init__(
        self, pa: Allocator, node: Node, kcompactd: Kcompactd, reclaim: ReclaimOps
    ) -> None:
        self.pa = pa
        self.sim: Sim = pa.sim
        self.node = node
        self.nid = node.nid
        self.kcompactd = kcompactd
        self.reclaim = reclaim
        self.kswapd_order = 0
        self.kswapd_highest_zoneidx = MAX_NR_ZONES
        self.kswapd_failures = 0
        self.kswapd_wait = KthreadWait(self.sim, f"kswapd_wait{node.nid}")
        self.wakeups = 0
        self.runs = 0
        self.pages_reclaimed = 0
        self._started = False

    # -- state queries -------------------------------------------------------------------------

    def is_running(self) -> bool:
        """task_is_running(pgdat->kswapd): started and not between prepare_to_wait and
        finish_wait on ``kswapd_wait`` (the short and the full sleep, and the checks before)."""
        return self._started and not self.kswapd_wait.active()

    def _managed(self, highest_zoneidx: int) -> list[Zone]:
        return [z for z in self.node.zones[: highest_zoneidx + 1] if z.managed_pages]

    def pgdat_balanced(self, order: int, highest_zoneidx: int) -> bool:
        """Models mm/vmscan.c: pgdat_balanced — some managed zone up to ``highest_zoneidx``
        passes zone_watermark_ok_safe at its HIGH mark (boost included) for ``order``; a node
        with no managed zone there is balanced by definition."""
        zones = self._managed(highest_zoneidx)
        if not zones:
            return True
        return any(
            zone_watermark_ok(z, order, z.high_wmark_pages, highest_zoneidx, 0) for z in zones
        )

    def pgdat_watermark_boosted(self, highest_zoneidx: int) -> bool:
        """Models mm/vmscan.c: pgdat_watermark_boosted."""
        return any(z.watermark_boost for z in self._managed(highest_zoneidx))

    def prepare_kswapd_sleep(self, order: int, highest_zoneidx: int) -> bool:
        """Models mm/vmscan.c: prepare_kswapd_sleep — hopeless, or balanced (no pfmemalloc
        waiters are modelled)."""
        if self.kswapd_failures >= MAX_RECLAIM_RETRIES:
            return True
        return self.pgdat_balanced(order, highest_zoneidx)

    def kswapd_highest_zoneidx_or(self, prev: int) -> int:
        """Models mm/vmscan.c: kswapd_highest_zoneidx."""
        cur = self.kswapd_highest_zoneidx
        return prev if cur == MAX_NR_ZONES else cur

    # -- wake-up -------------------------------------------------------------------------------

    def wakeup_kswapd(self, zone: Zone, gfp_flags: int, order: int, highest_zoneidx: int) -> None:
        """Models mm/vmscan.c: wakeup_kswapd, at the caller's synchronised instant.

        Records the order and zone index for kswapd; returns if kswapd is not sleeping. A
        hopeless node, or a balanced one that is not boosted, gets no kswapd: kcompactd is woken
        instead for callers that cannot direct-reclaim (atomic allocations, THP defer mode).
        Otherwise fires ``mm_vmscan_wakeup_kswapd`` and wakes kswapd."""
        if not zone.managed_pages:
            return
        cur = self.kswapd_highest_zoneidx
        if cur == MAX_NR_ZONES or cur < highest_zoneidx:
            self.kswapd_highest_zoneidx = highest_zoneidx
        if self.kswapd_order < order:
            self.kswapd_order = order
        if not self.kswapd_wait.active():
            return
        if self.kswapd_failures >= MAX_RECLAIM_RETRIES or (
            self.pgdat_balanced(order, highest_zoneidx)
            and not self.pgdat_watermark_boosted(highest_zoneidx)
        ):
            if not gfp_flags & _GFP_DIRECT_RECLAIM:
                self.kcompactd.wakeup_kcompactd(order, highest_zoneidx, "wakeup_kswapd")
            return
        rec = self.sim.recorder
        if rec.enabled:
            rec.emit(
                "mm_vmscan_wakeup_kswapd",
                nid=self.nid,
                zid=highest_zoneidx,
                order=order,
                gfp_flags=format_gfp(gfp_flags),
            )
        if self.kswapd_wait.wake():
            self.wakeups += 1

    # -- the thread ------------------------------------------------------------------------------

    async def kswapd(self) -> None:
        """Models mm/vmscan.c: kswapd — the thread loop (run as a daemon actor)."""
        sim = self.sim
        await sim.sync()
        self._started = True
        # kswapd() resets kswapd_order / kswapd_highest_zoneidx as it starts, at boot: the
        # constructor did, so a wake-up recorded at t=0 before this step is kept
        highest_zoneidx = MAX_NR_ZONES - 1
        rec = sim.recorder
        while True:
            alloc_order = reclaim_order = self.kswapd_order
            highest_zoneidx = self.kswapd_highest_zoneidx_or(highest_zoneidx)
            while True:  # the kswapd_try_sleep label
                await self.kswapd_try_to_sleep(alloc_order, reclaim_order, highest_zoneidx)
                alloc_order = self.kswapd_order
                highest_zoneidx = self.kswapd_highest_zoneidx_or(highest_zoneidx)
                self.kswapd_order = 0
                self.kswapd_highest_zoneidx = MAX_NR_ZONES
                if rec.enabled:
                    rec.emit(
                        "mm_vmscan_kswapd_wake",
                        nid=self.nid,
                        zid=highest_zoneidx,
                        order=alloc_order,
                    )
                reclaim_order = await self.balance_pgdat(alloc_order, highest_zoneidx)
                if reclaim_order >= alloc_order:
                    break

    async def kswapd_try_to_sleep(
        self, alloc_order: int, reclaim_order: int, highest_zoneidx: int
    ) -> None:
        """Models mm/vmscan.c: kswapd_try_to_sleep (see the module docstring)."""
        sim = self.sim
        wait = self.kswapd_wait
        await sim.sync()
        wait.prepare_to_wait()
        remaining = False
        if self.prepare_kswapd_sleep(reclaim_order, highest_zoneidx):
            self.kcompactd.ops.reset_isolation_suitable(self.node)
            if self.pa.machine.mitigations.on("kswapd_wakes_kcompactd"):
                self.kcompactd.wakeup_kcompactd(alloc_order, highest_zoneidx, "kswapd_sleep")
            remaining = await wait.schedule_timeout(KSWAPD_SHORT_SLEEP_NS)
            if remaining:
                self.kswapd_highest_zoneidx = self.kswapd_highest_zoneidx_or(highest_zoneidx)
                if self.kswapd_order < reclaim_order:
                    self.kswapd_order = reclaim_order
            wait.finish_wait()
            wait.prepare_to_wait()
        if not remaining and self.prepare_kswapd_sleep(reclaim_order, highest_zoneidx):
            rec = sim.recorder
            if rec.enabled:
                rec.emit("mm_vmscan_kswapd_sleep", nid=self.nid)
            await wait.schedule_timeout(None)
        else:
            events = self.pa.vm_events
            if remaining:
                events["kswapd_low_wmark_hit_quickly"] += 1
            else:
                events["kswapd_high_wmark_hit_quickly"] += 1
        wait.finish_wait()

    def _set_reclaim_active(self, highest_zoneidx: int, active: bool) -> None:
        """Models mm/vmscan.c: update_reclaim_active — ZONE_RECLAIM_ACTIVE on the managed zones
        up to ``highest_zoneidx`` (the pcp high limit of those zones drops while it is set)."""
        for z in self._managed(highest_zoneidx):
            if active:
                z.flags |= _RECLAIM_ACTIVE
            else:
                z.flags &= ~_RECLAIM_ACTIVE

    async def kswapd_shrink_node(self, sc: ScanControl) -> bool:
        """Models mm/vmscan.c: kswapd_shrink_node — aim at the sum over eligible zones of
        max(high mark, SWAP_CLUSTER_MAX), shrink the node, and drop ``sc.order`` to 0 once
        ``compact_gap(order)`` pages are reclaimed. True if it scanned (or reclaimed) at least
        the target, so the priority need not rise."""
        before = sc.nr_reclaimed
        sc.nr_to_reclaim = sum(
            max(z.high_wmark_pages, SWAP_CLUSTER_MAX) for z in self._managed(sc.reclaim_idx)
        )
        await self.reclaim.shrink_node(self.node, sc)
        if sc.order and sc.nr_reclaimed >= compact_gap(sc.order):
            sc.order = 0
        return max(sc.nr_scanned, sc.nr_reclaimed - before) >= sc.nr_to_reclaim

    async def balance_pgdat(self, order: int, highest_zoneidx: int) -> int:
        """Models mm/vmscan.c: balance_pgdat — returns the order kswapd finished at."""
        sim = self.sim
        self.runs += 1
        self.pa.vm_events["pageoutrun"] += 1
        sc = ScanControl(
            nr_to_reclaim=0,
            gfp_mask=GFP_KERNEL,
            reclaim_idx=highest_zoneidx,
            order=order,
            may_unmap=True,
            kswapd=True,
        )
        await sim.sync()
        zones = self._managed(highest_zoneidx)
        zone_boosts = [(z, z.watermark_boost) for z in zones if z.watermark_boost]
        nr_boost_reclaim = sum(b for _, b in zone_boosts)
        boosted = nr_boost_reclaim > 0
        balanced_out = False
        while True:  # the restart label
            self._set_reclaim_active(highest_zoneidx, True)
            sc.priority = DEF_PRIORITY
            restart = False
            while True:
                nr_reclaimed = sc.nr_reclaimed
                raise_priority = True
                sc.reclaim_idx = highest_zoneidx
                await sim.sync()
                balanced = self.pgdat_balanced(sc.order, highest_zoneidx)
                if not balanced and nr_boost_reclaim:
                    nr_boost_reclaim = 0
                    restart = True
                    break
                if not nr_boost_reclaim and balanced:
                    balanced_out = True
                    break
                if nr_boost_reclaim and sc.priority == DEF_PRIORITY - 2:
                    raise_priority = False
                sc.may_writepage = not nr_boost_reclaim
                sc.may_swap = not nr_boost_reclaim
                if sc.priority < DEF_PRIORITY - 2:
                    sc.may_writepage = True
                sc.nr_scanned = 0
                await sim.delay(self.pa.costs.kswapd_pass)
                if await self.kswapd_shrink_node(sc):
                    raise_priority = False
                nr_reclaimed = sc.nr_reclaimed - nr_reclaimed
                nr_boost_reclaim -= min(nr_boost_reclaim, nr_reclaimed)
                if nr_boost_reclaim and not nr_reclaimed:
                    break
                if raise_priority or not nr_reclaimed:
                    sc.priority -= 1
                if sc.priority < 1:
                    break
            if not restart:
                break
        if not balanced_out and not sc.nr_reclaimed:
            self.kswapd_failures += 1
        await sim.sync()
        self._set_reclaim_active(highest_zoneidx, False)
        self.pages_reclaimed += sc.nr_reclaimed
        if boosted:
            pa = self.pa
            for zone, boost in zone_boosts:
                # boosts are raised under zone->lock: subtract only what was seen at entry
                async with pa.zone_locked(zone, "balance_pgdat"):
                    zone.watermark_boost -= min(zone.watermark_boost, boost)
            await sim.sync()
            if pa.machine.mitigations.on("boost_wakes_kcompactd"):
                self.kcompactd.wakeup_kcompactd(PAGEBLOCK_ORDER, highest_zoneidx, "kswapd_boost")
        return sc.order

    # -- results -----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """This node's entry of summary.json's ``"kswapd"`` list."""
        return {
            "node": self.nid,
            "wakeups": self.wakeups,
            "runs": self.runs,
            "pages_reclaimed": self.pages_reclaimed,
            "kswapd_failures": self.kswapd_failures,
        }


@attrs.define
class Kthreads:
    """Every node's kswapd and kcompactd (``NODE_DATA(nid)->kswapd``, ``->kcompactd``)."""

    kswapd: list[Kswapd]
    kcompactd: list[Kcompactd]

    def wakeup_kswapd(self, zone: Zone, gfp_flags: int, order: int, highest_zoneidx: int) -> None:
        """wakeup_kswapd(zone, gfp_flags, order, highest_zoneidx) for the zone's node."""
        self.kswapd[zone.node].wakeup_kswapd(zone, gfp_flags, order, highest_zoneidx)

    def summary(self) -> dict[str, Any]:
        return {
            "kcompactd": [kc.summary() for kc in self.kcompactd],
            "kswapd": [ks.summary() for ks in self.kswapd],
        }


def start_kthreads(
    pa: Allocator,
    compaction: CompactionOps | None = None,
    reclaim: ReclaimOps | None = None,
) -> Kthreads:
    """kswapd_run + kcompactd_run for every node: spawn both daemons (before the run),
    route the allocator's ``wakeup_kswapd`` to them and set each node's ``kcompactd`` (what
    the ``vm.compaction_proactiveness`` handler wakes). ``compaction`` / ``reclaim`` default to
    the real mm/compaction.c and mm/vmscan.c functions."""
    sim = pa.sim
    if compaction is None:
        compaction = compaction_ops(pa)
    if reclaim is None:
        reclaim = reclaim_ops(pa)
    kcompactds = [Kcompactd(pa, node, compaction) for node in pa.machine.nodes]
    kswapds = [
        Kswapd(pa, node, kc, reclaim) for node, kc in zip(pa.machine.nodes, kcompactds, strict=True)
    ]
    for kc, ks in zip(kcompactds, kswapds, strict=True):
        kc.kswapd = ks
    kt = Kthreads(kswapds, kcompactds)
    for ks in kswapds:
        sim.spawn(f"kswapd{ks.nid}", ks.kswapd, daemon=True)
    for kc in kcompactds:
        sim.spawn(f"kcompactd{kc.nid}", kc.kcompactd, daemon=True)
    pa.kthreads = kt
    for node, kc in zip(pa.machine.nodes, kcompactds, strict=True):
        node.kcompactd = kc  # what compaction_proactiveness_sysctl_handler wakes
    return kt


def reclaim_ops(pa: Allocator) -> ReclaimOps:
    """The real mm/vmscan.c shrink_node, bound to ``pa`` (kswapd frees to the pcp lists of
    its node's first CPU, the CPU it is bound to)."""

    async def shrink(node: Node, sc: ScanControl) -> None:
        cpu = next(c for c in pa.cpus if c.node == node.nid)
        await shrink_node(pa, cpu, pa.lruvecs[node.nid], sc)

    return ReclaimOps(shrink_node=shrink)


def kthreads_summary(pa: Allocator) -> dict[str, Any]:
    """The runner's hook: summary.json's ``"kcompactd"`` and ``"kswapd"`` lists (empty when
    the kthreads were not started)."""
    kt = pa.kthreads
    return kt.summary() if kt is not None else {}
