"""docs/races.md: its command prints what the page shows, its mitigation table lists every
switch with its commit, and its example test runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from emulator.mm.mitigations import MITIGATIONS

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "races.md").read_text(encoding="utf-8")


def test_the_capture_off_command_prints_the_documented_line(tmp_path: Path) -> None:
    block = DOC.split("```\n", 2)[1]
    shown = " ".join(line for line in block.splitlines()[2:] if line.strip())
    cmd = [sys.executable, "-m", "emulator", "run", "races/stolen_page", "--set", "poll=2us"]
    cmd += ["--set", "mitigation.capture=off", "--out", str(tmp_path / "r")]
    cmd += ["--quiet", "--no-events"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1
    assert " ".join(p.stderr.split()) == " ".join(shown.split())


def test_every_switch_is_in_the_table_with_its_commit() -> None:
    for m in MITIGATIONS.values():
        assert re.search(rf"\| `{m.name}` \| {m.commit} ", DOC), m.name


def test_the_example_test_runs() -> None:
    code = re.search(r"```python\n(.*?)```", DOC, re.S)
    assert code is not None
    exec(compile(code.group(1), "races.md", "exec"), {})
