"""Fuzzing the CLI's inputs (issue 11 "Also"): ``--set`` names and values, ``--seed``,
strategy specs, schedule files and /proc files. Whatever the input, mmemu either accepts it or
refuses it with exit 2 and one line on stderr, no traceback, and writes nothing.

``main()`` runs in-process. The run itself is replaced by a stub: an accepted input reaches it
and stops there (running thousands of simulations is the swarm's job, benchmarks/swarm.py).
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emulator.cli_run as cli_run
from emulator.cli import main
from emulator.mm.costs import Costs
from emulator.mm.sysctl import TUNABLES
from emulator.scenario import STANDARD_PARAMS

#: examples per test (MMEMU_FUZZ_EXAMPLES=5000 for a longer hunt by hand)
EXAMPLES = int(os.environ.get("MMEMU_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class _Accepted(BaseException):  # not caught by main()'s internal-error guard
    pass


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def stub(*_a: Any, **_k: Any) -> None:
        raise _Accepted

    monkeypatch.setattr(cli_run, "run_scenario", stub)


NAMES = [
    *STANDARD_PARAMS,
    "rate",
    "thp_weight",
    "released",
    *TUNABLES,
    *(f"cost.{c}" for c in Costs().as_dict()),
]
TEXT = st.text(alphabet=st.sampled_from(string.printable + "µé\u00a0∞"), min_size=0, max_size=30)
NUMBERISH = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.builds(
        lambda n, u: f"{n}{u}",
        st.integers(min_value=-5, max_value=10**20),
        st.sampled_from(["", "ns", "us", "ms", "s", "K", "M", "G", "T", "GiB", "x", "h"]),
    ),
    st.text(alphabet="0123456789., -", max_size=12),
)


def _check(capsys: pytest.CaptureFixture[str], out: Path, argv: list[str]) -> None:
    capsys.readouterr()
    try:
        rc = main(argv)
    except _Accepted:
        return
    err = capsys.readouterr().err
    assert rc == 2, (argv, rc, err)
    assert len(err.strip().splitlines()) == 1, (argv, err)
    assert "Traceback" not in err and ": error: " in err, (argv, err)
    assert not out.exists(), (argv, "a refused input wrote something")


@FUZZ
@given(
    name=st.one_of(st.sampled_from(NAMES), TEXT),
    value=st.one_of(NUMBERISH, TEXT),
)
def test_set_names_and_values(
    no_run: None, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        _check(capsys, out, ["run", "default", "--out", str(out), "--set", f"{name}={value}"])


@FUZZ
@given(
    seed=st.one_of(NUMBERISH, TEXT),
    strategy=st.one_of(
        TEXT,
        NUMBERISH.map(lambda n: f"pct({n})"),
        st.builds(lambda a, b: f"random({a}, {b})", NUMBERISH, NUMBERISH),
    ),
)
def test_seed_and_strategy_specs(
    no_run: None, capsys: pytest.CaptureFixture[str], seed: str, strategy: str
) -> None:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        argv = ["run", "default", "--out", str(out), f"--seed={seed}", f"--strategy={strategy}"]
        _check(capsys, out, argv)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def _schedule(draw: Any) -> str:
    doc: dict[str, Any] = {"format": "mmemu-schedule/1"}
    for key, strat in (
        ("mmemu_version", st.one_of(st.just("0.1.0"), JSON)),
        ("scenario", st.one_of(st.sampled_from(["default", "nosuch", "../x"]), JSON)),
        ("scenario_path", st.one_of(st.none(), JSON)),
        ("params", st.one_of(st.dictionaries(st.sampled_from(NAMES), JSON, max_size=4), JSON)),
        ("strategy", JSON),
        ("delays", JSON),
        ("decisions", st.one_of(st.lists(st.lists(JSON, max_size=3), max_size=5), JSON)),
    ):
        if draw(st.booleans()):
            doc[key] = draw(strat)
    return json.dumps(doc) if draw(st.booleans()) else draw(TEXT)


@FUZZ
@given(data=st.data())
def test_schedule_files(no_run: None, capsys: pytest.CaptureFixture[str], data: Any) -> None:
    text = _schedule(data.draw)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "s.json"
        f.write_text(text)
        out = Path(d) / "out"
        _check(capsys, out, ["run", "--replay", str(f), "--out", str(out)])


LINE = st.one_of(
    st.builds(
        lambda node, zone, counts: f"Node {node}, zone {zone} " + " ".join(counts),
        st.one_of(st.integers(0, 3).map(str), NUMBERISH),
        st.sampled_from(["DMA", "DMA32", "Normal", "Movable", "Nope", ""]),
        st.lists(st.one_of(st.integers(0, 10**6).map(str), NUMBERISH), max_size=13),
    ),
    TEXT,
)


@FUZZ
@given(
    buddy=st.lists(LINE, max_size=5),
    zoneinfo=st.one_of(st.none(), st.lists(TEXT, max_size=8)),
    proactiveness=st.one_of(st.none(), NUMBERISH),
)
def test_proc_files_for_inspect(
    capsys: pytest.CaptureFixture[str],
    buddy: list[str],
    zoneinfo: list[str] | None,
    proactiveness: str | None,
) -> None:
    with tempfile.TemporaryDirectory() as d:
        proc = Path(d)
        (proc / "buddyinfo").write_text("\n".join(buddy) + "\n")
        if zoneinfo is not None:
            (proc / "zoneinfo").write_text("\n".join(zoneinfo) + "\n")
        if proactiveness is not None:
            (proc / "sys" / "vm").mkdir(parents=True)
            (proc / "sys" / "vm" / "compaction_proactiveness").write_text(proactiveness)
        capsys.readouterr()
        rc = main(["inspect", "--proc", str(proc)])
        err = capsys.readouterr().err
        assert rc in (0, 2), (buddy, err)
        if rc == 2:
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
