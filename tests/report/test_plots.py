"""`mmemu plot` / `run --plots`: PNG files with real content (size, axes, series)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emulator.cli import main
from emulator.report.plots import PLOTS, metric_of


def _meta(path: Path) -> tuple[dict, list[dict], np.ndarray]:
    with Image.open(path) as im:
        text = dict(im.text)
        pixels = np.asarray(im.convert("L"))
    return json.loads(text["mmemu:series"]), json.loads(text["mmemu:axes"]), pixels


def _not_blank(pixels: np.ndarray) -> None:
    assert pixels.shape[0] >= 400 and pixels.shape[1] >= 800
    # a drawn figure has many grey levels, not a white page
    assert len(np.unique(pixels)) > 20
    assert (pixels < 128).mean() > 0.005


def test_run_plots_writes_every_png(small_run: Path) -> None:
    summary = json.loads((small_run / "summary.json").read_text())
    samples = len(summary["timeseries"]["t_ns"])
    for name in PLOTS:
        path = small_run / "plots" / name
        assert path.stat().st_size > 15_000, name
        series, axes, pixels = _meta(path)
        _not_blank(pixels)
        assert all(a["ylabel"] for a in axes) and axes[-1]["xlabel"], (name, axes)
        if name == "fragmentation.png":
            assert series == {"node0": samples, "low": 80, "high": 90, "kcompactd_passes": 0}
            assert axes[0]["lines"] == 3  # the score and the two marks
        elif name == "free_blocks_heatmap.png":
            assert series == {"orders": 11, "samples": samples}
        elif name == "alloc_latency_cdf.png":
            allocs = summary["allocations"]
            assert series == {f"order{o}": s["attempts"] for o, s in allocs.items()}
            assert axes[0]["lines"] == len(allocs)
        elif name == "zone_lock_wait.png":
            # the lock events feed the trace, not events.jsonl: count its zone->lock waits
            trace = json.loads((small_run / "trace.json").read_text())["traceEvents"]
            waits = sum(
                e.get("cat") == "lock_wait" and e["args"]["lock"].startswith("zone->lock")
                for e in trace
            )
            assert sum(series.values()) == waits
        elif name == "compaction_outcomes.png":
            fails = {o: s["failures"] for o, s in summary["allocations"].items() if s["failures"]}
            assert {k: v for k, v in series.items() if k.startswith("fail:")} == {
                f"fail:order{o}": n for o, n in fails.items()
            }
            assert len(axes) == 2


def test_plot_cli_and_sweep(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plot", str(small_run), "--out", str(tmp_path / "p")]) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted(PLOTS)
    runs = []
    for rate in ("5000", "20000"):
        for seed in ("1", "2"):
            out = tmp_path / f"r{rate}-{seed}"
            args = [
                "run",
                "default",
                "--set",
                "memory=256M",
                "--set",
                "duration=3ms",
                "--set",
                f"rate={rate}",
                "--seed",
                seed,
                "--out",
                str(out),
                "--quiet",
                "--no-trace",
            ]
            assert main(args) == 0
            runs.append(str(out))
    png = tmp_path / "sweep.png"
    assert (
        main(
            [
                "plot",
                "--sweep",
                *runs,
                "--x",
                "rate",
                "--y",
                "allocations.0.attempts",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    series, axes, pixels = _meta(png)
    assert series == {"points": 4, "x": "rate", "y": "allocations.0.attempts"}
    assert axes[0]["xlabel"] == "rate" and axes[0]["lines"] == 1
    _not_blank(pixels)
    assert main(["plot", "--sweep", *runs, "--x", "nope", "--y", "vmstat.pgfree"]) == 2
    assert "parameter 'nope'" in capsys.readouterr().err


def test_metric_paths() -> None:
    s = {
        "vmstat_delta": {"pgfree": 3},
        "params": {"vm.compaction_proactiveness": 20},
        "lock_stat": {"&zone->lock": {"contentions": 7}},
    }
    assert metric_of(s, "vmstat_delta.pgfree") == 3
    assert metric_of(s, "vmstat_delta.compact_stall") == 0  # a counter that stayed 0
    assert metric_of(s, "params.vm.compaction_proactiveness") == 20
    assert metric_of(s, "lock_stat.&zone->lock.contentions") == 7
    with pytest.raises(KeyError):
        metric_of(s, "lock_stat.nope.contentions")
