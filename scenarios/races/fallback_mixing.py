"""fallback_mixing: concurrent unmovable allocations fall back into movable pageblocks and mix
them, while a lower zone has whole free pageblocks.

Kernel mechanism: when a zone has no free page of the requested migratetype,
``__rmqueue_fallback`` takes one from another migratetype's free list; taking less than a
pageblock (``fallback_order < pageblock_order``, the ``fragmenting`` field of
``mm_page_alloc_extfrag``) leaves unmovable pages inside a movable pageblock, which compaction
can then never empty. Every CPU that falls back at the same time mixes another block.

Mitigation: 6bb154504f8b "mm, page_alloc: spread allocations across zones before introducing
fragmentation" (v5.0): the fast path first walks the zonelist with ALLOC_NOFRAGMENT, which
refuses fallbacks below pageblock order, so a lower zone (ZONE_DMA32 under ZONE_NORMAL) is used
before a block is mixed; only if every zone fails is the flag dropped
(``mitigation.alloc_nofragment``; off: no such pass, as before).

Property violated: ``no_avoidable_mixing`` — a fragmenting fallback in a zone while a lower
zone of the node had a whole free pageblock.

Set-up: a small machine of ZONE_DMA32 (free, as booted: whole free movable pageblocks) and
ZONE_NORMAL in which every other page is free and the rest movable memory (only order-0 free
pages, all in movable pageblocks). CPUs allocate short-lived unmovable GFP_KERNEL pages and
high-order slabs.
"""

from emulator.explore.properties import NO_AVOIDABLE_MIXING
from emulator.mm.initstate import free_k_of_n
from emulator.mm.machine import Machine
from emulator.mm.zone import ZONE_NORMAL
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def machine(p, recorder):
    m = Machine.simple(DMA32=p["dma32_pages"], Normal=p["normal_pages"], recorder=recorder)
    return m


def build(p):
    mix = [
        AllocClass(0, "GFP_KERNEL", weight=8, lifetime="exp(200us)"),
        AllocClass(2, "GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY", weight=2, lifetime="exp(200us)"),
    ]
    return Workload([Phase("unmovable", mix, rate=p["rate"])])


def setup(p, ctx):
    for zone in ctx.allocator.zones:
        if zone.zone_idx == ZONE_NORMAL:
            free_k_of_n(zone, 1, 2)


SCENARIO = Scenario(
    "fallback_mixing",
    "unmovable allocations mix movable pageblocks of ZONE_NORMAL while ZONE_DMA32 is free",
    build,
    defaults={"memory": "96M", "cpus": 4, "duration": "2ms", "sample": "1ms"},
    params={
        "dma32_pages": Param(8192, "ZONE_DMA32 size in pages (multiple of 1024)", 1024, 1 << 22),
        "normal_pages": Param(16384, "ZONE_NORMAL size in pages (multiple of 1024)", 1024, 1 << 22),
        "rate": Param(100_000.0, "allocations per second per CPU", 1.0, 1e8),
    },
    machine=machine,
    setup=setup,
    properties=[NO_AVOIDABLE_MIXING],
)
