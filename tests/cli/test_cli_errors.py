"""Bad input is one line on stderr, exit 2, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from emulator import __version__
from emulator.cli import main
from emulator.report.results import KERNEL_FILES

SMALL = ["--set", "memory=256M", "--set", "duration=2ms", "--set", "cpus=2", "--quiet"]


def _refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], needle: str
) -> str:
    out = tmp_path / "out"
    rc = main([argv[0], *argv[1:], "--out", str(out)] if argv[0] == "run" else argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and err.startswith(f"mmemu {argv[0]}: error:"), err
    assert needle in err, err
    assert not out.exists(), "a refused input must write nothing"
    return err


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        # inputs that once gave tracebacks
        (["--set", "memory=32M"], "valid 64M..256G"),
        (["--set", "nodes=2", "--set", "memory=1G"], "more than one node needs memory above 4G"),
        (["--seed", "-1"], "valid 0..4294967295"),
        (["--set", "memory=100000T"], "valid 64M..256G"),
        # inputs that once crashed an actor or passed silently
        (["--set", "rate=nan"], "finite number in 1..10000000"),
        (["--set", "thp_weight=-1"], "thp_weight='-1': out of range: valid 0..1000"),
        (["--set", "released=2"], "released='2': out of range: valid 0..1"),
        (["--set", "rate=inf"], "finite number"),
        (["--set", "vm.lowmem_reserve_ratio=1 x"], "valid up to 4 integers, each"),
        (["--set", "vm.percpu_pagelist_high_fraction=3"], "valid 0 or 8.."),
        (["--set", "cost.lock_bounce=-5ns"], "cost.lock_bounce"),
        (["--strategy", "pct(1,-5)"], "depth"),
        (["--strategy", "pct(0)"], "seeds the strategy with 0 but the run's seed is 1"),
        (["--strategy", "fifo()"], "empty parentheses"),
        (["--strategy", "pct(1_0)"], "plain decimal integers"),
        (["--strategy", "fifo", "--perturb"], "fifo injects no delays"),
        # unbounded inputs
        (["--set", "sample=1ns"], "sample='1ns': out of range: valid 1us..3600s"),
        (["--set", "duration=10s", "--set", "sample=10us"], "at most 100000 samples"),
        (["--set", "cpus=100000"], "valid 1..256"),
        (["--set", "duration=100000s"], "valid 1us..3600s"),
        # units are required
        (["--set", "duration=2"], "a duration needs a unit: ns, us, ms or s"),
        (["--set", "memory=4096"], "a size needs a unit: K, M, G or T"),
        (["--set", "sample=5"], "a duration needs a unit"),
        (["--quantum", "1000"], "a duration needs a unit"),
    ],
)
def test_bad_parameter_values_are_refused_with_their_range(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sets: list[str], needle: str
) -> None:
    _refused(capsys, tmp_path, ["run", "default", *SMALL, *sets], needle)


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["--set", "cpus=1"], "pcp_hiding needs cpus >= 2"),
        (["--set", "order=11"], "order='11': out of range: valid 0..10"),
        (["--set", "probe_at=5"], "a duration needs a unit"),
    ],
)
def test_pcp_hiding_parameters(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sets: list[str], needle: str
) -> None:
    _refused(capsys, tmp_path, ["run", "pcp_hiding", "--quiet", *sets], needle)


def test_units_are_accepted(tmp_path: Path) -> None:
    out = tmp_path / "o"
    argv = ["run", "default", "--out", str(out), "--quiet", "--quantum", "0"]
    argv += ["--set", "memory=0.25G", "--set", "duration=1500us", "--set", "cpus=2"]
    argv += ["--set", "sample=500us", "--set", "cost.lock_bounce=40ns"]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["params"]["memory"] == 256 and s["params"]["duration"] == 1_500_000
    assert s["params"]["sample"] == 500_000 and s["params"]["cost.lock_bounce"] == 40
    assert s["virtual_ns"] == 1_500_000


def _scenario(tmp_path: Path, hook: str, body: str) -> Path:
    f = tmp_path / f"bad_{hook}.py"
    f.write_text(
        textwrap.dedent(
            f"""
            from emulator.scenario import Scenario
            from emulator.workload import AllocClass, Phase, Workload

            def build(p):
                {"raise KeyError('no such class')" if hook == "build" else "pass"}
                return Workload([Phase("s", [AllocClass(0, "GFP_KERNEL", lifetime="exp(10us)")],
                                       rate=10000.0)])

            def {hook if hook != "build" else "unused"}(p, ctx):
                {body}

            SCENARIO = Scenario("bad", "raises", build,
                                defaults={{"memory": "256M", "cpus": 2, "duration": "1ms"}},
                                **({{"{hook}": {hook}}} if "{hook}" != "build" else {{}}))
            """
        )
    )
    return f


@pytest.mark.parametrize(
    ("hook", "body", "needle"),
    [
        ("build", "pass", "build() refused the parameters: KeyError: 'no such class'"),
        ("setup", "raise IndexError('list index out of range')", "setup() failed: IndexError"),
        ("actors", "return 5", "actors() failed: TypeError"),
    ],
)
def test_scenario_hooks_that_raise_anything_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, hook: str, body: str, needle: str
) -> None:
    f = _scenario(tmp_path, hook, body)
    _refused(capsys, tmp_path, ["run", str(f), "--quiet"], needle)


def test_report_that_raises_still_writes_summary_and_kernel_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = _scenario(tmp_path, "report", "return {}['missing']")
    out = tmp_path / "out"
    rc = main(["run", str(f), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "report() failed: KeyError" in err
    s = json.loads((out / "summary.json").read_text())
    assert "report() failed" in s["report_error"] and s["reason"] == "deadline"
    for name in (*KERNEL_FILES, "schedule.json", "events.jsonl"):
        assert (out / name).is_file(), name


def test_out_with_events_jsonl_a_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "o"
    (out / "events.jsonl").mkdir(parents=True)
    rc = main(["run", "default", "--out", str(out), *SMALL])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "events.jsonl exists and is not a regular file" in err
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl"]


def test_out_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["run", "default", "--out", str(f), *SMALL]) == 2
    assert "not a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------- inspect input


def test_inspect_400_digit_count(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    counts = " ".join(["1"] * 10 + ["9" * 400])
    (tmp_path / "buddyinfo").write_text(f"Node 0, zone   Normal {counts}\n")
    rc = main(["inspect", "--proc", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "400 digits is beyond 2^63" in err


def test_inspect_huge_file_is_refused_without_reading_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    line = "Node 0, zone   Normal " + " ".join(["1"] * 11) + "\n"
    with (tmp_path / "buddyinfo").open("w") as f:
        f.write(line * (130 * 1024 * 1024 // len(line)))  # ~130 MB
    rc = main(["inspect", "--proc", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "larger than 16 MB" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_inspect_non_regular_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "buddyinfo").mkdir()
    rc = main(["inspect", "--proc", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "not a regular file" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "buddyinfo").rmdir()
    os.mkfifo(tmp_path / "buddyinfo")  # reading it would block forever
    rc = main(["inspect", "--proc", str(tmp_path)])
    assert rc == 2 and "not a regular file" in capsys.readouterr().err


def test_replay_of_a_fifo_or_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--replay", str(tmp_path), "--quiet"]) == 2
    assert "not a regular file" in capsys.readouterr().err


# ------------------------------------------------------------------------- ergonomics


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    # under pytest the pure-Python reference runs (emulator.native)
    expected = f"mmemu {__version__}, pure Python (the reference, under pytest)"
    assert capsys.readouterr().out.strip() == expected


def test_list_params_lists_ranges_sysctls_and_costs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--params", "default"]) == 0
    out = capsys.readouterr().out
    assert "memory" in out and "64M..256G" in out and "released" in out and "0..1" in out
    assert "vm.compaction_proactiveness" in out and "0..100" in out
    assert "cost.lock_bounce" in out


def test_results_folder_names_what_was_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "default", *SMALL]) == 0
    assert main(["run", "default", *SMALL, "--set", "memory=512M"]) == 0
    names = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert names == [
        "default-seed1-memory=256M-duration=2ms-cpus=2",
        "default-seed1-memory=256M-duration=2ms-cpus=2-memory=512M",
    ]


def test_summary_prints_scores_like_kernel_tools_and_setup_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    argv = ["run", "default", "--out", str(out)]
    argv += ["--set", "memory=256M", "--set", "duration=2ms", "--set", "cpus=2"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "[" not in text, "no Python lists in the summary"
    assert "Node 0, fragmentation score" in text
    assert "set-up" in text and "reason: deadline" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["setup_s"] > 0 and s["wall_s"] >= 0
