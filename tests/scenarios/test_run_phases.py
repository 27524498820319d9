"""A Run goes through its phases in order and its observers see each one once."""

from __future__ import annotations

from pathlib import Path

from emulator.runner import Observer, Run, RunResult
from emulator.scenario import bundled_scenarios, load_scenario


class Log(Observer):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.ticks = 0

    def enter(self, stage: str) -> None:
        self.calls.append(stage)

    def attach(self, run: Run) -> None:
        # the machine is booted and set up, and no actor is spawned yet
        assert list(run.context.sim.actors) == []
        self.calls.append("attach")

    def spawn(self, run: Run) -> None:
        # the CPUs first, then the observers' actors (the run's sampler), then the kthreads
        assert [a.name for a in run.context.sim.actors] == ["cpu0", "cpu1", "sampler"]
        self.calls.append("spawn")

    def sampled(self, now_ns: int, end_ns: int) -> None:
        self.ticks += 1

    def collect(self, run: Run) -> None:
        self.calls.append("collect")

    def write(self, result: RunResult, folder: Path) -> list[Path]:
        self.calls.append("write")
        path = folder / "mine.txt"
        path.write_text(result.reason)
        return [path]

    def close(self) -> None:
        self.calls.append("close")


def test_observers_see_the_phases_in_order(tmp_path: Path) -> None:
    sc = load_scenario(bundled_scenarios()["default"])
    params = sc.resolve({"memory": "256M", "cpus": "2", "duration": "3ms", "sample": "1ms"})
    log = Log()
    run = Run(sc, params, observers=[log])
    result = run.execute()
    assert log.calls == ["boot", "set-up", "attach", "spawn", "run", "collect", "close"]
    assert log.ticks == 3  # the sampler's samples after its first, at 1, 2 and 3 ms
    assert run.write(result, tmp_path)[-1] == tmp_path / "mine.txt"
    assert (tmp_path / "mine.txt").read_text() == "deadline"
    assert result.summary().series.t_ns == [0, 1_000_000, 2_000_000, 3_000_000]
