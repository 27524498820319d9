"""Models mm/vmstat.c: the per-CPU vmstat work, a kernel worker of every CPU.

Each CPU has a deferrable delayed work ``vmstat_work`` on ``mm_percpu_wq`` running
``vmstat_update`` every ``sysctl_stat_interval`` (HZ: one second): ``refresh_cpu_vm_stats(true)``
folds the CPU's counter differentials and, for each populated zone, runs ``decay_pcp_high`` on
the CPU's pageset (mm/page_alloc.c: lower ``pcp->high`` by an eighth towards ``high_min`` and
free what the pageset holds above it). It belongs to the kernel, not to any task: it runs
whatever the CPU's workload is, and for a scenario that drives the allocator from its own actors.

:func:`start_vmstat_work` spawns one daemon actor per CPU, ``kworker/N:vmstat``, with the other
kernel threads. Simplifications (docs/model.md): the counters are kept exact (there are no
per-CPU ``vm_stat_diff`` to fold), so the work is the decay alone and requeues itself every
interval unconditionally (the kernel stops requeueing when no counter changed and
``vmstat_shepherd`` restarts it when one does); ``round_jiffies_relative`` is not modelled (the
next run is one interval after this one ends); and the worker is an actor of its own beside the
CPU's task, so it does not delay that task, and the two can meet on the CPU's ``pcp->lock``,
which the kernel's pinned, non-preemptible pcp sections rule out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from emulator.mm.internal import Allocator
from emulator.mm.page_alloc.drain import decay_pcp_high
from emulator.mm.page_alloc.pcp import Cpu

__all__ = ["STAT_INTERVAL_NS", "refresh_cpu_vm_stats", "start_vmstat_work", "vmstat_update"]

#: mm/vmstat.c: ``int sysctl_stat_interval __read_mostly = HZ``, one second
STAT_INTERVAL_NS = 1_000_000_000


async def refresh_cpu_vm_stats(pa: Allocator, cpu: Cpu) -> int:
    """Models mm/vmstat.c: refresh_cpu_vm_stats(do_pagesets=true) on ``cpu``: the
    ``decay_pcp_high`` of each populated zone's pageset (the counters need no folding here).
    Returns the pages drained."""
    return await decay_pcp_high(pa, cpu)


def vmstat_update(
    pa: Allocator, cpu: Cpu, interval: int = STAT_INTERVAL_NS
) -> Callable[[], Awaitable[None]]:
    """Models mm/vmstat.c: vmstat_update, as the actor body of ``cpu``'s vmstat work (started
    one ``interval`` after boot): run, then requeue ``interval`` after the run."""

    async def work() -> None:
        sim = pa.sim
        while True:
            await refresh_cpu_vm_stats(pa, cpu)
            await sim.delay(interval)

    return work


def start_vmstat_work(pa: Allocator, interval: int = STAT_INTERVAL_NS) -> None:
    """Models mm/vmstat.c: start_shepherd_timer's INIT_DEFERRABLE_WORK(vmstat_work, vmstat_update)
    for every CPU: spawn each CPU's vmstat work, a daemon (``kworker/N:vmstat``) whose first
    run is one ``interval`` after boot."""
    for cpu in pa.cpus:
        work = vmstat_update(pa, cpu, interval)
        # queued at boot to fire one interval later: the worker takes no step before then
        pa.sim.spawn(f"kworker/{cpu.id}:vmstat", work, start=interval, daemon=True)
