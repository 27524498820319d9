"""The README's test-suite example runs and asserts what it says."""

from __future__ import annotations

import re
from pathlib import Path


async def test_readme_example_runs_and_holds() -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    await namespace["test_alloc_free_keeps_invariants"]()
