"""``mmemu inspect``: the fragmentation view of a real machine that normally needs root and debugfs.

Reads ``/proc`` (or a saved folder laid out like it: ``DIR/buddyinfo``, and optionally
``DIR/pagetypeinfo``, ``DIR/zoneinfo``, ``DIR/sys/vm/compaction_proactiveness``,
``DIR/sys/vm/extfrag_threshold``) and prints:

* ``extfrag_index`` and ``unusable_index`` exactly as ``/sys/kernel/debug/extfrag/*`` print them;
* the fragmentation score per zone and node (``fragmentation_score_zone``/``_weighted``/``_node``)
  and whether kcompactd's proactive compaction would start (``should_proactive_compact_node``,
  assuming kswapd is not running on the node);
* a per-zone table (free memory, largest free order, order-9 indexes, and what
  ``compaction_suitable`` would make of the order-9 fragmentation index), and, when pagetypeinfo
  is readable, free pages and pageblocks per migratetype.

/proc/pagetypeinfo is mode 0400: when it cannot be read the report goes on without it and says
so. Without zoneinfo the zones' present pages are unknown, so the weighted and node scores are
reported as unknown. Unreadable or malformed required files end with one error line
(``FILE:LINE: message``) and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import attrs

from emulator.cli import UsageError
from emulator.mm.compaction.suitable import (
    fragmentation_score_node,
    fragmentation_score_wmark,
    fragmentation_score_zone,
    fragmentation_score_zone_weighted,
    should_proactive_compact_node,
)
from emulator.mm.compaction.sysctl import COMPACTION_PROACTIVENESS, EXTFRAG_THRESHOLD
from emulator.mm.procfs.parse import (
    ProcParseError,
    combine_snapshots,
    parse_buddyinfo,
    parse_pagetypeinfo,
    parse_sysctl_int,
    parse_zoneinfo,
)
from emulator.mm.procfs.render import render_extfrag_index, render_unusable_index
from emulator.mm.snapshot import (
    MIGRATETYPE_NAMES,
    NR_PAGE_ORDERS,
    MachineSnapshot,
    NodeSnapshot,
    ZoneSnapshot,
)
from emulator.mm.vmstat import (
    COMPACTION_HPAGE_ORDER,
    extfrag_for_order,
    fill_contig_page_info,
    fragindex_allows_compaction,
    fragmentation_index,
    unusable_index,
)

SHOW_CHOICES = ("extfrag_index", "unusable_index", "fragmentation_score")
DEFAULT_PROC = "/proc"
PAGE_KB = 4


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``inspect`` options to its subparser."""
    parser.add_argument(
        "--proc",
        metavar="DIR",
        default=DEFAULT_PROC,
        help="a live /proc (default) or a saved folder with buddyinfo, and optionally "
        "pagetypeinfo, zoneinfo, sys/vm/compaction_proactiveness, sys/vm/extfrag_threshold",
    )
    parser.add_argument(
        "--show",
        metavar="NAME",
        choices=SHOW_CHOICES,
        help="print only one part: " + ", ".join(SHOW_CHOICES),
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )


@attrs.frozen
class FileStatus:
    """How one input file was obtained: ``read``, ``missing`` or ``unreadable``."""

    path: str
    status: str
    detail: str = ""


@attrs.frozen
class Inputs:
    proc: str
    machine: MachineSnapshot
    files: dict[str, FileStatus]


#: the largest /proc file read (a 1024-CPU machine's zoneinfo is a few MB)
MAX_PROC_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024


def _read(path: str, required: bool) -> tuple[str | None, FileStatus]:
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            raise _NotRegular(path)
        data = b""
        with open(path, "rb", buffering=0) as f:
            # in chunks: /proc/sys refuses a read count of 4 MiB or more (ENOMEM: proc_sys_call
            # kvzalloc's a buffer of the count), and a seq_file returns a page at a time
            while len(data) <= MAX_PROC_BYTES:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                data += chunk
        if len(data) > MAX_PROC_BYTES:
            raise UsageError(
                f"{path}: larger than {MAX_PROC_BYTES >> 20} MB: not a /proc file mmemu reads"
            )
        return data.decode("utf-8", errors="replace"), FileStatus(path, "read")
    except _NotRegular:
        if required:
            raise UsageError(f"{path}: not a regular file") from None
        return None, FileStatus(path, "unreadable", "not a regular file")
    except FileNotFoundError:
        if required:
            raise UsageError(f"{path}: no such file") from None
        return None, FileStatus(path, "missing")
    except PermissionError:
        if required:
            raise UsageError(f"{path}: permission denied") from None
        return None, FileStatus(path, "unreadable", "permission denied")
    except OSError as exc:
        if required:
            raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
        return None, FileStatus(path, "unreadable", str(exc.strerror or exc))


class _NotRegular(Exception):
    pass


def _parse(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except ProcParseError as exc:
        raise UsageError(str(exc)) from None


def load(proc: str) -> Inputs:
    """Read and parse the files under ``proc`` into one snapshot (UsageError on bad input)."""
    if not os.path.isdir(proc):
        raise UsageError(f"{proc}: not a directory")
    files: dict[str, FileStatus] = {}
    paths = {
        "buddyinfo": os.path.join(proc, "buddyinfo"),
        "pagetypeinfo": os.path.join(proc, "pagetypeinfo"),
        "zoneinfo": os.path.join(proc, "zoneinfo"),
    }
    text, files["buddyinfo"] = _read(paths["buddyinfo"], required=True)
    assert text is not None
    buddy = _parse(parse_buddyinfo, text, paths["buddyinfo"])
    pt = zi = None
    text, files["pagetypeinfo"] = _read(paths["pagetypeinfo"], required=False)
    if text is not None:
        pt = _parse(parse_pagetypeinfo, text, paths["pagetypeinfo"])
    text, files["zoneinfo"] = _read(paths["zoneinfo"], required=False)
    if text is not None:
        zi = _parse(parse_zoneinfo, text, paths["zoneinfo"])
    sysctls: dict[str, int] = {}
    for tunable in (COMPACTION_PROACTIVENESS, EXTFRAG_THRESHOLD):
        name = tunable.attr
        path = os.path.join(proc, "sys", "vm", name)
        text, status = _read(path, required=False)
        if text is None:
            files[name] = attrs.evolve(status, detail=status.detail or "kernel default used")
            sysctls[name] = tunable.int_default()
        else:
            files[name] = status
            sysctls[name] = _parse(parse_sysctl_int, text, path, tunable)
    machine = _parse(
        lambda: combine_snapshots(
            buddy,
            pt,
            zi,
            compaction_proactiveness=sysctls["compaction_proactiveness"],
            extfrag_threshold=sysctls["extfrag_threshold"],
            names=(paths["buddyinfo"], paths["pagetypeinfo"], paths["zoneinfo"]),
        )
    )
    return Inputs(proc, machine, files)


# ---------------------------------------------------------------------------------- analysis


def _largest_order(zone: ZoneSnapshot) -> int | None:
    orders = [o for o, n in enumerate(zone.nr_free) if n]
    return orders[-1] if orders else None


def _thp_wmark_ok(node: NodeSnapshot, zone: ZoneSnapshot) -> bool | None:
    """The order-0 watermark half of ``compaction_suitable`` for a THP fault
    (``__compaction_suitable``, mm/compaction.c:2380): NR_FREE_PAGES > low + compact_gap(9) +
    lowmem_reserve[highest_zoneidx], with highest_zoneidx = ZONE_MOVABLE (gfp_zone of
    GFP_TRANSHUGE). None without zoneinfo.
    Simplified: nr_reserved_highatomic, which __zone_watermark_ok also subtracts, is not in /proc.
    """
    if zone.present == 0 or not zone.lowmem_reserve:
        return None
    names = [z.name for z in node.zones]
    highest = names.index("Movable") if "Movable" in names else len(names) - 1
    reserve = zone.lowmem_reserve[highest] if highest < len(zone.lowmem_reserve) else 0
    gap = 2 << COMPACTION_HPAGE_ORDER
    return zone.free_pages > zone.wmark_low + gap + reserve


def _verdict(node: NodeSnapshot, zone: ZoneSnapshot, threshold: int) -> str:
    """What compaction_suitable() would make of a failed order-9 allocation in this zone."""
    order = COMPACTION_HPAGE_ORDER
    index = fragmentation_index(zone, order)
    if index == -1000:
        return "free block"
    if _thp_wmark_ok(node, zone) is False:
        return "skip: wmark"
    if not fragindex_allows_compaction(order, index, threshold):
        return "reclaim"
    return "compact"


def _weights_known(node: NodeSnapshot) -> bool:
    return all(z.present > 0 for z in node.zones if z.populated)


def analyse(inputs: Inputs) -> dict[str, Any]:
    """Everything the report prints, as plain data (the JSON output)."""
    m = inputs.machine
    low = fragmentation_score_wmark(True, m.compaction_proactiveness)
    high = fragmentation_score_wmark(False, m.compaction_proactiveness)
    nodes: list[dict[str, Any]] = []
    for node in m.nodes:
        known = _weights_known(node)
        present = node.present_pages
        zones: list[dict[str, Any]] = []
        for z in node.zones:
            if not z.populated:
                continue
            info = fill_contig_page_info(z, COMPACTION_HPAGE_ORDER)
            entry: dict[str, Any] = {
                "zone": z.name,
                "present": z.present if known else None,
                "managed": z.managed or None,
                "free_pages": info.free_pages,
                "free_pages_in_order9_blocks": info.free_blocks_suitable << COMPACTION_HPAGE_ORDER,
                "largest_free_order": _largest_order(z),
                "score": fragmentation_score_zone(z),
                "weighted_score": fragmentation_score_zone_weighted(z, present) if known else None,
                "fragindex_order9": fragmentation_index(z, COMPACTION_HPAGE_ORDER),
                "order9_wmark_ok": _thp_wmark_ok(node, z),
                "order9_verdict": _verdict(node, z, m.extfrag_threshold),
                "extfrag_index": [fragmentation_index(z, o) for o in range(NR_PAGE_ORDERS)],
                "unusable_index": [unusable_index(z, o) for o in range(NR_PAGE_ORDERS)],
                "extfrag_for_order": [extfrag_for_order(z, o) for o in range(NR_PAGE_ORDERS)],
            }
            if z.nr_free_by_mt is not None:
                entry["free_pages_by_migratetype"] = {
                    MIGRATETYPE_NAMES[mt]: sum(n << o for o, n in enumerate(counts))
                    for mt, counts in enumerate(z.nr_free_by_mt)
                }
            if z.pageblocks_by_mt is not None:
                entry["pageblocks_by_migratetype"] = dict(
                    zip(MIGRATETYPE_NAMES, z.pageblocks_by_mt, strict=True)
                )
            zones.append(entry)
        score = fragmentation_score_node(node) if known else None
        nodes.append(
            {
                "node": node.node,
                "present_pages": present if known else None,
                "score": score,
                "proactive_compaction": (
                    should_proactive_compact_node(node, m.compaction_proactiveness)
                    if known
                    else None
                ),
                "zones": zones,
            }
        )
    return {
        "source": inputs.proc,
        "live": os.path.realpath(inputs.proc) == DEFAULT_PROC,
        "files": {k: attrs.asdict(v) for k, v in inputs.files.items()},
        "compaction_proactiveness": m.compaction_proactiveness,
        "extfrag_threshold": m.extfrag_threshold,
        "fragmentation_score": {
            "order": COMPACTION_HPAGE_ORDER,
            "wmark_low": low,
            "wmark_high": high,
            "assumes_kswapd_idle": True,
            "nodes": nodes,
        },
        "extfrag_index": render_extfrag_index(m),
        "unusable_index": render_unusable_index(m),
    }


# ------------------------------------------------------------------------------------ text


def _fmt(value: int | None) -> str:
    return "?" if value is None else str(value)


def _score_text(report: dict[str, Any]) -> str:
    """The fragmentation scores in a kernel-like, greppable layout."""
    fs = report["fragmentation_score"]
    out: list[str] = []
    for node in fs["nodes"]:
        for z in node["zones"]:
            out.append(
                f"Node {node['node']}, zone {z['zone']:>8} score {z['score']:3d} "
                f"weighted {_fmt(z['weighted_score']):>3}\n"
            )
        verdict = {True: "yes", False: "no", None: "unknown"}[node["proactive_compaction"]]
        out.append(
            f"Node {node['node']} score {_fmt(node['score']):>3} low {fs['wmark_low']} "
            f"high {fs['wmark_high']} proactive_compaction {verdict}\n"
        )
    return "".join(out)


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _mib(pages: int | None) -> str:
    return "?" if pages is None else f"{pages * PAGE_KB / 1024:.1f}"


def _text(report: dict[str, Any]) -> str:
    fs = report["fragmentation_score"]
    files = report["files"]
    live = " (live system)" if report["live"] else ""
    out: list[str] = [f"mmemu inspect: {report['source']}{live}", ""]
    out.append("Inputs")
    for key in ("buddyinfo", "pagetypeinfo", "zoneinfo"):
        f = files[key]
        note = {
            "read": "read",
            "missing": "not present",
            "unreadable": f"not readable ({f['detail']})",
        }[f["status"]]
        if key == "pagetypeinfo" and f["status"] != "read":
            note += " -> per-migratetype data omitted"
            if f["status"] == "unreadable":
                note += " (mode 0400: run as root to include it)"
        if key == "zoneinfo" and f["status"] != "read":
            note += " -> present pages unknown: weighted and node scores omitted"
        out.append(f"  {key:<13} {f['path']}: {note}")
    for key in ("compaction_proactiveness", "extfrag_threshold"):
        f = files[key]
        origin = (
            f["path"] if f["status"] == "read" else f"{f['path']} {f['status']}: kernel default"
        )
        out.append(f"  vm.{key} = {report[key]}  ({origin})")
    out.append("")

    out.append("Zones (free pages from buddyinfo; order-9 = 2 MiB, COMPACTION_HPAGE_ORDER)")
    rows = [
        [
            "node", "zone", "present", "managed", "free MiB", "largest", "in>=9 MiB",
            "score", "weighted", "fragidx(9)", "unusable(9)", "wmark(9)", "order-9 failure",
        ]
    ]  # fmt: skip
    for node in fs["nodes"]:
        for z in node["zones"]:
            largest = z["largest_free_order"]
            rows.append(
                [
                    str(node["node"]),
                    z["zone"],
                    _fmt(z["present"]),
                    _fmt(z["managed"]),
                    _mib(z["free_pages"]),
                    "-" if largest is None else str(largest),
                    _mib(z["free_pages_in_order9_blocks"]),
                    str(z["score"]),
                    _fmt(z["weighted_score"]),
                    _index(z["fragindex_order9"]),
                    _index(z["unusable_index"][COMPACTION_HPAGE_ORDER]),
                    {True: "ok", False: "low", None: "?"}[z["order9_wmark_ok"]],
                    z["order9_verdict"],
                ]
            )
    out.extend(_table(rows, right=set(range(2, 12)) | {0}))
    out.append("  wmark(9): NR_FREE_PAGES > low + compact_gap(9) + lowmem_reserve[Movable], the")
    out.append("  order-0 check of __compaction_suitable() for a THP (highatomic reserve ignored).")
    out.append("  order-9 failure: what compaction_suitable() decides when an order-9 allocation")
    out.append("  fails: 'free block' = a block of order >= 9 is free (fragidx -1.000);")
    out.append("  'skip: wmark' = wmark(9) low, compaction skipped; 'reclaim' = 0 <= fragidx <=")
    out.append(
        f"  extfrag_threshold ({report['extfrag_threshold'] / 1000:.3f}), lack of memory, "
        "compaction refused; 'compact' = fragmentation, allowed"
    )
    out.append("")

    mt_rows = [["node", "zone", "", *MIGRATETYPE_NAMES]]
    for node in fs["nodes"]:
        for z in node["zones"]:
            if "free_pages_by_migratetype" in z:
                free = z["free_pages_by_migratetype"]
                mt_rows.append(
                    [
                        str(node["node"]),
                        z["zone"],
                        "free MiB",
                        *(_mib(free[n]) for n in MIGRATETYPE_NAMES),
                    ]
                )
            if "pageblocks_by_migratetype" in z:
                blocks = z["pageblocks_by_migratetype"]
                mt_rows.append(["", "", "pageblocks", *(str(blocks[n]) for n in MIGRATETYPE_NAMES)])
    if len(mt_rows) > 1:
        out.append("Free memory and pageblocks by migratetype (pagetypeinfo)")
        out.extend(_table(mt_rows, right=set(range(3, 3 + len(MIGRATETYPE_NAMES)))))
        out.append("")

    out.append(
        f"Proactive compaction (kcompactd): vm.compaction_proactiveness "
        f"{report['compaction_proactiveness']} -> score low {fs['wmark_low']}, "
        f"high {fs['wmark_high']}"
    )
    for node in fs["nodes"]:
        if node["score"] is None:
            out.append(f"  node {node['node']}: score unknown (needs zoneinfo's present pages)")
        elif report["compaction_proactiveness"] == 0:
            out.append(
                f"  node {node['node']}: score {node['score']}; proactive compaction is disabled"
            )
        elif node["proactive_compaction"]:
            out.append(
                f"  node {node['node']}: score {node['score']} > high {fs['wmark_high']}: "
                f"WOULD START; each zone is compacted until its own score <= {fs['wmark_low']}"
            )
        else:
            out.append(
                f"  node {node['node']}: score {node['score']} <= high {fs['wmark_high']}: "
                "would not start"
            )
    out.append(
        "  (node score = sum of zone score * zone present / (node present + 1); assumes kswapd"
    )
    out.append("   is not running on the node, which also stops proactive compaction)")
    out.append("")

    out.append("extfrag_index (/sys/kernel/debug/extfrag/extfrag_index)")
    out.append(report["extfrag_index"].rstrip("\n"))
    out.append(
        "  -1.000: a free block of that order exists; towards 0: failure from lack of memory;"
    )
    out.append("  towards 1: failure from external fragmentation")
    out.append("")
    out.append("unusable_index (/sys/kernel/debug/extfrag/unusable_index)")
    out.append(report["unusable_index"].rstrip("\n"))
    out.append("  share of free memory in blocks too small for each order (0 none, 1 all)")
    return "\n".join(out) + "\n"


def _index(index: int) -> str:
    whole, frac = divmod(abs(index), 1000)
    return f"{'-' if index < 0 else ''}{whole}.{frac:03d}"


def run(args: argparse.Namespace) -> int:
    """Entry point called by :func:`emulator.cli.main`."""
    report = analyse(load(args.proc))
    if args.show:
        if args.format == "json":
            key = args.show
            payload = {"source": report["source"], key: report[key]}
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        elif args.show == "fragmentation_score":
            sys.stdout.write(_score_text(report))
        else:
            sys.stdout.write(report[args.show])
        return 0
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(_text(report))
    return 0
