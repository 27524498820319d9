"""vmstat's per-CPU work is a kernel worker of the run (emulator.mm.vmstat_work): it decays
``pcp->high`` once a second whatever drives the allocator, a scenario's own actors included."""

from __future__ import annotations

from typing import Any

from emulator.mm.page_alloc.gfp import GFP_HIGHUSER_MOVABLE
from emulator.mm.page_alloc.page_free import free_pages
from emulator.mm.vmstat_work import STAT_INTERVAL_NS
from emulator.runner import EventsLog, Run, RunContext
from emulator.scenario import Scenario
from emulator.workload import AllocClass, Phase, Workload


def _idle(_p: Any) -> Workload:
    # CPU 1 trickles; CPU 0 is the scenario actor's alone
    trickle = AllocClass(0, "GFP_KERNEL", lifetime="exp(1ms)")
    return Workload([Phase("trickle", [trickle], rate=10.0, cpus=(1,))], idle_cpus=(0,))


def test_a_scenario_with_its_own_actors_decays_pcp_high() -> None:
    seen: dict[str, int] = {}

    def actors(_p: Any, ctx: RunContext) -> list[tuple[str, Any]]:
        pa = ctx.allocator
        cpu = pa.cpus[0]

        async def burst() -> None:
            # 2000 order-0 allocations refill the pageset and raise pcp->high (auto-tuning);
            # freeing them all leaves it full
            held = [await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE) for _ in range(2000)]
            for pfn in held:
                await free_pages(pa, cpu, pfn, 0)
            pcp = max(cpu.pcp, key=lambda p: p.high - p.high_min)
            seen.update(gidx=pcp.zone.gidx, high=pcp.high, count=pcp.count, min=pcp.high_min)

        return [("burst", burst)]

    sc = Scenario(
        "own_actors",
        "a burst on CPU 0 from the scenario's own actor",
        _idle,
        defaults={"memory": "256M", "cpus": 2, "duration": "6s", "sample": "1s"},
        actors=actors,
    )
    result = Run(sc, sc.resolve(), events=EventsLog(None, "mm_page_pcpu_drain")).execute()
    assert result.error is None and result.reason == "deadline"
    assert seen["high"] > seen["min"] and seen["count"] > seen["min"]
    pcp = result.ctx.allocator.cpus[0].pcp[seen["gidx"]]
    # six runs of the vmstat work, each lowering high by an eighth (or to count - batch<<5)
    assert pcp.high < seen["high"] and pcp.count <= pcp.high
    drains = [e for e in result.ctx.sim.recorder.events() if e["actor"] == "kworker/0:vmstat"]
    assert drains and {e["event"] for e in drains} == {"mm_page_pcpu_drain"}
    assert min(e["t"] for e in drains) >= STAT_INTERVAL_NS
    assert sum(1 << e["order"] for e in drains) == seen["count"] - pcp.count
