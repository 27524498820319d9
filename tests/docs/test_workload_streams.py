"""Streams run concurrently on their own CPUs; a half-run is an error or a reported finding."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.runner import run_scenario
from emulator.scenario import Scenario, ScenarioError
from emulator.workload import AllocClass, Phase, Stream, Workload

DEFAULTS = {"memory": "256M", "cpus": 4, "duration": "2ms"}
SMALL = AllocClass(0, "GFP_KERNEL", lifetime="exp(20us)")
THP = AllocClass(9, "GFP_TRANSHUGE_LIGHT", lifetime="exp(100us)")


def _run(build, **params):
    sc = Scenario("t", "test", build, defaults={**DEFAULTS, **params})
    return run_scenario(sc, sc.resolve({}))


def test_two_streams_run_at_the_same_time() -> None:
    def build(p):
        return Workload(
            streams=[
                Stream("small", (0, 1), [Phase("small", [SMALL], rate=200_000)]),
                Stream(
                    "thp",
                    (2, 3),
                    [
                        Phase("warm", [SMALL], rate=100_000, duration=500_000),
                        Phase("thp", [THP], rate=20_000),
                    ],
                ),
            ]
        )

    r = _run(build)
    progs = r.ctx.programs
    assert all(p.allocated > 0 for p in progs)
    # CPUs 0-1 never leave their single phase; CPUs 2-3 reached their second phase
    assert [p.phase for p in progs] == ["small", "small", "thp", "thp"]
    stats = r.ctx.allocator.order_summary()
    assert stats[9]["attempts"] > 0 and stats[0]["attempts"] > 0
    # concurrent, not one after the other: both streams allocate in the first 100 us
    evs = r.ctx.sim.recorder.events()
    early = {e["actor"] for e in evs if e["event"] == "mm_page_alloc" and e["t"] < 100_000}
    assert {"cpu0", "cpu1", "cpu2", "cpu3"} <= early
    assert "phases_not_run" not in r.ctx.findings and "workload_warnings" not in r.ctx.findings


def test_a_phase_that_never_ends_before_another_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"phase 'a' never ends .* phase 'b' follows it"):
        Workload([Phase("a", [SMALL]), Phase("b", [SMALL])])
    with pytest.raises(ValueError, match="in stream 's'"):
        Workload(streams=[Stream("s", (0,), [Phase("a", [SMALL]), Phase("b", [SMALL])])])


def test_streams_may_not_share_cpus_or_name_missing_ones() -> None:
    with pytest.raises(ValueError, match="CPU 1 is in two streams"):
        Workload(
            streams=[
                Stream("x", (0, 1), [Phase("a", [SMALL])]),
                Stream("y", (1, 2), [Phase("b", [SMALL])]),
            ]
        )

    def build(p):
        return Workload(streams=[Stream("x", range(6), [Phase("a", [SMALL])])])

    with pytest.raises(ScenarioError, match=r"CPU 4, 5 named by the workload.*CPUs 0\.\.3"):
        _run(build)


def test_a_cpu_without_work_is_reported() -> None:
    def build(p):
        return Workload(streams=[Stream("x", (0, 1), [Phase("a", [SMALL], rate=50_000)])])

    r = _run(build)
    assert r.ctx.findings["workload_warnings"] == [
        "CPU 2, 3 has no work (in no stream or phase); list it in Workload(idle_cpus=...) if "
        "that is meant"
    ]

    def meant(p):
        return Workload(
            streams=[Stream("x", (0, 1), [Phase("a", [SMALL], rate=50_000)])], idle_cpus=(2, 3)
        )

    assert "workload_warnings" not in _run(meant).ctx.findings


def test_a_phase_still_running_at_the_end_names_the_phases_that_never_ran() -> None:
    def build(p):
        held = AllocClass(0, "GFP_KERNEL")  # kept forever: memory fills only slowly
        return Workload(
            [
                Phase("fill", [held], rate=10_000, stop_below_free=0.01),
                Phase("churn", [SMALL]),
            ]
        )

    r = _run(build)
    assert r.ctx.findings["phases_not_run"]["cpu0"] == (
        "still in phase 'fill' (1 of 2) at the end; never ran: 'churn'"
    )


def test_cli_refuses_a_half_run_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "half.py"
    f.write_text(
        textwrap.dedent(
            """
            from emulator.scenario import Scenario
            from emulator.workload import AllocClass, Phase, Workload

            def build(p):
                cls = AllocClass(0, "GFP_KERNEL", lifetime="exp(10us)")
                return Workload([Phase("a", [cls], cpus=(0, 1)), Phase("b", [cls], cpus=(2, 3))])

            SCENARIO = Scenario("half", "two phases meant to be concurrent", build,
                                defaults={"memory": "256M", "cpus": 4, "duration": "1ms"})
            """
        )
    )
    assert main(["run", str(f), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "phase 'a' never ends" in err and "Streams" in err
