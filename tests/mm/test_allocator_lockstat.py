"""lock_stat figures of a deterministic two-CPU run, worked out by hand from the cost table.

Machine: one Normal zone of 16384 pages (16 order-10 MOVABLE blocks), 2 CPUs, fifo strategy.
pcp: batch 3, high_min 1000 / 2 = 500, high_max 16384 / 8 / 2 = 1024. Each CPU allocates one
order-0 GFP_HIGHUSER_MOVABLE page at t = 0, then frees it.

Costs (emulator.mm.costs defaults): alloc_entry 40, watermark_check 10, pcp_lock 10,
pcp_list_op 20, prep_new_page 60, free_prepare 50, zone_lock 25, bulk_per_page 35,
buddy_step 30.

CPU 0 (runs first at t = 0):
  alloc: HIGH watermark check passes: charge 40 + 10 = 50; pcp trylock at t = 0, + 10 = 60.
  List empty: nr_pcp_alloc = 3 (high 500 + 3 = 503, alloc_factor 1). Charge applied: t = 60,
  zone->lock taken at 60 (free). rmqueue_bulk takes 3 pages from the first order-10 block:
    page 0: delete the order-10 block + 10 splits = 11 buddy steps (halves 512, 256 .. 1 freed)
    page 1: the order-0 buddy at pfn 1 = 1 step
    page 2: the order-1 block at pfn 2: delete + 1 split = 2 steps (pfn 3 back to order 0)
  hold = zone_lock 25 + 3 x 35 + 14 x 30 = 550: zone->lock released at 610.
  pcp list op 20: pcp->lock released at 630 (held 630); prep_new_page 60: returns pfn 0 at 690.
  free at 690: charge free_prepare 50 + pcp_lock 10 + list op 20 = 80; count 3 < high 503, no
  drain; pcp->lock held 690..770 (80).
CPU 1 (t = 0, runs when CPU 0 blocks on its synchronisation at t = 60):
  alloc: same 60 ns, zone->lock wanted at t = 60 but held by CPU 0 until 610: contention,
  wait 550. rmqueue_bulk takes 3 pages from what CPU 0 left:
    page 3 (order-0 list) = 1 step; page 4: the order-2 block at 4: delete + 2 splits = 3
    steps (6 at order 1, 5 at order 0 freed); page 5 (order-0 list) = 1 step
  hold = 25 + 3 x 35 + 5 x 30 = 280: released at 890; pcp->lock released at 910 (held 910);
  returns pfn 3 at 970. free: 970..1050, pcp->lock held 80.

&zone->lock: acquisitions 2, contentions 1 (wait 550), holds 550 and 280; one bounce each.
"""

from __future__ import annotations

from emulator.engine import Sim, render_lock_stat
from emulator.mm.allocator import PageAllocator
from emulator.mm.gfp import GFP_HIGHUSER_MOVABLE
from emulator.mm.machine import Machine


def two_cpu_run() -> tuple[PageAllocator, Sim, list]:
    m = Machine.simple(Normal=16384)
    sim = Sim("fifo")
    pa = PageAllocator(m, sim, cpus_per_node=2)
    log: list = []

    async def cpu_actor(cpu) -> None:
        pfn = await pa.alloc_pages(cpu, 0, GFP_HIGHUSER_MOVABLE)
        log.append((cpu.id, "alloc", pfn, sim.now))
        await pa.free_pages(cpu, pfn, 0)
        log.append((cpu.id, "free", pfn, sim.now))

    for c in pa.cpus:
        sim.spawn(f"cpu{c.id}", cpu_actor, c)
    return pa, sim, log


async def test_two_cpu_zone_lock_figures() -> None:
    pa, sim, log = two_cpu_run()
    result = await sim.run()
    assert result.now == 1050
    assert sorted(log, key=lambda e: e[3]) == [
        (0, "alloc", 0, 690),
        (0, "free", 0, 770),
        (1, "alloc", 3, 970),
        (1, "free", 3, 1050),
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
        "holdtime-min": 280,
        "holdtime-max": 550,
        "holdtime-total": 830,
        "holdtime-avg": 415,
        "trylock-failures": 0,
        "contention-points": {"rmqueue_bulk": 1},
        "contending-points": {"rmqueue_bulk": 1},
    }
    cpu0, cpu1 = pa.cpus
    p0 = cpu0.pcp[0].lock.stats
    p1 = cpu1.pcp[0].lock.stats
    # pcp->lock: never contended (each CPU trylocks its own); holds 630 + 80 and 910 + 80
    assert (p0.acquisitions, p0.contentions, p0.hold_min, p0.hold_max, p0.hold_total) == (
        2,
        0,
        80,
        630,
        710,
    )
    assert (p1.acquisitions, p1.contentions, p1.hold_min, p1.hold_max, p1.hold_total) == (
        2,
        0,
        80,
        910,
        990,
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
    # times in µs with the kernel's rounding: (550 + 5) / 1000 -> 0.55, 280 -> 0.28,
    # 830 -> 0.83, avg 415 -> 0.42
    assert lines[5] == (
        f"{'&zone->lock':>40s}:"
        f"{1:14d} {1:14d} {'0.55':>14s} {'0.55':>14s} {'0.55':>14s} {'0.55':>14s}"
        f" {1:14d} {2:14d} {'0.28':>14s} {'0.55':>14s} {'0.83':>14s} {'0.42':>14s}"
    )
    assert lines[7].split() == ["&zone->lock", "1", "[<0000000000000000>]", "rmqueue_bulk"]
