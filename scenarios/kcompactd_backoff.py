"""kcompactd_backoff: fragmentation that compaction cannot fix, and proactive compaction's back-off.

The machine's past (the set-up): every 2 MiB pageblock of DMA32 and Normal keeps a quarter of
its pages, spread at random, allocated by the kernel itself (unmovable: slab, page tables,
kernel stacks: not on the LRU, so compaction's migrate scanner cannot isolate them), the rest
is free. The node's fragmentation score is ~99 (no free 2 MiB block anywhere), far above
kcompactd's high mark (90 with the default ``vm.compaction_proactiveness=20``). The CPUs only
do light order-0 kernel work (``rate``), so nothing else changes the picture.

What the kernel does (mm/compaction.c: kcompactd): 500 ms after boot the timer finds the score
above the high mark with kswapd asleep, and runs a proactive pass (compact_node(pgdat, true)).
The migrate scanner finds nothing it may move, the score stays where it was, and because the
pass made no progress the next wait is ``500 ms << COMPACT_MAX_DEFER_SHIFT`` = 32 s instead of
500 ms. So passes start at 0.5 s, ~32.5 s, ~65 s, ... Each pass still scans the whole node:
summary.json's ``kcompactd`` entry lists them (``proactive_passes`` with the score before and
after and the pages migrated, 0 here), and ``findings`` gives the intervals.

Try::

    mmemu run kcompactd_backoff                         # passes at 0.5 s, 32.5 s, 65 s
    mmemu run kcompactd_backoff --set movable=true      # movable: one pass fixes it, no back-off
    mmemu run kcompactd_backoff --set vm.compaction_proactiveness=0   # no pass at all
"""

import itertools

import numpy as np

from emulator.mm.initstate import free_k_of_n
from emulator.mm.memmap import OWNER_MOVABLE, OWNER_UNMOVABLE
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    work = AllocClass(0, "GFP_KERNEL", lifetime="exp(1ms)")
    return Workload([Phase("idle", [work], rate=p["rate"])])


def setup(p, ctx):
    rng = np.random.default_rng(p.seed)
    owner = OWNER_MOVABLE if p["movable"] else OWNER_UNMOVABLE
    for zone in ctx.allocator.zones:
        if zone.name != "DMA":
            free_k_of_n(zone, 3, 4, owner=owner, rng=rng)
    adopt_allocated(ctx.allocator)  # on the LRU lists, with holders (page cache, processes)


def report(p, ctx):
    passes = [x.as_dict() for kc in ctx.allocator.kthreads.kcompactd for x in kc.proactive_passes]
    starts = [x["t_ns"] for x in passes]
    return {
        "proactive_pass_starts_s": [round(t / 1e9, 3) for t in starts],
        "intervals_s": [round((b - a) / 1e9, 3) for a, b in itertools.pairwise(starts)],
        "scores": [(x["score_before"], x["score_after"]) for x in passes],
        "pages_migrated": sum(x["pages_migrated"] for x in passes),
    }


SCENARIO = Scenario(
    "kcompactd_backoff",
    "unmovable fragmentation compaction cannot fix: proactive passes back off to 32 s",
    build,
    defaults={"memory": "1G", "cpus": 2, "duration": "70s", "sample": "100ms"},
    params={
        "rate": Param(200.0, "order-0 kernel allocations per second per CPU", 0.001, 10_000_000.0),
        "movable": Param(False, "make the quarter that stays allocated movable instead"),
    },
    setup=setup,
    report=report,
)
