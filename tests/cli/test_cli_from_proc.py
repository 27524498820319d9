"""``mmemu run --from-proc DIR`` and ``emulator.scenario.from_proc``: a run starts from a real
machine's free lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.mm.procfs.parse import parse_buddyinfo
from emulator.runner import run_scenario
from emulator.scenario import bundled_scenarios, from_proc, load_scenario

LIVE = Path(__file__).resolve().parents[1] / "mm" / "data" / "live-6.18"


def _free_per_order(text: str) -> list[int]:
    snap = parse_buddyinfo(text)
    return [sum(z.nr_free[o] << o for z in snap.zones) for o in range(11)]


def test_run_from_proc_starts_from_the_real_free_lists(tmp_path: Path) -> None:
    out = tmp_path / "o"
    argv = ["run", "zone_lock_storm", "--from-proc", str(LIVE), "--out", str(out), "--quiet"]
    assert main([*argv, "--set", "duration=100us", "--set", "sample=10us"]) == 0
    s = json.loads((out / "summary.json").read_text())
    real = _free_per_order((LIVE / "buddyinfo").read_text())
    assert s["timeseries"]["t_ns"][0] == 0
    assert s["timeseries"]["free_pages_per_order"][0] == real
    assert s["params"]["nodes"] == 1 and s["scenario"] == "zone_lock_storm-from-proc"


def test_from_proc_scenario_api() -> None:
    sc = from_proc(load_scenario(bundled_scenarios()["zone_lock_storm"]), LIVE)
    res = run_scenario(sc, sc.resolve({"duration": "50us", "cpus": "2"}), record=False)
    assert res.ctx.samples["free_pages_per_order"][0] == _free_per_order(
        (LIVE / "buddyinfo").read_text()
    )


def test_from_proc_bad_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(["run", "--from-proc", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--from-proc" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
