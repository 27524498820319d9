"""mmemu sweep: a grid of parameters and seeds in parallel into one table (CSV and JSON), the
same whatever runs it (in process, worker processes, a Dask LocalCluster); bad input refused
before anything runs; mmemu plot --sweep reads the table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.explore.executor import ItemError
from emulator.explore.sweep import grid, parse_seeds, parse_sets, run_point

SMALL = ["--set", "memory=128M", "--set", "cpus=2", "--set", "duration=2ms", "--quiet"]


def _table(out: Path) -> list[dict]:
    return json.loads((out / "sweep.json").read_text())["runs"]


def test_sweep_writes_one_row_per_point_the_same_in_process_and_in_workers(tmp_path: Path) -> None:
    args = ["sweep", "default", *SMALL, "--set", "released=0.1,0.5", "--seeds", "3..4"]
    assert main([*args, "--jobs", "1", "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    one, two = _table(tmp_path / "one"), _table(tmp_path / "two")
    assert one == two
    assert [(r["overrides"]["released"], r["summary"]["seed"]) for r in one] == [
        ("0.1", 3),
        ("0.1", 4),
        ("0.5", 3),
        ("0.5", 4),
    ]
    assert all(r["summary"]["reason"] == "deadline" for r in one)
    # seeds and values change what happens: not four copies of one run
    assert len({json.dumps(r["summary"]["vmstat_delta"], sort_keys=True) for r in one}) > 1
    with (tmp_path / "one" / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["param.released"] for r in rows] == ["0.1", "0.1", "0.5", "0.5"]
    assert rows[0]["reason"] == "deadline" and int(rows[0]["allocations.0.attempts"]) > 0


def test_plot_reads_a_sweep_table(tmp_path: Path) -> None:
    out = tmp_path / "s"
    args = ["sweep", "default", *SMALL, "--set", "released=0.1,0.9", "--seeds", "1,2"]
    assert main([*args, "--jobs", "1", "--out", str(out)]) == 0
    png = tmp_path / "p.png"
    assert (
        main(
            [
                "plot",
                "--sweep",
                str(out),
                "--x",
                "released",
                "--y",
                "vmstat_delta.pgfree",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    assert png.stat().st_size > 1000


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--set", "memory=12X"], "memory"),
        (["--seeds", "5..1"], "--seeds"),
        (["--seeds", "0..99999999999"], "--seeds"),
        (["--set", "released=0.1,,0.2"], "empty value"),
        (["--set", "bogus_param=1,2"], "bogus_param"),
        (["--jobs", "0"], "--jobs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    out = tmp_path / "s"
    assert main(["sweep", "default", *SMALL, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmemu sweep: error:") and needle in err[0], err
    assert not out.exists()


def test_grid_and_parsers() -> None:
    assert parse_seeds("2..4") == [2, 3, 4]
    assert parse_seeds("7") == [7]
    assert parse_sets(["a=1,2", "b=x"]) == {"a": ["1", "2"], "b": ["x"]}
    points = grid("s.py", {"a": ["1", "2"], "b": ["x"]}, [5, 6])
    assert [dict(p.overrides) for p in points] == [
        {"a": "1", "b": "x", "seed": "5"},
        {"a": "1", "b": "x", "seed": "6"},
        {"a": "2", "b": "x", "seed": "5"},
        {"a": "2", "b": "x", "seed": "6"},
    ]
    assert [p.index for p in points] == [0, 1, 2, 3]


def test_dask_local_cluster_gives_the_local_results(tmp_path: Path) -> None:
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (the mmemu[cluster] extra)"
    )
    from emulator.explore.executor import run_many
    from emulator.explore.executor_dask import run_on_cluster
    from emulator.scenario import find_scenario

    path = str(find_scenario("default"))
    fixed = {"memory": "128M", "cpus": "2", "duration": "2ms"}
    points = grid(path, {"released": ["0.1", "0.5"]}, [1, 2], fixed)
    local = dict(run_many(run_point, points, jobs=1))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        seen: list[tuple[int, int]] = []
        remote = dict(run_on_cluster(run_point, points, client, lambda d, t: seen.append((d, t))))
        # an item that raises on a worker comes back as an ItemError, like a local one
        bad = list(run_on_cluster(run_point, [points[0].__class__(0, "/no/such.py", {})], client))
    assert remote == local
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    assert isinstance(bad[0][1], ItemError) and bad[0][1].kind == "raised"
