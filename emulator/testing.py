"""Helpers for test suites written against the emulated kernel (also behind the pytest fixtures
of :mod:`emulator.pytest_plugin`).

:func:`make_kernel` boots a machine, creates a :class:`~emulator.engine.Sim` and a
:class:`~emulator.mm.page_alloc.allocator.PageAllocator`, and returns an :class:`EmulatedKernel`
whose :meth:`~EmulatedKernel.run` runs actors and then checks every invariant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from emulator.engine import MemoryRecorder, NullRecorder, RunResult, Sim, Strategy
from emulator.mm.costs import Costs
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.pcp import Cpu
from emulator.mm.reclaim.kswapd import start_kthreads
from emulator.workload.spec import parse_size_mib

__all__ = ["ConditionTimeout", "EmulatedKernel", "make_kernel"]


class ConditionTimeout(AssertionError):
    """:meth:`EmulatedKernel.wait_until` gave up: the condition did not hold in time."""


@attrs.define
class EmulatedKernel:
    """A booted machine with its allocator and engine, ready for actors."""

    machine: Machine
    sim: Sim
    allocator: PageAllocator
    recorder: MemoryRecorder | NullRecorder
    #: kswapd and kcompactd per node (``make_kernel(kthreads=True)``), else None
    kthreads: Any = None

    @property
    def cpus(self) -> list[Cpu]:
        return self.allocator.cpus

    async def run(
        self,
        *actors: tuple[str, Callable[..., Awaitable[Any]]],
        per_cpu: Callable[[Cpu], Awaitable[Any]] | None = None,
        until: int | None = None,
        check: bool = True,
    ) -> RunResult:
        """Spawn ``actors`` (name, async fn) and, with ``per_cpu``, one actor per CPU calling
        ``per_cpu(cpu)``; run; then (with ``check``) verify every invariant."""
        for name, fn in actors:
            self.sim.spawn(name, fn)
        if per_cpu is not None:
            for c in self.cpus:
                self.sim.spawn(f"cpu{c.id}", per_cpu, c, data=c)
        result = await self.sim.run(until=until)
        if check:
            self.allocator.check()
        return result

    async def wait_until(
        self,
        condition: Callable[[], bool],
        *,
        timeout_ns: int,
        poll_ns: int = 1_000,
        what: str | None = None,
    ) -> int:
        """From inside an actor: wait in virtual time until ``condition()`` holds, checking it
        every ``poll_ns`` (each check synchronised: every earlier actor step has happened).
        Returns the virtual time it held at; raises :class:`ConditionTimeout` after
        ``timeout_ns`` (``what`` names the condition in the message)."""
        if timeout_ns < 0 or poll_ns < 1:
            raise ValueError("wait_until: timeout_ns must be >= 0 and poll_ns >= 1")
        sim = self.sim
        await sim.sync()
        start = sim.now
        while True:
            if condition():
                return sim.now
            if sim.now - start >= timeout_ns:
                name = what or getattr(condition, "__name__", "condition")
                raise ConditionTimeout(
                    f"{name} did not hold within {timeout_ns} ns of virtual time "
                    f"(from t={start} ns)"
                )
            await sim.delay(min(poll_ns, start + timeout_ns - sim.now))
            await sim.sync()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Recorded events (``record=True``), optionally only those called ``name``."""
        if not isinstance(self.recorder, MemoryRecorder):
            raise RuntimeError("make_kernel(record=True) to keep events")
        evs = self.recorder.events()
        return evs if name is None else [e for e in evs if e["event"] == name]


def make_kernel(
    memory: str | int = "1G",
    cpus: int = 2,
    nodes: int = 1,
    strategy: str | Strategy = "fifo",
    seed: int = 0,
    record: bool = False,
    quantum_ns: int = 0,
    costs: Costs | None = None,
    strict: bool = True,
    kthreads: bool = False,
    perturb: bool = False,
    **sysctls: Any,
) -> EmulatedKernel:
    """Boot a machine (x86-64 layout, ``memory`` like ``"1G"``) with ``cpus`` CPUs in total.

    ``kthreads`` starts kswapd and kcompactd on every node (daemon actors, as
    :func:`emulator.mm.reclaim.kswapd.start_kthreads` does for a scenario run). ``perturb`` lets a
    ``random`` or ``pct`` strategy inject delays at preemption points.

    Sysctls are given with underscores for dots after ``vm``: ``vm_min_free_kbytes=8192``.
    ``strict`` (default on here) makes the engine raise when model code touches shared state
    without synchronising first (see :meth:`Sim.assert_synchronised`).
    """
    if cpus % nodes:
        raise ValueError(f"cpus={cpus} does not divide evenly over nodes={nodes}")
    recorder: MemoryRecorder | NullRecorder = MemoryRecorder() if record else NullRecorder()
    machine = Machine.x86_64(parse_size_mib(memory), nodes=nodes, recorder=recorder)
    for key, value in sysctls.items():
        if not key.startswith("vm_"):
            raise ValueError(f"unknown keyword {key!r}: sysctls are written vm_<name>=value")
        machine.sysctl.set("vm." + key[3:], value)
    sim = Sim(
        strategy,
        seed=seed,
        recorder=recorder,
        quantum_ns=quantum_ns,
        strict=strict,
        perturb=perturb,
    )
    pa = PageAllocator(machine, sim, cpus // nodes, costs)
    threads = start_kthreads(pa) if kthreads else None
    return EmulatedKernel(machine, sim, pa, recorder, threads)
