"""One declaration per tracepoint (emulator.mm.tracepoints.TRACEPOINTS, as TRACE_EVENT in the
kernel): every emit site passes exactly the declared fields in the declared order, every
declaration is emitted somewhere, a run's events carry the declared types, and ``--events``
refuses a pattern that selects no tracepoint, naming the close ones."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.mm.compaction.trace import DEFER_EVENTS
from emulator.mm.tracepoints import TRACEPOINTS

ROOT = Path(__file__).resolve().parents[2]


def emit_sites() -> list[tuple[str, int, str, tuple[str, ...]]]:
    """(file, line, event, keyword names) of every ``*.emit("name", ...)`` call in emulator/
    (the ``_defer_event(zone, "name", ...)`` calls give their names to the one dynamic site)."""
    sites = []
    for path in sorted((ROOT / "emulator").rglob("*.py")):
        tree = ast.parse(path.read_text())
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(
                node.func, ast.Attribute | ast.Name
            ):
                continue
            fname = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if fname == "_defer_event":
                name = node.args[1]
                assert isinstance(name, ast.Constant), f"{rel}:{node.lineno}"
                sites.append((rel, node.lineno, name.value, DEFER_EVENTS[0].field_names))
            elif fname == "emit" and node.args and isinstance(node.args[0], ast.Constant):
                kws = tuple(k.arg for k in node.keywords if k.arg is not None)
                sites.append((rel, node.lineno, node.args[0].value, kws))
    return sites


def test_every_emit_site_passes_the_declared_fields() -> None:
    sites = emit_sites()
    assert len(sites) > 30
    bad = [
        f"{f}:{line}: {name}{kws}"
        for f, line, name, kws in sites
        if name not in TRACEPOINTS or TRACEPOINTS[name].field_names != kws
    ]
    assert not bad, "\n".join(bad)


def test_the_dynamic_defer_site_emits_the_defer_template_fields() -> None:
    src = (ROOT / "emulator/mm/compaction/defer.py").read_text()
    call = next(
        n
        for n in ast.walk(ast.parse(src))
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "emit"
    )
    assert tuple(k.arg for k in call.keywords) == DEFER_EVENTS[0].field_names


def test_every_declared_tracepoint_is_emitted() -> None:
    emitted = {name for _f, _l, name, _k in emit_sites()}
    declared = {name for name, tp in TRACEPOINTS.items() if tp.emitted}
    assert declared - emitted == set()
    assert emitted - set(TRACEPOINTS) == set()


def test_slice_roles_pair_up() -> None:
    for tp in TRACEPOINTS.values():
        if tp.role.kind == "begin":
            assert TRACEPOINTS[tp.role.end].role.kind == "end", tp.name
            assert tp.role.slice


def test_a_runs_events_have_the_declared_fields_and_types(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["run", "thp_fault_storm", "--set", "duration=5ms", "--set", "memory=256M"]
    argv += ["--quiet", "--out", str(out)]
    assert main([*argv, "--no-trace"]) == 0
    seen: set[str] = set()
    with (out / "events.jsonl").open() as f:
        for line in f:
            e = json.loads(line)
            tp = TRACEPOINTS[e["event"]]
            fields = {k: v for k, v in e.items() if k not in ("t", "actor", "event")}
            assert tuple(fields) == tp.field_names, e
            for fd in tp.fields:
                assert type(fields[fd.name]) is fd.type, (e, fd)
            seen.add(tp.name)
    assert {"mm_compaction_begin", "mm_compaction_end", "mm_page_alloc"} <= seen
    assert {"mm_compaction_defer_reset", "mm_vmscan_direct_reclaim_end"} <= seen


@pytest.mark.parametrize(
    ("pattern", "close"),
    [
        ("bogus", ""),
        ("MM_PAGE_ALLOC", "did you mean mm_page_alloc"),
        ("?", ""),
        ("mm_page_alloc,mm_compction_begin", "did you mean mm_compaction_begin"),
    ],
)
def test_events_that_select_nothing_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pattern: str, close: str
) -> None:
    out = tmp_path / "out"
    rc = main(["run", "default", "--events", pattern, "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "matches no tracepoint" in err and close in err, err
    assert not out.exists()
