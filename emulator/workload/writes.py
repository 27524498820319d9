"""Run-time writes to sysctls and sysfs files at chosen virtual times.

A scenario (``Scenario(writes=...)``) or a test lists writes as ``(time, path, value)``
triples; one actor, the task doing the writes, performs them in time order, each at its time,
as ``echo value > path`` would. Paths::

    vm.compact_memory  (or /proc/sys/vm/compact_memory)
        only "1" is accepted (sysctl_compaction_handler: anything else is -EINVAL); runs
        compact_nodes() — every node, order -1, MIGRATE_SYNC — in the writing task's time
    /sys/devices/system/node/nodeN/compact
        any value; compact_node(N) (compact_store); a node that does not exist has no file
    vm.nr_hugepages  (or /proc/sys/vm/nr_hugepages)
        a count >= 0; set_max_huge_pages: the hugetlb pool grows one 2 MiB page at a time
        through the allocator (slow path, compaction) until an allocation fails, or shrinks
    vm.<any other tunable>  (or /proc/sys/vm/<name>), transparent_hugepage.<knob>
        Sysctl.set: parsed by the tunable's kernel handler (emulator.mm.sysctl.TUNABLES),
        then the handler's work

The task belongs to a CPU (``cpu``, default 0): pages that compaction frees land on that CPU's
pcp lists. A bad write gets the kernel's answer: a :class:`WriteError` naming the path, the
value and what is valid, with nothing changed. :func:`check_writes` makes the same checks before
a run starts (so a scenario with a bad write stops with one line and exit 2), and the writer
actor records each write's outcome.

Usage from a test::

    writes = parse_writes([("2ms", "vm.compact_memory", "1")])
    check_writes(machine, writes)
    sim.spawn("writer", writer_actor(pa, writes, findings))

or directly, inside an actor: ``await write_file(pa, pa.cpus[0], "vm.compact_memory", "1")``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from emulator.mm.sysctl import TUNABLES, lookup
from emulator.mm.tunable import TunableError, proc_dointvec_values, proc_doulongvec_value
from emulator.workload.spec import parse_duration

if TYPE_CHECKING:
    from emulator.mm.machine import Machine
    from emulator.mm.page_alloc.allocator import PageAllocator
    from emulator.mm.page_alloc.pcp import Cpu

__all__ = [
    "Write",
    "WriteError",
    "check_write",
    "check_writes",
    "parse_writes",
    "write_file",
    "writer_actor",
]

_NODE_COMPACT = re.compile(r"^/sys/devices/system/node/node(\d+)/compact$")
_PROC_SYS_VM = "/proc/sys/vm/"


class WriteError(ValueError):
    """A write the kernel refuses (-EINVAL, -ENOENT): nothing was changed."""


@attrs.frozen
class Write:
    """One write: at virtual time ``at_ns``, ``value`` into ``path``, by a task on ``cpu``."""

    at_ns: int
    path: str
    value: str
    cpu: int = 0


def _normalise(path: str) -> str:
    path = path.strip()
    if path.startswith(_PROC_SYS_VM):
        return "vm." + path[len(_PROC_SYS_VM) :].replace("/", ".")
    return path


def parse_writes(items: Iterable[Any]) -> tuple[Write, ...]:
    """``(time, path, value)`` or ``(time, path, value, cpu)`` items -> :class:`Write` tuples
    sorted by time (stable). ``time`` is int ns or a duration like ``"2s"``."""
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise WriteError(
            f"writes must be a list of (time, path, value[, cpu]), not {type(items).__name__}"
        )
    out = []
    for item in items:
        if isinstance(item, Write):
            out.append(item)
            continue
        if not isinstance(item, tuple | list) or len(item) not in (3, 4):
            raise WriteError(f"write {item!r:.80}: expected (time, path, value[, cpu])")
        t = parse_duration(item[0])
        cpu = item[3] if len(item) == 4 else 0
        if isinstance(cpu, bool) or not isinstance(cpu, int):
            raise WriteError(f"write {item!r:.80}: the cpu must be an integer, not {cpu!r:.20}")
        out.append(Write(t, _normalise(str(item[1])), str(item[2]).strip(), cpu))
    return tuple(sorted(out, key=lambda w: w.at_ns))


def check_write(machine: Machine, w: Write, nr_cpus: int | None = None) -> None:
    """Raise :class:`WriteError` if the kernel would refuse ``w`` (changes nothing)."""
    if nr_cpus is not None and not 0 <= w.cpu < nr_cpus:
        raise WriteError(f"write to {w.path}: cpu {w.cpu} out of range: valid 0..{nr_cpus - 1}")
    path = w.path
    if path == "vm.compact_memory":
        _compact_memory_value(w.value)
        return
    if path == "vm.nr_hugepages":
        _nr_hugepages_value(w.value)
        return
    m = _NODE_COMPACT.match(path)
    if m:
        nid = int(m.group(1))
        if nid >= len(machine.nodes):
            raise WriteError(
                f"{_shown(path)}: no such file: node {nid} does not exist "
                f"(valid nodes 0..{len(machine.nodes) - 1})"
            )
        return
    try:
        t = lookup(path)
    except KeyError:
        valid = ", ".join(["vm.compact_memory", "vm.nr_hugepages", *TUNABLES])
        raise WriteError(
            f"{_shown(path)}: not a writable file here; valid: {valid}, "
            "/sys/devices/system/node/nodeN/compact"
        ) from None
    try:
        t.check(w.value, machine.sysctl.get(t.name))
    except TunableError as exc:
        raise WriteError(str(exc)) from None


def _compact_memory_value(value: str) -> None:
    """sysctl_compaction_handler: proc_dointvec, then anything but 1 is -EINVAL."""
    try:
        ok = proc_dointvec_values(value, 1) == [1]
    except TunableError:
        ok = False
    if not ok:
        raise WriteError(f"vm.compact_memory: only 1 is accepted, got {value!r} (-EINVAL)")


def _nr_hugepages_value(value: str) -> int:
    """hugetlb_sysctl_handler: proc_doulongvec_minmax (a count, 0 and above)."""
    try:
        return proc_doulongvec_value(value)
    except TunableError:
        raise WriteError(
            f"vm.nr_hugepages: {value!r} is not a count: valid 0 and above (-EINVAL)"
        ) from None


def check_writes(machine: Machine, writes: Sequence[Write], nr_cpus: int | None = None) -> None:
    """:func:`check_write` for every write."""
    for w in writes:
        check_write(machine, w, nr_cpus)


async def write_file(pa: PageAllocator, cpu: Cpu, path: str, value: str) -> None:
    """``echo value > path`` by a task on ``cpu``, run in the calling actor at its current time
    (manual compaction takes as long as it takes). Raises :class:`WriteError` for a value the
    kernel refuses, before changing anything."""
    from emulator.mm.compaction.compact import compact_node, compact_nodes
    from emulator.mm.reclaim.lru import lru_add_drain_all

    w = Write(0, _normalise(path), str(value).strip(), cpu.id)
    check_write(pa.machine, w)
    sim = pa.sim
    await sim.sync()
    rec = pa.rec
    if rec.enabled:
        rec.emit("sysctl_write", path=w.path, value=w.value, cpu=cpu.id)
    if w.path == "vm.compact_memory":
        await compact_nodes(pa, cpu)
        return
    if w.path == "vm.nr_hugepages":
        from emulator.mm.hugetlb import set_max_huge_pages

        await set_max_huge_pages(pa, cpu, _nr_hugepages_value(w.value))
        return
    m = _NODE_COMPACT.match(w.path)
    if m:
        await lru_add_drain_all(pa, cpu)  # compact_store: flush pending LRU updates
        await compact_node(pa, int(m.group(1)), cpu)
        return
    pa.machine.sysctl.set(w.path, w.value)  # check_write parsed it


def writer_actor(
    pa: PageAllocator, writes: Sequence[Write], log: list[dict[str, Any]] | None = None
) -> Callable[[], Awaitable[None]]:
    """An actor body performing ``writes`` in order, each at its time (a write still running
    when the next is due delays it, as one task's writes would). Each outcome is appended to
    ``log``: ``{"t_ns", "path", "value", "cpu", "done_ns", "error"?}``."""

    async def run() -> None:
        me = pa.sim.current
        for w in writes:
            if w.at_ns > me.now:
                await pa.sim.delay(w.at_ns - me.now)
            entry: dict[str, Any] = {
                "t_ns": me.now,
                "path": w.path,
                "value": w.value,
                "cpu": w.cpu,
            }
            try:
                await write_file(pa, pa.cpus[w.cpu], w.path, w.value)
            except WriteError as exc:
                entry["error"] = str(exc)
            entry["done_ns"] = me.now
            if log is not None:
                log.append(entry)

    return run


def _shown(path: str) -> str:
    """``path`` as an error message shows it: quoted when it holds a control character, so
    the message stays one line."""
    return path if path.isprintable() else repr(path)
