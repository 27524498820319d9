"""Scenario parameters: how a value given in Python or as text is typed and range-checked.

:class:`Param` declares one parameter (default, help, range, unit); :data:`STANDARD_PARAMS` are
the ones every scenario accepts, :data:`COST_PARAM` the range of every ``cost.NAME``, and
:func:`check_sysctl` checks a sysctl value with the tunable's own kernel parser. Integer text is
read as lib/kstrtox.c: kstrtoll reads it (base 0: ``0x10`` is 16, ``010`` is 8; no ``_``, no
``0b``/``0o``, ASCII digits only).
Durations are int ns (text needs ns/us/ms/s), sizes int MiB (text needs K/M/G/T). Every refusal is
a ValueError whose message names what is valid; :mod:`emulator.scenario` turns it into one line
naming the parameter (:class:`~emulator.scenario.ScenarioError`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import attrs

from emulator.mm.sysctl import TUNABLES
from emulator.mm.tunable import kstrtoll

__all__ = [
    "COST_PARAM",
    "MAX_MEMORY_MIB",
    "MAX_SAMPLES",
    "STANDARD_PARAMS",
    "Param",
    "check_sysctl",
    "format_duration",
    "format_size",
    "parse_duration_text",
    "parse_size_text",
]

#: largest machine the model boots in reasonable time and memory (about 4 MB of state per GiB)
MAX_MEMORY_MIB = 256 * 1024
#: most samples one run may take (``duration / sample``): each one is kept in summary.json
MAX_SAMPLES = 100_000

_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_MIB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
_NUMBER = r"([0-9]{1,15}(?:\.[0-9]{0,9})?)"
_DURATION_TEXT = re.compile(rf"^\s*{_NUMBER}\s*(ns|us|µs|ms|s)?\s*$", re.I)
#: a decimal number in ASCII (float() also takes ``1_0``, ``inf``, ``nan`` and non-ASCII digits)
_FLOAT_TEXT = re.compile(
    r"^\s*[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:[eE][+-]?[0-9]{1,3})?\s*$"
)
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
            try:
                v = _convert_text(self.default, value)
            except ValueError as exc:
                if isinstance(self.default, bool) or not isinstance(self.default, int | float):
                    raise
                raise ValueError(f"{exc} in {self.describe_range()}") from None
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
            return kstrtoll(value.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
    if isinstance(default, float):
        if not _FLOAT_TEXT.match(value):
            raise ValueError("expected a finite number")
        return float(value)
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
    "perturb": Param(
        False,
        "random/pct also inject delays at preemption points (changes timing figures)",
    ),
    "quantum": Param(0, "sync quantum (0 = exact global order; e.g. 1us)", 0, 10**9, "duration"),
    "sample": Param(
        "10ms", "time-series sampling interval (virtual)", 1_000, 3600 * 10**9, "duration"
    ),
}


#: the range of every ``cost.NAME`` (a duration charged to virtual time)
COST_PARAM = Param(0, "a modelled cost", 0, 10**9, "duration")


def _short(value: Any, limit: int = 60) -> Any:
    """A value cut for an error message (a fuzzed 10 000-character value stays one short line)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        return text[:limit] + "..."
    return value


def check_sysctl(name: str, value: Any) -> Any:
    """The value a ``--set`` (or a scenario default) of tunable ``name`` stores, parsed by the
    tunable's kernel handler (:class:`~emulator.mm.tunable.Tunable`); a
    :class:`~emulator.mm.tunable.TunableError` names the tunable and what is valid."""
    return TUNABLES[name].check(value)
