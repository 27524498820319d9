"""THP faults against Linux 6.12.0 mm/huge_memory.c (vma_thp_gfp_mask, defrag_show/store,
THP_FAULT_ALLOC / THP_FAULT_FALLBACK) and mm/mempolicy.c (alloc_pages_mpol's hugepage rule):
the gfp mask of every defrag mode and the setting. (How a fault goes through the slow path
is in test_slowpath_decisions.py, which has the scripted compactor.)
"""

from __future__ import annotations

import pytest

from emulator.mm.huge_memory import (
    defrag_show,
    vma_thp_gfp_mask,
)
from emulator.mm.huge_memory_sysctl import DEFRAG_MODES
from emulator.mm.machine import Machine
from emulator.mm.page_alloc import gfp as G
from emulator.scenario import ScenarioError, load_scenario
from emulator.scenario import bundled_scenarios as bundled

LIGHT = G.GFP_TRANSHUGE_LIGHT


@pytest.mark.parametrize(
    ("mode", "madvised", "expected"),
    [
        ("always", True, G.GFP_TRANSHUGE),
        ("always", False, G.GFP_TRANSHUGE | G.__GFP_NORETRY),
        ("defer", True, LIGHT | G.__GFP_KSWAPD_RECLAIM),
        ("defer", False, LIGHT | G.__GFP_KSWAPD_RECLAIM),
        ("defer+madvise", True, LIGHT | G.__GFP_DIRECT_RECLAIM),
        ("defer+madvise", False, LIGHT | G.__GFP_KSWAPD_RECLAIM),
        ("madvise", True, LIGHT | G.__GFP_DIRECT_RECLAIM),
        ("madvise", False, LIGHT),
        ("never", True, LIGHT),
        ("never", False, LIGHT),
    ],
)
def test_vma_thp_gfp_mask(mode: str, madvised: bool, expected: int) -> None:
    assert vma_thp_gfp_mask(mode, madvised) == expected


def test_gfp_values_as_tracepoints_print_them() -> None:
    # madvise + MADV_HUGEPAGE is exactly GFP_TRANSHUGE; always without it adds NORETRY
    assert vma_thp_gfp_mask("madvise", True) == G.GFP_TRANSHUGE == 0x1C24CA
    assert G.format_gfp(vma_thp_gfp_mask("always", False)) == "GFP_TRANSHUGE|__GFP_NORETRY"
    assert G.format_gfp(vma_thp_gfp_mask("madvise", False)) == "GFP_TRANSHUGE_LIGHT"


def test_defrag_setting_default_show_and_bad_value() -> None:
    m = Machine.simple(Normal=4096)
    assert m.sysctl.get("transparent_hugepage.defrag") == "madvise"
    assert defrag_show("madvise") == "always defer defer+madvise [madvise] never"
    assert tuple(DEFRAG_MODES) == ("always", "defer", "defer+madvise", "madvise", "never")
    m.sysctl.set("transparent_hugepage/defrag", "defer+madvise")
    assert m.transparent_hugepage_defrag == "defer+madvise"
    with pytest.raises(ValueError, match=r"valid always, defer, defer\+madvise, madvise, never"):
        m.sysctl.set("transparent_hugepage.defrag", "sometimes")
    assert m.transparent_hugepage_defrag == "defer+madvise"  # nothing changed


def test_defrag_setting_through_scenario_params() -> None:
    sc = load_scenario(bundled()["default"])
    p = sc.resolve({"transparent_hugepage.defrag": "always"})
    assert p.sysctls["transparent_hugepage.defrag"] == "always"
    from emulator.runner import build_context

    ctx = build_context(sc, p)
    assert ctx.machine.transparent_hugepage_defrag == "always"
    with pytest.raises(ScenarioError, match=r"transparent_hugepage\.defrag='often' is invalid"):
        build_context(sc, sc.resolve({"transparent_hugepage.defrag": "often"}))


def test_thisnode_zonelist_is_the_local_node_only() -> None:
    """node_zonelist -> gfp_zonelist: __GFP_THISNODE takes ZONELIST_NOFALLBACK, so the THP
    fault's first, local-node attempt never falls back to another node."""
    from emulator.engine import Sim
    from emulator.mm.page_alloc.allocator import PageAllocator

    m = Machine.x86_64(8192, nodes=2)
    pa = PageAllocator(m, Sim("fifo"), cpus_per_node=1)
    cpu1 = pa.cpus[1]
    plain = pa.prepare_alloc_pages(cpu1, G.GFP_TRANSHUGE)[0]
    local = pa.prepare_alloc_pages(cpu1, G.GFP_TRANSHUGE | G.__GFP_THISNODE)[0]
    assert {z.node for z in plain.zonelist} == {0, 1}
    assert {z.node for z in local.zonelist} == {1}
    assert local.preferred_zoneref is plain.preferred_zoneref
