"""The actor body of a CPU: it runs a :class:`~emulator.workload.spec.Workload` through the
page allocator, frees what it allocated when lifetimes expire, and runs vmstat's per-CPU work.

Each CPU draws from its own seeded stream (``random.Random(f"{seed}/cpu{N}")``), so a run is a
pure function of the scenario, its parameters and the seed.

Between operations a CPU advances its own clock (lookahead). When some allocation class frees
on another CPU (``remote_free``), every CPU waits for its next operation on a wait queue
instead, so that a block handed over by a peer is freed at exactly its due time.

Per-CPU vmstat work: every ``stat_interval`` (``sysctl_stat_interval``, 1 s) the CPU runs
``refresh_cpu_vm_stats`` -> ``decay_pcp_high`` for its pcps (mm/vmstat.c).
"""

from __future__ import annotations

import heapq
import random
from typing import TYPE_CHECKING

from emulator.engine import WaitQueue
from emulator.mm.huge_memory import do_huge_pmd_anonymous_page
from emulator.mm.memmap import OWNER_NAMES, OWNER_PINNED
from emulator.mm.migrate import register_rmap_holder
from emulator.workload.spec import AllocClass, Phase, Workload

if TYPE_CHECKING:
    from emulator.mm.allocator import Cpu, PageAllocator

__all__ = ["STAT_INTERVAL_NS", "CpuProgram"]

#: sysctl_stat_interval = HZ: vmstat's per-CPU work runs about once a second
STAT_INTERVAL_NS = 1_000_000_000
_NEVER = 1 << 62


class CpuProgram:
    """One CPU's workload. ``peers`` (all programs, indexed by CPU id) is set by the runner."""

    def __init__(
        self,
        pa: PageAllocator,
        cpu: Cpu,
        workload: Workload,
        seed: int,
        use_inbox: bool,
        stat_interval: int = STAT_INTERVAL_NS,
    ) -> None:
        self.pa = pa
        self.sim = pa.sim
        self.cpu = cpu
        self.workload = workload
        self.rng = random.Random(f"{seed}/cpu{cpu.id}")
        self.held: list[tuple[int, int]] = []
        self.due: list[tuple[int, int, int, int]] = []
        #: pfns of the blocks in ``held`` and ``due``: compaction tells us when one moves
        self.owned: set[int] = set()
        register_rmap_holder(pa, self.rmap_move)
        self._seq = 0
        self.use_inbox = use_inbox
        self.inbox = WaitQueue(pa.sim, f"cpu{cpu.id}-work")
        self.peers: list[CpuProgram] = [self]
        self.stat_interval = stat_interval
        self.next_tick = stat_interval
        self.phase = ""
        self.allocated = 0
        self.failed = 0
        self.freed = 0
        self._managed = sum(z.managed_pages for z in pa.zones)

    # -- helpers -----------------------------------------------------------------------------

    def _interarrival(self, phase: Phase) -> int:
        if phase.arrival == "fixed":
            return max(1, round(1e9 / phase.rate))
        return max(1, int(self.rng.expovariate(phase.rate) * 1e9))

    def _choose(self, mix: tuple[AllocClass, ...]) -> AllocClass:
        if len(mix) == 1:
            return mix[0]
        return self.rng.choices(mix, weights=[c.weight for c in mix])[0]

    def free_fraction(self) -> float:
        """Free pages in the buddy lists as a fraction of managed pages (racy read)."""
        return sum(z.nr_free_pages for z in self.pa.zones) / self._managed

    async def _advance_to(self, t: int) -> None:
        """Spend time until ``t`` (or until a peer hands over work, with the inbox)."""
        now = self.sim.current.now
        if t <= now:
            return
        if self.use_inbox:
            await self.inbox.wait(t - now if t < _NEVER else None)
        else:
            await self.sim.delay(t - now)

    def rmap_move(self, old_pfn: int, new_pfn: int, order: int) -> None:
        """Our reference to a migrated block follows it (the page tables' side of
        remove_migration_ptes): a later free uses the new pfn."""
        if old_pfn not in self.owned:
            return
        self.owned.discard(old_pfn)
        self.owned.add(new_pfn)
        for i, (pfn, o) in enumerate(self.held):
            if pfn == old_pfn:
                self.held[i] = (new_pfn, o)
                return
        for i, (at, seq, pfn, o) in enumerate(self.due):
            if pfn == old_pfn:
                self.due[i] = (at, seq, new_pfn, o)  # same key: the heap order holds
                return

    def schedule_free(self, at: int, pfn: int, order: int) -> None:
        self.owned.add(pfn)
        self._seq += 1
        heapq.heappush(self.due, (at, self._seq, pfn, order))

    async def _free(self, pfn: int, order: int) -> None:
        self.owned.discard(pfn)
        await self.pa.free_pages(self.cpu, pfn, order)
        self.freed += 1

    async def _allocate(self, cls: AllocClass) -> None:
        rng = self.rng
        owner = -1
        if cls.owner is not None:
            owner = OWNER_NAMES.index(cls.owner)
        if cls.pinned and rng.random() < cls.pinned:
            owner = OWNER_PINNED
        order = cls.order
        if cls.thp_fault:
            pfn, order = await do_huge_pmd_anonymous_page(self.pa, self.cpu, cls.madv_hugepage)
        else:
            pfn = await self.pa.alloc_pages(self.cpu, order, cls.gfp, owner)
        if pfn < 0:
            self.failed += 1
            return
        self.allocated += 1
        life = cls.lifetime.sample(rng)
        if life < 0:
            self.held.append((pfn, order))
            self.owned.add(pfn)
            return
        at = self.sim.current.now + life
        if cls.remote_free and len(self.peers) > 1 and rng.random() < cls.remote_free:
            peer = self.peers[rng.randrange(len(self.peers) - 1)]
            if peer is self:
                peer = self.peers[-1]
            await self.sim.sync()  # the peer's queue is shared: order the hand-over in time
            peer.schedule_free(at, pfn, order)
            await peer.inbox.wake_up()
        else:
            self.schedule_free(at, pfn, order)

    # -- the actor ---------------------------------------------------------------------------

    async def run(self) -> None:
        """The actor body: every phase in order, then keep freeing what comes due."""
        for phase in self.workload.phases:
            self.phase = phase.name
            await self.run_phase(phase)
        self.phase = "done"
        await self.run_phase(None)

    async def run_phase(self, phase: Phase | None) -> None:
        sim = self.sim
        me = sim.current
        active = phase is not None and (phase.cpus is None or self.cpu.id in phase.cpus)
        end = _NEVER
        if phase is not None and phase.duration is not None:
            end = me.now + phase.duration
        next_arrival = (
            me.now + self._interarrival(phase) if phase is not None and active else _NEVER
        )
        due = self.due
        while True:
            t = min(next_arrival, due[0][0] if due else _NEVER, self.next_tick, end)
            await self._advance_to(t)
            now = me.now
            if now < t:
                continue  # woken early by a peer: new work may be due sooner
            if now >= end:
                break
            if now >= self.next_tick:
                self.next_tick += self.stat_interval
                await self.pa.decay_pcp_high(self.cpu)
            elif due and due[0][0] <= now:
                _, _, pfn, order = heapq.heappop(due)
                await self._free(pfn, order)
            elif now >= next_arrival:
                assert phase is not None
                await self._allocate(self._choose(phase.mix))
                next_arrival += self._interarrival(phase)
                if phase.stop_below_free:
                    await self.sim.sync()  # free memory is shared state
                if phase.stop_below_free and self.free_fraction() < phase.stop_below_free:
                    break
        if phase is not None and active and phase.free_at_end.kind != "none":
            to_free, self.held = phase.free_at_end.select(self.held, self.rng)
            for pfn, order in to_free:
                await self._free(pfn, order)
