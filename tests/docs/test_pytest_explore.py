"""``@pytest.mark.explore`` runs a body under many schedules, writes a failing one to a file,
and ``pytest --mm-replay FILE`` reruns exactly that schedule; ``kthreads=True`` and
``wait_until`` (run as a user would: pytest in a project folder outside the repository)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from emulator.testing import ConditionTimeout, make_kernel

SUITE = """
import pytest
from pathlib import Path

from emulator.mm.page_alloc.gfp import GFP_KERNEL

RUNS = Path(__file__).with_name("runs.txt")


@pytest.mark.explore(runs=7, strategy="pct")
async def test_counts_its_runs(mm_kernel):
    k = mm_kernel(memory="256M", cpus=2)
    with RUNS.open("a") as f:
        f.write(type(k.sim.strategy).__name__ + " " + str(k.sim.strategy.seed) + "\\n")


@pytest.mark.explore(runs=30, strategy="random")
async def test_cpu0_always_wins(mm_kernel):
    k = mm_kernel(memory="256M", cpus=2)
    pa = k.allocator
    order = []

    async def grab(cpu):
        await pa.alloc_pages(cpu, 9, GFP_KERNEL)
        order.append(cpu.id)

    await k.run(per_cpu=grab)
    assert order[0] == 0, f"cpu{order[0]} allocated first"
"""


def _pytest(project: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_explore_marker_reports_a_failing_schedule_and_replays_it() -> None:
    with tempfile.TemporaryDirectory(prefix="mmemu-explore-project-") as tmp:
        project = Path(tmp)
        (project / "test_suite.py").write_text(SUITE, encoding="utf-8")
        rc, out = _pytest(project)
        assert rc == 1, out
        assert "1 failed, 1 passed" in out, out
        # the passing body ran once per schedule, each a PCT seeded with its run's seed
        runs = (project / "runs.txt").read_text().split("\n")[:-1]
        assert runs == [f"PCT {i}" for i in range(7)]
        assert "explore: run " in out and "(schedule seed " in out
        files = list((project / ".mmemu" / "replays").glob("*.json"))
        assert len(files) == 1
        doc = json.loads(files[0].read_text())
        assert doc["test"] == "test_suite.py::test_cpu0_always_wins"
        assert "cpu1 allocated first" in doc["error"]
        assert f"replay: pytest --mm-replay {files[0]}" in out
        # the replay runs that test alone, on the recorded decisions: the same failure
        rc, out = _pytest(project, "--mm-replay", str(files[0]))
        assert rc == 1, out
        assert "1 failed, 1 deselected" in out, out
        assert "cpu1 allocated first" in out
        assert "made other decisions" not in out
        # a file that is not a replay is one clear usage error
        (project / "bad.json").write_text("{}")
        rc, out = _pytest(project, "--mm-replay", "bad.json")
        assert rc == 4 and "not a 'mmemu-pytest-replay/1' file" in out, out


async def test_kthreads_starts_kswapd_and_kcompactd_and_wait_until_waits_in_virtual_time() -> None:
    k = make_kernel(memory="256M", cpus=2, kthreads=True)
    names = {a.name for a in k.sim.actors}
    assert {"kswapd0", "kcompactd0"} <= names and k.kthreads is not None
    assert make_kernel(memory="256M", cpus=2).kthreads is None
    seen: dict[str, int] = {}

    async def waiter() -> None:
        seen["held_at"] = await k.wait_until(
            lambda: k.sim.now >= 5_000, timeout_ns=100_000, poll_ns=1_000
        )
        with pytest.raises(ConditionTimeout, match="never did not hold within 3000 ns"):
            await k.wait_until(lambda: False, timeout_ns=3_000, what="never")
        seen["gave_up_at"] = k.sim.now

    await k.run(("waiter", waiter), until=1_000_000)
    assert seen == {"held_at": 5_000, "gave_up_at": 8_000}
