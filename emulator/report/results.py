"""Write a run's results folder and the short terminal summary.

The folder holds ``events.jsonl`` (written during the run by the recorder), ``summary.json``
and kernel-format files as at the end of the run: ``buddyinfo``, ``pagetypeinfo``,
``zoneinfo``, ``vmstat``, ``extfrag_index``, ``unusable_index`` and ``lock_stat``. Each file is
byte-compatible with the kernel's, so it can be diffed against a real machine's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from emulator.engine.lockstat import render_lock_stat, snprint_time
from emulator.mm.procfs import (
    render_buddyinfo,
    render_extfrag_index,
    render_pagetypeinfo,
    render_unusable_index,
    render_vmstat,
    render_zoneinfo,
)
from emulator.mm.snapshot import MachineSnapshot, NodeSnapshot

if TYPE_CHECKING:
    from emulator.runner import RunResult

__all__ = ["KERNEL_FILES", "format_summary", "write_results"]

KERNEL_FILES = (
    "buddyinfo",
    "pagetypeinfo",
    "zoneinfo",
    "vmstat",
    "extfrag_index",
    "unusable_index",
    "lock_stat",
)


def _snapshot_with_pcp(result: RunResult) -> MachineSnapshot:
    """The machine snapshot with each zone's per-CPU pagesets filled in (for zoneinfo)."""
    snap = result.snapshot
    pa = result.ctx.allocator
    by_zone = {(z.node, z.name): z for z in pa.zones}
    nodes = []
    for node in snap.nodes:
        zones = []
        for zs in node.zones:
            z = by_zone.get((zs.node, zs.name))
            if z is not None:
                pcps = tuple(c.pcp[z.gidx].snapshot() for c in pa.cpus)
                zs = attrs.evolve(zs, pcp=pcps)
            zones.append(zs)
        nodes.append(
            attrs.evolve(node, zones=tuple(zones)) if isinstance(node, NodeSnapshot) else node
        )
    return attrs.evolve(snap, nodes=tuple(nodes))


def kernel_files(result: RunResult) -> dict[str, str]:
    """The text of every kernel-format file of a run."""
    snap = _snapshot_with_pcp(result)
    return {
        "buddyinfo": render_buddyinfo(snap),
        "pagetypeinfo": render_pagetypeinfo(snap),
        "zoneinfo": render_zoneinfo(snap),
        "vmstat": render_vmstat(result.vmstat()),
        "extfrag_index": render_extfrag_index(snap),
        "unusable_index": render_unusable_index(snap),
        "lock_stat": render_lock_stat(result.lock_classes()),
    }


def write_results(result: RunResult, out: Path) -> list[Path]:
    """Write summary.json and the kernel-format files into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    summary = out / "summary.json"
    summary.write_text(json.dumps(result.summary(), indent=1, sort_keys=False) + "\n")
    written.append(summary)
    for name, text in kernel_files(result).items():
        p = out / name
        p.write_text(text)
        written.append(p)
    return written


def format_summary(result: RunResult) -> str:
    """The short summary printed after a run."""
    s = result.summary()
    lines = [
        f"scenario {result.scenario}  seed {result.params.seed}  "
        f"{result.virtual_ns / 1e9:.3f} s virtual in {result.wall_s:.2f} s wall  ({result.reason})",
        "",
        "allocations       attempts   pcp hits   failures      p50 ns      p99 ns      max ns",
    ]
    for order, a in s["allocations"].items():
        lat = a["latency_ns"]
        lines.append(
            f"  order {int(order):2d}   {a['attempts']:11,d} {a['pcp_hits']:10,d} "
            f"{a['failures']:10,d} {lat['p50']:11,d} {lat['p99']:11,d} {lat['max']:11,d}"
        )
        for why, n in a["failure_reasons"].items():
            lines.append(f"             failed: {why} x{n}")
    for order, sp in s.get("slowpath", {}).items():
        lines.append(
            f"  slow path order {int(order)}: entered {sp['entered']:,}, succeeded at the freelist "
            f"{sp['succeeded_freelist']:,}, after reclaim {sp['succeeded_after_reclaim']:,}, "
            f"after compaction {sp['succeeded_after_compaction']:,} "
            f"(captured {sp['captured']:,}), would OOM {sp['would_oom']:,}"
        )
    zl = s["lock_stat"].get("&zone->lock")
    if zl:
        lines += [
            "",
            f"zone->lock: {zl['acquisitions']:,} acquisitions, {zl['contentions']:,} contended "
            f"({100 * zl['contentions'] / max(zl['acquisitions'], 1):.1f}%), "
            f"wait avg {snprint_time(zl['waittime-avg'])} us "
            f"max {snprint_time(zl['waittime-max'])} us, "
            f"hold avg {snprint_time(zl['holdtime-avg'])} us",
        ]
    ts = s["timeseries"]
    if ts.get("fragmentation_score"):
        first, last = ts["fragmentation_score"][0], ts["fragmentation_score"][-1]
        lines.append(f"fragmentation score (per node): {first} -> {last}")
    lines.append(
        f"nr_free_pages {s['vmstat']['nr_free_pages']:,}, pages on pcp lists {s['pcp']['pages']:,}"
    )
    delta = s["vmstat_delta"]
    if delta:
        lines.append("vmstat deltas: " + "  ".join(f"{k} +{v:,}" for k, v in delta.items()))
    for key, value in s.get("findings", {}).items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines)
