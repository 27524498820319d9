"""Every benchmark script still runs against the current model, at a tiny size.

The benchmarks are run by hand and their numbers go into notes; nothing here times anything.
What this checks is that each script runs to the end and prints the JSON its docstring
promises, so an API change in the model cannot leave a benchmark broken until the next time
someone measures.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_benchmark(
    name: str, args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setattr(sys, "argv", [name, *args])
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    code: object = 0
    try:
        runpy.run_path(str(BENCHMARKS / name), run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr().out
    assert code in (0, None), out
    return json.loads(out)


def test_default_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_benchmark(
        "default_run.py", ["--json", "--duration", "2ms", "--repeat", "1"], capsys, monkeypatch
    )
    assert out["duration"] == "2ms"
    (run,) = out["runs"]
    assert run["virtual_ns"] == 2_000_000
    assert run["events"] > 0
    assert run["run_cpu_s"] > 0 and run["setup_cpu_s"] > 0


def test_default_run_from_the_setup_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--json", "--duration", "1ms", "--repeat", "1", "--no-events", "--cache"]
    out = run_benchmark("default_run.py", [*args, str(tmp_path)], capsys, monkeypatch)
    assert out["setup_cache"] is True
    assert any(tmp_path.iterdir())  # the first, unmeasured run stored the set-up


def test_alloc_path(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_benchmark(
        "alloc_path.py",
        ["--json", "--ops", "64", "--nopcp-ops", "64", "--repeat", "1"],
        capsys,
        monkeypatch,
    )
    configs = {r["config"] for r in out["runs"]}
    assert configs == {"pcp", "nopcp"}
    for r in out["runs"]:
        assert r["ops"] > 0 and r["virtual_ns"] > 0


def test_compaction(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_benchmark("compaction.py", ["--json", "--sizes", "64M"], capsys, monkeypatch)
    assert out["pages_migrated"]["64M"] > 0
    assert out["virtual_ms"]["64M"] > 0


def test_engine_vs_simpy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_benchmark(
        "engine_vs_simpy.py", ["--json", "--repeat", "1", "--only", "engine"], capsys, monkeypatch
    )
    assert out["engine"]["steps"] > 0
    assert out["engine"]["acquisitions"] > 0


def test_buddy(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_benchmark(
        "buddy.py",
        ["--json", "--pairs", "300", "--zone-mib", "64", "--build-mib", "64"],
        capsys,
        monkeypatch,
    )
    assert out["order0_pairs_per_s"] > 0 and out["mixed_ops_per_s"] > 0
    assert out["pages"] > 0 and out["memmap_array_bytes_per_page"] > 0


def test_setup_scale(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_benchmark("setup_scale.py", ["--json", "--sizes", "64M"], capsys, monkeypatch)
    (r,) = out["results"]
    assert r["size"] == "64M" and r["pages"] == 16384
    assert r["per_page_bytes"] == 16
    assert r["peak_rss_mb"] >= r["rss_before_boot_mb"] > 0
