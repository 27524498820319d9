"""compaction_test: the kernel selftest tools/testing/selftests/mm/compaction_test.c as a scenario.

What the selftest does, and this scenario after it, in one task on CPU 0:

1. ``set_zero_hugepages``: ``vm.nr_hugepages`` = 0; read MemFree (NR_FREE_PAGES, in kB).
2. mmap ``MAP_LOCKED`` anonymous chunks of 100 MB and touch them page by page (every fault an
   order-0 ``GFP_HIGHUSER_MOVABLE | __GFP_ZERO`` allocation, the page mlocked: on the
   unevictable LRU) until 80% of MemFree is mapped.
3. munmap every other chunk, starting from the last one mapped (the list is LIFO).
4. ``check_compaction``: write 100000 to ``vm.nr_hugepages`` — the hugetlb pool grows one 2 MiB
   page at a time through the page allocator's slow path (reclaim, direct compaction:
   ``alloc_buddy_hugetlb_folio``) until an allocation fails — read back the count, restore the
   old value. Pass iff ``(0.8 * MemFree) / (nr_hugepages * Hugepagesize) <= 3`` (integer
   division, the selftest's ``compaction_index``): more than a quarter of that 80% became
   huge pages.

The machine is not fresh: a selftest runs on a system that has been up for a while, whose free
memory is scattered among page cache and whose free lists are in no particular address order
(as after long use, or with the page allocator's shuffling). The set-up stands for that past:
``page_cache`` (default 0.5) of every zone is clean page cache at random pages, the rest free,
and each free list is put in a random order (seeded). On a fresh machine the 100 MB chunks
would be physically contiguous, unmapping every other one would free whole pageblocks, and the
test would pass without any compaction.

The selftest exists for "mm: compaction: allow compaction of unevictable pages" (v4.6): with
``vm.compact_unevictable_allowed=1`` (the default) the mlocked pages left between the holes are
migrated and most of the freed half becomes huge pages; with 0 they cannot move and almost no
2 MiB block can be assembled. Try::

    mmemu run compaction_test
    mmemu run compaction_test --set vm.compact_unevictable_allowed=0

``summary.json`` carries ``"scenario_result": {"passed", "huge_pages", "needed", ...}``.
"""

import numpy as np

from emulator.mm.hugetlb import HPAGE_ORDER, hugetlb_pool, set_max_huge_pages
from emulator.mm.initstate import allocate_everything, free_pages_mask
from emulator.mm.memmap import OWNER_FILE, OWNER_MLOCKED
from emulator.mm.page_alloc.gfp import __GFP_ZERO, GFP_HIGHUSER_MOVABLE
from emulator.mm.reclaim.lru import adopt_allocated, folio_add_lru, release_handle
from emulator.mm.snapshot import MIGRATE_TYPES, NR_PAGE_ORDERS
from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload

MAP_SIZE_MB = 100
PAGE_KB = 4
HUGEPAGE_KB = 4 << HPAGE_ORDER  # 2048


def setup(p, ctx):
    """The machine's past: scattered clean page cache, free lists in random order."""
    rng = np.random.default_rng(p.seed)
    for z in ctx.allocator.zones:
        allocate_everything(z, OWNER_FILE)
        free_pages_mask(z, rng.random(z.spanned_pages) >= p["page_cache"])
        shuffle_free_lists(z, rng)
    adopt_allocated(ctx.allocator)  # the page cache is on the file LRU, held by the cache


def shuffle_free_lists(zone, rng):
    """Put every free list of ``zone`` in a random order (same entries, same counts)."""
    mm = zone.memmap
    for o in range(NR_PAGE_ORDERS):
        for mt in range(MIGRATE_TYPES):
            head = zone.free_list(o, mt)
            entries = mm.list_entries(head)
            if len(entries) < 2:
                continue
            for pfn in entries:
                mm.list_del(pfn)
            for i in rng.permutation(len(entries)).tolist():
                mm.list_add_tail(head, entries[i])


def build(p):
    # the other CPUs are idle: the selftest is one task
    return Workload([Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, cpus=())])


def actors(p, ctx):
    pa = ctx.allocator
    sim = ctx.sim
    cpu = pa.cpus[0]
    rmap = pa.machine.rmap
    chunks: list[list[int]] = []  # the mappings: holder handles, one per page

    async def selftest():
        await set_max_huge_pages(pa, cpu, 0)  # set_zero_hugepages
        await sim.sync()
        mem_free_kb = sum(z.nr_free_pages for z in pa.zones) * PAGE_KB  # MemFree
        fragmentable_mb = mem_free_kb * 0.8 / 1024
        gfp = GFP_HIGHUSER_MOVABLE | __GFP_ZERO
        pages_per_map = MAP_SIZE_MB * 1024 // PAGE_KB
        failed = False
        while fragmentable_mb > 0 and not failed:
            chunk: list[int] = []
            chunks.append(chunk)
            for _ in range(pages_per_map):  # the write loop faults every page
                pfn = await pa.alloc_pages(cpu, 0, gfp, OWNER_MLOCKED)
                if pfn < 0:
                    failed = True  # MAP_FAILED (MAP_LOCKED populates at mmap time)
                    break
                chunk.append(rmap.add(pfn, cpu.id))
                await folio_add_lru(pa, cpu, pfn)  # mlocked: the unevictable LRU
            if failed:
                for h in chunk:
                    await release_handle(pa, cpu, h)
                chunks.pop()
                break
            fragmentable_mb -= MAP_SIZE_MB
        mapped = len(chunks)
        # munmap every other entry of the LIFO list: the last mapped, then every second
        for c in range(mapped - 1, -1, -2):
            for h in chunks[c]:  # munmap: unmap, then the last folio_put
                await release_handle(pa, cpu, h)
            chunks[c] = []
        t_huge = sim.current.now
        # check_compaction
        mem_free_80 = int(mem_free_kb * 0.8)
        initial = hugetlb_pool(pa).nr_huge_pages
        nr = await set_max_huge_pages(pa, cpu, 100000)
        await set_max_huge_pages(pa, cpu, initial)
        index = mem_free_80 // (nr * HUGEPAGE_KB) if nr else None
        needed = mem_free_80 // (4 * HUGEPAGE_KB) + 1  # smallest count with index <= 3
        ctx.scenario_result = {
            "passed": bool(nr) and index is not None and index <= 3,
            "huge_pages": nr,
            "needed": needed,
            "compaction_index": index,
            "mem_free_kb": mem_free_kb,
            "chunks_mapped": mapped,
            "chunks_unmapped": (mapped + 1) // 2,
            "hugepage_phase_ns": sim.current.now - t_huge,
            "compact_unevictable_allowed": pa.machine.compact_unevictable_allowed,
            "finished_ns": sim.current.now,
        }

    return [("compaction_test", selftest)]


def report(p, ctx):
    if ctx.scenario_result is None:  # the run's duration ended first
        ctx.scenario_result = {
            "passed": False,
            "huge_pages": 0,
            "needed": None,
            "error": "the selftest did not finish within the duration",
        }
    ev = ctx.allocator.vm_events
    return {
        "htlb_buddy_alloc_success": ev["htlb_buddy_alloc_success"],
        "htlb_buddy_alloc_fail": ev["htlb_buddy_alloc_fail"],
        "compact_stall": ev["compact_stall"],
        "compact_success": ev["compact_success"],
        "pgmigrate_success": ev["pgmigrate_success"],
    }


SCENARIO = Scenario(
    "compaction_test",
    "tools/testing/selftests/mm/compaction_test.c: mlock 80%, unmap every other 100 MB, "
    "grow nr_hugepages; passes if > 1/4 of the 80% becomes huge pages",
    build,
    defaults={"memory": "1G", "cpus": 2, "duration": "3s"},
    params={
        "page_cache": Param(
            0.5, "share of each zone held by clean page cache at the start", 0.0, 1.0
        )
    },
    setup=setup,
    actors=actors,
    report=report,
)
