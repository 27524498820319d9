"""stolen_page: a direct compactor frees a suitable block and another CPU allocates it first.

Kernel mechanism: direct compaction (``__alloc_pages_direct_compact`` -> try_to_compact_pages ->
compact_zone) migrates pages out of a pageblock until ``compact_finished`` sees a free block of
the requested order, then returns COMPACT_SUCCESS; the caller then calls
``get_page_from_freelist``. Between the two, the block sits on the free list, and "a suitable
page freed during compaction can be allocated by any parallel task" (commit message of the fix).

Mitigation: 5e1f0f098b46 "mm, compaction: capture a page under direct compaction" (v5.1): the
compactor publishes a ``capture_control`` and ``__free_one_page`` hands it a block of exactly
its order as the block forms (``mitigation.capture``; off: the pre-commit path).

Property violated: ``compaction_success_honoured`` — a compaction that reported SUCCESS is
followed by a failed allocation or by another compaction round.

Set-up: every other page of every zone is free (no free block above order 0) and the allocated
half is anonymous memory on the LRU (movable: compaction can migrate it). CPU 0 faults
``thp`` THPs with GFP_TRANSHUGE (direct compaction); CPUs 1.. fault THPs with
GFP_TRANSHUGE_LIGHT (no reclaim, no compaction: the fast path only) every ``poll`` and keep
what they get. The window is the compactor's last drain (the freed sources merge into the
block under ``zone->lock``) to its ``get_page_from_freelist``: a thief that asks inside it
(or waits on ``zone->lock`` through it) takes the block. With the default ``poll`` (20 us) the
thief's fifo-schedule polls miss every window: the default schedule passes, and the race needs
exploration with ``--perturb`` (a delay at an unlocked window moves the thief's polls or holds
the compactor back). ``--set poll=2us`` makes it show under every schedule.

Explore: ``mmemu explore races/stolen_page --set mitigation.capture=off --perturb --runs 200``.
Measured: docs/races.md.
"""

from emulator.explore.properties import COMPACTION_SUCCESS_HONOURED
from emulator.mm.initstate import free_k_of_n
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE, GFP_TRANSHUGE_LIGHT
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    if p.cpus < 2:
        raise ValueError("stolen_page needs cpus >= 2 (CPU 0 compacts, the others steal)")
    return Workload([Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, cpus=())])


def setup(p, ctx):
    pa = ctx.allocator
    for zone in pa.zones:
        free_k_of_n(zone, 1, 2)
    adopt_allocated(pa)


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim
    done = [False]
    got = ctx.findings.setdefault("thp", {"compactor": 0, "compactor_failed": 0, "thieves": 0})

    async def compactor():
        for _ in range(p["thp"]):
            pfn = await pa.alloc_pages(pa.cpus[0], 9, GFP_TRANSHUGE)
            got["compactor" if pfn >= 0 else "compactor_failed"] += 1
        done[0] = True

    def thief(cpu):
        async def run():
            while not done[0]:
                if await pa.alloc_pages(cpu, 9, GFP_TRANSHUGE_LIGHT) >= 0:
                    got["thieves"] += 1
                await sim.delay(p["poll"])

        return run

    return [("cpu0-compactor", compactor)] + [(f"cpu{c.id}-thief", thief(c)) for c in pa.cpus[1:]]


SCENARIO = Scenario(
    "stolen_page",
    "a direct compactor's freshly compacted block is taken by another CPU (capture prevents it)",
    build,
    defaults={"memory": "128M", "cpus": 2, "duration": "20ms", "sample": "1ms"},
    params={
        "thp": Param(2, "THPs CPU 0 faults with direct compaction", 1, 1000),
        "poll": Param(
            "20us",
            "how often the other CPUs try an order-9 fast-path allocation",
            1,
            10**9,
            "duration",
        ),
    },
    setup=setup,
    actors=actors,
    properties=[COMPACTION_SUCCESS_HONOURED],
)
