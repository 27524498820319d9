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
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from emulator.engine import SimError, make_strategy
from emulator.mm.costs import Costs
from emulator.mm.sysctl import SPECS as SYSCTL_SPECS
from emulator.workload.spec import Workload, parse_duration, parse_size_mib

__all__ = [
    "STANDARD_PARAMS",
    "Params",
    "Scenario",
    "ScenarioError",
    "bundled_scenarios",
    "find_scenario",
    "load_scenario",
]

#: name -> (default, help)
STANDARD_PARAMS: dict[str, tuple[Any, str]] = {
    "memory": ("4G", "memory size (e.g. 4G, 512M, 64G)"),
    "cpus": (4, "CPUs in total, spread evenly over the nodes"),
    "nodes": (1, "NUMA nodes"),
    "duration": ("1s", "virtual time to run (e.g. 2s, 500ms)"),
    "seed": (1, "seed of every random stream and of random/pct strategies"),
    "strategy": ("fifo", "scheduling strategy: fifo, random, pct (seeded with seed)"),
    "quantum": (0, "sync quantum in ns (0 = exact global order)"),
    "sample": ("10ms", "time-series sampling interval (virtual)"),
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


def _convert(name: str, default: Any, value: Any) -> Any:
    """Convert ``value`` (often text from ``--set``) to the type of ``default``."""
    if name == "memory":
        return parse_size_mib(value)
    if name in ("duration", "sample"):
        return parse_duration(value)
    if not isinstance(value, str):
        return value
    if isinstance(default, bool):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if isinstance(default, int):
        return int(value, 0)
    if isinstance(default, float):
        return float(value)
    return value


@attrs.frozen
class Scenario:
    """A named, parameterised workload on a machine."""

    name: str
    summary: str
    build: Callable[[Params], Workload]
    defaults: Mapping[str, Any] = attrs.field(factory=dict)
    params: Mapping[str, tuple[Any, str]] = attrs.field(factory=dict)
    setup: Callable[[Params, Any], None] | None = None
    actors: Callable[[Params, Any], list[tuple[str, Callable[[], Any]]]] | None = None
    report: Callable[[Params, Any], dict[str, Any]] | None = None
    path: str | None = None
    writes: Sequence[Any] | Callable[[Params], Sequence[Any]] = ()
    """Run-time writes ``(time, path, value[, cpu])`` (or a function of the params returning
    them), done by one task at their virtual times: see :mod:`emulator.workload.writes`."""

    def param_help(self) -> dict[str, tuple[Any, str]]:
        """Every parameter this scenario accepts besides sysctls and costs, with defaults."""
        out = {k: (self.defaults.get(k, d), h) for k, (d, h) in STANDARD_PARAMS.items()}
        out.update(self.params)
        return out

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> Params:
        """Defaults, then the scenario's defaults, then ``overrides``; checked and typed.

        Raises :class:`ScenarioError` naming the bad parameter (and the valid ones when the name
        is unknown).
        """
        known = self.param_help()
        values: dict[str, Any] = {}
        for name, (default, _help) in known.items():
            values[name] = default
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
                + "), cost.<name>"
            )
            raise ScenarioError(f"unknown parameter {name!r}; valid: {valid}")
        typed: dict[str, Any] = {}
        cost_names = set(Costs().as_dict())
        for name, value in values.items():
            try:
                if name.startswith("cost."):
                    if name[5:] not in cost_names:
                        raise ValueError(f"unknown cost; valid: {', '.join(sorted(cost_names))}")
                    typed[name] = _convert(name, 0, value)
                elif name in SYSCTL_SPECS:
                    typed[name] = value if not isinstance(value, str) else _sysctl_text(value)
                else:
                    typed[name] = _convert(name, known[name][0], value)
            except ValueError as exc:
                raise ScenarioError(f"parameter {name}={value!r}: {exc}") from None
        if typed["cpus"] < 1 or typed["nodes"] < 1:
            raise ScenarioError("parameters cpus and nodes must be >= 1")
        if typed["cpus"] % typed["nodes"]:
            raise ScenarioError(
                f"cpus={typed['cpus']} does not divide evenly over nodes={typed['nodes']}"
            )
        try:
            make_strategy(typed["strategy"], typed["seed"])
        except SimError as exc:
            raise ScenarioError(f"parameter strategy={typed['strategy']!r}: {exc}") from None
        if typed["quantum"] < 0:
            raise ScenarioError("parameter quantum must be >= 0 ns")
        if typed["sample"] < 1:
            raise ScenarioError("parameter sample must be > 0")
        params = Params(typed)
        try:
            params.costs  # noqa: B018 - validates every cost override
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None
        return params


def _sysctl_text(value: str) -> Any:
    parts = value.replace(",", " ").split()
    if len(parts) > 1:
        return [int(p, 0) for p in parts]
    try:
        return int(value, 0)
    except ValueError:
        return value.strip()  # a word setting (transparent_hugepage.defrag); Sysctl.set checks


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
