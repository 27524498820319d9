"""The actor body of a CPU: it runs a :class:`~emulator.workload.spec.Workload` through the
page allocator and frees what it allocated when lifetimes expire. (vmstat's per-CPU work, the
decay of ``pcp->high``, is a kernel worker of its own: :mod:`emulator.mm.vmstat_work`.)

Each CPU draws from its own seeded stream (``random.Random(f"{seed}/cpu{N}")``), so a run is a
pure function of the scenario, its parameters and the seed.

Between operations a CPU advances its own clock (lookahead). When some allocation class frees
on another CPU (``remote_free``), every CPU waits for its next operation on a wait queue
instead, so that a block handed over by a peer is freed at exactly its due time.

Timeline markers (only when the runner writes a trace, through :attr:`CpuProgram.markers`):
``mmemu_free_begin`` / ``mmemu_free_end`` (pfn, order) around each free of a held block, so a
timeline can draw it as a slice; the kernel has no tracepoint there. (Allocations are marked
by the allocator itself: :attr:`PageAllocator.markers`.)

Holders: the program never keeps a raw pfn. Each allocation is mapped for a *handle*
(:class:`~emulator.mm.reclaim.rmap.Rmap`), which compaction's migration moves to the new pfn and
reclaim's eviction marks evicted; the program frees whatever pfn its handle holds then. An LRU
kind (anon, pinned, file, mlocked) joins the LRU through the CPU's lru-add batch
(``folio_add_lru``); a free is the holder's last ``folio_put``. An evicted page with
``refault`` is read back in (allocated again under the same handle, ``workingset_refault_file``)
at the CPU's next allocation.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from typing import TYPE_CHECKING, Any

from emulator.engine import WaitQueue
from emulator.mm.huge_memory import do_huge_pmd_anonymous_page
from emulator.mm.memmap import OWNER_FILE, OWNER_ON_LRU, OWNER_PINNED
from emulator.mm.reclaim.lru import charge_folio, folio_add_lru, release_handle
from emulator.mm.reclaim.rmap import EVICTED
from emulator.workload.spec import AllocClass, Phase, Workload

if TYPE_CHECKING:
    from emulator.mm.page_alloc.allocator import PageAllocator
    from emulator.mm.page_alloc.pcp import Cpu

__all__ = ["CpuProgram"]

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
    ) -> None:
        self.pa = pa
        self.sim = pa.sim
        #: a recorder for the timeline markers (see the module docstring); None: none
        self.markers: Any = None
        self.cpu = cpu
        self.workload = workload
        self.rng = random.Random(f"{seed}/cpu{cpu.id}")
        self._cum: dict[int, tuple[tuple[AllocClass, ...], list[float], float]] = {}
        self.rmap = pa.machine.rmap
        #: handles held until a phase's free pattern, as (handle, order)
        self.held: list[tuple[int, int]] = []
        #: frees coming due: (time, seq, handle, order)
        self.due: list[tuple[int, int, int, int]] = []
        #: the allocation class of every page-cache handle this CPU holds that may refault
        self.classes: dict[int, AllocClass] = {}
        self._seq = 0
        self.use_inbox = use_inbox
        self.inbox = WaitQueue(pa.sim, f"cpu{cpu.id}-work")
        self.peers: list[CpuProgram] = [self]
        self.phase = ""
        self.phase_index = 0
        #: (virtual ns, phase name) as this CPU entered each phase (``done`` last)
        self.phase_starts: list[tuple[int, str]] = []
        self.phases_total = 0
        self.allocated = 0
        self.failed = 0
        self.freed = 0
        self.refaults = 0
        self._managed = sum(z.managed_pages for z in pa.zones)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (the set-up cache) as its constructor's arguments and its state: compiled
        # with mypyc (emulator.native), the class runs ``__init__`` when it is unpickled; the
        # state (the random stream included) then replaces what ``__init__`` made
        return (
            type(self),
            (self.pa, self.cpu, self.workload, 0, self.use_inbox),
            self.__getstate__(),
        )

    # -- helpers -----------------------------------------------------------------------------

    def _interarrival(self, phase: Phase) -> int:
        if phase.arrival == "fixed":
            return max(1, round(1e9 / phase.rate))
        return max(1, int(self.rng.expovariate(phase.rate) * 1e9))

    def _choose(self, mix: tuple[AllocClass, ...]) -> AllocClass:
        if len(mix) == 1:
            return mix[0]
        # random.choices(mix, weights)[0] with its cumulative weights computed once per mix:
        # the same single random() draw and bisection, so the same choice
        cached = self._cum.get(id(mix))
        if cached is None or cached[0] is not mix:
            cum = list(itertools.accumulate(c.weight for c in mix))
            total = cum[-1] + 0.0
            if not (0.0 < total < math.inf):
                return self.rng.choices(mix, weights=[c.weight for c in mix])[0]  # its error
            cached = self._cum[id(mix)] = (mix, cum, total)
        _, cum, total = cached
        return mix[bisect.bisect(cum, self.rng.random() * total, 0, len(mix) - 1)]

    def free_fraction(self) -> float:
        """Free pages in the buddy lists as a fraction of managed pages (racy read)."""
        return sum(z.nr_free_pages for z in self.pa.zones) / self._managed

    async def _advance_to(self, t: int) -> None:
        """Spend time until ``t`` (or until a peer hands over work, with the inbox)."""
        now = self.sim.current.now
        if t <= now:
            return
        if self.use_inbox:
            # nothing due at all (t is _NEVER): a timeout past any run's end, so an idle CPU
            # is never taken for a blocked one
            await self.inbox.wait(t - now)
        else:
            await self.sim.delay(t - now)

    def adopt(self, pfn: int, order: int) -> int:
        """Hold an allocated block of a scenario's set-up state (the machine's past) until a
        phase's free pattern frees it: map it for a new handle and add it to ``held``. It is
        not put on an LRU list (:func:`emulator.mm.reclaim.lru.adopt_allocated` does that)."""
        handle = self.rmap.add(pfn, self.cpu.id)
        self.held.append((handle, order))
        return handle

    def schedule_free(self, at: int, handle: int, order: int) -> None:
        self._seq += 1
        heapq.heappush(self.due, (at, self._seq, handle, order))

    async def _fault_in(self, order: int, gfp: int, owner: int, handle: int = -1) -> int:
        """Allocate and map a block (the fault, or the page cache insertion) for a new handle,
        or for ``handle`` (a refault): the handle, or -1 if the allocation failed. The block
        is mapped before an LRU kind joins this CPU's lru-add batch (whose flush frees folios
        nobody holds); slab is accounted."""
        pa = self.pa
        pfn = await pa.alloc_pages(self.cpu, order, gfp, owner)
        if pfn < 0:
            return -1
        return await self._map(pfn, handle)

    async def _map(self, pfn: int, handle: int = -1) -> int:
        """Map an allocated block for a new handle (or remap ``handle``), then put an LRU kind
        on this CPU's lru-add batch or account slab. Returns the handle."""
        pa = self.pa
        if handle < 0:
            handle = self.rmap.add(pfn, self.cpu.id)
        else:
            self.rmap.remap(handle, pfn)
        if OWNER_ON_LRU[pa.memmap.owner[pfn]]:
            await folio_add_lru(pa, self.cpu, pfn)
        else:
            charge_folio(pa, pfn)
        return handle

    async def _free(self, handle: int, order: int) -> None:
        """The holder lets go of ``handle``: unmap, then the last folio_put of whatever pfn it
        holds then (nothing to free if reclaim evicted it)."""
        if self.classes:
            self.classes.pop(handle, None)
        markers = self.markers
        if markers is None:
            await release_handle(self.pa, self.cpu, handle)
        elif self.pa.machine.rmap.handle_pfn[handle] < 0:
            await release_handle(self.pa, self.cpu, handle)  # evicted: no free to show
        else:
            markers.emit(
                "mmemu_free_begin", pfn=self.pa.machine.rmap.handle_pfn[handle], order=order
            )
            pfn = await release_handle(self.pa, self.cpu, handle)
            markers.emit("mmemu_free_end", pfn=pfn, order=order)
        self.freed += 1

    async def _refault(self) -> None:
        """Read evicted pages back in: each evicted handle this CPU still holds whose class
        says ``refault`` gets a new block (same handle); counts ``workingset_refault_file``."""
        rmap = self.rmap
        retry = []
        for h in rmap.take_evicted(self.cpu.id):
            cls = self.classes.get(h)
            if cls is None or rmap.pfn(h) != EVICTED or rmap.handle_holder[h] != self.cpu.id:
                continue  # freed (and maybe reused) since, handed to a peer, or no refault
            if await self._fault_in(cls.order, cls.gfp, cls.owner_kind, h) < 0:
                retry.append(h)
                continue
            self.refaults += 1
            self.pa.vm_events["workingset_refault_file"] += 1 << cls.order
        if retry:
            rmap.evicted[self.cpu.id][:0] = retry

    async def _allocate(self, cls: AllocClass) -> None:
        rng = self.rng
        rmap = self.rmap
        pa = self.pa
        cpu = self.cpu
        if rmap.evicted and rmap.evicted.get(cpu.id):
            await self._refault()
        owner = cls.owner_kind
        pinned = cls.pinned
        if pinned and rng.random() < pinned:
            owner = OWNER_PINNED
        order = cls.order
        if cls.thp_fault:
            pfn, order = await do_huge_pmd_anonymous_page(pa, cpu, cls.madv_hugepage)
            handle = await self._map(pfn) if pfn >= 0 else -1
        else:
            handle = await self._fault_in(order, cls.gfp, owner)
        if handle < 0:
            self.failed += 1
            return
        self.allocated += 1
        refaults = cls.refault and pa.memmap.owner[rmap.handle_pfn[handle]] == OWNER_FILE
        life = cls.lifetime.sample(rng)
        if life < 0:
            if refaults:
                self.classes[handle] = cls
            self.held.append((handle, order))
            return
        at = self.sim.current.now + life
        remote_free = cls.remote_free
        if remote_free and len(self.peers) > 1 and rng.random() < remote_free:
            peer = self.peers[rng.randrange(len(self.peers) - 1)]
            if peer is self:
                peer = self.peers[-1]
            await self.sim.sync()  # the peer's queue is shared: order the hand-over in time
            rmap.handle_holder[handle] = peer.cpu.id
            if refaults:
                peer.classes[handle] = cls
            peer.schedule_free(at, handle, order)
            await peer.inbox.wake_up()
        else:
            if refaults:
                self.classes[handle] = cls
            self.schedule_free(at, handle, order)

    # -- the actor ---------------------------------------------------------------------------

    async def run(self) -> None:
        """The actor body: this CPU's phases in order (its stream's, with streams), then keep
        freeing what comes due."""
        phases = self.workload.phases_for(self.cpu.id)
        self.phases_total = len(phases)
        me = self.sim.current
        for i, phase in enumerate(phases):
            self.phase = phase.name
            self.phase_index = i
            self.phase_starts.append((me.now, phase.name))
            await self.run_phase(phase)
        self.phase = "done"
        self.phase_index = len(phases)
        self.phase_starts.append((me.now, "done"))
        await self.run_phase(None)

    def unfinished(self) -> str | None:
        """At the deadline: which phases never ran because an earlier one did not end."""
        left = self.workload.phases_for(self.cpu.id)[self.phase_index + 1 :]
        if self.phase == "done" or not left:
            return None
        return (
            f"still in phase {self.phase!r} ({self.phase_index + 1} of {self.phases_total}) "
            f"at the end; never ran: {', '.join(repr(p.name) for p in left)}"
        )

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
        # the loop's per-operation lookups, hoisted
        due = self.due
        advance = self._advance_to
        heappop = heapq.heappop
        mix: tuple[AllocClass, ...] = phase.mix if phase is not None else ()
        stop_below_free = phase.stop_below_free if phase is not None else 0.0
        while True:
            t = next_arrival
            if due:
                first_due = due[0][0]
                if first_due < t:
                    t = first_due
            if end < t:
                t = end
            await advance(t)
            now = me.now
            if now < t:
                continue  # woken early by a peer: new work may be due sooner
            if now >= end:
                break
            if due and due[0][0] <= now:
                _, _, handle, order = heappop(due)
                await self._free(handle, order)
            elif now >= next_arrival:
                assert phase is not None
                await self._allocate(self._choose(mix))
                next_arrival += self._interarrival(phase)
                if stop_below_free:
                    await sim.sync()  # free memory is shared state
                    if self.free_fraction() < stop_below_free:
                        break
        if phase is not None and active and phase.free_at_end.kind != "none":
            rmap = self.rmap
            by_pfn = [(rmap.pfn(h), order, h) for h, order in self.held]
            to_free, keep = phase.free_at_end.select(by_pfn, self.rng)
            self.held = [(h, order) for _pfn, order, h in keep]
            for _pfn, order, h in to_free:
                await self._free(h, order)
