"""Progress from the first second: the set-up has its own progress line before
the run's bar of virtual time appears; both are drawn with rich."""

from __future__ import annotations

import io

from rich.console import Console

from emulator.cli_progress import Progress
from emulator.runner import Observer, run_scenario
from emulator.scenario import bundled_scenarios, load_scenario


def test_setup_stages_show_before_the_run_bar() -> None:
    buf = io.StringIO()
    progress = Progress(enabled=True)
    assert progress._rich is not None
    progress._rich.live.console = Console(file=buf, force_terminal=True, width=100)
    seen: list[str] = []

    class Display(Observer):
        def enter(self, stage: str) -> None:
            seen.append(stage)
            progress.stage(stage)
            progress._rich.refresh()  # type: ignore[union-attr]
            seen.append(buf.getvalue())

        def sampled(self, now_ns: int, end_ns: int) -> None:
            progress.advance(now_ns, end_ns)

    sc = load_scenario(bundled_scenarios()["default"])
    params = sc.resolve({"memory": "256M", "cpus": "2", "duration": "2ms", "sample": "100us"})
    with progress:
        res = run_scenario(sc, params, record=False, observers=[Display()])
    assert [s for s in seen if s in ("boot", "set-up", "run")] == ["boot", "set-up", "run"]
    at_setup = seen[seen.index("set-up") + 1]
    assert "scenario set-up" in at_setup and "running" not in at_setup
    assert res.setup_s > 0 and res.reason == "deadline"


def test_disabled_progress_is_silent() -> None:
    progress = Progress(enabled=False)
    with progress:
        progress.stage("boot")
        progress.advance(1, 2)
