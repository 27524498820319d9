"""Every scenario example in docs/ (a python block defining ``SCENARIO = Scenario(``) runs.

Each runs on a smaller machine for a short virtual time and must reach its last phase: an
example that silently runs half its workload would teach the wrong thing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emulator.runner import run_scenario
from emulator.scenario import load_scenario

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def examples() -> list[tuple[str, str]]:
    out = []
    for doc in sorted(DOCS.glob("*.md")):
        for i, block in enumerate(BLOCK.findall(doc.read_text(encoding="utf-8"))):
            if "SCENARIO = Scenario(" in block:
                out.append((f"{doc.name}#{i}", block))
    return out


def test_the_docs_have_scenario_examples() -> None:
    names = {name.split("#")[0] for name, _ in examples()}
    assert {"scenarios.md", "tutorial.md", "testing.md"} <= names


@pytest.mark.parametrize(("where", "code"), examples(), ids=[n for n, _ in examples()])
def test_doc_scenario_runs_to_its_last_phase(where: str, code: str, tmp_path: Path) -> None:
    path = tmp_path / "example.py"
    path.write_text(code, encoding="utf-8")
    scenario = load_scenario(path)
    params = scenario.resolve({"memory": "256M", "duration": "30ms"})
    result = run_scenario(scenario, params)
    findings = result.summary().findings
    assert result.error is None, where
    assert "phases_not_run" not in findings, (where, findings)
    assert "workload_warnings" not in findings, (where, findings)
    assert sum(p.allocated for p in result.ctx.programs) > 100
