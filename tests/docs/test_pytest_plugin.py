"""The pytest fixtures users get from the mmemu plugin."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator.mm.invariants import InvariantViolation
from emulator.mm.page_alloc.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL
from emulator.mm.page_alloc.page_free import free_pages
from emulator.testing import EmulatedKernel, make_kernel


async def test_mm_kernel_fixture_runs_cpus_and_checks(
    mm_kernel: Callable[..., EmulatedKernel],
) -> None:
    k = mm_kernel(memory="512M", cpus=3, strategy="random(2)", record=True)
    freed: list[int] = []

    async def cpu(c):
        pfns = [await k.allocator.alloc_pages(c, o, GFP_HIGHUSER_MOVABLE) for o in (0, 1, 3, 9)]
        assert all(p >= 0 for p in pfns)
        for p, o in zip(pfns, (0, 1, 3, 9), strict=True):
            await free_pages(k.allocator, c, p, o)
            freed.append(p)

    await k.run(per_cpu=cpu)
    assert len(freed) == 12
    assert len(k.events("mm_page_alloc")) == 12
    assert len(k.events("mm_page_free")) == 12
    assert k.machine.nr_free_pages + k.allocator.pcp_pages() == k.machine.managed_pages


async def test_check_catches_a_leaked_page_marked_free() -> None:
    k = make_kernel(memory="256M", cpus=1)

    async def leak(c):
        pfn = await k.allocator.alloc_pages(c, 0, GFP_KERNEL)
        k.allocator.cpus[0].pcp[0].count += 1  # corrupt the pcp accounting on purpose
        del pfn

    with pytest.raises(InvariantViolation, match="count"):
        await k.run(per_cpu=leak)


def test_make_kernel_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="divide"):
        make_kernel(cpus=3, nodes=2)
    with pytest.raises(ValueError, match="vm_"):
        make_kernel(min_free_kbytes=3)
    with pytest.raises(ValueError, match=r"vm\.watermark_scale_factor"):
        make_kernel(vm_watermark_scale_factor=99999)


def test_mm_seed_defaults_to_zero(mm_seed: int) -> None:
    assert mm_seed == 0
