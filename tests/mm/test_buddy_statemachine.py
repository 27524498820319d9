"""Random alloc/free sequences against a naive reference model, with the invariant checker.

The reference keeps only a boolean "free" per page. With UNMOVABLE, MOVABLE and RECLAIMABLE
(all mergeable) and no ALLOC_NOFRAGMENT, the kernel's buddy state is fully determined by it:
eager merging leaves exactly the maximal aligned all-free blocks (capped at order 10), so
nr_free[] must equal that decomposition, an allocation of order o must succeed exactly when some
aligned all-free block of order >= o exists, and it must hand out pages the reference thinks free.
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from emulator.mm.initstate import random_alloc_free
from emulator.mm.invariants import check_machine
from emulator.mm.machine import Machine
from emulator.mm.memmap import OWNER_MOVABLE, OWNER_UNMOVABLE, PG_ALLOC, PG_BUDDY, PG_KIND_MASK
from emulator.mm.page_alloc.buddy import free_one_page_locked, free_to_buddy
from emulator.mm.page_alloc.rmqueue import rmqueue_buddy_locked, rmqueue_bulk
from emulator.mm.snapshot import MAX_PAGE_ORDER, MIGRATE_PCPTYPES

PAGES = 4096
ORDERS = st.sampled_from([0, 0, 0, 1, 2, 3, 4, 9, 10])
MTS = st.integers(0, MIGRATE_PCPTYPES - 1)


def expected_nr_free(free: np.ndarray) -> list[int]:
    counts = [0] * (MAX_PAGE_ORDER + 1)
    covered = np.zeros_like(free)
    for o in range(MAX_PAGE_ORDER, -1, -1):
        n = 1 << o
        blocks = free.reshape(-1, n).all(axis=1) & ~covered.reshape(-1, n).any(axis=1)
        counts[o] = int(blocks.sum())
        covered |= np.repeat(blocks, n)
    return counts


def has_free_block(free: np.ndarray, order: int) -> bool:
    return bool(free.reshape(-1, 1 << order).all(axis=1).any())


class BuddyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = Machine.simple(Normal=PAGES, thp_enabled=False)
        self.z = self.m.zone("Normal")
        self.held: list[tuple[int, int]] = []

    @initialize(
        seed=st.integers(0, 2**16),
        ratio=st.sampled_from([1.0, 0.7, 0.4, 0.15]),
        churn=st.sampled_from([0.0, 1.0]),
    )
    def start(self, seed: int, ratio: float, churn: float) -> None:
        if ratio < 1.0:
            self.held = random_alloc_free(
                self.z,
                ratio,
                np.random.default_rng(seed),
                orders=(0, 1, 2, 3, 9),
                order_weights=(6, 2, 1, 1, 1),
                migratetypes=(0, 1, 2),
                churn=churn,
            )
        st_ = np.frombuffer(self.z.memmap.state, dtype=np.uint8)
        self.free = (st_ & PG_KIND_MASK) == PG_BUDDY

    def _alloc(self, order: int, mt: int, movable_owner: bool) -> None:
        possible = has_free_block(self.free, order)
        owner = OWNER_MOVABLE if movable_owner else OWNER_UNMOVABLE
        pfn = rmqueue_buddy_locked(self.z, order, mt, 0, owner=owner)
        assert (pfn >= 0) == possible, f"order {order}: allocator {pfn}, reference {possible}"
        if pfn < 0:
            return
        n = 1 << order
        assert pfn % n == 0
        assert self.free[pfn : pfn + n].all(), "handed out pages that were not free"
        self.free[pfn : pfn + n] = False
        assert self.z.memmap.state[pfn] == PG_ALLOC and self.z.memmap.order[pfn] == order
        self.held.append((pfn, order))

    @rule(order=ORDERS, mt=MTS, movable_owner=st.booleans())
    def alloc(self, order: int, mt: int, movable_owner: bool) -> None:
        self._alloc(order, mt, movable_owner)

    @rule(count=st.integers(1, 300), mt=MTS)
    def alloc_burst(self, count: int, mt: int) -> None:
        for _ in range(count):
            self._alloc(0, mt, True)

    @precondition(lambda self: self.held)
    @rule(idx=st.integers(0, 2**20), count=st.integers(1, 40))
    def release(self, idx: int, count: int) -> None:
        for _ in range(min(count, len(self.held))):
            i = idx % len(self.held)
            self.held[i], self.held[-1] = self.held[-1], self.held[i]
            pfn, order = self.held.pop()
            free_one_page_locked(self.z, pfn, order)
            self.free[pfn : pfn + (1 << order)] = True
            idx = idx * 7 + 3

    @rule(order=st.integers(0, 3), count=st.integers(1, 8), mt=MTS)
    def bulk_and_back(self, order: int, count: int, mt: int) -> None:
        """rmqueue_bulk to a (pretend) pcp list, then drain the pages straight back."""
        pages = rmqueue_bulk(self.z, order, count, mt)
        for p in pages:
            assert self.free[p : p + (1 << order)].all()
        for p in pages:
            free_to_buddy(self.z, p, order, self.z.memmap.pb_mt[p >> 9])

    @invariant()
    def matches_reference(self) -> None:
        assert self.z.nr_free == expected_nr_free(self.free)
        assert self.z.nr_free_pages == int(self.free.sum())
        check_machine(self.m)


BuddyMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestBuddyMachine = BuddyMachine.TestCase
