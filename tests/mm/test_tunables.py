"""The tunables registry and its parsers against Linux 6.12 kernel/sysctl.c and lib/kstrtox.c.

One declaration per tunable (emulator.mm.sysctl.TUNABLES) serves a machine's defaults, ``--set``,
scenario writes, /proc/sys reads and ``mmemu list --params``; a value is parsed as the kernel's
proc handler parses it: proc_get_long in base 0 (``010`` is 8, ``0x10`` is 16), white space
around, nothing else (no ``_``, ``0b``, ``0o``, ``+``, non-ASCII digits); proc_dointvec_minmax
over ``int[4]`` for vm.lowmem_reserve_ratio (a write stores a prefix).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.cli import main
from emulator.mm.machine import Machine
from emulator.mm.sysctl import TUNABLES, lookup
from emulator.mm.tunable import (
    INT_MAX,
    INT_MIN,
    TunableError,
    kstrtoll,
    proc_dointvec_values,
)
from emulator.scenario import Scenario, ScenarioError, bundled_scenarios, load_scenario
from emulator.workload.spec import AllocClass, Phase, Workload
from emulator.workload.writes import WriteError, check_writes, parse_writes

ROOT = Path(__file__).resolve().parents[2]


def small() -> Machine:
    return Machine.simple(Normal=8192, thp_enabled=False)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("20", 20),
        ("010", 8),  # base 0: a leading 0 is octal
        ("0x10", 16),
        ("0X1f", 31),
        ("  7\n", 7),
        ("\t5", 5),
        ("-0", 0),
        ("5 6", 5),  # one int: what follows the first number and a blank is ignored
        ("0x", None),  # no hex digit after 0x: "0" in octal, then 'x' is not a blank
        ("08", None),  # 8 is not an octal digit
        ("1_0", None),
        ("0b1", None),
        ("0o7", None),
        ("+5", None),
        ("\u0663", None),  # Arabic-Indic three
        ("\uff11", None),  # full-width one
        ("1\u00a0", None),  # UTF-8 NBSP after a number is not a blank
        ("", None),
        ("   ", None),
        ("12abc", None),
        ("1e3", None),
        ("99999999999999999999999", None),
        ("000000000000000000007", None),  # 21 characters: proc_get_long's TMPBUFLEN limit
    ],
)
def test_proc_dointvec_parses_as_the_kernel(text: str, value: int | None) -> None:
    m = small()
    if value is None:
        with pytest.raises(TunableError, match=r"vm.extfrag_threshold=.* valid 0\.\.1000"):
            m.sysctl.set("vm.extfrag_threshold", text)
        assert m.extfrag_threshold == 500
    else:
        m.sysctl.set("vm.extfrag_threshold", text)
        assert m.extfrag_threshold == value


@given(st.integers(min_value=INT_MIN, max_value=INT_MAX))
def test_decimal_ints_round_trip(n: int) -> None:
    assert proc_dointvec_values(f" {n}\n", 1) == [n]
    assert kstrtoll(str(n)) == n
    assert kstrtoll(hex(n) if n >= 0 else "-" + hex(-n)) == n


@given(st.text(min_size=1, max_size=12))
def test_only_ascii_digit_text_parses(text: str) -> None:
    """Whatever proc_dointvec accepts starts (after blanks and a '-') with an ASCII digit and
    holds only ASCII hex digits, 'x' and blanks; Python's int() accepts far more."""
    try:
        proc_dointvec_values(text, 4)
    except TunableError:
        return
    assert re.fullmatch(r"[ \t\n\v\f\r]*(-?[0-9][0-9a-fA-FxX]*[ \t\n]*)+.*", text, re.S)
    number = text.split()[0].lstrip("-")
    assert number.isascii() and number[0].isdigit() and "_" not in number


@pytest.mark.parametrize(
    ("text", "value"),
    [("0x10", 16), ("010", 8), ("+5", 5), ("-5", -5), ("7\n", 7)],
)
def test_kstrtoll_accepts(text: str, value: int) -> None:
    assert kstrtoll(text) == value


@pytest.mark.parametrize("text", ["", " 5", "5 ", "1_0", "0b1", "0o7", "\u0663", "5\n\n", "0x"])
def test_kstrtoll_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        kstrtoll(text)


def test_lowmem_reserve_ratio_is_an_int_vector() -> None:
    m = small()
    m.sysctl.set("vm.lowmem_reserve_ratio", "1 2")  # the first two entries; the rest kept
    assert m.sysctl.get("vm.lowmem_reserve_ratio") == (1, 2, 32, 0)
    m.sysctl.set("vm.lowmem_reserve_ratio", "0x10 010 4 5 6")  # at most 4 read, the rest ignored
    assert m.sysctl.get("vm.lowmem_reserve_ratio") == (16, 8, 4, 5)
    assert m.sysctl.read("vm.lowmem_reserve_ratio") == "16\t8\t4\t5\n"
    for bad in ("", " \n", "1 x", "1,2", "1 2147483648"):
        with pytest.raises(TunableError, match="valid up to 4 integers"):
            m.sysctl.set("vm.lowmem_reserve_ratio", bad)
    assert m.sysctl.get("vm.lowmem_reserve_ratio") == (16, 8, 4, 5)


def test_one_declaration_per_tunable_serves_every_reader() -> None:
    m = small()
    for t in TUNABLES.values():
        assert lookup(t.path) is t
        if t.default is not None:
            assert m.sysctl.get(t.name) == t.default
        assert m.sysctl.read(t.name) == t.render(m.sysctl.get(t.name))
    assert m.sysctl.read("transparent_hugepage/defrag") == (
        "always defer defer+madvise [madvise] never\n"
    )
    assert TUNABLES["vm.compaction_proactiveness"].default == 20


def test_defaults_are_written_once() -> None:
    """The kernel's default values appear in the tunables' declarations only."""
    offenders = []
    pattern = re.compile(
        r"(?<![.\w])\w*(proactiveness|extfrag_threshold|boost_factor)\w*\s*(:\s*int\s*)?=\s*\d"
    )
    for path in (ROOT / "emulator").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _idle(_p: object) -> Workload:
    return Workload([Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, duration=1_000_000)])


def test_a_scenario_write_of_thp_defrag_works() -> None:
    from emulator.runner import run_scenario

    m = small()
    check_writes(m, parse_writes([(0, "transparent_hugepage.defrag", "always")]))
    check_writes(m, parse_writes([(0, "/sys/kernel/mm/transparent_hugepage/defrag", "never")]))
    sc = Scenario(
        "w", "THP defrag write", _idle, writes=[("1ms", "transparent_hugepage.defrag", "always")]
    )
    res = run_scenario(sc, sc.resolve({"memory": "64M", "duration": "2ms"}), record=False)
    assert res.ctx.findings["writes"][0]["path"] == "transparent_hugepage.defrag"
    assert "error" not in res.ctx.findings["writes"][0]
    assert res.ctx.machine.transparent_hugepage_defrag == "always"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("vm.lowmem_reserve_ratio", "256 x", "valid up to 4 integers"),
        ("vm.lowmem_reserve_ratio", "", "valid up to 4 integers"),
        ("vm.compaction_proactiveness", "1_0", "not an integer: valid 0..100"),
        ("vm.compaction_proactiveness", "\u0661\u0660", "not an integer: valid 0..100"),
        ("transparent_hugepage.defrag", "sometimes", "valid always, defer"),
        ("vm.nr_hugepages", "0b1", "valid 0 and above"),
    ],
)
def test_a_malformed_scenario_write_fails_before_the_run(
    path: str, value: str, message: str
) -> None:
    from emulator.runner import run_scenario

    with pytest.raises(WriteError, match=re.escape(message)):
        check_writes(small(), parse_writes([(0, path, value)]))
    sc = Scenario("w", "bad write", _idle, writes=[("1ms", path, value)])
    with pytest.raises(ScenarioError, match=re.escape(message)):
        run_scenario(sc, sc.resolve({"memory": "64M", "duration": "2ms"}), record=False)


def test_a_scenario_write_of_010_sets_8() -> None:
    from emulator.runner import run_scenario

    sc = Scenario("w", "octal", _idle, writes=[("1ms", "vm.extfrag_threshold", "010")])
    res = run_scenario(sc, sc.resolve({"memory": "64M", "duration": "2ms"}), record=False)
    assert res.ctx.machine.extfrag_threshold == 8


@pytest.mark.parametrize(
    ("scenario", "setting", "message"),
    [
        ("compaction_test", "page_cache=-3", "page_cache='-3': out of range: valid 0..1"),
        ("thp_fault_storm", "faults=-5", "faults='-5': out of range: valid 1..1048576"),
        ("thp_fault_storm", "free=2", "valid 0..1"),
        ("kcompactd_backoff", "rate=-1", "valid 0.001..10000000"),
        ("proactive", "warmup=-1", "valid 0..3600000000000"),
        ("proactive", "thp_rate=1_0", "expected a finite number in 0.001..1000000"),
        ("default", "rate=\uff11", "expected a finite number in 1..10000000"),
        ("pcp_hiding", "regions=1_0", "expected an integer in 1..1048576"),
        ("pcp_hiding", "regions=0b1", "expected an integer in 1..1048576"),
        ("default", "vm.compaction_proactiveness=0o7", "not an integer: valid 0..100"),
    ],
)
def test_scenario_parameters_are_range_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, scenario: str, setting: str, message: str
) -> None:
    out = tmp_path / "out"
    rc = main(["run", scenario, "--set", setting, "--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_every_bundled_numeric_parameter_has_a_range() -> None:
    for name, path in bundled_scenarios().items():
        for pname, p in load_scenario(path).param_specs().items():
            if isinstance(p.default, int | float) and not isinstance(p.default, bool):
                assert p.min is not None and p.max is not None, f"{name}: {pname}"


def test_list_params_shows_every_tunable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--params", "default"]) == 0
    out = capsys.readouterr().out
    for t in TUNABLES.values():
        assert t.name in out
    assert "0 or 8..2147483647" in out and "up to 4 integers" in out
