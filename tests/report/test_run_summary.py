"""summary.json as typed classes (emulator.run.summary): written once, read back typed, the same
bytes both ways; a wrong field is one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.run.summary import (
    LockClassStat,
    OrderAllocations,
    RunSummary,
    StoppedAtStart,
    SummaryError,
)


def test_a_runs_summary_reads_back_to_the_same_bytes(small_run: Path) -> None:
    text = (small_run / "summary.json").read_text()
    s = RunSummary.load(small_run / "summary.json")
    assert s.dumps() == text
    assert s.path == small_run / "summary.json"
    # typed all the way down: orders and CPUs are integers, sections are classes
    assert all(isinstance(o, int) for o in s.allocations)
    assert isinstance(s.allocations[0], OrderAllocations)
    assert s.allocations[0].attempts == json.loads(text)["allocations"]["0"]["attempts"] > 0
    assert isinstance(s.lock_stat["&zone->lock"], LockClassStat)
    assert s.engine.events > 0 and s.kcompactd is not None and s.kswapd is not None
    assert sorted(s.pcp.per_cpu) == list(range(s.cpus))


def test_the_models_sections_must_declare_every_key() -> None:
    with pytest.raises(ValueError, match="no field declared for 'spare'"):
        OrderAllocations.of({"attempts": 1, "spare": 2})


def test_a_run_stopped_before_its_boot_writes_four_fields() -> None:
    doc = StoppedAtStart("default", {"cpus": 4}, "terminated", "boot")
    text = doc.dumps()
    assert (
        text
        == json.dumps(
            {"scenario": "default", "params": {"cpus": 4}, "reason": "terminated", "stage": "boot"},
            indent=1,
        )
        + "\n"
    )
    back = RunSummary.parse(json.loads(text), Path("summary.json"))
    assert (back.reason, back.stage, back.virtual_ns, back.allocations) == (
        "terminated",
        "boot",
        0,
        {},
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"allocations": {"9": {"attempts": "many"}}},
            "field 'allocations.9.attempts' should be an integer, not a string",
        ),
        (
            {"lock_stat": {"&zone->lock": {"waittime-avg": [1]}}},
            "field 'lock_stat.&zone->lock.waittime-avg' should be an integer, not a list",
        ),
        ({"pcp": {"per_cpu": {"cpu0": 1}}}, "field 'pcp.per_cpu.cpu0'"),
        ({"kcompactd": [{"node": None}]}, "field 'kcompactd[0].node' should be an integer"),
        ({"wall_s": float("inf")}, "field 'wall_s' should be a number"),
    ],
)
def test_a_wrong_field_is_one_line_naming_it(
    tmp_path: Path, doc: dict[str, object], message: str
) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SummaryError) as exc:
        RunSummary.load(path)
    text = str(exc.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
