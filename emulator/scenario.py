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
kernel name (``vm.compaction_proactiveness=0``), every cost by ``cost.NAME``, every kernel
mitigation by ``mitigation.NAME=on|off`` (:mod:`emulator.mm.mitigations`) and its own
``params``. Unknown names are an error listing the valid ones. Values given as text (from the
command line) are converted to the type of the default.

Optional hooks: ``setup(params, ctx)`` runs after boot and before the actors start (e.g. to build
a fragmented initial state with :mod:`emulator.mm.initstate`), ``actors(params, ctx)`` returns
extra actors as ``(name, async_fn)`` pairs (each called as ``await fn()``), and ``report(params,
ctx)`` returns a dict of scenario-specific findings that goes into ``summary.json``; a scenario
may also set ``ctx.scenario_result`` (any JSON: e.g. a pass/fail verdict), which summary.json
carries as ``"scenario_result"``. ``properties`` (or a module-level ``properties = [...]``) are
checked on every run (:mod:`emulator.explore.properties`). ``writes`` lists sysctl and sysfs
writes at virtual times
(``[("2s", "vm.compact_memory", "1")]``), see :mod:`emulator.workload.writes`.

How one parameter is typed and range-checked (:class:`Param`, the standard parameters, units,
sysctl checks) is :mod:`emulator.params`, re-exported here.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from emulator.engine import SimError
from emulator.engine.strategy import VALID_FORMS, parse_strategy
from emulator.explore.properties import Property
from emulator.mm.costs import Costs
from emulator.mm.mitigations import MITIGATIONS, Mitigations
from emulator.mm.mitigations import PARAM_PREFIX as MITIGATION_PREFIX
from emulator.mm.sysctl import TUNABLES
from emulator.mm.tunable import TunableError
from emulator.params import (
    COST_PARAM,
    MAX_MEMORY_MIB,
    STANDARD_PARAMS,
    Param,
    _short,
    check_sysctl,
    format_duration,
    format_size,
)
from emulator.params import MAX_SAMPLES as MAX_SAMPLES
from emulator.params import parse_duration_text as parse_duration_text
from emulator.params import parse_size_text as parse_size_text
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
    "is_bundled",
    "load_scenario",
    "looks_like_path",
    "one_line",
]


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
        return int(self.values["memory"])

    @property
    def cpus(self) -> int:
        return int(self.values["cpus"])

    @property
    def nodes(self) -> int:
        return int(self.values["nodes"])

    @property
    def duration_ns(self) -> int:
        return int(self.values["duration"])

    @property
    def seed(self) -> int:
        return int(self.values["seed"])

    @property
    def sysctls(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k in TUNABLES}

    @property
    def mitigations(self) -> Mitigations:
        """The ``mitigation.NAME`` values as the machine keeps them (each on unless set off)."""
        return Mitigations.from_values(
            {k: v for k, v in self.values.items() if k.startswith(MITIGATION_PREFIX)}
        )

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
    #: the properties a run of this scenario must keep (:mod:`emulator.explore.properties`);
    #: a scenario file may also declare them as a module-level ``properties = [...]``
    properties: Sequence[Property] = ()
    #: a :func:`from_proc` scenario's saved /proc files (name -> text), kept in the run's
    #: schedule.json so that its replay builds the same machine
    proc_files: Mapping[str, str] | None = None

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
        for spec in TUNABLES.values():
            if spec.name in self.defaults:
                values[spec.name] = self.defaults[spec.name]
        for name, value in self.defaults.items():
            if name.startswith("cost."):
                values[name] = value
        for name, value in (overrides or {}).items():
            if name in known or name in TUNABLES or name.startswith("cost."):
                values[name] = value
                continue
            valid = (
                ", ".join(sorted(known))
                + ", vm.<sysctl> ("
                + ", ".join(sorted(TUNABLES))
                + "), cost.<name> (mmemu list --params)"
            )
            if name.startswith(MITIGATION_PREFIX):
                switches = ", ".join(MITIGATIONS)
                raise ScenarioError(
                    f"parameter {_short(name)}: unknown mitigation; valid: {switches}"
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
                elif name in TUNABLES:
                    typed[name] = check_sysctl(name, value)
                else:
                    typed[name] = known[name].convert(value)
            except TunableError as exc:  # names the tunable, the value and what is valid
                raise ScenarioError(str(exc)) from None
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
                f"scenario {self.name}: build() refused the parameters: {one_line(exc)}"
            ) from None
        check = getattr(workload, "check", None)
        if check is not None:
            try:
                check(params.cpus)
            except (ValueError, TypeError) as exc:
                raise ScenarioError(f"scenario {self.name}: bad workload: {exc}") from None
        return params


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most about 300 characters, its type first (the form
    of every hook and parameter error)."""
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
        name, args = parse_strategy(typed["strategy"])
    except SimError as exc:
        why = str(exc).split(": ", 1)[-1]
        raise ScenarioError(f"parameter strategy={_short(typed['strategy'])!r}: {why}") from None
    except Exception as exc:
        raise ScenarioError(
            f"parameter strategy={_short(typed['strategy'])!r}: {one_line(exc)}; valid are "
            f"{VALID_FORMS}"
        ) from None
    if args and args[0] != typed["seed"]:
        # one seed per run: a second one inside the spec would silently differ from the seed
        # the run is named, recorded and replayed by
        raise ScenarioError(
            f"parameter strategy={_short(typed['strategy'])!r}: seeds the strategy with "
            f"{args[0]} but the run's seed is {typed['seed']}; give the seed once "
            f"(seed={args[0]}, strategy={name}); valid are {VALID_FORMS}"
        )
    if typed["perturb"] and name == "fifo":
        raise ScenarioError(
            "parameter perturb=true: fifo injects no delays; use strategy=random or pct"
        )
    duration, sample = typed["duration"], typed["sample"]
    if duration // sample > MAX_SAMPLES:
        raise ScenarioError(
            f"parameter sample={format_duration(sample)}: at most {MAX_SAMPLES} samples per run "
            f"(for duration={format_duration(duration)}, sample >= "
            f"{format_duration(-(-duration // MAX_SAMPLES))})"
        )


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
    problem = snapshot_problem(snap)
    if problem is not None:
        raise ScenarioError(f"--from-proc {proc_dir}: {problem}")
    proc_files = {}
    for name in PROC_FILES:
        f = Path(proc_dir) / name
        if f.is_file():
            proc_files[name] = f.read_text(encoding="utf-8")
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
        proc_files=proc_files,
    )


#: the files of a saved /proc that --from-proc reads (kept in a run's schedule.json)
PROC_FILES = ("buddyinfo", "pagetypeinfo", "zoneinfo")


def snapshot_problem(snap: Any) -> str | None:
    """What makes a saved /proc impossible on a real machine, or None: node ids must be
    0..N-1 (the model numbers nodes densely, as a machine without memoryless holes does),
    zones of a node must not overlap, and per zone (where zoneinfo gives the sizes, as
    mm/mm_init.c computes them) 0 <= managed <= present <= spanned and free <= managed."""
    nids = sorted({z.node for z in snap.zones})
    if nids != list(range(len(nids))):
        shown = ", ".join(str(n) for n in nids[:6]) + (", ..." if len(nids) > 6 else "")
        return f"nodes {shown}: node numbers must be 0 to N-1 with none missing"
    for nid in nids:
        spans = sorted(
            (z.start_pfn, z.start_pfn + z.spanned, z.name)
            for z in snap.zones
            if z.node == nid and z.spanned > 0
        )
        for (_s0, e0, n0), (s1, _e1, n1) in itertools.pairwise(spans):
            if s1 < e0:
                return f"node {nid}: zones {n0} and {n1} overlap (pfn {s1:#x} is in both)"
    for z in snap.zones:
        where = f"node {z.node} zone {z.name}"
        if z.managed < 0 or z.present < 0 or z.spanned < 0:
            return f"{where}: negative page counts (managed {z.managed}, present {z.present})"
        if z.spanned and z.present > z.spanned:
            return f"{where}: present {z.present} > spanned {z.spanned}"
        if z.present and z.managed > z.present:
            return f"{where}: managed {z.managed} > present {z.present}"
        if z.managed and z.free_pages > z.managed:
            return f"{where}: {z.free_pages} free pages > managed {z.managed}"
    return None


def _scenario_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [here / "scenarios", here.parent / "scenarios"]


#: the race catalogue's folder among the bundled scenarios; its scenarios are ``races/NAME``
RACES_DIR = "races"
_CATALOGUE_NAME = re.compile(rf"{RACES_DIR}/[A-Za-z0-9_]+")


def bundled_scenarios() -> dict[str, Path]:
    """Name -> file of every bundled scenario (the package's, then the source tree's); the
    race catalogue's as ``races/NAME``."""
    found: dict[str, Path] = {}
    for d in _scenario_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.py")):
                if not f.name.startswith("_"):
                    found.setdefault(f.stem, f)
            for f in sorted(d.glob(f"{RACES_DIR}/*.py")):  # the race catalogue: races/NAME
                if not f.name.startswith("_"):
                    found.setdefault(f"{RACES_DIR}/{f.stem}", f)
    return found


def looks_like_path(name: str) -> bool:
    """A scenario argument that names a file, not a bundled scenario: it has a ``.py``
    suffix or a directory part (``./default``, ``dir/x``), other than the race catalogue's
    ``races/NAME``."""
    if _CATALOGUE_NAME.fullmatch(name):
        return False
    return name.endswith(".py") or "/" in name or name.startswith((".", "~"))


def find_scenario(name_or_path: str | None) -> Path:
    """A bundled scenario's name (``None``: ``default``) or a scenario file's path.

    A bundled name (``default``, ``races/stolen_page``) is always the bundled scenario of that
    name, even if a file or folder of that name is in the current directory (a selftest binary
    called ``compaction_test`` is common): write ``./NAME`` for the file. A bare name that is no
    bundled scenario is a file of that name, if there is one.
    """
    if name_or_path is None:
        name_or_path = "default"
    bundled = bundled_scenarios()
    if name_or_path in bundled:
        return bundled[name_or_path]
    if not looks_like_path(name_or_path):
        if Path(name_or_path).is_file():  # no bundled scenario of that name: the file
            return Path(name_or_path)
        raise ScenarioError(
            f"no scenario {name_or_path!r}: give a .py file or one of {', '.join(sorted(bundled))}"
        )
    p = Path(name_or_path).expanduser()
    if not p.is_file():
        what = "is not a file" if p.exists() else "does not exist"
        raise ScenarioError(f"scenario file {name_or_path!r} {what}")
    return p


def is_bundled(path: Path) -> bool:
    """True if ``path`` is one of the bundled scenarios."""
    return any(path == p for p in bundled_scenarios().values())


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
    props = list(scenario.properties)
    extra = getattr(module, "properties", None) or ()
    if not isinstance(extra, list | tuple) or not all(
        isinstance(p, Property) for p in [*props, *extra]
    ):
        raise ScenarioError(
            f"{path}: properties must be a list of emulator.explore.properties.Property"
        )
    props += [p for p in extra if p not in props]
    names = [p.name for p in props]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{path}: a property is declared twice: {', '.join(names)}")
    return attrs.evolve(scenario, path=str(path), properties=tuple(props))


def _line_in(exc: BaseException, path: Path) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            return f":{frame.lineno}"
    return ""
