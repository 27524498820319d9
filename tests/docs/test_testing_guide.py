"""docs/testing.md's example suite runs with pytest from a folder outside the repository.

This is what a user does: copy the files into an empty project (no conftest.py, no trio_mode
setting, no path to this repository) and run pytest. The mmemu plugin, loaded from its entry
point, must provide the fixtures and run the async tests under trio.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "testing.md"
FILE_BLOCK = re.compile(r"^#### `([\w./-]+)`\n\n```python\n(.*?)^```", re.M | re.S)


def suite_files() -> dict[str, str]:
    return dict(FILE_BLOCK.findall(DOC.read_text(encoding="utf-8")))


def test_the_doc_holds_a_complete_suite() -> None:
    files = suite_files()
    assert set(files) == {
        "test_allocator.py",
        "my_scenario.py",
        "test_scenario.py",
        "test_race.py",
    }
    for name, text in files.items():
        compile(text, name, "exec")


def test_example_suite_passes_outside_the_repository() -> None:
    with tempfile.TemporaryDirectory(prefix="mmemu-user-project-") as tmp:
        project = Path(tmp)
        assert ROOT not in project.parents
        for name, text in suite_files().items():
            (project / name).write_text(text, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.pop("PYTHONPATH", None)

        def pytest(*args: str) -> tuple[int, str]:
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            return proc.returncode, proc.stdout + proc.stderr

        rc, out = pytest("--mm-seed", "5")
        assert rc == 0, out
        assert "5 passed" in out, out
        assert "not natively supported" not in out
        # without pytest-trio the plugin says what is missing instead of failing each test
        rc, out = pytest("-p", "no:trio")
        assert rc == 4, out
        assert "needs pytest-trio" in out and out.count("test_allocator.py::") == 1
        assert str(ROOT) not in (project / "test_allocator.py").read_text()
