"""Parsers for /proc/buddyinfo, /proc/pagetypeinfo and /proc/zoneinfo, producing snapshots.

They accept what real kernels print: any number of nodes and zones, any zone names,
pagetypeinfo with or without the CMA and Isolate columns (a missing migratetype reads as 0),
pagetypeinfo's ``>100000`` cap (read as 100000, a lower bound), the page_owner "mixed blocks"
section (skipped), zoneinfo's per-node, zone and NUMA stat lines (kept as ``node_stats`` /
``zone_stats``), the v6.18 pageset layout with ``high_min``/``high_max`` (skipped), and lines
of older or newer kernels whose key is unknown (skipped, when indented). Trailing whitespace,
a final newline and CR line ends are optional.

Anything else raises :class:`ProcParseError` naming the file, the 1-based line and the problem.
The model is x86-64 with 4 KiB pages: 11 orders and pageblock order 9 are required.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import attrs

from emulator.mm.compaction.sysctl import COMPACTION_PROACTIVENESS, EXTFRAG_THRESHOLD
from emulator.mm.snapshot import (
    MIGRATE_TYPES,
    MIGRATETYPE_NAMES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
    MachineSnapshot,
    NodeSnapshot,
    PcpSnapshot,
    ZoneSnapshot,
)
from emulator.mm.tunable import Tunable, TunableError

__all__ = [
    "ProcParseError",
    "combine_snapshots",
    "parse_buddyinfo",
    "parse_pagetypeinfo",
    "parse_sysctl_int",
    "parse_zoneinfo",
]


_Key = tuple[int, str]


class ProcParseError(ValueError):
    """A /proc file that does not read as the kernel prints it.

    ``str()`` is one line: ``"FILE:LINE: message"`` (``"FILE: message"`` without a line).
    """

    def __init__(self, filename: str, line: int | None, message: str) -> None:
        self.filename = filename
        self.line = line
        self.message = message
        where = f"{filename}:{line}" if line is not None else filename
        super().__init__(f"{where}: {message}")


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based number, line without its end) for each line; the empty tail is dropped."""
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    for number, line in enumerate(parts, 1):
        yield number, line.rstrip("\r")


_NUM = re.compile(r"\d+")
#: the most digits a count may have (the kernel's counters are at most 64-bit)
MAX_DIGITS = 19


def _counts(
    filename: str, number: int, fields: list[str], what: str, cap: bool = False
) -> tuple[int, ...]:
    values: list[int] = []
    for field in fields:
        raw = field[1:] if cap and field.startswith(">") else field
        if not _NUM.fullmatch(raw):
            raise ProcParseError(filename, number, f"{what}: {field[:40]!r} is not a count")
        if len(raw) > MAX_DIGITS:
            raise ProcParseError(
                filename, number, f"{what}: a count of {len(raw)} digits is beyond 2^63"
            )
        values.append(int(raw))
    if len(values) != NR_PAGE_ORDERS:
        raise ProcParseError(
            filename, number, f"{what}: expected {NR_PAGE_ORDERS} counts, got {len(values)}"
        )
    return tuple(values)


class _Nodes:
    """Collects zones per node in file order and rejects duplicates."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.zones: dict[int, dict[str, ZoneSnapshot]] = {}

    def add(self, number: int, zone: ZoneSnapshot) -> None:
        zones = self.zones.setdefault(zone.node, {})
        if zone.name in zones:
            raise ProcParseError(
                self.filename, number, f"zone {zone.name} of node {zone.node} appears twice"
            )
        zones[zone.name] = zone

    def machine(self) -> MachineSnapshot:
        return MachineSnapshot(
            nodes=tuple(
                NodeSnapshot(node=n, zones=tuple(zs.values())) for n, zs in self.zones.items()
            )
        )


_BUDDY = re.compile(r"Node\s+(\d{1,4}),\s+zone\s+(\S+)\s+(.*)")


def parse_buddyinfo(text: str, filename: str = "/proc/buddyinfo") -> MachineSnapshot:
    """/proc/buddyinfo (``frag_show_print``) -> a snapshot with ``nr_free`` per populated zone."""
    nodes = _Nodes(filename)
    for number, line in _lines(text):
        if not line.strip():
            continue
        m = _BUDDY.fullmatch(line.strip())
        if not m:
            raise ProcParseError(
                filename, number, f"expected 'Node N, zone NAME' and 11 counts, got {line!r}"
            )
        counts = _counts(filename, number, m.group(3).split(), f"zone {m.group(2)}")
        nodes.add(number, ZoneSnapshot(node=int(m.group(1)), name=m.group(2), nr_free=counts))
    if not nodes.zones:
        raise ProcParseError(filename, 1, "no zones found (empty file?)")
    return nodes.machine()


_PT_FREE = re.compile(r"Node\s+(\d{1,4}),\s+zone\s+(\S+),\s+type\s+(\S+)\s+(.*)")
_PT_BLOCKS = re.compile(r"Node\s+(\d{1,4}),\s+zone\s+(\S+)\s+(.*)")


@attrs.define
class _PtZone:
    line: int
    by_mt: list[tuple[int, ...]]
    blocks: tuple[int, ...] | None = None


def parse_pagetypeinfo(text: str, filename: str = "/proc/pagetypeinfo") -> MachineSnapshot:
    """/proc/pagetypeinfo (``pagetypeinfo_show``) -> per-migratetype free counts and pageblock
    counts per populated zone; ``nr_free`` is the per-order sum over migratetypes.

    Counts printed as ``>100000`` read as 100000. Migratetype columns the kernel lacks read as 0.
    """
    zeros = (0,) * NR_PAGE_ORDERS
    zones: dict[tuple[int, str], _PtZone] = {}
    columns: list[int] | None = None
    section = "start"  # start | header | free | blocks | mixed
    for number, raw in _lines(text):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("Page block order:"):
            value = line.partition(":")[2].strip()
            if value != str(PAGEBLOCK_ORDER):
                raise ProcParseError(
                    filename, number, f"pageblock order {value!r}, the model uses {PAGEBLOCK_ORDER}"
                )
            section = "header"
        elif line.startswith("Pages per block:"):
            value = line.partition(":")[2].strip()
            if value != str(PAGEBLOCK_NR_PAGES):
                raise ProcParseError(filename, number, f"pages per block {value!r}, expected 512")
        elif line.startswith("Free pages count per migrate type at order"):
            orders = line[len("Free pages count per migrate type at order") :].split()
            if orders != [str(o) for o in range(NR_PAGE_ORDERS)]:
                raise ProcParseError(filename, number, "expected order columns 0 to 10")
            section = "free"
        elif line.startswith("Number of blocks type"):
            names = line[len("Number of blocks type") :].split()
            try:
                columns = [MIGRATETYPE_NAMES.index(n) for n in names]
            except ValueError:
                raise ProcParseError(
                    filename, number, f"unknown migratetype in {' '.join(names)!r}"
                ) from None
            section = "blocks"
        elif line.startswith("Number of mixed blocks"):
            section = "mixed"
        elif section == "free" and (m := _PT_FREE.fullmatch(line)):
            node, zone, mtname = int(m.group(1)), m.group(2), m.group(3)
            if mtname not in MIGRATETYPE_NAMES:
                raise ProcParseError(filename, number, f"unknown migratetype {mtname!r}")
            counts = _counts(filename, number, m.group(4).split(), f"{zone} {mtname}", cap=True)
            entry = zones.setdefault((node, zone), _PtZone(number, [zeros] * MIGRATE_TYPES))
            entry.by_mt[MIGRATETYPE_NAMES.index(mtname)] = counts
        elif section == "blocks" and (m := _PT_BLOCKS.fullmatch(line)):
            assert columns is not None
            key = (int(m.group(1)), m.group(2))
            if key not in zones:
                raise ProcParseError(
                    filename, number, f"zone {key[1]} of node {key[0]} has no free counts above"
                )
            fields = m.group(3).split()
            for field in fields:
                if not _NUM.fullmatch(field) or len(field) > MAX_DIGITS:
                    raise ProcParseError(
                        filename, number, f"{key[1]} pageblocks: {field[:40]!r} is not a count"
                    )
            if len(fields) != len(columns):
                raise ProcParseError(
                    filename,
                    number,
                    f"{key[1]} pageblocks: expected {len(columns)} counts, got {len(fields)}",
                )
            blocks = [0] * MIGRATE_TYPES
            for mt, field in zip(columns, fields, strict=True):
                blocks[mt] = int(field)
            zones[key].blocks = tuple(blocks)
        elif section == "mixed":
            continue
        else:
            raise ProcParseError(filename, number, f"unexpected line {raw!r}")
    if not zones:
        raise ProcParseError(filename, 1, "no zones found (empty file?)")
    nodes = _Nodes(filename)
    for (node, name), entry in zones.items():
        if entry.blocks is None:
            raise ProcParseError(
                filename, entry.line, f"zone {name} of node {node} has no 'Number of blocks' line"
            )
        nr_free = tuple(sum(col) for col in zip(*entry.by_mt, strict=True))
        nodes.add(
            entry.line,
            ZoneSnapshot(
                node=node,
                name=name,
                nr_free=nr_free,
                nr_free_by_mt=tuple(entry.by_mt),
                pageblocks_by_mt=entry.blocks,
            ),
        )
    return nodes.machine()


_ZONE_HEADER = re.compile(r"Node\s+(\d{1,4}),\s+zone\s+(\S+)")
_WMARK_KEYS = {
    "boost": "boost",
    "min": "wmark_min",
    "low": "wmark_low",
    "high": "wmark_high",
    "promo": "wmark_promo",
    "spanned": "spanned",
    "present": "present",
    "managed": "managed",
    "cma": "cma",
}
_REQUIRED = ("pages free", "min", "low", "high", "spanned", "present", "managed")
_INT = re.compile(r"-?\d+")


@attrs.define
class _ZiZone:
    node: int
    name: str
    line: int
    fields: dict[str, int] = attrs.Factory(dict)
    reserve: tuple[int, ...] = ()
    stats: list[tuple[str, int]] = attrs.Factory(list)
    pcp: list[dict[str, int]] = attrs.Factory(list)


def _int(filename: str, number: int, key: str, value: str) -> int:
    value = value.strip()
    if not _INT.fullmatch(value):
        raise ProcParseError(filename, number, f"{key}: {value[:40]!r} is not a number")
    if len(value.lstrip("-")) > MAX_DIGITS:
        raise ProcParseError(
            filename, number, f"{key}: a number of {len(value)} digits is beyond 2^63"
        )
    return int(value)


def parse_zoneinfo(text: str, filename: str = "/proc/zoneinfo") -> MachineSnapshot:
    """/proc/zoneinfo (``zoneinfo_show``) -> every zone's sizes, watermarks, protection, stats
    and pagesets, and per node the per-node stats and node_unreclaimable.

    ``nr_free`` is all zeros (zoneinfo has no per-order counts; see :func:`combine_snapshots`),
    ``nr_free_pages`` is the ``pages free`` value (the ``nr_free_pages`` stat line repeats it and
    is not kept in ``zone_stats``), ``populated`` is ``present > 0``.
    """
    zones: list[_ZiZone] = []
    node_stats: dict[int, list[tuple[str, int]]] = {}
    unreclaimable: dict[int, bool] = {}
    zone: _ZiZone | None = None
    section = "zone"  # node_stats | wmarks | zone_stats | pagesets | tail
    for number, raw in _lines(text):
        line = raw.strip()
        if not line:
            continue
        if not raw[:1].isspace():
            m = _ZONE_HEADER.fullmatch(line)
            if not m:
                raise ProcParseError(filename, number, f"expected 'Node N, zone NAME', got {raw!r}")
            zone = _ZiZone(int(m.group(1)), m.group(2), number)
            zones.append(zone)
            section = "zone"
            continue
        if zone is None:
            raise ProcParseError(filename, number, "line before the first 'Node N, zone NAME'")
        if line == "per-node stats":
            section = "node_stats"
            node_stats[zone.node] = []
        elif line.startswith("pages free"):
            zone.fields["pages free"] = _int(filename, number, "pages free", line[10:])
            section = "wmarks"
        elif line.startswith("protection:"):
            inner = line[len("protection:") :].strip()
            if not (inner.startswith("(") and inner.endswith(")")):
                raise ProcParseError(filename, number, "protection: expected '(a, b, ...)'")
            zone.reserve = tuple(
                _int(filename, number, "protection", v) for v in inner[1:-1].split(",")
            )
            section = "zone_stats"
        elif line == "pagesets":
            section = "pagesets"
        elif line.startswith("cpu:"):
            if section != "pagesets":
                raise ProcParseError(filename, number, "'cpu:' outside 'pagesets'")
            zone.pcp.append({"cpu": _int(filename, number, "cpu", line[4:])})
        elif line.startswith("vm stats threshold:"):
            if not zone.pcp:
                raise ProcParseError(filename, number, "'vm stats threshold' before any 'cpu:'")
            zone.pcp[-1]["stat_threshold"] = _int(filename, number, "vm stats threshold", line[19:])
        elif line.startswith("node_unreclaimable:"):
            flag = _int(filename, number, "node_unreclaimable", line[19:])
            unreclaimable[zone.node] = unreclaimable.get(zone.node, False) or bool(flag)
            section = "tail"
        elif line.startswith("start_pfn:"):
            zone.fields["start_pfn"] = _int(filename, number, "start_pfn", line[10:])
            section = "tail"
        elif ":" in line:
            key, _, value = line.partition(":")
            if section == "pagesets" and key in ("count", "high", "batch"):
                if not zone.pcp:
                    raise ProcParseError(filename, number, f"'{key}:' before any 'cpu:'")
                zone.pcp[-1][key] = _int(filename, number, key, value)
            # other "key: value" lines (high_min, high_max, older kernels' extras): skipped
        else:
            fields = line.split()
            if len(fields) != 2:
                continue  # an indented line of a layout we do not know: skipped
            key, value = fields
            if section == "wmarks" and key in _WMARK_KEYS:
                zone.fields[key] = _int(filename, number, key, value)
            elif section == "node_stats":
                node_stats[zone.node].append((key, _int(filename, number, key, value)))
            elif section == "zone_stats":
                parsed = _int(filename, number, key, value)
                if key != "nr_free_pages":
                    zone.stats.append((key, parsed))
            # anything else: skipped
    if not zones:
        raise ProcParseError(filename, 1, "no zones found (empty file?)")
    nodes = _Nodes(filename)
    for z in zones:
        for key in _REQUIRED:
            if key not in z.fields:
                raise ProcParseError(
                    filename, z.line, f"zone {z.name} of node {z.node} has no '{key}' line"
                )
        pcps: list[PcpSnapshot] = []
        for p in z.pcp:
            missing = [k for k in ("count", "high", "batch") if k not in p]
            if missing:
                raise ProcParseError(
                    filename, z.line, f"zone {z.name}: cpu {p['cpu']} lacks {', '.join(missing)}"
                )
            pcps.append(
                PcpSnapshot(p["cpu"], p["count"], p["high"], p["batch"], p.get("stat_threshold", 0))
            )
        f = z.fields
        nodes.add(
            z.line,
            ZoneSnapshot(
                node=z.node,
                name=z.name,
                nr_free=(0,) * NR_PAGE_ORDERS,
                start_pfn=f.get("start_pfn", 0),
                spanned=f["spanned"],
                present=f["present"],
                managed=f["managed"],
                cma=f.get("cma", 0),
                wmark_min=f["min"],
                wmark_low=f["low"],
                wmark_high=f["high"],
                wmark_promo=f.get("promo", 0),
                boost=f.get("boost", 0),
                lowmem_reserve=z.reserve,
                nr_free_pages=f["pages free"],
                pcp=tuple(pcps),
                populated=f["present"] > 0,
                zone_stats=tuple(z.stats),
            ),
        )
    machine = nodes.machine()
    return attrs.evolve(
        machine,
        nodes=tuple(
            attrs.evolve(
                n,
                node_stats=tuple(node_stats.get(n.node, ())),
                node_unreclaimable=unreclaimable.get(n.node, False),
            )
            for n in machine.nodes
        ),
    )


def parse_sysctl_int(text: str, filename: str, tunable: Tunable) -> int:
    """A copy of /proc/sys/vm/NAME holding one integer, read by the tunable's own parser
    (e.g. vm/compaction_proactiveness: 0..100)."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) != 1:
        raise ProcParseError(filename, 1, f"expected one integer, got {len(lines)} lines")
    try:
        value = tunable.check(lines[0])
    except TunableError as exc:
        raise ProcParseError(filename, 1, str(exc)) from None
    if not isinstance(value, int):
        raise ProcParseError(filename, 1, f"{tunable.name} is not an integer tunable")
    return value


def _missing(have: Mapping[_Key, object], other: Mapping[_Key, object]) -> list[_Key]:
    """Keys of ``have`` (in its order) that ``other`` lacks."""
    return [k for k in have if k not in other]


def combine_snapshots(
    buddyinfo: MachineSnapshot,
    pagetypeinfo: MachineSnapshot | None = None,
    zoneinfo: MachineSnapshot | None = None,
    *,
    compaction_proactiveness: int = COMPACTION_PROACTIVENESS.int_default(),
    extfrag_threshold: int = EXTFRAG_THRESHOLD.int_default(),
    names: tuple[str, str, str] = ("buddyinfo", "pagetypeinfo", "zoneinfo"),
) -> MachineSnapshot:
    """One snapshot from the three files: zoneinfo's zones (all of them, with sizes and
    watermarks) or else buddyinfo's, ``nr_free`` from buddyinfo (exact, where pagetypeinfo's
    sums may be capped), the per-migratetype data from pagetypeinfo.

    The populated zones must be the same in every file given; a mismatch (files from different
    machines, or a truncated copy) raises :class:`ProcParseError` naming the file lacking it.
    """
    by_key = {(z.node, z.name): z for z in buddyinfo.zones}
    if pagetypeinfo is not None:
        pt = {(z.node, z.name): z for z in pagetypeinfo.zones}
        for key in _missing(by_key, pt):
            raise ProcParseError(names[1], None, f"zone {key[1]} of node {key[0]} is missing")
        for key in _missing(pt, by_key):
            raise ProcParseError(names[0], None, f"zone {key[1]} of node {key[0]} is missing")
        by_key = {
            k: attrs.evolve(
                z, nr_free_by_mt=pt[k].nr_free_by_mt, pageblocks_by_mt=pt[k].pageblocks_by_mt
            )
            for k, z in by_key.items()
        }
    if zoneinfo is None:
        nodes = tuple(
            attrs.evolve(n, zones=tuple(by_key[(z.node, z.name)] for z in n.zones))
            for n in buddyinfo.nodes
        )
    else:
        populated = {(z.node, z.name): z for z in zoneinfo.zones if z.populated}
        for key in _missing(populated, by_key):
            raise ProcParseError(
                names[0], None, f"zone {key[1]} of node {key[0]} (populated in zoneinfo) is missing"
            )
        for key in _missing(by_key, populated):
            raise ProcParseError(
                names[2], None, f"zone {key[1]} of node {key[0]} is missing or has no present pages"
            )
        merged: list[NodeSnapshot] = []
        for node in zoneinfo.nodes:
            zones: list[ZoneSnapshot] = []
            for z in node.zones:
                src = by_key.get((z.node, z.name))
                if src is not None:
                    z = attrs.evolve(
                        z,
                        nr_free=src.nr_free,
                        nr_free_by_mt=src.nr_free_by_mt,
                        pageblocks_by_mt=src.pageblocks_by_mt,
                    )
                zones.append(z)
            merged.append(attrs.evolve(node, zones=tuple(zones)))
        nodes = tuple(merged)
    return MachineSnapshot(
        nodes=nodes,
        compaction_proactiveness=compaction_proactiveness,
        extfrag_threshold=extfrag_threshold,
    )
