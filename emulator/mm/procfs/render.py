"""/proc and debugfs files in the kernel's exact formats (mm/vmstat.c, v6.12).

Renderers take frozen snapshots (:mod:`emulator.mm.snapshot`) and return the file's text,
byte-identical to what the kernel's ``seq_printf`` formats print for the same state: field
widths, the trailing space on every buddyinfo/pagetypeinfo/debugfs line, the ``>100000`` cap
of pagetypeinfo and the ``0.-500`` rendering of negative fragmentation indexes. Python's
``%`` formatting follows C printf for the conversions used here; C's truncating ``/`` and ``%``
are reproduced explicitly.

What each file models:

* ``buddyinfo`` (``frag_show_print``): complete.
* ``pagetypeinfo`` (``pagetypeinfo_show``): complete except the "Number of mixed blocks"
  section (needs CONFIG_PAGE_OWNER with page_owner=on). The set of migratetype columns is a
  parameter (the kernel drops CMA/Isolate without CONFIG_CMA/CONFIG_MEMORY_ISOLATION).
* ``zoneinfo`` (``zoneinfo_show_print``): every line of v6.12 is printed, but the zone stat,
  NUMA and per-node stat lines other than ``nr_free_pages`` come from the snapshot's
  ``zone_stats`` / ``node_stats`` (which the live model leaves empty, so its zoneinfo has only
  ``nr_free_pages`` there and no "per-node stats" block). Modelled lines: pages free, boost, min,
  low, high, promo, spanned, present, managed, cma, protection, nr_free_pages, the pagesets
  (count, high, batch, vm stats threshold), node_unreclaimable, start_pfn.
* ``vmstat`` (``vmstat_show``): the model's counters in vmstat_text order, or with ``full``
  every name of the emulated configuration plus the deprecated ``nr_unstable 0``.
* debugfs ``extfrag/extfrag_index`` and ``extfrag/unusable_index``: complete.

Parsers live in :mod:`emulator.mm.procfs.parse` and are re-exported here.
"""

# The C printf formats are kept verbatim as %-formats, so they can be compared with mm/vmstat.c:
# ruff: noqa: UP031

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from emulator.mm.snapshot import (
    MIGRATE_TYPES,
    MIGRATETYPE_NAMES,
    NR_PAGE_ORDERS,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
    MachineSnapshot,
    NodeSnapshot,
    ZoneSnapshot,
)
from emulator.mm.vmstat import (
    MODEL_VMSTAT_NAMES,
    VMSTAT_DEPRECATED,
    VMSTAT_TEXT,
    fill_contig_page_info,
    fragmentation_index_info,
    unusable_free_index,
)

__all__ = [
    "PAGETYPEINFO_CAP",
    "format_index",
    "render_buddyinfo",
    "render_extfrag_index",
    "render_pagetypeinfo",
    "render_unusable_index",
    "render_vmstat",
    "render_zoneinfo",
]

#: pagetypeinfo_showfree_print stops counting a free list at this many entries, printing ">"
PAGETYPEINFO_CAP = 100000


def _c_divmod(a: int, b: int) -> tuple[int, int]:
    """C's ``a / b`` and ``a % b`` for ints: truncation toward zero."""
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return q, a - q * b


def format_index(index: int, width: int = 2) -> str:
    """``"%2d.%03d "`` (extfrag, ``width`` 2) or ``"%d.%03d "`` (unusable, ``width`` 0) of
    ``index / 1000, index % 1000`` with C semantics: -1000 -> ``-1.000``, -500 -> `` 0.-500``."""
    whole, frac = _c_divmod(index, 1000)
    return f"{whole:{width}d}.{frac:03d} " if width else f"{whole:d}.{frac:03d} "


def _populated(node: NodeSnapshot) -> list[ZoneSnapshot]:
    return [z for z in node.zones if z.populated]


def _zone_header(node: NodeSnapshot, zone: ZoneSnapshot) -> str:
    return "Node %d, zone %8s " % (node.node, zone.name)


def render_buddyinfo(machine: MachineSnapshot) -> str:
    """/proc/buddyinfo: ``frag_show_print`` (mm/vmstat.c:1523) for every populated zone.

    ``"Node %d, zone %8s "`` then ``"%6lu "`` per order (block counts), then a newline.
    """
    out: list[str] = []
    for node in machine.nodes:
        for zone in _populated(node):
            out.append(_zone_header(node, zone))
            out.extend("%6d " % n for n in zone.nr_free)
            out.append("\n")
    return "".join(out)


def _capped(count: int) -> str:
    if count >= PAGETYPEINFO_CAP:
        return ">%6d " % PAGETYPEINFO_CAP
    return "%6d " % count


def render_pagetypeinfo(
    machine: MachineSnapshot, migratetypes: Iterable[int] = range(MIGRATE_TYPES)
) -> str:
    """/proc/pagetypeinfo: ``pagetypeinfo_show`` (mm/vmstat.c:1681), once per node with memory.

    Per node: the pageblock header, the free-list counts per (zone, migratetype, order) capped
    at 100000 and then printed ``>100000`` (``pagetypeinfo_showfree_print`` stops walking the
    list), and the pageblock counts per migratetype. ``migratetypes`` selects the columns the
    emulated kernel has (all six by default). Needs ``nr_free_by_mt`` and ``pageblocks_by_mt``
    on every populated zone (ValueError otherwise). The page_owner "mixed blocks" section is not
    modelled.
    """
    types = list(migratetypes)
    out: list[str] = []
    for node in machine.nodes:
        zones = _populated(node)
        if not zones:  # !node_state(nid, N_MEMORY)
            continue
        out.append("Page block order: %d\n" % PAGEBLOCK_ORDER)
        out.append("Pages per block:  %d\n" % PAGEBLOCK_NR_PAGES)
        out.append("\n")
        out.append("%-43s " % "Free pages count per migrate type at order")
        out.extend("%6d " % order for order in range(NR_PAGE_ORDERS))
        out.append("\n")
        for zone in zones:
            if zone.nr_free_by_mt is None:
                raise ValueError(f"node {node.node} zone {zone.name}: nr_free_by_mt unknown")
            for mt in types:
                out.append(
                    "Node %4d, zone %8s, type %12s " % (node.node, zone.name, MIGRATETYPE_NAMES[mt])
                )
                out.extend(_capped(n) for n in zone.nr_free_by_mt[mt])
                out.append("\n")
        out.append("\n%-23s" % "Number of blocks type ")
        out.extend("%12s " % MIGRATETYPE_NAMES[mt] for mt in types)
        out.append("\n")
        for zone in zones:
            if zone.pageblocks_by_mt is None:
                raise ValueError(f"node {node.node} zone {zone.name}: pageblocks_by_mt unknown")
            out.append(_zone_header(node, zone))
            out.extend("%12d " % zone.pageblocks_by_mt[mt] for mt in types)
            out.append("\n")
    return "".join(out)


def _first_populated(node: NodeSnapshot) -> ZoneSnapshot | None:
    return next((z for z in node.zones if z.populated), None)


def render_zoneinfo(machine: MachineSnapshot) -> str:
    """/proc/zoneinfo: ``zoneinfo_show_print`` (mm/vmstat.c:1727) for every zone, populated or not.

    An unpopulated zone stops after its ``protection:`` line. The "per-node stats" block is
    printed under the node's first populated zone only when the snapshot has ``node_stats``;
    zone stat lines other than ``nr_free_pages`` likewise come from ``zone_stats``. ``pages free``
    and ``nr_free_pages`` both print NR_FREE_PAGES (:attr:`ZoneSnapshot.free_pages`).
    """
    out: list[str] = []
    for node in machine.nodes:
        first = _first_populated(node)
        for zone in node.zones:
            out.append("Node %d, zone %8s" % (node.node, zone.name))
            if zone is first and node.node_stats:
                out.append("\n  per-node stats")
                out.extend("\n      %-12s %d" % kv for kv in node.node_stats)
            free = zone.free_pages
            out.append(
                "\n  pages free     %d"
                "\n        boost    %d"
                "\n        min      %d"
                "\n        low      %d"
                "\n        high     %d"
                "\n        promo    %d"
                "\n        spanned  %d"
                "\n        present  %d"
                "\n        managed  %d"
                "\n        cma      %d"
                % (
                    free,
                    zone.boost,
                    zone.wmark_min,
                    zone.wmark_low,
                    zone.wmark_high,
                    zone.wmark_promo,
                    zone.spanned,
                    zone.present,
                    zone.managed,
                    zone.cma,
                )
            )
            # lowmem_reserve[MAX_NR_ZONES]: zeros for each of the node's zones when unknown
            reserve = zone.lowmem_reserve or (0,) * len(node.zones)
            out.append("\n        protection: (%d" % reserve[0])
            out.extend(", %d" % r for r in reserve[1:])
            out.append(")")
            if not zone.populated:
                out.append("\n")
                continue
            out.append("\n      %-12s %d" % ("nr_free_pages", free))
            out.extend("\n      %-12s %d" % kv for kv in zone.zone_stats)
            out.append("\n  pagesets")
            for pcp in zone.pcp:
                out.append(
                    "\n    cpu: %i"
                    "\n              count: %i"
                    "\n              high:  %i"
                    "\n              batch: %i" % (pcp.cpu, pcp.count, pcp.high, pcp.batch)
                )
                out.append("\n  vm stats threshold: %d" % pcp.stat_threshold)
            out.append(
                "\n  node_unreclaimable:  %u"
                "\n  start_pfn:           %d" % (int(node.node_unreclaimable), zone.start_pfn)
            )
            out.append("\n")
    return "".join(out)


def render_vmstat(counters: Mapping[str, int], full: bool = False) -> str:
    """/proc/vmstat: ``vmstat_show`` (mm/vmstat.c:1898), ``"%s %lu\\n"`` in vmstat_text order.

    Prints the counters the model keeps (:data:`MODEL_VMSTAT_NAMES`), 0 where ``counters``
    lacks one; with ``full``, every name of the emulated configuration (:data:`VMSTAT_TEXT`)
    followed by the deprecated ``nr_unstable 0`` as the kernel does. A name that is not a
    vmstat name, or that ``full=False`` would not print, raises ValueError, as does a negative
    value (the kernel prints unsigned values).
    """
    names = VMSTAT_TEXT if full else MODEL_VMSTAT_NAMES
    unknown = set(counters) - set(names)
    if unknown:
        raise ValueError(f"not /proc/vmstat names here: {', '.join(sorted(unknown))}")
    out: list[str] = []
    for name in names:
        value = int(counters.get(name, 0))
        if value < 0:
            raise ValueError(f"{name} is negative ({value})")
        out.append(f"{name} {value}\n")
    if full:
        out.extend(f"{name} {value}\n" for name, value in VMSTAT_DEPRECATED)
    return "".join(out)


def _index_file(machine: MachineSnapshot, width: int, unusable: bool) -> str:
    out: list[str] = []
    for node in machine.nodes:
        for zone in _populated(node):
            out.append(_zone_header(node, zone))
            for order in range(NR_PAGE_ORDERS):
                info = fill_contig_page_info(zone, order)
                if unusable:
                    index = unusable_free_index(order, info)
                else:
                    index = fragmentation_index_info(order, info)
                out.append(format_index(index, width))
            out.append("\n")
    return "".join(out)


def render_extfrag_index(machine: MachineSnapshot) -> str:
    """debugfs ``extfrag/extfrag_index``: ``extfrag_show_print`` (mm/vmstat.c:2278).

    ``"%2d.%03d "`` of ``__fragmentation_index`` per order: -1000 prints ``-1.000``, 954
    ``" 0.954"``, -500 ``" 0.-500"``.
    """
    return _index_file(machine, 2, unusable=False)


def render_unusable_index(machine: MachineSnapshot) -> str:
    """debugfs ``extfrag/unusable_index``: ``unusable_show_print`` (mm/vmstat.c:2228),
    ``"%d.%03d "`` of ``unusable_free_index`` per order."""
    return _index_file(machine, 0, unusable=True)


def migratetype_columns(names: Sequence[str]) -> list[int]:
    """Migratetype numbers for pagetypeinfo column names (e.g. a kernel without CMA)."""
    return [MIGRATETYPE_NAMES.index(n) for n in names]
