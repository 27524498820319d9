"""pcp_hiding: a high-order allocation fails while the pages it needs sit on remote pcp lists.

Set-up (the machine's past): every zone is allocated completely and then every other page is
freed (:func:`emulator.mm.initstate.free_k_of_n` with k=1, n=2), so the buddy lists hold plenty
of order-0 pages but no block of order 1 or more. In ``regions`` pageblocks of the largest zone,
the still-allocated odd pages are handed to CPUs 1..N-1, which free them at the start of the run:
order-0 frees go to each CPU's pcp list, and pages on a pcp list are not PageBuddy, so they do
not merge with their free buddies and stay invisible to the watermark check.

At ``probe_at``, a task on CPU 0 asks for an order-``order`` block with GFP_NOWAIT (a caller that
cannot sleep, so the slow path can only retry the freelist at the MIN mark: no reclaim, no
compaction, and no drain): the order-0 part of the watermark check passes, the high-order part
finds no block (reason ``watermark_high_order``) and the allocation fails, although ``regions``
whole pageblocks of free pages exist. It then calls ``drain_all_pages(NULL)`` — the direct
reclaim path does this after a failed attempt — which returns every CPU's pcp pages to the
buddy lists from CPU 0 under each pcp->lock (6.12: no IPI); they merge into order-9/10 blocks
and the retry succeeds.

summary.json ``findings`` records both attempts, the pages drained, and the free pages and
pcp pages at each point.
"""

from emulator.mm.initstate import free_k_of_n
from emulator.mm.memmap import PG_ALLOC
from emulator.mm.page_alloc.drain import drain_all_pages
from emulator.mm.page_alloc.gfp import GFP_NOWAIT
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, FreePattern, Phase, Workload


def build(p):
    if p.cpus < 2:
        raise ValueError("pcp_hiding needs cpus >= 2 (CPU 0 probes, the others hide pages)")
    # CPUs 1.. free the pages the set-up handed them, at once, to their pcp lists
    noop = AllocClass(0, "GFP_KERNEL")
    return Workload(
        [
            Phase(
                "free-to-pcp",
                [noop],
                duration=0,
                free_at_end=FreePattern("all"),
                cpus=tuple(range(1, p.cpus)),
            )
        ],
        idle_cpus=(0,),  # CPU 0 runs the probe actor below instead
    )


def setup(p, ctx):
    pa = ctx.allocator
    for zone in pa.zones:
        free_k_of_n(zone, 1, 2)
    big = max(pa.zones, key=lambda z: z.managed_pages)
    givers = ctx.programs[1:]
    if not givers:
        raise ValueError("pcp_hiding needs cpus >= 2")
    state = ctx.machine.memmap.state
    given = 0
    for block in big.pageblock_range():
        base = block * 512
        odd = range(base + 1, base + 512, 2)
        if base < big.zone_start_pfn or any(state[pfn] != PG_ALLOC for pfn in odd):
            continue  # skip pageblocks with holes or reserved pages (e.g. the kernel image)
        for pfn in odd:
            givers[given % len(givers)].adopt(pfn, 0)
        given += 1
        if given == p["regions"]:
            break


def actors(p, ctx):
    pa = ctx.allocator
    cpu0 = pa.cpus[0]
    sim = ctx.sim
    findings = ctx.findings

    def state():
        return {
            "nr_free_pages": sum(z.nr_free_pages for z in pa.zones),
            "pcp_pages": pa.pcp_pages(),
        }

    async def probe():
        await sim.delay(p["probe_at"])
        await sim.sync()  # read shared state only once every earlier actor step has happened
        findings["before"] = state()
        pfn = await pa.alloc_pages(cpu0, p["order"], GFP_NOWAIT)
        reasons = pa.order_summary().get(p["order"], {}).get("failure_reasons", {})
        findings["first_attempt"] = {"pfn": pfn, "failure_reasons": reasons}
        drained = await drain_all_pages(pa, cpu0)
        findings["drain_all_pages"] = {"pages_drained": drained, **state()}
        pfn = await pa.alloc_pages(cpu0, p["order"], GFP_NOWAIT)
        findings["after_drain_attempt"] = {"pfn": pfn}
        findings["hidden_then_found"] = findings["first_attempt"]["pfn"] < 0 <= pfn

    return [("cpu0-probe", probe)]


SCENARIO = Scenario(
    "pcp_hiding",
    "order-9 allocation fails while free pages hide on remote pcp lists; drain_all_pages fixes it",
    build,
    defaults={"memory": "1G", "cpus": 4, "duration": "5ms"},
    params={
        "regions": Param(6, "pageblocks whose odd pages are freed to pcp lists", 1, 1 << 20),
        "order": Param(9, "order of the probing allocation (MAX_PAGE_ORDER is 10)", 0, 10),
        "probe_at": Param("1ms", "when CPU 0 probes, into the run", 0, 3600 * 10**9, "duration"),
    },
    setup=setup,
    actors=actors,
)
