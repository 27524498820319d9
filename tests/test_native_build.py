"""The compiled build (:mod:`emulator.native`, mypyc) against the pure-Python reference: the
same runs give byte-identical events, schedule, trace and kernel files, as the two engine
drivers do.

The runs are subprocesses, one with ``MMEMU_PURE_PYTHON=1`` and one with ``=0`` (the build).
Without a compiled build of these sources the comparison is skipped, saying why; under CI
(``CI`` set) on a machine that can compile it fails instead, so CI always compares.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator import native
from emulator.report.results import KERNEL_FILES

#: (scenario, duration, strategy): the allocator and pcp paths, a random schedule, and
#: compaction with migration and kcompactd
RUNS = [
    ("default", "20ms", "fifo"),
    ("default", "20ms", "random"),
    ("compaction_test", "120ms", "random"),
]
#: wall-clock fields, the only ones that may differ
WALL = ("wall_s", "setup_s")


def _mmemu(args: list[str], pure: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, native.ENV: "1" if pure else "0", "MMEMU_CACHE": "off"}
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args], env=env, capture_output=True, text=True
    )


def _require_build() -> None:
    if native.fresh_build() is not None:
        return
    reason = native.why_not()
    if reason is None and os.environ.get("CI"):
        pytest.fail(
            "this machine can compile but there is no compiled build of these sources "
            "(python3 dev.py builds it; python -m emulator.compile)"
        )
    pytest.skip(
        f"no compiled build of these sources ({reason or 'run python -m emulator.compile'})"
    )


def test_version_says_which_build() -> None:
    pure = _mmemu(["--version"], pure=True)
    assert pure.returncode == 0
    assert pure.stdout.strip().endswith("pure Python (MMEMU_PURE_PYTHON=1)")
    _require_build()
    compiled = _mmemu(["--version"], pure=False)
    assert compiled.returncode == 0
    assert compiled.stdout.strip().endswith(f"compiled (mypyc, {len(native.COMPILED)} modules)")


@pytest.mark.parametrize(("scenario", "duration", "strategy"), RUNS)
def test_compiled_and_pure_give_the_same_files(
    scenario: str, duration: str, strategy: str, tmp_path: Path
) -> None:
    _require_build()
    outs: dict[bool, Path] = {}
    for pure in (True, False):
        out = outs[pure] = tmp_path / ("pure" if pure else "compiled")
        args = ["run", scenario, "--out", str(out), "--seed", "7", "--quiet"]
        args += ["--strategy", strategy, "--set", f"duration={duration}"]
        proc = _mmemu(args, pure)
        assert proc.returncode == 0, proc.stderr
    assert len((outs[True] / "events.jsonl").read_bytes().splitlines()) > 1000
    for name in ("events.jsonl", "trace.json", "schedule.json", *KERNEL_FILES):
        assert (outs[True] / name).read_bytes() == (outs[False] / name).read_bytes(), name
    summaries = [json.loads((outs[p] / "summary.json").read_text()) for p in (True, False)]
    for summary in summaries:
        for key in WALL:
            summary.pop(key)
    assert summaries[0] == summaries[1]
