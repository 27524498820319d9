"""Threads that fault in transparent huge pages, one per CPU: the loop of a process touching
fresh anonymous memory (thpscale, a THP fault storm)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from emulator.engine.sim import Sim
from emulator.mm.huge_memory import do_huge_pmd_anonymous_page
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.pcp import Cpu

__all__ = ["thp_fault_threads"]


def thp_fault_threads(
    pa: PageAllocator,
    sim: Sim,
    prefix: str,
    faults: int,
    madvised: bool,
    latencies: list[int],
    start_ns: int = 0,
) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    """An actor per CPU (``<prefix><cpu>``) taking ``faults`` huge-page faults in a row
    (:func:`~emulator.mm.huge_memory.do_huge_pmd_anonymous_page`), from ``start_ns`` on;
    each fault's virtual time, THP attempt plus fallback, is appended to ``latencies``."""

    def thread(cpu: Cpu) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if start_ns:
                await sim.delay(start_ns)  # the machine idles (its own work) until then
            for _ in range(faults):
                await sim.sync()
                t0 = sim.current.now
                await do_huge_pmd_anonymous_page(pa, cpu, madvised)
                latencies.append(sim.current.now - t0)

        return run

    return [(f"{prefix}{cpu.id}", thread(cpu)) for cpu in pa.cpus]
