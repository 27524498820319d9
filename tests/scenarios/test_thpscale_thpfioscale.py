"""The capture and watermark-boost scenarios reproduce the direction of their published effects
on a small fixed seed: thpscale with capture (5e1f0f098b46) has fewer failed direct compactions
than without; thpfioscale with vm.watermark_boost_factor=15000 (1c30844d2dfe) has fewer
fragmenting fallbacks than with 0, and summary.json's extfrag counter agrees with the
scenario's start-up/steady split."""

from __future__ import annotations

from typing import Any

from emulator.runner import run_scenario
from emulator.scenario import bundled_scenarios, load_scenario


def _run(name: str, **overrides: Any) -> dict[str, Any]:
    sc = load_scenario(bundled_scenarios()[name])
    res = run_scenario(sc, sc.resolve({"seed": 1, **overrides}), record=False)
    findings = res.ctx.findings
    assert isinstance(findings, dict)
    return findings


def test_thpscale_capture_turns_failed_compactions_into_successes() -> None:
    on = _run("thpscale")
    off = _run("thpscale", **{"mitigation.capture": "off"})
    assert on["faults"] == off["faults"] > 0
    assert on["compact_stall"] > 0 and off["compact_stall"] > 0
    # capture: the compactor gets the block it freed; without it, others take some of them
    assert on["compact_fail"] < off["compact_fail"]
    assert on["compact_success_pct"] > off["compact_success_pct"]


def test_thpfioscale_boost_cuts_fragmenting_fallbacks() -> None:
    boosted = _run("thpfioscale")
    plain = _run("thpfioscale", **{"vm.watermark_boost_factor": 0})
    assert boosted["watermark_boost_factor"] == 15000 and plain["watermark_boost_factor"] == 0
    assert 0 < boosted["fragmenting_fallbacks"] < plain["fragmenting_fallbacks"]
    assert boosted["steady"]["total"] < plain["steady"]["total"]
    for f in (boosted, plain):
        assert f["startup"]["total"] + f["steady"]["total"] == f["fragmenting_fallbacks"]
