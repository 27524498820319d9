"""`mmemu diff`: runs side by side, differences marked; a run against a saved real /proc."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emulator.cli import main

LIVE = Path(__file__).parents[1] / "mm" / "data" / "live-6.18"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("diff")
    out = []
    for name, rate in (("slow", "10000"), ("fast", "60000")):
        d = base / name
        args = [
            "run",
            "default",
            "--set",
            "memory=512M",
            "--set",
            "duration=5ms",
            "--set",
            f"rate={rate}",
            "--out",
            str(d),
            "--quiet",
            "--no-trace",
        ]
        assert main(args) == 0
        out.append(d)
    return out[0], out[1]


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["diff", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_two_runs_side_by_side(
    two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_runs
    doc = _json(capsys, str(a), str(b))
    sec = doc["sections"]
    assert {
        "fragmentation",
        "buddyinfo",
        "vmstat",
        "vmstat during the run",
        "allocations",
        "lock_stat",
        "compaction",
    } <= set(sec)
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    rows = {r["key"]: (r["a"], r["b"]) for r in sec["allocations"]}
    assert rows["order 0 attempts"] == (
        sa["allocations"]["0"]["attempts"],
        sb["allocations"]["0"]["attempts"],
    )
    assert rows["order 0 attempts"][1] > 3 * rows["order 0 attempts"][0]  # 6x the rate
    assert "order 0 latency p99 (ns)" in rows
    locks = {r["key"]: (r["a"], r["b"]) for r in sec["lock_stat"]}
    assert locks["&pcp->lock acquisitions"] == (
        sa["lock_stat"]["&pcp->lock"]["acquisitions"],
        sb["lock_stat"]["&pcp->lock"]["acquisitions"],
    )
    comp = {r["key"] for r in sec["compaction"]}
    assert "compact_stall" in comp
    # the text form marks exactly the rows whose values differ
    assert main(["diff", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    marked = [line for line in text.splitlines() if line.lstrip().startswith("* ")]
    differing = sum(r["a"] != r["b"] for rows in sec.values() for r in rows)
    assert len(marked) == differing > 0
    assert f"{differing} rows differ (marked *)" in text
    assert any("order 0 attempts" in line for line in marked)
    # a run against itself: nothing marked
    assert main(["diff", str(a), str(a), "--only-diff"]) == 0
    assert "0 rows differ" in capsys.readouterr().out


def test_run_against_a_saved_real_proc(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = tmp_path / "proc"
    shutil.copytree(LIVE, proc)
    (proc / "vmstat").write_text("nr_free_pages 1000\npgfree 123456789\ncompact_stall 42\n")
    doc = _json(capsys, str(two_runs[0]), str(proc))
    sec = doc["sections"]
    vm = {r["key"]: (r["a"], r["b"]) for r in sec["vmstat"]}
    assert vm["pgfree"][1] == 123456789 and vm["compact_stall"][1] == 42
    frag = {r["key"]: (r["a"], r["b"]) for r in sec["fragmentation"]}
    assert frag["node 0 fragmentation score"][0] is not None
    assert frag["node 0 fragmentation score"][1] is not None
    assert any(k.startswith("node 0 Normal") and v[0] is None for k, v in frag.items())
    assert main(["diff", str(two_runs[0]), str(proc)]) == 0
    assert "counts since boot" in capsys.readouterr().out


def test_bad_side_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(tmp_path), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a results folder" in err
