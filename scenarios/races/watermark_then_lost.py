"""watermark_then_lost: a watermark check passes, then the allocation loses the pages to
another CPU.

Kernel mechanism: ``get_page_from_freelist`` checks the zone's watermark locklessly
(``zone_watermark_fast`` reads NR_FREE_PAGES and the free-area counts) and only then takes
``zone->lock`` in ``rmqueue``. Between the two, another CPU may take the very blocks the check
counted: ``rmqueue`` finds no block of the order and the zone is skipped (failure reason
``no_free_block`` here). A GFP_NOWAIT caller (no reclaim, no compaction) fails; others go on to
the slow path.

Mitigation: none in 6.12. The lockless check is by design (taking ``zone->lock`` for every
check would serialise all allocators); the kernel tolerates the race by falling through to the
next zone and to the slow path's retries. The entry therefore compares schedules without
preemption in that window (``fifo``: each check and its ``rmqueue`` run back to back) with
explored ones (``random``/``pct`` preempt at ``get_page_from_freelist:watermark_ok``).

Property violated: ``watermark_honoured`` — an allocation passes the watermark check and then
finds no free block.

Set-up: ZONE_DMA32 holds exactly ``blocks`` free order-4 blocks (every other order-4 block of a
few pageblocks, the rest allocated); all CPUs ask for an order-4 block (not cached on pcp
lists) with GFP_NOWAIT at the same instant, more CPUs than blocks.
"""

import numpy as np

from emulator.explore.properties import WATERMARK_HONOURED
from emulator.mm.initstate import allocate_everything, free_pages_mask
from emulator.mm.memmap import PG_ALLOC
from emulator.mm.page_alloc.gfp import GFP_NOWAIT
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    return Workload(
        [Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, cpus=())],
        idle_cpus=tuple(range(p.cpus)),
    )


def setup(p, ctx):
    pa = ctx.allocator
    big = max(pa.zones, key=lambda z: z.managed_pages)
    for zone in pa.zones:
        allocate_everything(zone)
    state = np.frombuffer(ctx.machine.memmap.state, dtype=np.uint8)
    lo = next(
        b * 512
        for b in big.pageblock_range()
        if b * 512 >= big.zone_start_pfn and (state[b * 512 : b * 512 + 512] == PG_ALLOC).all()
    )  # the first pageblock without holes or reserved pages (e.g. the kernel image)
    free = np.zeros(big.spanned_pages, dtype=bool)
    for i in range(p["blocks"]):
        start = lo + 32 * i - big.zone_start_pfn  # every other order-4 block
        free[start : start + 16] = True
    free_pages_mask(big, free)
    # no watermark in the way: the race is for the blocks, not for the reserve
    ctx.machine.sysctl.set("vm.min_free_kbytes", 0)


def actors(p, ctx):
    pa = ctx.allocator
    got = ctx.findings.setdefault("order4", {"ok": 0, "failed": 0})

    def grab(cpu):
        async def run():
            pfn = await pa.alloc_pages(cpu, 4, GFP_NOWAIT)
            got["ok" if pfn >= 0 else "failed"] += 1

        return run

    return [(f"cpu{c.id}-grab", grab(c)) for c in pa.cpus]


SCENARIO = Scenario(
    "watermark_then_lost",
    "CPUs pass the watermark check for the same few order-4 blocks; some then find none",
    build,
    defaults={"memory": "128M", "cpus": 4, "duration": "1ms", "sample": "500us"},
    params={"blocks": Param(2, "free order-4 blocks", 1, 1000)},
    setup=setup,
    actors=actors,
    properties=[WATERMARK_HONOURED],
)
