"""docs/architecture.md's layer table is the one tools/layer_table.py generates from the code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOL = Path(__file__).resolve().parents[2] / "tools" / "layer_table.py"


def _layer_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layer_table", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("layer_table", module)
    spec.loader.exec_module(module)
    return module


def test_the_documented_layer_table_is_generated_from_the_code() -> None:
    tool = _layer_table()
    assert tool.written_table() == tool.table(), (
        "docs/architecture.md's layer table is stale: run python3 tools/layer_table.py --write"
    )


def test_every_emulator_module_belongs_to_a_layer_and_mm_imports_no_higher_layer() -> None:
    tool = _layer_table()
    mods = tool.modules()
    graph = tool.imports(mods)
    mm = tool.layer_of("emulator.mm")
    upward = [
        (m, d) for m in mods if tool.layer_of(m) <= mm for d in graph[m] if tool.layer_of(d) > mm
    ]
    assert upward == []
    assert tool.layer_of("emulator.engine.sim") < mm < tool.layer_of("emulator.workload.cpu")
