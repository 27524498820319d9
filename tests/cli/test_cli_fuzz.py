"""Fuzzing the CLI's inputs: ``--set`` names and values, ``--seed``,
strategy specs, schedule files and /proc files. Whatever the input, mmemu either accepts it or
refuses it with exit 2 and one line on stderr, no traceback, and writes nothing.

``main()`` runs in-process. The run itself is replaced by a stub: an accepted input reaches it
and stops there (running thousands of simulations is the swarm's job, benchmarks/swarm.py).
"""

from __future__ import annotations

import json
import os
import signal
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emulator.cli import main
from emulator.mm.costs import Costs
from emulator.mm.sysctl import TUNABLES
from emulator.runner import Run
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

    monkeypatch.setattr(Run, "execute", stub)


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


# -- run folders as untrusted input: every view, every kind of corrupted file ---------------

VIEWS = ("trace", "compactsnoop", "plot", "diff")


@pytest.fixture(scope="module")
def a_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzzrun") / "run"
    argv = ["run", "default", "--out", str(out), "--quiet", "--no-trace"]
    argv += ["--set", "memory=256M", "--set", "cpus=2", "--set", "duration=4ms"]
    assert main(argv) == 0
    return out


EVENT_VALUE = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(),
    TEXT,
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(TEXT, st.integers(), max_size=2),
)


@st.composite
def _corrupt_events(draw: Any, lines: list[bytes]) -> bytes:
    """events.jsonl with a few lines damaged the ways a killed run, an editor or a disk do."""
    out = list(lines[: draw(st.integers(0, len(lines)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["garbage", "bytes", "json", "field", "drop", "cut"]))
        i = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "garbage":
            out.insert(i, draw(TEXT).encode() + b"\n")
        elif kind == "bytes":
            out.insert(i, draw(st.binary(max_size=40)) + b"\n")
        elif kind == "json":
            out.insert(i, json.dumps(draw(JSON)).encode() + b"\n")
        elif out and kind in ("field", "drop"):
            try:
                ev = json.loads(out[i])
            except ValueError:
                continue  # a line damaged already
            if not isinstance(ev, dict) or not ev:
                continue
            key = draw(st.sampled_from(sorted(ev)))
            if kind == "drop":
                del ev[key]
            else:
                ev[key] = draw(EVENT_VALUE)
            out[i] = json.dumps(ev).encode() + b"\n"
        elif out and kind == "cut" and out[-1]:
            out[-1] = out[-1][: draw(st.integers(0, len(out[-1]) - 1))]
            break
    return b"".join(out)


def _view(capsys: pytest.CaptureFixture[str], d: Path, view: str) -> None:
    argv = {
        "trace": ["trace", str(d)],
        "compactsnoop": ["compactsnoop", "-e", "-T", str(d)],
        "plot": ["plot", str(d), "--out", str(d / "p")],
        "diff": ["diff", "--json", str(d), str(d)],
    }[view]
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc in (0, 2), (view, rc, err)
    assert "internal error" not in err and "Traceback" not in err, (view, err)
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, (view, err)
    else:
        assert len(err.strip().splitlines()) <= 1, (view, err)


@settings(
    max_examples=max(EXAMPLES // 3, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_corrupted_run_folders_for_every_view(
    capsys: pytest.CaptureFixture[str], a_run: Path, data: Any
) -> None:
    lines = (a_run / "events.jsonl").read_bytes().splitlines(keepends=True)[:400]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "run"
        d.mkdir()
        for name in ("summary.json", "zoneinfo", "buddyinfo", "vmstat", "pagetypeinfo"):
            (d / name).write_bytes((a_run / name).read_bytes())
        (d / "events.jsonl").write_bytes(data.draw(_corrupt_events(lines)))
        target = data.draw(
            st.sampled_from(["events", "summary.json", "zoneinfo", "buddyinfo", "vmstat"])
        )
        if target != "events":
            how = data.draw(st.sampled_from(["json", "text", "bytes", "dir", "cut"]))
            f = d / target
            if how == "json":
                f.write_text(json.dumps(data.draw(JSON)))
            elif how == "text":
                f.write_text(data.draw(TEXT))
            elif how == "bytes":
                f.write_bytes(data.draw(st.binary(max_size=200)))
            elif how == "cut":
                raw = f.read_bytes()
                f.write_bytes(raw[: data.draw(st.integers(0, len(raw)))])
            else:
                f.unlink()
                f.mkdir()
        _view(capsys, d, data.draw(st.sampled_from(VIEWS)))


# -- scenario writes: anything a scenario file may hold -----------------------------------

WRITE_ITEM = st.one_of(
    st.tuples(
        st.one_of(st.sampled_from(["0", "10us", "1ms", "5s", "-1ms", 0, 5, -5]), TEXT),
        st.one_of(
            st.sampled_from(
                ["vm.compact_memory", "vm.nr_hugepages", "vm.compaction_proactiveness"]
            ),
            TEXT,
        ),
        st.one_of(NUMBERISH, TEXT),
    ),
    st.tuples(
        st.just("100us"),
        st.just("vm.compact_memory"),
        st.just("1"),
        st.one_of(st.none(), st.integers(-3, 5), st.lists(st.integers(), max_size=2), TEXT),
    ),
    JSON,
)


@settings(
    max_examples=max(EXAMPLES // 5, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    writes=st.one_of(st.lists(WRITE_ITEM, max_size=3), JSON, st.just("raise")),
)
@example(writes=[["0", "vm.a\rb", "1"]])  # a control character in the file named
@example(writes=[["0", "/sys/devices/system/node/node9/compact\r", "1"]])
def test_scenario_writes(capsys: pytest.CaptureFixture[str], writes: Any) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "w.py"
        value = "raising" if writes == "raise" else f"json.loads({json.dumps(json.dumps(writes))})"
        f.write_text(
            "import json\n"
            "from emulator.scenario import Scenario\n"
            "from emulator.workload import AllocClass, Phase, Workload\n"
            "def build(p):\n"
            "    return Workload([Phase('s', [AllocClass(0, 'GFP_KERNEL',"
            " lifetime='exp(10us)')], rate=1000.0)])\n"
            "def raising(p):\n"
            "    raise ValueError('no')\n"
            f"SCENARIO = Scenario('w', 'writes', build, writes={value},\n"
            "    defaults={'memory': '64M', 'cpus': 2, 'duration': '200us'})\n"
        )
        out = Path(d) / "out"
        capsys.readouterr()
        rc = main(["run", str(f), "--out", str(out), "--quiet", "--no-trace"])
        err = capsys.readouterr().err
        assert rc in (0, 1, 2), (writes, rc, err)
        assert "internal error" not in err and "Traceback" not in err, (writes, err)
        if rc == 2:
            assert len(err.strip().splitlines()) == 1 and not out.exists(), (writes, err)
        else:
            assert (out / "summary.json").is_file()
        assert not [p for p in Path(d).iterdir() if p.name.endswith(".partial")]


# -- --from-proc shapes ---------------------------------------------------------------------

ZONES = ["DMA", "DMA32", "Normal", "Movable"]


@FUZZ
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.integers(0, 3), st.integers(0, 10**6), st.integers(-5, -1)),
            st.sampled_from(ZONES),
            st.lists(st.integers(0, 10**5), min_size=11, max_size=11),
        ),
        min_size=1,
        max_size=5,
    ),
    zone_edit=st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from(["spanned", "present", "managed", "start_pfn:"]),
            st.one_of(st.integers(-(10**7), 10**8), NUMBERISH),
        ),
    ),
)
def test_from_proc_shapes(
    no_run: None,
    capsys: pytest.CaptureFixture[str],
    rows: list[tuple[int, str, list[int]]],
    zone_edit: tuple[str, Any] | None,
) -> None:
    live = Path(__file__).resolve().parents[1] / "mm" / "data" / "live-6.18"
    with tempfile.TemporaryDirectory() as d:
        proc = Path(d) / "proc"
        proc.mkdir()
        if zone_edit is None:
            text = "".join(
                f"Node {n}, zone {z:>8s} " + " ".join(map(str, c)) + "\n" for n, z, c in rows
            )
            (proc / "buddyinfo").write_text(text)
        else:
            key, value = zone_edit
            (proc / "buddyinfo").write_bytes((live / "buddyinfo").read_bytes())
            lines = (live / "zoneinfo").read_text().splitlines()
            hits = [i for i, line in enumerate(lines) if line.strip().startswith(key)]
            i = hits[rows[0][0] % len(hits)]
            lines[i] = lines[i].split(key)[0] + f"{key} {value}"
            (proc / "zoneinfo").write_text("\n".join(lines) + "\n")
        out = Path(d) / "out"
        _check(capsys, out, ["run", "default", "--from-proc", str(proc), "--out", str(out)])


# -- signals at any moment: import, validation, boot, set-up, run --------------------------

#: signal runs (each a subprocess of a few seconds; MMEMU_FUZZ_SIGNALS=100 for a longer hunt)
SIGNAL_RUNS = int(os.environ.get("MMEMU_FUZZ_SIGNALS", "8"))


def _wait_for_handlers(pid: int) -> None:
    """Until process ``pid`` catches SIGTERM (the Linux /proc/PID/status SigCgt mask)."""
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + 60
    while status.exists() and time.monotonic() < deadline:
        for line in status.read_text().splitlines():
            if line.startswith("SigCgt:") and int(line.split()[1], 16) & (
                1 << (signal.SIGTERM - 1)
            ):
                return
        time.sleep(0.005)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc signals")
@settings(max_examples=SIGNAL_RUNS, deadline=None, database=None)
@given(
    delay_ms=st.integers(0, 2500),
    sig=st.sampled_from([signal.SIGINT, signal.SIGTERM]),
    big=st.booleans(),
)
def test_signals_at_random_moments(delay_ms: int, sig: int, big: bool) -> None:
    root = Path(__file__).resolve().parents[2]
    memory = "4G" if big else "256M"  # a bigger machine: a longer boot and set-up
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o"
        argv = [sys.executable, "-m", "emulator", "run", "default", "--out", str(out), "--quiet"]
        argv += ["--set", f"memory={memory}", "--set", "cpus=2", "--set", "duration=3600s"]
        argv += ["--set", "sample=100ms", "--no-trace"]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(root)},
            cwd=root,
        )
        # a signal before mmemu's first line (the interpreter's own start-up) ends it as any
        # Python program: wait until mmemu has taken the signals, then at a random moment
        _wait_for_handlers(proc.pid)
        time.sleep(delay_ms / 1000)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=600)
        status = 128 + int(sig)
        assert proc.returncode == status, (delay_ms, proc.returncode, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, (delay_ms, err)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["reason"] == ("interrupted" if sig == signal.SIGINT else "terminated")
        assert summary["stage"] in ("import", "validate", "boot", "set-up", "run"), summary
        assert not [p for p in Path(d).iterdir() if p.name.endswith(".partial")]
