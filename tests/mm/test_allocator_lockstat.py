"""lock_stat figures of a deterministic two-CPU run, worked out by hand from the cost table.

Machine: one Normal zone of 16384 pages (16 order-10 MOVABLE blocks), 2 CPUs, fifo strategy.
pcp: batch 3, high_min 1000 / 2 = 500, high_max 16384 / 8 / 2 = 1024. Each CPU allocates one
order-0 GFP_HIGHUSER_MOVABLE page at t = 0, then frees it.

Costs (emulator.mm.costs defaults): alloc_entry 40, watermark_check 10, pcp_lock 10,
pcp_list_op 20, prep_new_page 60, free_prepare 50, zone_lock 25, bulk_per_block 35,
buddy_step 30.

Costs also: lock_bounce 90 (zone->lock last held by the other CPU).

The pcp->lock is trylocked at the allocation's synchronised instant and held for the pcp work
only (pcp_lock, the refill, pcp_list_op); the entry and watermark work (50) and prep_new_page
(60) are charged after it is dropped. A free charges free_prepare (50) before synchronising.

CPU 0 (runs first at t = 0):
  alloc: pcp trylock at t = 0. List empty: nr_pcp_alloc = 3 (high 500 + 3 = 503,
  alloc_factor 1). pcp_lock 10: zone->lock wanted at t = 10. CPU 1 is at t = 0, so CPU 0
  yields; CPU 1 reaches t = 10 too and the tie goes to CPU 0 (fifo: it arrived first).
  zone->lock taken at 10 (free, first acquisition: no bounce). rmqueue_bulk takes 3 pages from
  the first order-10 block:
    page 0: delete the order-10 block + 10 splits = 11 buddy steps (halves 512, 256 .. 1 freed)
    page 1: the order-0 buddy at pfn 1 = 1 step
    page 2: the order-1 block at pfn 2: delete + 1 split = 2 steps (pfn 3 back to order 0)
  hold = zone_lock 25 + 3 x 35 + 14 x 30 = 550: zone->lock released at 560.
  pcp list op 20: pcp->lock released at 580 (held 580); then 50 + 60: returns pfn 0 at 690.
  free at 690: free_prepare 50 -> 740; pcp trylock at 740, pcp_lock 10 + list op 20: released
  at 770 (held 30); count 3 < high 503, no drain.
CPU 1 (t = 0): same path; at t = 10 it finds zone->lock free from 560 (CPU 0 released it
  ahead in processing order): contention, wait 550, taken at 560. CPU 0 held it last: bounce.
  rmqueue_bulk takes 3 pages from what CPU 0 left:
    page 3 (order-0 list) = 1 step; page 4: the order-2 block at 4: delete + 2 splits = 3
    steps (6 at order 1, 5 at order 0 freed); page 5 (order-0 list) = 1 step
  hold = 25 + 90 + 3 x 35 + 5 x 30 = 370: released at 930; pcp->lock released at 950 (held
  950); returns pfn 3 at 950 + 110 = 1060. free: 1060 + 50 = 1110, pcp->lock held 30: 1140.

&zone->lock: acquisitions 2, contentions 1 (wait 550), holds 550 and 370; one bounce (CPU 1).
"""

from __future__ import annotations

from emulator.engine import Sim, render_lock_stat
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_HIGHUSER_MOVABLE
from emulator.mm.page_alloc.page_free import free_pages


def two_cpu_run() -> tuple[PageAllocator, Sim, list]:
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=2)
    log: list = []

    async def cpu_actor(cpu) -> None:
        pfn = await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE)
        log.append((cpu.id, "alloc", pfn, sim.now))
        await free_pages(pa, cpu, pfn, 0)
        log.append((cpu.id, "free", pfn, sim.now))

    for c in pa.cpus:
        sim.spawn(f"cpu{c.id}", cpu_actor, c)
    return pa, sim, log


async def test_two_cpu_zone_lock_figures() -> None:
    pa, sim, log = two_cpu_run()
    result = await sim.run()
    assert result.now == 1140
    assert sorted(log, key=lambda e: e[3]) == [
        (0, "alloc", 0, 690),
        (0, "free", 0, 770),
        (1, "alloc", 3, 1060),
        (1, "free", 3, 1140),
    ]
    zl = pa.zones[0].lock.stats.as_dict()
    assert zl == {
        "class": "&zone->lock",
        "con-bounces": 1,
        "contentions": 1,
        "waittime-min": 550,
        "waittime-max": 550,
        "waittime-total": 550,
        "waittime-avg": 550,
        "acq-bounces": 1,
        "acquisitions": 2,
        "holdtime-min": 370,
        "holdtime-max": 550,
        "holdtime-total": 920,
        "holdtime-avg": 460,
        "trylock-failures": 0,
        "contention-points": {"rmqueue_bulk": 1},
        "contending-points": {"rmqueue_bulk": 1},
    }
    cpu0, cpu1 = pa.cpus
    p0 = cpu0.pcp[0].lock.stats
    p1 = cpu1.pcp[0].lock.stats
    # pcp->lock: never contended (each CPU trylocks its own); holds 580 + 30 and 950 + 30
    assert (p0.acquisitions, p0.contentions, p0.hold_min, p0.hold_max, p0.hold_total) == (
        2,
        0,
        30,
        580,
        610,
    )
    assert (p1.acquisitions, p1.contentions, p1.hold_min, p1.hold_max, p1.hold_total) == (
        2,
        0,
        30,
        950,
        980,
    )
    # CPU 1 spun on zone->lock for the whole 550 ns wait
    assert [a.spin_ns for a in sim.actors] == [0, 550]
    # each CPU's refill left 2 pages on its list, plus the freed page: 3 each, high 503
    assert [(c.pcp[0].count, c.pcp[0].high) for c in pa.cpus] == [(3, 503), (3, 503)]


async def test_two_cpu_lock_stat_text() -> None:
    pa, sim, _ = two_cpu_run()
    await sim.run()
    text = render_lock_stat([pa.zones[0].lock.stats])
    lines = text.splitlines()
    # times in µs with the kernel's rounding: (550 + 5) / 1000 -> 0.55, (370 + 5) -> 0.37,
    # 920 -> 0.92, avg 460 -> 0.46
    assert lines[5] == (
        f"{'&zone->lock':>40s}:"
        f"{1:14d} {1:14d} {'0.55':>14s} {'0.55':>14s} {'0.55':>14s} {'0.55':>14s}"
        f" {1:14d} {2:14d} {'0.37':>14s} {'0.55':>14s} {'0.92':>14s} {'0.46':>14s}"
    )
    assert lines[7].split() == ["&zone->lock", "1", "[<0000000000000000>]", "rmqueue_bulk"]
