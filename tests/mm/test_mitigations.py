"""Kernel mitigations as switches: the table names each one's commit and function, a run sets
them with ``mitigation.NAME=on|off`` (all on by default, 6.12), bad names and values are one
line and exit 2, ``mmemu list --params`` shows them, and ``capture`` off takes the code path
from before 5e1f0f098b46 (no capture_control: the compactor's block goes to the free list)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.engine import Sim
from emulator.mm.compaction.compact import try_to_compact_pages
from emulator.mm.compaction.control import CompactPriority, CompactResult
from emulator.mm.initstate import free_k_of_n
from emulator.mm.machine import Machine
from emulator.mm.memmap import PG_ISOLATED
from emulator.mm.mitigations import MITIGATIONS, Mitigations, check_mitigation
from emulator.mm.page_alloc.allocator import PageAllocator
from emulator.mm.page_alloc.gfp import GFP_TRANSHUGE, GFP_TRANSHUGE_LIGHT
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.scenario import ScenarioError, find_scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]

REQUIRED = {
    "capture",
    "kswapd_wakes_kcompactd",
    "boost_wakes_kcompactd",
    "alloc_nofragment",
    "skip_claim",
    "async_contended_abort",
    "drain_after_reclaim",
    "pcp_high_autotune",
    "proactive_backoff",
}


def test_table_names_commit_function_and_off_effect() -> None:
    assert set(MITIGATIONS) >= REQUIRED
    assert MITIGATIONS["capture"].commit == "5e1f0f098b46"
    assert MITIGATIONS["skip_claim"].commit == "e380bebe4771"
    for m in MITIGATIONS.values():
        assert re.fullmatch(r"[0-9a-f]{12}", m.commit), m
        assert m.subject and m.summary and m.off_effect
        assert re.search(r"mm/\w+\.c: \w+", m.kernel_function), m


def test_values_default_on_and_parse_like_switches() -> None:
    assert all(Mitigations().on(n) for n in MITIGATIONS)
    off = Mitigations.from_values({"mitigation.capture": "off", "skip_claim": False})
    assert not off.on("capture") and not off.on("skip_claim") and off.on("alloc_nofragment")
    assert off.as_dict()["capture"] == "off"
    for word, val in (("on", True), ("OFF", False), ("1", True), ("false", False)):
        assert check_mitigation("mitigation.capture", word) is val
    with pytest.raises(ValueError, match="expected on or off"):
        check_mitigation("capture", "maybe")
    with pytest.raises(ValueError, match="valid: capture,"):
        check_mitigation("mitigation.captur", "off")
    with pytest.raises(KeyError):
        Mitigations().on("captur")


def test_scenario_parameters_reach_the_machine() -> None:
    sc = load_scenario(find_scenario("default"))
    p = sc.resolve({"mitigation.capture": "off"})
    assert p["mitigation.capture"] is False and not p.mitigations.on("capture")
    assert sc.resolve().mitigations == Mitigations()
    with pytest.raises(ScenarioError, match=r"mitigation\.nope.*valid: capture"):
        sc.resolve({"mitigation.nope": "off"})


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("mitigation.nope=off", "unknown mitigation; valid: capture, "),
        ("mitigation.capture=2", "expected on or off"),
    ],
)
def test_cli_refuses_bad_switches_in_one_line(setting: str, message: str) -> None:
    cmd = [sys.executable, "-m", "emulator", "run", "default", "--set", setting]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and message in p.stderr


def test_list_params_shows_every_switch_with_its_commit() -> None:
    cmd = [sys.executable, "-m", "emulator", "list", "--params", "default"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    for m in MITIGATIONS.values():
        assert f"mitigation.{m.name}" in text
        assert m.commit in text


async def test_capture_off_is_the_pre_commit_path() -> None:
    """The capture race of test_compaction_capture.py, switched by the parameter:
    on, the compactor gets its block; off, the block goes to the free list and the CPU
    faulting THPs at the same time takes it."""
    results = {}
    for on in (True, False):
        m, _, out = await _switched_race(on)
        results[on] = (m, out)
    m_on, out_on = results[True]
    assert out_on["result"] == CompactResult.COMPACT_SUCCESS
    page = out_on["page"]
    assert isinstance(page, int) and page >= 0 and m_on.memmap.state[page] == PG_ISOLATED
    _, out_off = results[False]
    assert out_off["page"] == -1 and out_off["result"] == CompactResult.COMPACT_SUCCESS
    assert page in out_off["other"]


async def _switched_race(capture: bool):
    m = Machine.simple(DMA32=4096, Normal=65536)
    sim = Sim("fifo", seed=0, strict=True)
    pa = PageAllocator(m, sim, cpus_per_node=2)
    for z in pa.zones:
        free_k_of_n(z, 1, 2)  # every other page free: no free block above order 0
    adopt_allocated(pa)
    m.mitigations = Mitigations(frozenset() if capture else frozenset({"capture"}))
    compactor_cpu, other_cpu = pa.cpus
    ac, alloc_flags, _ = pa.prepare_alloc_pages(compactor_cpu, GFP_TRANSHUGE)
    out: dict[str, object] = {"other": []}
    done = False

    async def compactor() -> None:
        nonlocal done
        r, page = await try_to_compact_pages(
            pa, compactor_cpu, GFP_TRANSHUGE, 9, alloc_flags, ac, CompactPriority.COMPACT_PRIO_ASYNC
        )
        out["result"], out["page"] = r, page
        done = True

    async def other() -> None:
        while not done:
            pfn = await pa.alloc_pages(other_cpu, 9, GFP_TRANSHUGE_LIGHT)
            if pfn >= 0:
                out["other"].append(pfn)  # type: ignore[attr-defined]
            await sim.delay(2_000)

    sim.spawn("compactor", compactor)
    sim.spawn("other", other)
    await sim.run()
    pa.check()
    return m, pa, out


def _kernel(off: frozenset[str]) -> tuple[Machine, Sim, PageAllocator]:
    m = Machine.simple(DMA32=8192, Normal=65536)
    m.mitigations = Mitigations(off)
    sim = Sim("fifo", seed=0, strict=True)
    return m, sim, PageAllocator(m, sim, cpus_per_node=2)


def test_alloc_nofragment_off_drops_the_flag() -> None:
    from emulator.mm.page_alloc.alloc_flags import ALLOC_NOFRAGMENT
    from emulator.mm.page_alloc.gfp import GFP_KERNEL

    for off, expect in ((frozenset(), True), (frozenset({"alloc_nofragment"}), False)):
        _, _, pa = _kernel(off)
        _, flags, _ = pa.prepare_alloc_pages(pa.cpus[0], GFP_KERNEL)
        assert bool(flags & ALLOC_NOFRAGMENT) is expect


def test_pcp_high_autotune_off_fixes_high_at_high_min() -> None:
    _, _, pa = _kernel(frozenset())
    pcp = pa.cpus[0].pcp[-1]
    assert pcp.high_max > pcp.high_min
    _, _, pa = _kernel(frozenset({"pcp_high_autotune"}))
    pcp_off = pa.cpus[0].pcp[-1]
    assert pcp_off.high_max == pcp_off.high_min == pcp.high_min
