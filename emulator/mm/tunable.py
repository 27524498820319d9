"""A kernel tunable, declared once: its name, default, how a write is parsed, and its handler.

Each mechanism contributes the tunables it owns (compaction its ``vm_compaction[]`` table,
page_alloc its ``page_alloc_sysctl_table[]``, huge_memory its sysfs knobs), as the kernel's
``register_sysctl_init`` calls do; :mod:`emulator.mm.sysctl` gathers them into the one registry
that a machine's defaults, ``--set``, run-time writes, ``/proc/sys`` reads and ``mmemu inspect``
use.

Writes are parsed as the kernel parses them:

* :class:`IntMinMax` models kernel/sysctl.c: proc_dointvec_minmax on one ``int``;
* :class:`IntVecMinMax` the same handler over an ``int`` array (``vm.lowmem_reserve_ratio``);
* :class:`Words` models a sysfs store comparing with ``sysfs_streq`` (THP ``defrag``).

Text goes through :func:`proc_get_long` (kernel/sysctl.c): leading white space skipped, an
optional ``-``, then ASCII digits in base 0 (``0x10`` is 16, ``010`` is 8), and only white space
after the number; ``1_0``, ``0b1``, ``0o7``, ``+5`` and non-ASCII digits are refused, as the
kernel refuses them. :func:`kstrtoll` models lib/kstrtox.c: kstrtoll (no leading white space, a
``+`` allowed, one trailing newline). A refused value raises :class:`TunableError` (the kernel's
-EINVAL) naming the tunable and what is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

INT_MAX = 2**31 - 1
INT_MIN = -(2**31)
ULONG_MAX = 2**64 - 1
#: kernel/sysctl.c: TMPBUFLEN, the longest number proc_get_long reads (21 characters)
TMPBUFLEN = 22
#: PAGE_SIZE - 1: the most of one write a proc handler looks at
PROC_WRITE_MAX = 4095
#: include/linux/ctype.h: isspace (_S: space, \t, \n, \v, \f, \r, and Latin-1 NBSP)
_SPACE = frozenset(b" \t\n\v\f\r\xa0")
#: kernel/sysctl.c: proc_wspace_sep, what may follow a number
_WSPACE_SEP = frozenset(b" \t\n")


class TunableError(ValueError):
    """A value the kernel's handler refuses (-EINVAL); nothing was changed."""


def _parse_integer_fixup_radix(s: bytes, i: int, base: int) -> tuple[int, int]:
    """Models lib/kstrtox.c: _parse_integer_fixup_radix: base 0 -> 16 after ``0x`` followed by
    a hex digit, 8 after a leading ``0``, else 10; base 16 skips a ``0x``."""
    if base == 0:
        if s[i : i + 1] == b"0":
            if s[i + 1 : i + 2].lower() == b"x" and _digit(s[i + 2 : i + 3], 16) is not None:
                base = 16
            else:
                base = 8
        else:
            base = 10
    if base == 16 and s[i : i + 2].lower() == b"0x":
        i += 2
    return i, base


def _digit(c: bytes, base: int) -> int | None:
    if not c:
        return None
    b = c[0]
    if 0x30 <= b <= 0x39:
        v = b - 0x30
    elif 0x61 <= (b | 0x20) <= 0x66:
        v = (b | 0x20) - 0x61 + 10
    else:
        return None
    return v if v < base else None


def _parse_integer(s: bytes, i: int, base: int) -> tuple[int, int, bool]:
    """Models lib/kstrtox.c: _parse_integer: ASCII digits of ``base`` from ``s[i]``;
    returns (value, index after the digits, overflowed past 64 bits)."""
    value = 0
    overflow = False
    while True:
        d = _digit(s[i : i + 1], base)
        if d is None:
            return value, i, overflow
        value = value * base + d
        if value > ULONG_MAX:
            overflow = True
            value &= ULONG_MAX
        i += 1


def proc_get_long(buf: bytes) -> tuple[bool, int, bytes]:
    """Models kernel/sysctl.c: proc_get_long (with strtoul_lenient in base 0 and
    proc_wspace_sep as the permitted trailers): (negative, magnitude, rest of ``buf``).
    Raises TunableError where the kernel returns -EINVAL (or -ERANGE)."""
    if not buf:
        raise TunableError("no number")
    tmp = buf[: TMPBUFLEN - 1]
    i = 0
    neg = False
    if tmp[:1] == b"-" and len(buf) > 1:
        neg = True
        i = 1
    if _digit(tmp[i : i + 1], 10) is None:
        raise TunableError("not a number")
    i, base = _parse_integer_fixup_radix(tmp, i, 0)
    value, end, overflow = _parse_integer(tmp, i, base)
    if overflow:
        raise TunableError("number too large")
    if end == TMPBUFLEN - 1:
        raise TunableError("number too long")
    if end < len(buf) and buf[end] not in _WSPACE_SEP:
        raise TunableError("not a number")
    return neg, value, buf[end:]


def _skip_spaces(buf: bytes) -> bytes:
    """Models kernel/sysctl.c: proc_skip_spaces."""
    i = 0
    while i < len(buf) and buf[i] in _SPACE:
        i += 1
    return buf[i:]


def proc_dointvec_values(text: str, vleft: int) -> list[int]:
    """The ints a write of ``text`` stores into an ``int`` array of ``vleft`` entries, as
    kernel/sysctl.c: __do_proc_dointvec with do_proc_dointvec_conv parses it: white-space
    separated, at most ``vleft`` of them (what follows is ignored), each in INT_MIN..INT_MAX.
    A write that stores nothing (empty, or only white space) is -EINVAL. The kernel keeps the
    entries written before a bad one; here a bad one refuses the whole write."""
    buf = text.encode("utf-8")[:PROC_WRITE_MAX]
    out: list[int] = []
    while buf and len(out) < vleft:
        buf = _skip_spaces(buf)
        if not buf:
            break
        neg, mag, buf = proc_get_long(buf)
        value = -mag if neg else mag
        if not INT_MIN <= value <= INT_MAX:
            raise TunableError("out of the int range")
        out.append(value)
    if not out:
        raise TunableError("no number")
    return out


def proc_doulongvec_value(text: str) -> int:
    """The ``unsigned long`` a write of ``text`` stores, as kernel/sysctl.c:
    __do_proc_doulongvec_minmax parses it (a negative number is -EINVAL; vm.nr_hugepages)."""
    buf = _skip_spaces(text.encode("utf-8")[:PROC_WRITE_MAX])
    neg, value, _rest = proc_get_long(buf)
    if neg:
        raise TunableError("negative")
    return value


def kstrtoll(text: str, base: int = 0) -> int:
    """Models lib/kstrtox.c: kstrtoll: an optional ``+``/``-``, ASCII digits of ``base`` (0: as
    :func:`_parse_integer_fixup_radix`), then at most one newline; nothing else (no white
    space, no ``_``). Raises ValueError as the kernel returns -EINVAL / -ERANGE."""
    buf = text.encode("utf-8")
    neg = buf[:1] == b"-"
    i = 1 if buf[:1] in (b"-", b"+") else 0
    i, base = _parse_integer_fixup_radix(buf, i, base)
    value, end, overflow = _parse_integer(buf, i, base)
    if overflow or value > 2**63 - (0 if neg else 1):
        raise ValueError("number too large")
    if end == i:
        raise ValueError("not an integer")
    if buf[end : end + 1] == b"\n":
        end += 1
    if end != len(buf):
        raise ValueError("not an integer")
    return -value if neg else value


class Parse(Protocol):
    """How a tunable's write is parsed and range-checked."""

    def __call__(self, name: str, value: Any, current: Any) -> Any:
        """The value a write of ``value`` stores (``current`` is the value before it)."""
        ...

    def describe(self) -> str:
        """The valid values, as text for messages and ``mmemu list --params``."""
        ...


def _int_from_python(name: str, value: Any) -> int | None:
    """A Python int given directly (scenario defaults, tests); None for text."""
    if isinstance(value, bool):
        raise TunableError(f"{name} takes an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return None
    raise TunableError(f"{name} takes an integer, got {_short(value)!r}")


def _short(value: Any, limit: int = 60) -> Any:
    text = value if isinstance(value, str) else repr(value)
    return text[:limit] + "..." if len(text) > limit else value


@attrs.frozen
class IntMinMax:
    """Models kernel/sysctl.c: proc_dointvec_minmax on one ``int`` with the ctl_table's
    ``extra1``/``extra2`` bounds (``lo``/``hi``). ``zero_or_from`` adds a handler's own check
    that a non-zero value is at least that (percpu_pagelist_high_fraction_sysctl_handler)."""

    lo: int = INT_MIN
    hi: int = INT_MAX
    zero_or_from: int | None = None

    def describe(self) -> str:
        if self.zero_or_from is not None:
            return f"0 or {self.zero_or_from}..{self.hi}"
        return f"{self.lo}..{self.hi}"

    def __call__(self, name: str, value: Any, current: Any) -> int:
        v = _int_from_python(name, value)
        if v is None:
            try:
                v = proc_dointvec_values(value, 1)[0]
            except TunableError:
                raise TunableError(
                    f"{name}={_short(value)!r} is not an integer: valid {self.describe()} (-EINVAL)"
                ) from None
        if not self.lo <= v <= self.hi or (
            self.zero_or_from is not None and 0 < v < self.zero_or_from
        ):
            raise TunableError(f"{name}={v} is out of range: valid {self.describe()} (-EINVAL)")
        return v


@attrs.frozen
class IntVecMinMax:
    """Models kernel/sysctl.c: proc_dointvec_minmax over an ``int[n]`` array: a write stores
    its first values into the first entries and keeps the rest (``"1 2"`` changes two)."""

    n: int
    lo: int = INT_MIN
    hi: int = INT_MAX

    def describe(self) -> str:
        return f"up to {self.n} integers, each {self.lo}..{self.hi}"

    def __call__(self, name: str, value: Any, current: Any) -> tuple[int, ...]:
        if isinstance(value, str):
            try:
                vals = proc_dointvec_values(value, self.n)
            except TunableError:
                raise TunableError(
                    f"{name}={_short(value)!r} is invalid: valid {self.describe()} (-EINVAL)"
                ) from None
        elif isinstance(value, Sequence) and 0 < len(value) <= self.n:
            vals = []
            for v in value:
                iv = _int_from_python(name, v)
                if iv is None:
                    raise TunableError(f"{name} takes integers, got {_short(value)!r}")
                vals.append(iv)
        else:
            raise TunableError(f"{name}={_short(value)!r} is invalid: valid {self.describe()}")
        for v in vals:
            if not self.lo <= v <= self.hi:
                raise TunableError(
                    f"{name}: {v} is out of range: valid {self.describe()} (-EINVAL)"
                )
        return (*vals, *tuple(current)[len(vals) :])


@attrs.frozen
class Words:
    """Models a sysfs ``store`` that compares the written text with each word by
    lib/string.c: sysfs_streq (equal, or equal but for one trailing newline)."""

    choices: tuple[str, ...]

    def describe(self) -> str:
        return ", ".join(self.choices)

    def __call__(self, name: str, value: Any, current: Any) -> str:
        text = value if isinstance(value, str) else None
        word = text[:-1] if text is not None and text.endswith("\n") else text
        if word not in self.choices:
            raise TunableError(
                f"{name}={_short(value)!r} is invalid: valid {self.describe()} (-EINVAL)"
            )
        return word


@attrs.frozen
class OnOff:
    """A switch: on/off, true/false, yes/no, 1/0 (any case) or a bool -> bool."""

    def describe(self) -> str:
        return "on, off"

    def __call__(self, name: str, value: Any, current: Any) -> bool:
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if word in ("on", "true", "yes", "1"):
            return True
        if word in ("off", "false", "no", "0"):
            return False
        raise TunableError(f"{name}={_short(value)!r} is invalid: expected on or off")


@attrs.frozen
class Tunable:
    """One kernel tunable: ``name`` (``vm.X`` for /proc/sys/vm/X, ``transparent_hugepage.X``
    for /sys/kernel/mm/transparent_hugepage/X), the :class:`Machine` attribute holding its
    value, its default (None: computed at boot), its parser, and its write handler
    ``handler(machine, old_value)`` run after the value is stored (the kernel handler's work
    past proc_dointvec_minmax). ``kernel`` names where the kernel declares it."""

    name: str
    attr: str
    default: int | str | tuple[int, ...] | None
    parse: Parse
    doc: str
    kernel: str
    handler: Callable[[Any, Any], None] | None = None
    #: for a value not kept in a machine attribute (a mitigation switch): read and store it
    load: Callable[[Any], Any] | None = None
    store: Callable[[Any, Any], None] | None = None

    @property
    def path(self) -> str:
        """The file the kernel exposes it as."""
        head, _, rest = self.name.partition(".")
        if head == "vm":
            return "/proc/sys/vm/" + rest
        return f"/sys/kernel/mm/{head}/" + rest.replace(".", "/")

    def describe(self) -> str:
        """The valid values as text."""
        return self.parse.describe()

    def int_default(self) -> int:
        """The default of an integer tunable (for the model's own default arguments)."""
        if not isinstance(self.default, int):
            raise TypeError(f"{self.name} has no integer default")
        return self.default

    def check(self, value: Any, current: Any = None) -> Any:
        """The value a write of ``value`` stores, or TunableError (changes nothing)."""
        if current is None:
            current = self.default
        return self.parse(self.name, value, current)

    def render(self, value: Any) -> str:
        """The file's text when read: proc_dointvec's tab-separated ints and a newline, or a
        sysfs word list with the current one bracketed (``always [madvise] never``)."""
        if isinstance(value, bool):
            return ("on" if value else "off") + "\n"
        if isinstance(self.parse, Words):
            return " ".join(f"[{w}]" if w == value else w for w in self.parse.choices) + "\n"
        if isinstance(value, list | tuple):
            return "\t".join(str(v) for v in value) + "\n"
        return f"{value}\n"
