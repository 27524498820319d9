"""With its mitigation on, a race of the catalogue violates its property under no schedule
``@pytest.mark.explore`` tries: the scenario's set-up and actors run on the kernel the marker
schedules (``mm_kernel``), with the scenario's properties checked on it. (That the race shows
with the mitigation off is tests/scenarios/test_races.py: the marker asks that every run
passes.)"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from emulator.explore.properties import PropertyChecker, Violation
from emulator.scenario import bundled_scenarios, load_scenario
from emulator.testing import EmulatedKernel


async def run_race(k: EmulatedKernel, name: str, **params: Any) -> list[Violation]:
    """Run ``races/name``'s set-up and actors on ``k`` for the scenario's duration; the
    violations of its properties."""
    sc = load_scenario(bundled_scenarios()[f"races/{name}"])
    assert sc.setup is not None and sc.actors is not None
    p = sc.resolve({"cpus": len(k.cpus), **params})
    ctx = SimpleNamespace(
        params=p, machine=k.machine, sim=k.sim, allocator=k.allocator, findings={}, programs=[]
    )
    sc.setup(p, ctx)
    checker = PropertyChecker(sc.properties, ctx)
    checker.install()
    await k.run(*sc.actors(p, ctx), until=p.duration_ns, check=False)
    return checker.finish("deadline", None)


Kernel = Callable[..., EmulatedKernel]


@pytest.mark.explore(runs=6, strategy="pct", perturb=True)
async def test_capture_keeps_the_compacted_block(mm_kernel: Kernel) -> None:
    k = mm_kernel(memory="128M", cpus=2, kthreads=True, record=True)
    assert await run_race(k, "stolen_page") == []


@pytest.mark.explore(runs=4, strategy="random", perturb=True)
async def test_the_skip_claim_keeps_a_source_block_private(mm_kernel: Kernel) -> None:
    k = mm_kernel(memory="128M", cpus=4, kthreads=True, record=True)
    assert await run_race(k, "shared_migration_source") == []


@pytest.mark.explore(runs=4, strategy="pct", perturb=True)
async def test_deferral_stops_the_herd(mm_kernel: Kernel) -> None:
    k = mm_kernel(memory="128M", cpus=4, kthreads=True, record=True)
    assert await run_race(k, "compaction_herd") == []


@pytest.mark.explore(runs=4, strategy="pct", perturb=True)
async def test_kcompactd_and_a_direct_compactor_keep_their_source_blocks_apart(
    mm_kernel: Kernel,
) -> None:
    k = mm_kernel(memory="128M", cpus=2, kthreads=True, record=True)
    assert await run_race(k, "kcompactd_cached_positions") == []


@pytest.mark.explore(runs=4, strategy="pct", perturb=True)
async def test_the_final_compaction_priority_starts_at_the_zone_edges(mm_kernel: Kernel) -> None:
    k = mm_kernel(memory="64M", cpus=2, kthreads=True, record=True)
    assert await run_race(k, "final_compaction") == []
