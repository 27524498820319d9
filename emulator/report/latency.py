"""Where the allocation latency went: the per-allocation parts of a finished run.

The model splits every allocation's virtual time into the kernel's parts as it runs
(:mod:`emulator.mm.alloc_latency`): summary.json keeps per order the totals and per-allocation
percentiles (``allocations.N.latency_parts``), and the run folder keeps every allocation
compactly in ``latency.npz`` (:func:`write_latency`): its latency, start, CPU, its parts when it
crossed a part boundary, the CPUs' workload phases, and every ``zone->lock`` wait (start, ns).
That file is what ``mmemu latency RUN_DIR`` and the plots read, so neither needs events.jsonl
nor a re-run.

Which parts are findings: ``zone_lock_wait``, ``other_lock_wait`` and ``compact_throttle``
(:data:`~emulator.mm.alloc_latency.INTERLEAVING`) come from the simulated interleaving: how long
this CPU waited depended on what the others did. Every other part restates the cost table
(``cost.*`` parameters) times the work the model did (pages scanned, pages migrated, ...): its
size follows from an estimate, so compare it across runs, not with a kernel.

What a kernel gives instead: ``perf lock contention -ab`` (lock contention tracepoints, BPF)
prints per lock or caller the contentions, total, max and average wait: the
``zone_lock_wait`` and ``other_lock_wait`` columns summed over all tasks, not per allocation
and with no hold times (``/proc/lock_stat`` with CONFIG_LOCK_STAT has those). bcc's
``funclatency __alloc_pages_noprof`` (or ``try_to_compact_pages``,
``__alloc_pages_direct_reclaim``) prints a log2 histogram of one function's latency at a time:
the whole of an allocation or of one slow-path step, never the split of one allocation. The
view here is the split those two would give if one could run them on every allocation at once.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from rich import box
from rich.table import Table
from rich.text import Text

from emulator.engine.percentile import nearest_rank
from emulator.mm.alloc_latency import FAST_PATH, INTERLEAVING, NR_PARTS, PARTS
from emulator.run.summary import LatencyPart, LatencyParts, RunSummary
from emulator.runner import RunResult

__all__ = [
    "LATENCY_FILE",
    "LatencyData",
    "by_group_table",
    "diff_rows",
    "latency_arrays",
    "load_latency",
    "parts_table",
    "split_table",
    "summary_table",
    "write_latency",
]

LATENCY_FILE = "latency.npz"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def latency_arrays(result: RunResult) -> dict[str, np.ndarray]:
    """The arrays of ``latency.npz`` for a run (see :class:`LatencyData`)."""
    pa = result.ctx.allocator
    out: dict[str, np.ndarray] = {
        "parts": np.asarray(PARTS),
        "virtual_ns": np.asarray([result.virtual_ns], dtype=np.int64),
    }
    for order in range(len(pa.cpus[0].stats) if pa.cpus else 0):
        lat: list[np.ndarray] = []
        start: list[np.ndarray] = []
        cpu: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        base = 0
        for c in pa.cpus:
            s = c.stats[order]
            n = len(s.latencies)
            if not n:
                continue
            lat.append(np.frombuffer(s.latencies, dtype=np.int64))
            start.append(np.frombuffer(s.starts, dtype=np.int64))
            cpu.append(np.full(n, c.id, dtype=np.int32))
            r = np.frombuffer(s.parts, dtype=np.int64).reshape(-1, NR_PARTS + 1).copy()
            r[:, 0] += base
            rows.append(r)
            base += n
        if not lat:
            continue
        out[f"o{order}.latency"] = np.concatenate(lat)
        out[f"o{order}.start"] = np.concatenate(start)
        out[f"o{order}.cpu"] = np.concatenate(cpu)
        out[f"o{order}.rows"] = np.concatenate(rows)
    for z in pa.zones:
        w = np.frombuffer(z.lock_waits, dtype=np.int64).reshape(-1, 2)
        out[f"zone_waits.zone->lock:{z.node}:{z.name}"] = w
    for prog in result.ctx.programs:
        starts = prog.phase_starts
        out[f"phases.cpu{prog.cpu.id}.t"] = np.asarray([t for t, _ in starts], dtype=np.int64)
        out[f"phases.cpu{prog.cpu.id}.name"] = np.asarray([n for _, n in starts] or [""])[
            : len(starts)
        ]
    return out


def write_latency(result: RunResult, out: Path) -> Path:
    """Write ``latency.npz`` into ``out`` (byte-identical for identical runs: fixed zip
    dates, sorted names); ``numpy.load`` reads it."""
    path = Path(out) / LATENCY_FILE
    arrays = latency_arrays(result)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
    return path


@attrs.frozen
class OrderLatency:
    """One order's allocations: latency, start and CPU per allocation, and ``parts``, the
    ns of every part per allocation (shape ``(n, len(PARTS))``)."""

    latency: np.ndarray
    start: np.ndarray
    cpu: np.ndarray
    parts: np.ndarray


@attrs.frozen
class LatencyData:
    """What ``latency.npz`` holds, read back (:func:`load_latency`)."""

    orders: dict[int, OrderLatency]
    zone_waits: dict[str, np.ndarray]
    phases: dict[int, list[tuple[int, str]]]
    virtual_ns: int

    def phase_of(self, order: int) -> np.ndarray:
        """The workload phase every allocation of ``order`` began in (its CPU's phase)."""
        o = self.orders[order]
        out = np.full(o.latency.size, "", dtype=object)
        for cpu, starts in self.phases.items():
            mine = o.cpu == cpu
            if not starts or not mine.any():
                continue
            ts = np.asarray([t for t, _ in starts], dtype=np.int64)
            idx = np.searchsorted(ts, o.start[mine], side="right") - 1
            names = np.asarray([n for _, n in starts], dtype=object)
            out[mine] = np.where(idx >= 0, names[np.maximum(idx, 0)], "")
        return out


def load_latency(run_dir: str | Path) -> LatencyData | None:
    """Read ``RUN_DIR/latency.npz``; None if the run has none (a run of an older mmemu)."""
    path = Path(run_dir) / LATENCY_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    names = [str(n) for n in arrays["parts"]]
    col = {n: i for i, n in enumerate(names)}
    orders: dict[int, OrderLatency] = {}
    for key in arrays:
        if not (key.startswith("o") and key.endswith(".latency")):
            continue
        order = int(key[1:].split(".")[0])
        lat = arrays[key].astype(np.int64)
        parts = np.zeros((lat.size, NR_PARTS), dtype=np.int64)
        parts[:, FAST_PATH] = lat
        rows = arrays[f"o{order}.rows"].reshape(-1, len(names) + 1)
        if rows.size:
            idx = rows[:, 0]
            parts[idx, :] = 0
            for name, i in col.items():
                if name in PARTS:
                    parts[idx, PARTS.index(name)] = rows[:, 1 + i]
        orders[order] = OrderLatency(lat, arrays[f"o{order}.start"], arrays[f"o{order}.cpu"], parts)
    waits = {
        k.removeprefix("zone_waits."): v.reshape(-1, 2)
        for k, v in arrays.items()
        if k.startswith("zone_waits.")
    }
    phases: dict[int, list[tuple[int, str]]] = {}
    for k, v in arrays.items():
        if k.startswith("phases.") and k.endswith(".t"):
            cpu = int(k.split(".")[1].removeprefix("cpu"))
            nm = arrays[k.removesuffix(".t") + ".name"]
            phases[cpu] = [(int(t), str(n)) for t, n in zip(v, nm, strict=False)]
    return LatencyData(dict(sorted(orders.items())), waits, phases, int(arrays["virtual_ns"][0]))


# ------------------------------------------------------------------------------ statistics


def split(parts: np.ndarray) -> dict[str, LatencyPart]:
    """Per part: total ns, share of the total latency, per-allocation p50/p99/max (the same
    numbers summary.json's ``latency_parts`` gives)."""
    total = int(parts.sum())
    out = {}
    for i, name in enumerate(PARTS):
        col = np.sort(parts[:, i]) if parts.size else np.zeros(0, dtype=np.int64)
        s = int(col.sum())
        out[name] = LatencyPart(
            total_ns=s,
            share=round(s / total, 4) if total else 0.0,
            p50=nearest_rank(col, 50),
            p99=nearest_rank(col, 99),
            max=int(col[-1]) if col.size else 0,
        )
    return out


def _source(part: str) -> str:
    return "interleaving" if part in INTERLEAVING else "cost table"


def _ns(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:,.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:,.1f} µs"
    return f"{v:,.0f} ns"


def parts_table(title: str, parts: dict[str, LatencyPart]) -> Table:
    """One order's split: per non-zero part its total, share and per-allocation percentiles,
    and whether it comes from the interleaving or the cost table."""
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("part", "total", "share", "p50", "p99", "max", "from"):
        t.add_column(col, justify="left" if col in ("part", "from") else "right")
    for name in PARTS:
        p = parts.get(name)
        if p is None or not p.total_ns:
            continue
        t.add_row(
            name,
            _ns(p.total_ns),
            f"{100 * p.share:.1f}%",
            _ns(p.p50),
            _ns(p.p99),
            _ns(p.max),
            _source(name),
        )
    return t


def split_table(
    title: str, columns: dict[str, dict[str, LatencyPart]], caption: str | None = None
) -> Table:
    """Shares of each part (rows) per column (orders, CPUs, phases, runs), in % of the
    column's total latency; parts zero everywhere are left out."""
    t = Table(
        title=title,
        title_justify="left",
        caption=caption or "wait: from the interleaving, cost: from the cost table",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    t.add_column("part", no_wrap=True)
    for c in columns:
        t.add_column(c, justify="right", no_wrap=True)
    t.add_column("from", no_wrap=True)
    for name in PARTS:
        if not any(_total(col.get(name)) for col in columns.values()):
            continue
        cells = []
        for col in columns.values():
            p = col.get(name)
            cells.append(f"{100 * p.share:.1f}%" if p is not None and p.total_ns else "-")
        t.add_row(name, *cells, "wait" if name in INTERLEAVING else "cost")
    return t


def _total(part: LatencyPart | None) -> int:
    return 0 if part is None else part.total_ns


def summary_table(summary: RunSummary) -> Table | None:
    """The run summary's ``latency parts`` table: share of each order's total latency per
    part (orders that took the slow path or waited for a lock; None if none did)."""
    columns: dict[str, dict[str, LatencyPart]] = {}
    for order, a in summary.allocations.items():
        if a.latency_parts.timed:
            columns[f"order {order}"] = a.latency_parts.parts
    if not columns:
        return None
    return split_table(
        "latency parts (% of the order's latency)",
        columns,
        "wait: interleaving, cost: cost table",
    )


def by_group_table(data: LatencyData, order: int, by: str) -> Table:
    """Order ``order``'s split per CPU (``by="cpu"``) or per workload phase (``"phase"``)."""
    o = data.orders[order]
    if by == "cpu":
        keys = o.cpu
        groups = [(f"cpu{c}", keys == c) for c in sorted(set(keys.tolist()))]
    else:
        keys = data.phase_of(order)
        names = list(dict.fromkeys(keys.tolist()))
        groups = [(n or "?", keys == n) for n in names]
    columns = {g: split(o.parts[m]) for g, m in groups}
    counts = ", ".join(f"{g} {int(m.sum())}" for g, m in groups)
    return split_table(
        f"order {order}: share of the latency per part, by {by} (allocations: {counts})", columns
    )


def diff_rows(a: RunSummary, b: RunSummary) -> list[tuple[str, float | None, float | None]]:
    """``mmemu diff``'s ``latency parts`` section: per order and part, the share (%) of the
    order's total latency on each side."""
    out: list[tuple[str, float | None, float | None]] = []
    for order in sorted(set(a.allocations) | set(b.allocations)):
        oa, ob = a.allocations.get(order), b.allocations.get(order)
        pa = oa.latency_parts if oa is not None else LatencyParts()
        pb = ob.latency_parts if ob is not None else LatencyParts()
        if not pa.timed and not pb.timed:
            continue
        for name in PARTS:
            va, vb = pa.parts.get(name), pb.parts.get(name)
            if not _total(va) and not _total(vb):
                continue
            out.append(
                (
                    f"order {order} {name} share %",
                    round(100 * va.share, 2) if va is not None else None,
                    round(100 * vb.share, 2) if vb is not None else None,
                )
            )
    return out


def render(
    run_dir: str | Path, summary: RunSummary, order: int | None = None, by: str | None = None
) -> list[Any]:
    """What ``mmemu latency`` prints, as rich renderables."""
    data = load_latency(run_dir)
    allocs = summary.allocations
    orders: Iterable[int] = [order] if order is not None else sorted(allocs)
    out: list[Any] = []
    for o in orders:
        a = allocs.get(o)
        if a is None:
            continue
        if data is not None and o in data.orders:
            ol = data.orders[o]
            parts = split(ol.parts)
            n, total = int(ol.latency.size), int(ol.latency.sum())
        else:
            parts = a.latency_parts.parts
            n, total = a.attempts, a.latency_parts.total_ns
        lat = a.latency_ns
        out.append(
            parts_table(
                f"order {o}: {n:,} allocations, {_ns(total)} in all "
                f"(p50 {_ns(lat.p50)}, p99 {_ns(lat.p99)}, max {_ns(lat.max)})",
                parts,
            )
        )
        if by is not None:
            if data is None:
                out.append(Text(f"--by {by}: this run has no {LATENCY_FILE}"))
            elif o in data.orders:
                out.append(by_group_table(data, o, by))
    out.append(
        Text(
            "from: interleaving (wait) = waits that depend on what the other CPUs did, a "
            "finding; cost table (cost) = the cost.* estimates times the work done, an input"
        )
    )
    return out
