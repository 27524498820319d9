"""Write a run's results folder and the short terminal summary.

The folder holds ``events.jsonl`` (written during the run by the recorder), ``summary.json``
and kernel-format files as at the end of the run: ``buddyinfo``, ``pagetypeinfo``,
``zoneinfo``, ``vmstat``, ``extfrag_index``, ``unusable_index`` and ``lock_stat``. Each file is
byte-compatible with the kernel's, so it can be diffed against a real machine's.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import attrs
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from emulator.engine.lockstat import render_lock_stat, snprint_time
from emulator.mm.compaction.kcompactd import HPAGE_FRAG_CHECK_INTERVAL_NS
from emulator.mm.procfs.render import (
    render_buddyinfo,
    render_extfrag_index,
    render_pagetypeinfo,
    render_unusable_index,
    render_vmstat,
    render_zoneinfo,
)
from emulator.mm.snapshot import MachineSnapshot, NodeSnapshot
from emulator.report.latency import summary_table as latency_summary_table
from emulator.report.latency import write_latency
from emulator.report.perfetto import proactiveness_of
from emulator.run.summary import RunSummary
from emulator.runner import RunResult

__all__ = ["KERNEL_FILES", "format_summary", "print_summary", "write_results"]

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
    written.append(result.summary().write(out / "summary.json"))
    for name, text in kernel_files(result).items():
        p = out / name
        p.write_text(text)
        written.append(p)
    written.append(write_latency(result, out))
    return written


def _flat(prefix: str, value: Any) -> list[tuple[str, str]]:
    """``findings`` as ``key.sub value`` rows (as ``sysctl -a`` prints nested names)."""
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += _flat(f"{prefix}.{k}" if prefix else str(k), v)
        return rows
    if isinstance(value, list | tuple):
        return [(prefix, " ".join(str(v) for v in value))]
    if isinstance(value, float):
        return [(prefix, f"{value:g}")]
    return [(prefix, str(value))]


def summary_renderables(result: RunResult) -> list[Any]:
    """The end-of-run summary as rich renderables (header, tables, kernel-style lines)."""
    s = result.summary()
    out: list[Any] = [
        Text(
            f"scenario {result.scenario}  seed {result.params.seed}  "
            f"{result.virtual_ns / 1e9:.3f} s virtual in {result.wall_s:.2f} s wall "
            f"(set-up {result.setup_s:.2f} s)  reason: {result.reason}"
        )
    ]
    allocs = Table(title="allocations", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("order", "attempts", "pcp hits", "failures", "p50 ns", "p99 ns", "max ns"):
        allocs.add_column(col, justify="right")
    allocs.add_column("failed because")
    for order, a in s.allocations.items():
        lat = a.latency_ns
        reasons = ", ".join(f"{why} x{n}" for why, n in a.failure_reasons.items())
        allocs.add_row(
            str(order),
            f"{a.attempts:,}",
            f"{a.pcp_hits:,}",
            f"{a.failures:,}",
            f"{lat.p50:,}",
            f"{lat.p99:,}",
            f"{lat.max:,}",
            reasons,
        )
    out.append(allocs)
    slow = s.slowpath
    if slow:
        sp_table = Table(title="slow path", title_justify="left", box=box.SIMPLE_HEAD)
        for col in (
            "order",
            "entered",
            "freelist",
            "after reclaim",
            "after compaction",
            "captured",
            "would OOM",
        ):
            sp_table.add_column(col, justify="right")
        for order, sp in slow.items():
            sp_table.add_row(
                str(order),
                f"{sp.entered:,}",
                f"{sp.succeeded_freelist:,}",
                f"{sp.succeeded_after_reclaim:,}",
                f"{sp.succeeded_after_compaction:,}",
                f"{sp.captured:,}",
                f"{sp.would_oom:,}",
            )
        out.append(sp_table)
    parts = latency_summary_table(s)
    if parts is not None:
        out.append(parts)
    locks = Table(title="lock_stat", title_justify="left", box=box.SIMPLE_HEAD)
    # times in µs with 2 decimals, as /proc/lock_stat prints them (snprint_time)
    for col in (
        "class name",
        "contentions",
        "acquisitions",
        "waittime-avg µs",
        "waittime-max µs",
        "holdtime-avg µs",
    ):
        locks.add_column(col, justify="left" if col == "class name" else "right")
    for name, st in s.lock_stat.items():
        if not st.acquisitions:
            continue
        locks.add_row(
            name,
            f"{st.contentions:,}",
            f"{st.acquisitions:,}",
            snprint_time(st.waittime_avg),
            snprint_time(st.waittime_max),
            snprint_time(st.holdtime_avg),
        )
    out.append(locks)
    lines: list[str] = []
    scores = s.series.fragmentation_score
    if scores:
        for node, (first, last) in enumerate(zip(scores[0], scores[-1], strict=False)):
            lines.append(f"Node {node}, fragmentation score {first} -> {last}")
    lines.extend(kcompactd_lines(s))
    lines.append(f"nr_free_pages {s.vmstat['nr_free_pages']}")
    lines.append(f"pcp pages {s.pcp.pages}")
    for k, v in s.vmstat_delta.items():
        lines.append(f"{k} +{v}")
    for key, value in s.findings.items():
        for name, text in _flat(key, value):
            lines.append(f"{name} = {text}")
    out.append(Text("\n".join(lines)))
    return out


def kcompactd_lines(s: RunSummary) -> list[str]:
    """What kcompactd did, per node: its proactive passes, or why there were none (its first
    timer wake-up, HPAGE_FRAG_CHECK_INTERVAL_MSEC after boot, at or after the run's end)."""
    proactiveness = proactiveness_of(s)
    end = s.virtual_ns
    out = []
    for k in s.kcompactd or []:
        passes = k.proactive_passes
        node = f"kcompactd{k.node}"
        if passes:
            migrated = sum(p.pages_migrated for p in passes)
            first = passes[0].t_ns / 1e6
            out.append(
                f"{node}: {len(passes)} proactive passes (first at {first:g} ms), "
                f"{migrated} pages migrated"
            )
        elif proactiveness == 0:
            out.append(f"{node}: no proactive pass (vm.compaction_proactiveness = 0)")
        elif end <= HPAGE_FRAG_CHECK_INTERVAL_NS:
            out.append(
                f"{node}: no proactive pass: the first check is at "
                f"{HPAGE_FRAG_CHECK_INTERVAL_NS // 1_000_000} ms, the run ends at "
                f"{end / 1e6:g} ms (try --set duration=2s)"
            )
        else:
            out.append(
                f"{node}: no proactive pass (the fragmentation score stayed below its "
                f"high mark {k.high}, or kswapd was running)"
            )
    return out


def print_summary(result: RunResult, console: Console | None = None) -> None:
    """Print the end-of-run summary (rich tables on a terminal, plain text otherwise)."""
    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=132)
    for item in summary_renderables(result):
        console.print(item)


def format_summary(result: RunResult) -> str:
    """The end-of-run summary as plain text."""
    buf = io.StringIO()
    print_summary(result, Console(file=buf, width=120, no_color=True, highlight=False))
    return buf.getvalue()
