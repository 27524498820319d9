"""docs/tutorial.md: every fenced command runs, in order, in a fresh folder (shorter runs).

The test writes the tutorial's files (``#### `name` `` followed by a python block), then runs
each line of every ``sh`` block with bash, ``mmemu`` and ``pytest`` taken from this
interpreter's environment. ``mmemu run default`` gets ``--set duration=20ms --set memory=1G``
so the whole tutorial runs in well under a minute; everything else runs as written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "tutorial.md"
FILE_BLOCK = re.compile(r"^#### `([\w./-]+)`\n\n```python\n(.*?)^```", re.M | re.S)
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
SHORT = " --set duration=20ms --set memory=1G"
#: the THP storm of section 7: fewer faults, the run just past the storm's start
SHORT_STORM = " --set faults=16 --set duration=650ms"


def commands(text: str) -> list[str]:
    out = []
    for block in SH_BLOCK.findall(text):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def shorten(cmd: str) -> str:
    head, sep, tail = cmd.partition(" |")
    if head.startswith("mmemu run default"):
        head += SHORT
    elif head.startswith("mmemu run thp_fault_storm"):
        head += SHORT_STORM
    return head + sep + tail


def test_tutorial_commands_run(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, body in FILE_BLOCK.findall(text):
        (tmp_path / name).write_text(body, encoding="utf-8")
    cmds = commands(text)
    assert any(c.startswith("mmemu run default") for c in cmds)
    assert {"mmemu trace", "mmemu compactsnoop", "mmemu plot", "mmemu diff", "pytest -q"} <= {
        " ".join(c.split()[:2]) for c in cmds
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    outputs = {}
    for cmd in cmds:
        proc = subprocess.run(
            ["bash", "-c", shorten(cmd)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
        outputs[cmd] = proc.stdout
    first = tmp_path / "results" / "first"
    for name in ("summary.json", "buddyinfo", "trace.json", "schedule.json"):
        assert (first / name).exists(), name
    assert len(list((first / "plots").glob("*.png"))) == 5
    assert json.loads((first / "trace.json").read_text())["traceEvents"]
    trace_cmd = next(c for c in cmds if c.startswith("mmemu trace"))
    assert len(outputs[trace_cmd].splitlines()) == 5
    assert " mm_page_alloc: " in outputs[trace_cmd].splitlines()[1]
    snoop = next(c for c in cmds if c.startswith("mmemu compactsnoop"))
    assert outputs[snoop].split()[:3] == ["COMM", "PID", "NODE"]
    assert "rows differ" in outputs[next(c for c in cmds if c.startswith("mmemu diff"))]
    # section 7 answers its question: the order-9 split, per CPU, and the two runs side by side
    lat = [c for c in cmds if c.startswith("mmemu latency")]
    assert len(lat) == 2
    for part in ("zone_lock_wait", "zone_lock_hold", "compact_scan", "compact_migrate"):
        assert part in outputs[lat[0]], part
    assert "interleaving" in outputs[lat[0]] and "cost table" in outputs[lat[0]]
    assert "by cpu" in outputs[lat[1]] and "cpu7" in outputs[lat[1]]
    storm = next(c for c in cmds if c.startswith("mmemu diff results/thp"))
    assert "latency parts" in outputs[storm] and "zone_lock_wait share %" in outputs[storm]
    p20 = json.loads((tmp_path / "results" / "thp-p20" / "summary.json").read_text())
    assert p20["kcompactd"][0]["proactive_passes"]
    mine = json.loads((tmp_path / "results" / "mine" / "summary.json").read_text())
    assert mine["params"]["rate"] == 20000
    assert "phases_not_run" not in mine.get("findings", {})
