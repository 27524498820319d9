"""``mmemu --help`` and a subcommand's parsing import only what they need: the top-level help
loads no subcommand module and none of the emulator (trio, numpy, the model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import contextlib, io, sys
from emulator.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    rc = main({argv!r})
heavy = sorted(m for m in ("trio", "numpy", "emulator.runner", "emulator.cli_run",
                           "emulator.cli_sweep", "emulator.mm.machine") if m in sys.modules)
print(rc, ",".join(heavy) or "-", "usage: mmemu" in out.getvalue())
"""


def _probe(argv: list[str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_top_level_help_imports_no_subcommand() -> None:
    rc, heavy, usage = _probe(["--help"])
    assert rc == "0" and usage == "True"
    assert heavy == "-"


def test_a_subcommand_imports_its_own_module_only() -> None:
    rc, heavy, _ = _probe(["list", "--help"])
    assert rc == "0"
    assert "emulator.cli_run" not in heavy and "emulator.cli_sweep" not in heavy
