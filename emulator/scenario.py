"""The scenario API that ``scenarios/*.py`` use, and how their parameters are resolved.

A scenario file defines ``SCENARIO = Scenario(...)``::

    from emulator.scenario import Scenario
    from emulator.workload import AllocClass, Phase, Workload

    def build(p):
        return Workload([Phase("steady", [AllocClass(0, "GFP_KERNEL", lifetime="exp(1ms)")],
                               rate=p["rate"])])

    SCENARIO = Scenario("mine", "one line on what it shows", build,
                        defaults={"cpus": 4}, params={"rate": (50_000, "allocs/s per CPU")})

Every scenario accepts the standard parameters (:data:`STANDARD_PARAMS`: ``memory``, ``cpus``,
``nodes``, ``duration``, ``seed``, ``strategy``, ``quantum``, ``sample``), every sysctl by its
kernel name (``vm.compaction_proactiveness=0``), every cost by ``cost.NAME`` and its own
``params``. Unknown names are an error listing the valid ones. Values given as text (from the
command line) are converted to the type of the default.

Optional hooks: ``setup(params, ctx)`` runs after boot and before the actors start (e.g. to build
a fragmented initial state with :mod:`emulator.mm.initstate`), ``actors(params, ctx)`` returns
extra actors as ``(name, async_fn)`` pairs (each called as ``await fn()``), and ``report(params,
ctx)`` returns a dict of scenario-specific findings that goes into ``summary.json``; a scenario
may also set ``ctx.scenario_result`` (any JSON: e.g. a pass/fail verdict), which summary.json
carries as ``"scenario_result"``. ``writes`` lists sysctl and sysfs writes at virtual times
(``[("2s", "vm.compact_memory", "1")]``), see :mod:`emulator.workload.writes`.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from emulator.engine import SimError, make_strategy
from emulator.mm.costs import Costs
from emulator.mm.sysctl import MIN_PERCPU_PAGELIST_HIGH_FRACTION
from emulator.mm.sysctl import SPECS as SYSCTL_SPECS
from emulator.mm.zone import MAX_NR_ZONES
from emulator.workload.spec import Workload

__all__ = [
    "COST_PARAM",
    "MAX_MEMORY_MIB",
    "STANDARD_PARAMS",
    "Param",
    "Params",
    "Scenario",
    "ScenarioError",
    "bundled_scenarios",
    "find_scenario",
    "format_duration",
    "format_size",
    "from_proc",
    "load_scenario",
]

#: largest machine the model boots in reasonable time and memory (about 4 MB of state per GiB)
MAX_MEMORY_MIB = 256 * 1024
#: most samples one run may take (``duration / sample``): each one is kept in summary.json
MAX_SAMPLES = 100_000

_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_MIB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
_NUMBER = r"([0-9]{1,15}(?:\.[0-9]{0,9})?)"
_DURATION_TEXT = re.compile(rf"^\s*{_NUMBER}\s*(ns|us|µs|ms|s)?\s*$", re.I)
_SIZE_TEXT = re.compile(rf"^\s*{_NUMBER}\s*([kmgt])?(?:i?b)?\s*$", re.I)


def format_duration(ns: float) -> str:
    """``1500000`` -> ``1.5ms``: the largest unit that keeps the number >= 1."""
    for unit in ("s", "ms", "us"):
        if ns >= _NS[unit]:
            return f"{ns / _NS[unit]:g}{unit}"
    return f"{ns:g}ns"


def format_size(mib: float) -> str:
    """``4096`` -> ``4G``."""
    for unit, scale in (("T", 1 << 20), ("G", 1 << 10)):
        if mib >= scale:
            return f"{mib / scale:g}{unit}"
    return f"{mib:g}M"


def parse_duration_text(value: Any) -> int:
    """A duration with its unit (``2s``, ``500ms``, ``1.5us``, ``40ns``) -> int ns.

    An int (from Python, or a schedule file) is taken as ns; text must carry a unit (a bare
    ``0`` is allowed: zero is zero in any unit).
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 2s, 500ms, 250us or 40ns")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("expected a finite duration")
        return round(value)
    m = _DURATION_TEXT.match(str(value))
    if not m:
        raise ValueError("expected a duration such as 2s, 500ms, 250us or 40ns")
    number, unit = m.group(1), m.group(2)
    if unit is None:
        if float(number) == 0:
            return 0
        raise ValueError(
            f"a duration needs a unit: ns, us, ms or s (e.g. {number}ms); a bare number is refused"
        )
    return round(float(number) * _NS[unit if unit == "µs" else unit.lower()])


def parse_size_text(value: Any) -> int:
    """A size with its unit (``4G``, ``512M``, ``64GiB``, ``1T``) -> int MiB.

    An int (from Python, or a schedule file) is taken as MiB; text must carry a unit.
    """
    if isinstance(value, bool):
        raise ValueError("expected a size such as 4G, 512M or 64GiB")
    if isinstance(value, int):
        return value
    m = _SIZE_TEXT.match(str(value))
    if not m:
        raise ValueError("expected a size such as 4G, 512M or 64GiB")
    number, unit = m.group(1), m.group(2)
    if unit is None:
        raise ValueError(
            f"a size needs a unit: K, M, G or T (e.g. {number}M or {number}G); "
            "a bare number is refused"
        )
    return round(float(number) * _MIB[unit.lower()])


@attrs.frozen
class Param:
    """A parameter a scenario declares: default, help, and the range it accepts.

    ``unit`` is ``"duration"`` (text needs ns/us/ms/s; the value is int ns), ``"size"`` (text
    needs K/M/G/T; the value is int MiB) or None (typed like the default: bool, int, float or
    str). ``min``/``max`` bound numbers (inclusive, in ns or MiB for units); ``choices`` lists
    the valid strings. Numbers must be finite. Out-of-range values are refused before the run,
    with the range in the message.
    """

    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    choices: tuple[str, ...] | None = None

    def describe_range(self) -> str:
        """The accepted range as text (``0..10``, ``1us..1h``, ``>= 0``, or the choices)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        fmt: Callable[[Any], str] = _number
        if self.unit == "duration":
            fmt = format_duration
        elif self.unit == "size":
            fmt = format_size
        if self.min is not None and self.max is not None:
            return f"{fmt(self.min)}..{fmt(self.max)}"
        if self.min is not None:
            return f">= {fmt(self.min)}"
        if self.max is not None:
            return f"<= {fmt(self.max)}"
        return "any finite number" if isinstance(self.default, int | float) else "any text"

    def convert(self, value: Any) -> Any:
        """Type and range-check one value; ValueError names what is expected."""
        if self.unit == "duration":
            v: Any = parse_duration_text(value)
        elif self.unit == "size":
            v = parse_size_text(value)
        elif isinstance(value, str):
            v = _convert_text(self.default, value)
        else:
            v = value
        if isinstance(self.default, bool):
            if not isinstance(v, bool):
                raise ValueError("expected true or false")
            return v
        if isinstance(self.default, int | float) or self.unit:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"expected a number in {self.describe_range()}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"must be a finite number in {self.describe_range()}")
            if isinstance(self.default, int) and not self.unit and isinstance(v, float):
                if not v.is_integer():
                    raise ValueError(f"expected an integer in {self.describe_range()}")
                v = int(v)
            if isinstance(self.default, float) and isinstance(v, int):
                v = float(v)
        elif not isinstance(v, str):
            raise ValueError("expected text")
        if self.choices is not None and v not in self.choices:
            raise ValueError(f"expected {self.describe_range()}")
        if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
            raise ValueError(f"out of range: valid {self.describe_range()}")
        return v


def _number(v: float) -> str:
    """``1.0`` -> ``1``, ``1e7`` -> ``10000000``, ``0.35`` -> ``0.35``."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _convert_text(default: Any, value: str) -> Any:
    """Convert text from ``--set`` to the type of ``default``."""
    if isinstance(default, bool):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if isinstance(default, int):
        try:
            if len(value) > 40:
                raise ValueError
            return int(value.strip(), 0)
        except ValueError:
            raise ValueError("expected an integer") from None
    if isinstance(default, float):
        try:
            if len(value) > 40:
                raise ValueError
            return float(value)
        except ValueError:
            raise ValueError("expected a number") from None
    return value


#: the parameters every scenario accepts, with their ranges
STANDARD_PARAMS: dict[str, Param] = {
    "memory": Param("4G", "memory size (e.g. 4G, 512M, 64G)", 64, MAX_MEMORY_MIB, "size"),
    "cpus": Param(4, "CPUs in total, spread evenly over the nodes", 1, 256),
    "nodes": Param(1, "NUMA nodes", 1, 8),
    "duration": Param(
        "1s", "virtual time to run (e.g. 2s, 500ms)", 1_000, 3600 * 10**9, "duration"
    ),
    "seed": Param(1, "seed of every random stream and of random/pct strategies", 0, 2**32 - 1),
    "strategy": Param("fifo", "scheduling strategy: fifo, random, pct (seeded with seed)"),
    "quantum": Param(0, "sync quantum (0 = exact global order; e.g. 1us)", 0, 10**9, "duration"),
    "sample": Param(
        "10ms", "time-series sampling interval (virtual)", 1_000, 3600 * 10**9, "duration"
    ),
}


class ScenarioError(ValueError):
    """A scenario file or parameter is invalid: the message is one line that names it."""


@attrs.frozen
class Params:
    """Resolved parameters of one run. ``p["name"]`` reads any parameter by name."""

    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise ScenarioError(f"no parameter {name!r}") from None

    @property
    def memory_mib(self) -> int:
        return self.values["memory"]

    @property
    def cpus(self) -> int:
        return self.values["cpus"]

    @property
    def nodes(self) -> int:
        return self.values["nodes"]

    @property
    def duration_ns(self) -> int:
        return self.values["duration"]

    @property
    def seed(self) -> int:
        return self.values["seed"]

    @property
    def sysctls(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k in SYSCTL_SPECS}

    @property
    def costs(self) -> Costs:
        return Costs().with_overrides(
            **{k[5:]: v for k, v in self.values.items() if k.startswith("cost.")}
        )

    def as_json(self) -> dict[str, Any]:
        return {k: self.values[k] for k in sorted(self.values)}


def _as_param(spec: Any) -> Param:
    if isinstance(spec, Param):
        return spec
    default, help_ = spec
    return Param(default, help_)


@attrs.frozen
class Scenario:
    """A named, parameterised workload on a machine."""

    name: str
    summary: str
    build: Callable[[Params], Workload]
    defaults: Mapping[str, Any] = attrs.field(factory=dict)
    params: Mapping[str, Param | tuple[Any, str]] = attrs.field(factory=dict)
    setup: Callable[[Params, Any], None] | None = None
    actors: Callable[[Params, Any], list[tuple[str, Callable[[], Any]]]] | None = None
    report: Callable[[Params, Any], dict[str, Any]] | None = None
    path: str | None = None
    writes: Sequence[Any] | Callable[[Params], Sequence[Any]] = ()
    """Run-time writes ``(time, path, value[, cpu])`` (or a function of the params returning
    them), done by one task at their virtual times: see :mod:`emulator.workload.writes`."""
    #: ``machine(params, recorder) -> Machine`` replaces the booted x86_64 layout of
    #: ``memory`` MiB (e.g. a real machine's state, see :func:`from_proc`)
    machine: Callable[[Params, Any], Any] | None = None

    def param_specs(self) -> dict[str, Param]:
        """Every parameter this scenario accepts besides sysctls and costs, with its range."""
        out = {
            k: attrs.evolve(p, default=self.defaults.get(k, p.default))
            for k, p in STANDARD_PARAMS.items()
        }
        out.update({k: _as_param(v) for k, v in self.params.items()})
        return out

    def param_help(self) -> dict[str, tuple[Any, str]]:
        """Every parameter this scenario accepts besides sysctls and costs, with defaults."""
        return {k: (p.default, p.help) for k, p in self.param_specs().items()}

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> Params:
        """Defaults, then the scenario's defaults, then ``overrides``; checked and typed.

        Every value is checked against its declared range here, before anything runs, and the
        workload is built once to check the scenario accepts the values. Raises
        :class:`ScenarioError` naming the bad parameter and its valid range (and the valid
        names when the name is unknown).
        """
        known = self.param_specs()
        values: dict[str, Any] = {name: p.default for name, p in known.items()}
        for spec in SYSCTL_SPECS.values():
            if spec.name in self.defaults:
                values[spec.name] = self.defaults[spec.name]
        for name, value in self.defaults.items():
            if name.startswith("cost."):
                values[name] = value
        for name, value in (overrides or {}).items():
            if name in known or name in SYSCTL_SPECS or name.startswith("cost."):
                values[name] = value
                continue
            valid = (
                ", ".join(sorted(known))
                + ", vm.<sysctl> ("
                + ", ".join(sorted(SYSCTL_SPECS))
                + "), cost.<name> (mmemu list --params)"
            )
            raise ScenarioError(f"unknown parameter {_short(name)!r}; valid: {valid}")
        typed: dict[str, Any] = {}
        cost_names = set(Costs().as_dict())
        for name, value in values.items():
            try:
                if name.startswith("cost."):
                    if name[5:] not in cost_names:
                        raise ValueError(f"unknown cost; valid: {', '.join(sorted(cost_names))}")
                    typed[name] = COST_PARAM.convert(value)
                elif name in SYSCTL_SPECS:
                    typed[name] = check_sysctl(name, value)
                else:
                    typed[name] = known[name].convert(value)
            except ValueError as exc:
                raise ScenarioError(f"parameter {_short(name)}={_short(value)!r}: {exc}") from None
        _check_together(typed)
        params = Params(typed)
        try:
            params.costs  # noqa: B018 - validates every cost override
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None
        try:
            workload = self.build(params)
        except Exception as exc:
            raise ScenarioError(
                f"scenario {self.name}: build() refused the parameters: {_one_line(exc)}"
            ) from None
        check = getattr(workload, "check", None)
        if check is not None:
            try:
                check(params.cpus)
            except (ValueError, TypeError) as exc:
                raise ScenarioError(f"scenario {self.name}: bad workload: {exc}") from None
        return params


#: the range of every ``cost.NAME`` (a duration charged to virtual time)
COST_PARAM = Param(0, "a modelled cost", 0, 10**9, "duration")


def _short(value: Any, limit: int = 60) -> Any:
    """A value cut for an error message (a fuzzed 10 000-character value stays one short line)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        return text[:limit] + "..."
    return value


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_together(typed: dict[str, Any]) -> None:
    """Checks that involve more than one parameter."""
    cpus, nodes, mem = typed["cpus"], typed["nodes"], typed["memory"]
    if cpus % nodes:
        raise ScenarioError(f"cpus={cpus} does not divide evenly over nodes={nodes}")
    if nodes > 1:
        need = 4096 + 64 * nodes
        if mem < need:
            raise ScenarioError(
                f"memory={format_size(mem)} with nodes={nodes}: more than one node needs memory "
                f"above 4G (at least {format_size(need)}: 4G for node 0's DMA zones and 64M "
                "per node)"
            )
    try:
        make_strategy(typed["strategy"], typed["seed"])
    except SimError as exc:
        raise ScenarioError(f"parameter strategy={_short(typed['strategy'])!r}: {exc}") from None
    except Exception as exc:
        raise ScenarioError(
            f"parameter strategy={_short(typed['strategy'])!r}: {_one_line(exc)}; valid are "
            "fifo, random(seed), pct(seed, depth)"
        ) from None
    duration, sample = typed["duration"], typed["sample"]
    if duration // sample > MAX_SAMPLES:
        raise ScenarioError(
            f"parameter sample={format_duration(sample)}: at most {MAX_SAMPLES} samples per run "
            f"(for duration={format_duration(duration)}, sample >= "
            f"{format_duration(-(-duration // MAX_SAMPLES))})"
        )


def check_sysctl(name: str, value: Any) -> Any:
    """Type and range-check a sysctl value as ``proc_dointvec_minmax`` would (the machine's
    :meth:`~emulator.mm.sysctl.Sysctl.set` checks again when it is written)."""
    spec = SYSCTL_SPECS[name]
    if spec.choices:  # a sysfs word setting (transparent_hugepage.defrag)
        word = value.strip() if isinstance(value, str) else value
        if word not in spec.choices:
            raise ValueError(f"{name}={_short(word)!r} is invalid: valid {', '.join(spec.choices)}")
        return word
    if isinstance(value, str):
        if len(value) > 200:
            raise ValueError("value too long")
        try:
            value = _sysctl_text(value)
        except ValueError:
            raise ValueError("expected an integer (or, for lists, integers)") from None
    if name == "vm.lowmem_reserve_ratio":
        vals = value if isinstance(value, list | tuple) else [value]
        if len(vals) != MAX_NR_ZONES or not all(_plain_int(v) for v in vals):
            raise ValueError(f"takes {MAX_NR_ZONES} integers, one per zone type")
        if not all(spec.lo <= v <= spec.hi for v in vals):
            raise ValueError(f"out of range: valid {spec.lo}..{spec.hi} each")
        return list(vals)
    if not _plain_int(value):
        raise ValueError(f"expected an integer in {spec.lo}..{spec.hi}")
    if not spec.lo <= value <= spec.hi:
        raise ValueError(f"out of range: valid {spec.lo}..{spec.hi}")
    if name == "vm.percpu_pagelist_high_fraction" and 0 < value < MIN_PERCPU_PAGELIST_HIGH_FRACTION:
        raise ValueError(f"out of range: valid 0 or {MIN_PERCPU_PAGELIST_HIGH_FRACTION}..{spec.hi}")
    return value


def _plain_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _sysctl_text(value: str) -> Any:
    parts = value.replace(",", " ").split()
    if len(parts) > 1:
        return [int(p, 0) for p in parts]
    try:
        return int(value, 0)
    except ValueError:
        return value.strip()  # a word setting (transparent_hugepage.defrag); Sysctl.set checks


def from_proc(scenario: Scenario, proc_dir: str | Path) -> Scenario:
    """``scenario`` started from a real machine's state instead of a freshly booted one.

    ``proc_dir`` holds ``buddyinfo`` and, optionally, ``pagetypeinfo`` and ``zoneinfo`` (as
    ``mmemu inspect`` reads them, e.g. copied from ``/proc``). The machine is built with
    :func:`emulator.mm.initstate.machine_from_snapshot`: the same free blocks per order (and
    migratetype, and zone spans and watermarks where the files give them). ``memory`` and
    ``nodes`` come from the files; the scenario's ``setup`` (its own made-up past) is skipped.
    Raises :class:`ScenarioError` (one line) on unreadable or inconsistent files.
    """
    from emulator.cli import UsageError
    from emulator.mm.initstate import machine_from_snapshot
    from emulator.report.inspect import load

    try:
        snap = load(str(proc_dir)).machine
    except UsageError as exc:
        raise ScenarioError(f"--from-proc: {exc}") from None
    pages = sum(
        max(z.spanned, z.managed, sum(n << o for o, n in enumerate(z.nr_free))) for z in snap.zones
    )
    if pages * 4 >> 10 > MAX_MEMORY_MIB:
        raise ScenarioError(
            f"--from-proc {proc_dir}: {format_size(pages * 4 >> 10)} of memory is beyond the "
            f"model's {format_size(MAX_MEMORY_MIB)}"
        )
    try:
        probe = machine_from_snapshot(snap)
    except (ValueError, MemoryError) as exc:
        raise ScenarioError(f"--from-proc {proc_dir}: cannot build that machine: {exc}") from None
    nodes = len(probe.nodes)
    mib = max(64, probe.memmap.end_pfn * 4096 >> 20)
    del probe

    def machine(_params: Params, recorder: Any) -> Any:
        m = machine_from_snapshot(snap)
        m.recorder = recorder
        for z in m.all_zones():
            z.rec = recorder
        return m

    defaults = {**scenario.defaults, "nodes": nodes, "memory": mib}
    cpus = defaults.get("cpus", STANDARD_PARAMS["cpus"].default)
    if isinstance(cpus, int) and cpus % nodes:
        defaults["cpus"] = nodes * max(1, cpus // nodes)
    return attrs.evolve(
        scenario,
        name=f"{scenario.name}-from-proc",
        defaults=defaults,
        machine=machine,
        setup=None,
    )


def _scenario_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [here / "scenarios", here.parent / "scenarios"]


def bundled_scenarios() -> dict[str, Path]:
    """Name -> file of every bundled scenario (the package's, then the source tree's)."""
    found: dict[str, Path] = {}
    for d in _scenario_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.py")):
                if not f.name.startswith("_"):
                    found.setdefault(f.stem, f)
    return found


def find_scenario(name_or_path: str | None) -> Path:
    """A scenario file from a path, or a bundled scenario's name (``None``: ``default``)."""
    if name_or_path is None:
        name_or_path = "default"
    p = Path(name_or_path)
    if p.suffix == ".py" or p.exists():
        if not p.is_file():
            raise ScenarioError(f"scenario file {name_or_path!r} does not exist")
        return p
    bundled = bundled_scenarios()
    if name_or_path in bundled:
        return bundled[name_or_path]
    raise ScenarioError(
        f"no scenario {name_or_path!r}: give a .py file or one of {', '.join(sorted(bundled))}"
    )


def load_scenario(path: str | Path) -> Scenario:
    """Import a scenario file and return its ``SCENARIO``.

    Any failure (missing file, syntax error, exception at import, no or wrong ``SCENARIO``)
    raises :class:`ScenarioError` with one line naming the file (and line, where known).
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file {str(path)!r} does not exist")
    modname = f"mmemu_scenario_{path.stem}"
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"scenario file {str(path)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[modname] = module
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ScenarioError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        line = _line_in(exc, path)
        raise ScenarioError(f"{path}{line}: {type(exc).__name__}: {exc}") from None
    finally:
        sys.modules.pop(modname, None)
    scenario = getattr(module, "SCENARIO", None)
    if not isinstance(scenario, Scenario):
        raise ScenarioError(f"{path}: defines no SCENARIO = emulator.scenario.Scenario(...)")
    return attrs.evolve(scenario, path=str(path))


def _line_in(exc: BaseException, path: Path) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            return f":{frame.lineno}"
    return ""
