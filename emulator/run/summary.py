"""summary.json as typed classes: written once at the end of a run, read back typed by the views.

Every section is a frozen attrs class with every field declared; :meth:`RunSummary.to_json`
gives the document in the order ``mmemu run`` has always written it, and
:meth:`RunSummary.load` reads a results folder's file as untrusted input: a field of the wrong
type is one line naming it (``<path>: field 'allocations.9.attempts' should be an integer, not a
string``), a field left out takes its default (an interrupted run writes only a few).

The field types say what a field holds in the JSON: ``int``, ``float`` (an integer is a number
too), ``str``, ``bool``, ``None``, ``list[...]``, ``dict[str, ...]``, ``dict[int, ...]`` (keys
written as decimal strings: orders, CPU ids) and ``Any`` (any JSON: a scenario's verdict, its
findings). A field's JSON key is its name unless ``key`` says otherwise (lock_stat's
``waittime-avg``); a field with ``omit`` is left out of the document when it holds its default.
"""

from __future__ import annotations

import json
import math
import types
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin

import attrs

__all__ = [
    "MAX_SUMMARY_BYTES",
    "EngineSummary",
    "Extfrag",
    "KcompactdSummary",
    "KswapdSummary",
    "LatencyNs",
    "LatencyPart",
    "LatencyParts",
    "LockClassStat",
    "OrderAllocations",
    "PcpSummary",
    "ProactivePassSummary",
    "PropertySummary",
    "RunSummary",
    "SlowpathOrder",
    "StoppedAtStart",
    "SummaryError",
    "Timeseries",
    "ViolationSummary",
]

#: the largest summary.json read (a long run's timeseries is a few MB)
MAX_SUMMARY_BYTES = 256 * 1024 * 1024

#: a run parameter's value in summary.json ``params``
ParamValue = int | float | str | bool | None

T = TypeVar("T", bound="Section")


class SummaryError(ValueError):
    """summary.json (or one of its fields) cannot be used; the message is one line."""


def _omitted(f: attrs.Attribute[Any], value: Any) -> bool:
    omit = f.metadata.get("omit")
    return bool(f.metadata.get("internal")) or (
        (omit == "none" and value is None) or (omit == "empty" and not value)
    )


def kind_of(value: Any) -> str:
    """What a JSON value is, for a message (``an integer``, ``a list``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _what(tp: Any) -> str:
    """What a field type asks for, for a message."""
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is bool:
        return "a boolean"
    origin = get_origin(tp)
    if origin is list:
        (inner,) = get_args(tp)
        if get_origin(inner) is list:
            return "a list of lists"
        return "a list of " + _what(inner).removeprefix("an ").removeprefix("a ") + "s"
    if origin in (Union, types.UnionType):
        return " or ".join(_what(a) for a in get_args(tp) if a is not type(None))
    return "an object"


def _decode(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against the field type ``tp`` (and converted: sections, int keys)."""
    if tp is Any:
        return value
    if isinstance(tp, type) and issubclass(tp, Section):
        if not isinstance(value, dict):
            raise SummaryError(f"field {where!r} should be an object, not {kind_of(value)}")
        return tp.from_json(value, where)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is not type(None) and _matches(option, value):
                return _decode(option, value, where)
        raise SummaryError(f"field {where!r} should be {_what(tp)}, not {kind_of(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise SummaryError(f"field {where!r} should be {_what(tp)}, not {kind_of(value)}")
        (inner,) = get_args(tp)
        return [_decode(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SummaryError(f"field {where!r} should be an object, not {kind_of(value)}")
        key_type, inner = get_args(tp)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            sub = f"{where}.{k[:40]}" if where else k[:40]
            if key_type is int:
                if not k.lstrip("-").isdigit():
                    raise SummaryError(
                        f"field {sub!r}: {k[:20]!r} is not a number (an order, a CPU)"
                    )
                out[int(k)] = _decode(inner, v, sub)
            else:
                out[k] = _decode(inner, v, sub)
        return out
    if not _matches(tp, value):
        raise SummaryError(f"field {where!r} should be {_what(tp)}, not {kind_of(value)}")
    return float(value) if tp is float else value


def _matches(tp: Any, value: Any) -> bool:
    """Whether ``value`` is of the JSON kind ``tp`` names (containers: the outer kind)."""
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if tp is str:
        return isinstance(value, str)
    if tp is bool:
        return isinstance(value, bool)
    if tp is type(None):
        return value is None
    origin = get_origin(tp)
    if origin is list:
        return isinstance(value, list)
    if origin is dict or (isinstance(tp, type) and issubclass(tp, Section)):
        return isinstance(value, dict)
    return tp is Any


def _encode(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_json()
    if isinstance(value, dict):  # JSON keys are strings: orders and CPU ids in decimal
        return {str(k) if isinstance(k, int) else k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


class Section:
    """A part of summary.json: an attrs class whose fields are its keys, in order."""

    #: a JSON key of this section that is no field (older runs wrote it): ignored when read
    IGNORED: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        """The section as JSON, keys in field order (fields with ``omit`` left out)."""
        out: dict[str, Any] = {}
        for f in attrs.fields(type(self)):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if not _omitted(f, value):
                out[f.metadata.get("key") or f.name] = _encode(value)
        return out

    @classmethod
    def of(cls: type[T], doc: dict[str, Any]) -> T:
        """The section from the model's own JSON: every key must be a declared field."""
        keys = {f.metadata.get("key") or f.name for f in attrs.fields(cls)}  # type: ignore[arg-type]
        extra = [k for k in doc if k not in keys]
        if extra:
            raise ValueError(f"{cls.__name__}: no field declared for {extra[0]!r}")
        return cls.from_json(doc, cls.__name__)

    @classmethod
    def from_json(cls: type[T], doc: dict[str, Any], where: str = "") -> T:
        """The section from its JSON object; :class:`SummaryError` names a wrong field."""
        attrs.resolve_types(cls)  # type: ignore[type-var]
        got: dict[str, Any] = {}
        for f in attrs.fields(cls):  # type: ignore[arg-type]
            key = f.metadata.get("key") or f.name
            if key not in doc or f.metadata.get("internal"):
                continue
            sub = f"{where}.{key}" if where else key
            got[f.name] = _decode(f.type, doc[key], sub)
        try:
            return cls(**got)
        except TypeError as exc:  # a field without a default is missing
            raise SummaryError(f"field {where or 'summary'!r} is incomplete: {exc}") from None


@attrs.frozen
class LatencyNs(Section):
    """``allocations.N.latency_ns``: allocation latency percentiles (nearest rank) and max."""

    p50: int = 0
    p99: int = 0
    max: int = 0


@attrs.frozen
class LatencyPart(Section):
    """One part of the allocation latency (emulator.mm.alloc_latency.PARTS): its total, share
    of the order's total latency and per-allocation p50/p99/max."""

    total_ns: int = 0
    share: float = 0.0
    p50: int = 0
    p99: int = 0
    max: int = 0


@attrs.frozen
class LatencyParts(Section):
    """``allocations.N.latency_parts``: where an order's allocation latency went."""

    total_ns: int = 0
    timed: int = 0
    interleaving: list[str] = attrs.field(factory=list)
    parts: dict[str, LatencyPart] = attrs.field(factory=dict)


@attrs.frozen
class OrderAllocations(Section):
    """``allocations.N``: one order's allocation outcomes, all CPUs merged."""

    attempts: int = 0
    pcp_hits: int = 0
    pcp_refills: int = 0
    failures: int = 0
    failure_reasons: dict[str, int] = attrs.field(factory=dict)
    latency_ns: LatencyNs = attrs.field(factory=LatencyNs)
    latency_parts: LatencyParts = attrs.field(factory=LatencyParts)


@attrs.frozen
class LockClassStat(Section):
    """A /proc/lock_stat row (``lock_stat.CLASS``, ``zone_locks.NAME``): times in ns."""

    class_name: str = attrs.field(default="", metadata={"key": "class"})
    con_bounces: int = attrs.field(default=0, metadata={"key": "con-bounces"})
    contentions: int = 0
    waittime_min: int = attrs.field(default=0, metadata={"key": "waittime-min"})
    waittime_max: int = attrs.field(default=0, metadata={"key": "waittime-max"})
    waittime_total: int = attrs.field(default=0, metadata={"key": "waittime-total"})
    waittime_avg: int = attrs.field(default=0, metadata={"key": "waittime-avg"})
    acq_bounces: int = attrs.field(default=0, metadata={"key": "acq-bounces"})
    acquisitions: int = 0
    holdtime_min: int = attrs.field(default=0, metadata={"key": "holdtime-min"})
    holdtime_max: int = attrs.field(default=0, metadata={"key": "holdtime-max"})
    holdtime_total: int = attrs.field(default=0, metadata={"key": "holdtime-total"})
    holdtime_avg: int = attrs.field(default=0, metadata={"key": "holdtime-avg"})
    trylock_failures: int = attrs.field(default=0, metadata={"key": "trylock-failures"})
    contention_points: dict[str, int] = attrs.field(
        factory=dict, metadata={"key": "contention-points"}
    )
    contending_points: dict[str, int] = attrs.field(
        factory=dict, metadata={"key": "contending-points"}
    )


@attrs.frozen
class PcpSummary(Section):
    """``pcp``: pages on the per-CPU lists at the end, in all and per CPU."""

    pages: int = 0
    per_cpu: dict[int, int] = attrs.field(factory=dict)


@attrs.frozen
class SlowpathOrder(Section):
    """``slowpath.N``: how one order's slow-path entries ended."""

    entered: int = 0
    succeeded_freelist: int = 0
    succeeded_after_reclaim: int = 0
    succeeded_after_compaction: int = 0
    captured: int = 0
    failed: dict[str, int] = attrs.field(factory=dict)
    would_oom: int = 0


@attrs.frozen
class Extfrag(Section):
    """``extfrag``: fragmenting fallbacks (mm_page_alloc_extfrag below pageblock_order)."""

    fragmenting_fallbacks: int = 0
    by_alloc_migratetype: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class ProactivePassSummary(Section):
    """One proactive compaction pass of kcompactd (``kcompactd[i].proactive_passes``)."""

    t_ns: int = 0
    score_before: int = 0
    score_after: int = 0
    pages_migrated: int = 0


@attrs.frozen
class KcompactdSummary(Section):
    """``kcompactd[i]``: one node's kcompactd, its proactive marks, wake-ups and passes."""

    node: int = 0
    low: int = 0
    high: int = 0
    wakeups: dict[str, int] = attrs.field(factory=dict)
    proactive_passes: list[ProactivePassSummary] = attrs.field(factory=list)


@attrs.frozen
class KswapdSummary(Section):
    """``kswapd[i]``: one node's kswapd."""

    node: int = 0
    wakeups: int = 0
    runs: int = 0
    pages_reclaimed: int = 0
    kswapd_failures: int = 0


@attrs.frozen
class EngineSummary(Section):
    """``engine``: the strategy, driver and how much the engine did."""

    strategy: dict[str, ParamValue] = attrs.field(factory=dict)
    quantum_ns: int = 0
    driver: str = ""
    switches: int = 0
    syncs: int = 0
    decisions: int = 0
    events: int = 0
    events_dropped: int = 0
    #: the tracepoint globs recorded (``--events``), None for all
    events_filter: str | list[str] | None = None


@attrs.frozen
class Timeseries(Section):
    """``timeseries``: the sampler's series, all of one length (one entry per sample)."""

    t_ns: list[int] = attrs.field(factory=list)
    nr_free_pages: list[int] = attrs.field(factory=list)
    pcp_pages: list[int] = attrs.field(factory=list)
    free_pages_per_order: list[list[int]] = attrs.field(factory=list)
    fragmentation_score: list[list[int]] = attrs.field(factory=list)

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "") -> Timeseries:
        ts = super().from_json(doc, where)
        n = len(ts.t_ns)
        for f in attrs.fields(cls):
            series = getattr(ts, f.name)
            if series and len(series) != n:
                raise SummaryError(
                    f"field {where or 'timeseries'!r}: {f.name} has {len(series)} samples but "
                    f"t_ns has {n}"
                )
        return ts


@attrs.frozen
class ViolationSummary(Section):
    """One property violation (``properties.NAME.first[i]``)."""

    property: str = ""
    message: str = ""
    time_ns: int = 0


@attrs.frozen
class PropertySummary(Section):
    """``properties.NAME``: a checked property, its violation count and the first few."""

    doc: str = ""
    violations: int = 0
    first: list[ViolationSummary] = attrs.field(factory=list)


@attrs.frozen
class StoppedAtStart(Section):
    """summary.json of a run stopped by a signal before its machine was booted."""

    scenario: str
    params: dict[str, ParamValue]
    reason: str
    stage: str

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1) + "\n"


@attrs.frozen
class RunSummary(Section):
    """summary.json: one run of a scenario.

    Read back, a field the file leaves out holds its default (a run stopped before its
    machine was booted writes only :class:`StoppedAtStart`'s four fields).
    """

    scenario: str = "?"
    seed: int | None = None
    params: dict[str, ParamValue] = attrs.field(factory=dict)
    reason: str = "?"
    #: for a run stopped by a signal, the phase it was in (emulator.run.stop.PHASES)
    stage: str | None = attrs.field(default=None, metadata={"omit": "none"})
    virtual_ns: int = 0
    #: wall-clock seconds of boot and set-up, and of the run
    setup_s: float = 0.0
    wall_s: float = 0.0
    #: /proc/vmstat at the end (the counters the model keeps), and what the run added
    vmstat: dict[str, int] = attrs.field(factory=dict)
    vmstat_delta: dict[str, int] = attrs.field(factory=dict)
    allocations: dict[int, OrderAllocations] = attrs.field(factory=dict)
    #: /proc/lock_stat per lock class, and each zone's zone->lock
    lock_stat: dict[str, LockClassStat] = attrs.field(factory=dict)
    zone_locks: dict[str, LockClassStat] = attrs.field(factory=dict)
    pcp: PcpSummary = attrs.field(factory=PcpSummary)
    kswapd_wakeups: int = 0
    slowpath: dict[int, SlowpathOrder] = attrs.field(factory=dict)
    extfrag: Extfrag = attrs.field(factory=Extfrag)
    mitigations: dict[str, str] = attrs.field(factory=dict)
    #: the kernel threads (none for a run stopped before they started)
    kcompactd: list[KcompactdSummary] | None = attrs.field(default=None, metadata={"omit": "none"})
    kswapd: list[KswapdSummary] | None = attrs.field(default=None, metadata={"omit": "none"})
    engine: EngineSummary = attrs.field(factory=EngineSummary)
    #: the sampler's series (written ``{}`` by a run stopped before its sampler started)
    timeseries: Timeseries | None = None
    properties: dict[str, PropertySummary] = attrs.field(factory=dict, metadata={"omit": "empty"})
    #: a scenario's verdict (any JSON)
    scenario_result: Any = attrs.field(default=None, metadata={"omit": "none"})
    #: what the run found besides the counters: the scenario's report, workload warnings
    findings: dict[str, Any] = attrs.field(factory=dict, metadata={"omit": "empty"})
    error: str | None = attrs.field(default=None, metadata={"omit": "empty"})
    report_error: str | None = attrs.field(default=None, metadata={"omit": "empty"})
    #: where it was read from (not written)
    path: Path | None = attrs.field(default=None, eq=False, metadata={"internal": True})

    @property
    def cpus(self) -> int:
        """The run's CPU count (``params.cpus``; 1 if absent or not a positive integer)."""
        cpus = self.params.get("cpus", 1)
        return cpus if isinstance(cpus, int) and not isinstance(cpus, bool) and cpus > 0 else 1

    @property
    def end_ns(self) -> int:
        """Virtual time at the end of the run (0 for a run stopped before it began)."""
        return self.virtual_ns or 0

    @property
    def series(self) -> Timeseries:
        """The sampler's series (empty for a run without)."""
        return self.timeseries if self.timeseries is not None else Timeseries()

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.timeseries is None:
            out["timeseries"] = {}
        return out

    def dumps(self) -> str:
        """The text of summary.json (one space of indent, keys in field order)."""
        return json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n"

    def write(self, path: Path) -> Path:
        path.write_text(self.dumps())
        return path

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "") -> RunSummary:
        return super().from_json(doc, where)

    @classmethod
    def parse(cls, doc: Any, path: Path) -> RunSummary:
        """A summary document read from ``path``; :class:`SummaryError` names what is wrong."""
        if not isinstance(doc, dict):
            raise SummaryError(f"{path}: should hold a JSON object, not {kind_of(doc)}")
        try:
            summary = cls.from_json(doc)
        except SummaryError as exc:
            raise SummaryError(f"{path}: {exc}") from None
        return attrs.evolve(summary, path=path)

    @classmethod
    def load(cls, path: str | Path) -> RunSummary:
        """A summary.json file, typed; :class:`SummaryError` is one line saying what is wrong."""
        path = Path(path)
        try:
            if not path.is_file():
                what = "is not a regular file" if path.exists() else "does not exist"
                raise SummaryError(f"{path}: {what}")
            if path.stat().st_size > MAX_SUMMARY_BYTES:
                raise SummaryError(f"{path}: larger than {MAX_SUMMARY_BYTES >> 20} MB")
            doc = json.loads(path.read_bytes().decode("utf-8"))
        except OSError as exc:
            raise SummaryError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SummaryError(f"{path}: not a summary (not UTF-8 text)") from None
        except json.JSONDecodeError as exc:
            raise SummaryError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
        except RecursionError:
            raise SummaryError(f"{path}: not a summary (nested too deeply)") from None
        return cls.parse(doc, path)
