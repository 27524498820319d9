"""Random operations over every migratetype path: fallbacks with ALLOC_NOFRAGMENT, highatomic
reserve/unreserve, CMA and ISOLATE pageblocks. There is no closed-form reference here (pageblock
types change the merge rules), so the checks are page conservation against the set of handed-out
blocks, no double hand-out, and the full invariant checker after every step."""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from emulator.mm.initstate import random_alloc_free
from emulator.mm.invariants import check_machine
from emulator.mm.machine import Machine
from emulator.mm.page_alloc.alloc_flags import (
    ALLOC_CMA,
    ALLOC_HIGHATOMIC,
    ALLOC_KSWAPD,
    ALLOC_NOFRAGMENT,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
)
from emulator.mm.page_alloc.buddy import free_one_page_locked
from emulator.mm.page_alloc.fallback import move_freepages_block
from emulator.mm.page_alloc.highatomic import (
    reserve_highatomic_pageblock,
    unreserve_highatomic_pageblock_locked,
)
from emulator.mm.page_alloc.isolation import move_freepages_block_isolate, unset_migratetype_isolate
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked
from emulator.mm.snapshot import MIGRATE_CMA, MIGRATE_ISOLATE, MIGRATE_PCPTYPES

PAGES = 65536  # managed/100 >= pageblock_nr_pages, so highatomic reserves are possible
FLAGS = st.sampled_from(
    [0, ALLOC_NOFRAGMENT, ALLOC_HIGHATOMIC, ALLOC_CMA, ALLOC_NON_BLOCK, ALLOC_OOM, ALLOC_KSWAPD]
)


class ReservesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = Machine.simple(Normal=PAGES, thp_enabled=False)
        self.z = self.m.zone("Normal")
        self.held: list[tuple[int, int]] = []
        self.owned = np.zeros(PAGES, dtype=bool)

    @initialize(seed=st.integers(0, 2**16), cma_pairs=st.integers(0, 2))
    def start(self, seed: int, cma_pairs: int) -> None:
        z = self.z
        # CMA pageblock pairs at the top of the zone, each a free order-10 buddy at this point
        # (as cma_init_reserved_areas marks them before their pages reach the buddy lists)
        for i in range(cma_pairs):
            pfn = PAGES - 1024 * (i + 1)
            move_freepages_block(z, pfn, z.memmap.pb_mt[pfn >> 9], MIGRATE_CMA)
            z.memmap.pb_mt[(pfn >> 9) + 1] = MIGRATE_CMA
        self.held = random_alloc_free(
            z,
            0.35,
            np.random.default_rng(seed),
            orders=(0, 1, 2, 3, 9),
            order_weights=(6, 2, 1, 1, 1),
            migratetypes=(0, 1, 2),
            churn=0.5,
        )
        for p, o in self.held:
            self.owned[p : p + (1 << o)] = True

    @rule(order=st.sampled_from([0, 0, 1, 2, 3, 5, 9, 10]), mt=st.integers(0, 2), flags=FLAGS)
    def alloc(self, order: int, mt: int, flags: int) -> None:
        pfn = rmqueue_buddy_locked(self.z, order, mt, flags)
        if pfn < 0:
            return
        n = 1 << order
        assert pfn % n == 0 and not self.owned[pfn : pfn + n].any()
        self.owned[pfn : pfn + n] = True
        self.held.append((pfn, order))
        if flags & ALLOC_HIGHATOMIC:
            reserve_highatomic_pageblock(self.z, pfn, order)

    @precondition(lambda self: self.held)
    @rule(idx=st.integers(0, 2**20), count=st.integers(1, 30))
    def release(self, idx: int, count: int) -> None:
        for _ in range(min(count, len(self.held))):
            i = idx % len(self.held)
            self.held[i], self.held[-1] = self.held[-1], self.held[i]
            pfn, order = self.held.pop()
            free_one_page_locked(self.z, pfn, order)
            self.owned[pfn : pfn + (1 << order)] = False
            idx = idx * 7 + 3

    @rule(mt=st.integers(0, MIGRATE_PCPTYPES - 1), force=st.booleans())
    def unreserve(self, mt: int, force: bool) -> None:
        before = self.z.nr_reserved_highatomic
        ret = unreserve_highatomic_pageblock_locked(self.z, mt, force)
        if not force and before <= 512:
            assert ret == 0 and self.z.nr_reserved_highatomic == before
        assert self.z.nr_reserved_highatomic >= 0

    @rule(block=st.integers(0, PAGES // 512 - 1))
    def isolate_and_back(self, block: int) -> None:
        z = self.z
        pfn = block * 512
        old = z.memmap.pb_mt[block]
        if old >= MIGRATE_PCPTYPES:
            return  # normal pageblocks only
        nr_free_before = list(z.nr_free)
        free_before = z.nr_free_pages
        assert move_freepages_block_isolate(z, pfn, MIGRATE_ISOLATE)
        isolated = sum(z.nr_free_mt[o * 6 + MIGRATE_ISOLATE] << o for o in range(11))
        assert z.nr_free_pages == free_before - isolated  # ISOLATE is not in NR_FREE_PAGES
        check_machine(self.m)
        unset_migratetype_isolate(z, pfn, old)
        assert z.nr_free_pages == free_before
        assert z.nr_free == nr_free_before  # merged back exactly

    @invariant()
    def conserved(self) -> None:
        z = self.z
        assert z.nr_free_pages + int(self.owned.sum()) == PAGES
        assert z.nr_free_highatomic <= z.nr_reserved_highatomic
        check_machine(self.m)


ReservesMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=25, deadline=None)
TestReservesMachine = ReservesMachine.TestCase
