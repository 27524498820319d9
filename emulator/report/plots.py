"""PNG plots of a run (headless matplotlib, the Agg backend): ``mmemu plot`` and ``run --plots``.

Per run (``RUN_DIR/plots/``):

* ``fragmentation.png`` — the node fragmentation score (mm/compaction.c:
  fragmentation_score_node) over virtual time against kcompactd's proactive low and high marks
  (fragmentation_score_wmark for the run's vm.compaction_proactiveness);
* ``free_blocks_heatmap.png`` — free blocks per order (all zones) over time, log colour scale;
* ``alloc_latency_cdf.png`` — allocation latency CDF per order, from ``mmemu_alloc_begin`` to
  ``mm_page_alloc`` of the same CPU (failed allocations included; the markers are recorded
  when the run writes a trace);
* ``zone_lock_wait.png`` — time spent waiting for each ``zone->lock`` per sampling interval
  (``contention_begin`` .. ``contention_end``, recorded when the run writes a trace);
* ``compaction_outcomes.png`` — ``mm_compaction_end`` statuses per interval, and allocation
  failures per order beside them.

For sweeps, :func:`plot_sweep` draws one summary.json metric against one parameter over many
results folders (``mmemu plot --sweep DIR... --x PARAM --y METRIC``).

Each function returns the figure's path; the data it drew are put in the PNG's metadata
(``mmemu:series``) so tests and scripts can check what a plot holds without reading pixels.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from emulator.mm.mmflags import COMPACTION_STATUS
from emulator.report.latency import load_latency
from emulator.report.perfetto import fragmentation_marks, proactiveness_of
from emulator.report.run_folder import EVENT_ERRORS, EventLog, RunFolderError, load_summary
from emulator.run.summary import RunSummary, SummaryError

__all__ = ["PLOTS", "metric_keys", "metric_of", "plot_sweep", "write_plots"]

PLOTS = (
    "fragmentation.png",
    "free_blocks_heatmap.png",
    "alloc_latency_cdf.png",
    "zone_lock_wait.png",
    "compaction_outcomes.png",
)
_DPI = 100
#: compaction statuses, best first, with a colour each (green success .. red failure)
_STATUS_COLOURS = {
    "success": "tab:green",
    "partial_skipped": "tab:olive",
    "complete": "tab:red",
    "no_suitable_page": "tab:orange",
    "contended": "tab:purple",
    "skipped": "tab:gray",
    "deferred": "tab:brown",
    "not_suitable_zone": "tab:pink",
}
_STATUS_ORDER = {s: i for i, s in enumerate(_STATUS_COLOURS)}


def _save(fig: Figure, path: Path, series: dict[str, Any]) -> Path:
    fig.tight_layout()
    axes = [
        {"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(), "lines": len(ax.get_lines())}
        for ax in fig.axes
        if ax.get_label() != "<colorbar>"
    ]
    meta = {"mmemu:series": json.dumps(series), "mmemu:axes": json.dumps(axes)}
    fig.savefig(path, dpi=_DPI, metadata=meta)
    plt.close(fig)
    return path


def _ms(t_ns: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(t_ns, dtype=float) / 1e6


def _title(summary: RunSummary, what: str) -> str:
    seed = "?" if summary.seed is None else summary.seed
    return f"{what} — {summary.scenario} seed {seed}"


def plot_fragmentation(summary: RunSummary, path: Path) -> Path:
    ts = summary.series
    t = _ms(ts.t_ns)
    scores = np.asarray(ts.fragmentation_score, dtype=float)
    low, high = fragmentation_marks(proactiveness_of(summary))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    series: dict[str, Any] = {}
    if scores.size:
        for node in range(scores.shape[1]):
            ax.plot(t, scores[:, node], label=f"node {node} score", linewidth=1.6)
            series[f"node{node}"] = len(t)
    passes = [p.t_ns for k in summary.kcompactd or [] for p in k.proactive_passes]
    for i, t_pass in enumerate(passes):
        ax.axvline(
            t_pass / 1e6,
            color="tab:purple",
            linestyle=":",
            label="kcompactd proactive pass" if i == 0 else None,
        )
    series["kcompactd_passes"] = len(passes)
    ax.axhline(low, color="tab:green", linestyle="--", label=f"proactive low mark ({low})")
    ax.axhline(high, color="tab:red", linestyle="--", label=f"proactive high mark ({high})")
    ax.set_ylim(0, 100)
    ax.set_xlabel("virtual time (ms)")
    ax.set_ylabel("fragmentation score (0-100)")
    ax.set_title(_title(summary, "Node fragmentation score"))
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    series.update({"low": low, "high": high})
    return _save(fig, path, series)


def plot_free_heatmap(summary: RunSummary, path: Path) -> Path:
    ts = summary.series
    t = _ms(ts.t_ns)
    pages = np.asarray(ts.free_pages_per_order, dtype=float)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if pages.size:
        blocks = pages / (2.0 ** np.arange(pages.shape[1]))
        data = np.where(blocks > 0, blocks, np.nan).T
        vmax = max(np.nanmax(data) if np.isfinite(data).any() else 1.0, 1.0)
        extent = (t[0], t[-1] if len(t) > 1 else t[0] + 1, -0.5, pages.shape[1] - 0.5)
        im = ax.imshow(
            data,
            aspect="auto",
            origin="lower",
            extent=extent,
            norm=LogNorm(vmin=1, vmax=vmax),
            cmap="viridis",
            interpolation="nearest",
        )
        fig.colorbar(im, ax=ax, label="free blocks (log scale; blank = none)")
        ax.set_yticks(range(pages.shape[1]))
    ax.set_xlabel("virtual time (ms)")
    ax.set_ylabel("order")
    ax.set_title(_title(summary, "Free blocks per order (all zones)"))
    return _save(fig, path, {"orders": int(pages.shape[1]) if pages.size else 0, "samples": len(t)})


def plot_latency_cdf(summary: RunSummary, lat: dict[int, list[int]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    series = {}
    styles = ("-", "--", "-.", ":")
    for i, order in enumerate(sorted(lat)):
        v = np.sort(np.asarray(lat[order], dtype=float))
        if not v.size:
            continue
        y = np.arange(1, v.size + 1) / v.size
        # lower orders drawn wider and first, so equal curves stay visible under later ones
        ax.step(
            np.maximum(v, 1.0),
            y,
            where="post",
            linestyle=styles[i % len(styles)],
            linewidth=max(3.0 - 0.5 * i, 1.0),
            label=f"order {order} (n={v.size}, p50 {np.percentile(v, 50):.0f} ns, "
            f"p99 {np.percentile(v, 99):.0f} ns)",
        )
        series[f"order{order}"] = int(v.size)
    if not series:
        # no per-allocation markers (a run with --no-trace or --events): the summary's
        # percentiles are the three points of the CDF that are known
        for o, a in sorted(summary.allocations.items()):
            pct = a.latency_ns
            pts = [(pct.p50, 0.5), (pct.p99, 0.99), (pct.max, 1.0)]
            ax.plot(
                [max(x, 1) for x, _ in pts],
                [q for _, q in pts],
                marker="o",
                label=f"order {o} (p50, p99, max of {a.attempts})",
            )
            series[f"order{o}"] = a.attempts
        ax.text(
            0.02,
            0.97,
            "percentiles from summary.json: the run recorded no "
            "mmemu_alloc_begin markers (--no-trace or --events)",
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("allocation latency (virtual ns, log scale)")
    ax.set_ylabel("fraction of allocations ≤ x")
    ax.set_title(_title(summary, "Allocation latency CDF per order"))
    if series:
        ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path, series)


def _bins(summary: RunSummary) -> np.ndarray:
    """Interval edges over the run: the sampling interval, or finer (at least 50 intervals)."""
    end = summary.virtual_ns or 1
    sample = int(summary.params.get("sample") or end)
    step = max(min(sample, end // 50), 1)
    edges = np.arange(0, end + step, step)
    return edges if edges[-1] >= end else np.append(edges, end)


def plot_zone_lock_wait(
    summary: RunSummary, waits: dict[str, list[tuple[int, int]]], path: Path
) -> Path:
    edges = _bins(summary)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    series = {}
    width_ms = (edges[1] - edges[0]) / 1e6 if len(edges) > 1 else 1.0
    for addr in sorted(waits):
        starts = np.asarray([s for s, _ in waits[addr]], dtype=float)
        durs = np.asarray([e - s for s, e in waits[addr]], dtype=float)
        per_bin, _ = np.histogram(starts, bins=edges, weights=durs)
        ax.stairs(per_bin / 1e3, _ms(edges), label=f"{addr} ({len(starts)} waits)")
        series[addr] = len(starts)
    if not waits:
        ax.text(
            0.5,
            0.5,
            "no zone->lock contention recorded",
            transform=ax.transAxes,
            ha="center",
            va="center",
        )
    ax.set_xlabel("virtual time (ms)")
    ax.set_ylabel(f"wait per {width_ms:g} ms interval (µs, summed over CPUs)")
    ax.set_title(_title(summary, "zone->lock waiting"))
    if waits:
        ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, series)


def plot_compaction(
    summary: RunSummary,
    outcomes: dict[str, list[int]],
    failures: dict[int, list[int]],
    path: Path,
) -> Path:
    edges = _bins(summary)
    x_edges = _ms(edges)
    x = x_edges[:-1]
    width = (edges[1] - edges[0]) / 1e6 if len(edges) > 1 else 1.0
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    bottom = np.zeros(len(x))
    series: dict[str, int] = {}

    def _key(st: str) -> tuple[int, int, str]:
        who, _, status = st.rpartition(":")
        return (who == "kcompactd", _STATUS_ORDER.get(status, 99), status)

    for key in sorted(outcomes, key=_key):
        who, _, status = key.rpartition(":")
        counts, _ = np.histogram(outcomes[key], bins=edges)
        ax1.bar(
            x,
            counts,
            width=width,
            bottom=bottom,
            align="edge",
            label=f"{status} ({who})",
            color=_STATUS_COLOURS.get(status),
            hatch="//" if who == "kcompactd" else None,
            edgecolor="black" if who == "kcompactd" else None,
        )
        bottom += counts
        series[f"status:{status}"] = series.get(f"status:{status}", 0) + len(outcomes[key])
        series[f"{who}:{status}"] = len(outcomes[key])
    if not outcomes:
        ax1.text(
            0.5,
            0.5,
            "no compaction in this run (no mm_compaction_end events)",
            transform=ax1.transAxes,
            ha="center",
            va="center",
        )
    else:
        ax1.legend(loc="best", fontsize=8)
    ax1.set_ylabel("compactions (mm_compaction_end)\ndirect plain, kcompactd hatched")
    ax1.set_title(_title(summary, "Compaction outcomes and allocation failures"))
    for order in sorted(failures):
        counts, _ = np.histogram(failures[order], bins=edges)
        ax2.stairs(counts, x_edges, label=f"order {order}")
        series[f"fail:order{order}"] = len(failures[order])
    if failures:
        ax2.legend(loc="best", fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no failed allocation", transform=ax2.transAxes, ha="center")
    ax2.set_ylabel("failed allocations")
    ax2.set_xlabel(f"virtual time (ms), {width:g} ms intervals")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return _save(fig, path, series)


def _scan(
    events: Iterable[dict[str, Any]],
) -> tuple[
    dict[int, list[int]],
    dict[str, list[tuple[int, int]]],
    dict[str, list[int]],
    dict[int, list[int]],
]:
    """One pass over the events for everything the per-run plots need: allocation latencies
    per order, zone->lock waits per lock, compaction outcomes, failed allocations per order."""
    begun: dict[str, int] = {}
    lat: dict[int, list[int]] = defaultdict(list)
    waits: dict[str, list[tuple[int, int]]] = defaultdict(list)
    waiting: dict[tuple[str, str], int] = {}
    outcomes: dict[str, list[int]] = defaultdict(list)
    failures: dict[int, list[int]] = defaultdict(list)
    log = events if isinstance(events, EventLog) else None
    for e in events:
        try:
            _scan_one(e, begun, lat, waits, waiting, outcomes, failures)
        except EVENT_ERRORS as exc:
            if log is None:
                raise
            log.reject(exc)
    return lat, waits, outcomes, failures


def _scan_one(
    e: dict[str, Any],
    begun: dict[str, int],
    lat: dict[int, list[int]],
    waits: dict[str, list[tuple[int, int]]],
    waiting: dict[tuple[str, str], int],
    outcomes: dict[str, list[int]],
    failures: dict[int, list[int]],
) -> None:
    name = e["event"]
    if name == "mmemu_alloc_begin":
        begun[e["actor"]] = e["t"]
    elif name == "mm_page_alloc":
        t0 = begun.pop(e["actor"], None)
        if t0 is not None:
            lat[int(e["order"])].append(e["t"] - t0)
        if e.get("pfn", 0) < 0:
            failures[int(e["order"])].append(e["t"])
    elif name == "contention_begin" and e["lock_addr"].startswith("zone->lock"):
        waiting[(e["lock_addr"], e["actor"])] = e["t"]
    elif name == "contention_end":
        t0 = waiting.pop((e["lock_addr"], e["actor"]), None)
        if t0 is not None:
            waits[e["lock_addr"]].append((t0, e["t"]))
    elif name == "mm_compaction_end":
        s = e.get("status")
        status = COMPACTION_STATUS.get(s, str(s)) if isinstance(s, int) else str(s)
        who = "kcompactd" if str(e.get("actor", "")).startswith("kcompactd") else "direct"
        outcomes[f"{who}:{status}"].append(e["t"])


def write_plots(
    run_dir: Path,
    out: Path | None = None,
    extra: tuple[Any, ...] | None = None,
    log: EventLog | None = None,
) -> list[Path]:
    """Every per-run plot of the results folder ``run_dir`` into ``out`` (default plots/).
    ``extra``: (allocation latencies per order, zone->lock waits) from the run's trace
    capture, for the markers and lock events that events.jsonl does not hold. The folder is
    read as untrusted input (:mod:`emulator.report.run_folder`): a bad summary.json is a
    :class:`RunFolderError`; bad event lines are skipped and counted in ``log`` (the
    :class:`EventLog` used, created here if not given)."""
    run_dir = Path(run_dir)
    out = out or run_dir / "plots"
    summary = load_summary(run_dir)
    events_path = run_dir / "events.jsonl"
    if events_path.exists():
        log = log if log is not None else EventLog(events_path)
        lat, waits, outcomes, failures = _scan(log)
        log.require_usable()
    else:
        lat, waits, outcomes, failures = {}, {}, {}, {}
    data = load_latency(run_dir)
    if data is not None:
        # every allocation and every zone->lock wait, whatever the run recorded
        lat = {o: d.latency.tolist() for o, d in data.orders.items()}
        waits = {
            addr: [(int(t0), int(t0 + w)) for t0, w in pairs.tolist()]
            for addr, pairs in data.zone_waits.items()
            if len(pairs)
        }
    elif extra is not None:
        lat = lat or extra[0]
        waits = waits or extra[1]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(f"{out}: exists and is not a folder") from None
    except OSError as exc:
        raise RunFolderError(f"{out}: cannot create the plots folder: {exc.strerror}") from None
    try:
        return [
            plot_fragmentation(summary, out / PLOTS[0]),
            plot_free_heatmap(summary, out / PLOTS[1]),
            plot_latency_cdf(summary, lat, out / PLOTS[2]),
            plot_zone_lock_wait(summary, waits, out / PLOTS[3]),
            plot_compaction(summary, outcomes, failures, out / PLOTS[4]),
        ]
    except OSError as exc:
        raise RunFolderError(f"{out}: cannot write a plot: {exc.strerror}") from None
    except EVENT_ERRORS as exc:
        raise RunFolderError(
            f"{summary.path}: a field of the wrong type or out of range ({_one(exc)})"
        ) from None


def _one(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:120]


def metric_of(summary: dict[str, Any], path: str) -> float:
    """A number from summary.json by dotted path (``vmstat_delta.compact_stall``,
    ``allocations.9.failures``, ``lock_stat.&zone->lock.contentions``); a missing counter in
    ``vmstat``/``vmstat_delta`` is 0. Raises KeyError naming the path."""
    cur: Any = summary
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if not isinstance(cur, dict):
            raise KeyError(path)
        # keys may contain dots (vm.* params): take the longest key that matches
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in cur:
                cur = cur[key]
                i = j
                break
        else:
            if parts[0] in ("vmstat", "vmstat_delta") and i == 1:
                return 0.0
            raise KeyError(path)
    if isinstance(cur, bool) or not isinstance(cur, int | float):
        raise KeyError(path)
    return float(cur)


def _numeric_leaves(prefix: str, v: Any, into: dict[str, None]) -> None:
    """The dotted paths (two levels at most) of the numbers under ``v``."""
    if isinstance(v, bool):
        return
    if isinstance(v, int | float):
        into[prefix] = None
    elif isinstance(v, dict) and prefix.count(".") < 1:
        for k, x in v.items():
            if k != "latency_parts":
                _numeric_leaves(f"{prefix}.{k}" if prefix else str(k), x, into)


def metric_keys(summary: dict[str, Any]) -> list[str]:
    """The summary.json numbers usable as ``--y``, as brace patterns per section
    (``allocations.{0,9}.{attempts,failures,...}``, ``vmstat_delta.{pgfree,...}``)."""
    out: list[str] = []
    for top in ("allocations", "slowpath", "lock_stat", "vmstat_delta"):
        sub = summary.get(top)
        if not isinstance(sub, dict) or not sub:
            continue
        if top == "vmstat_delta":
            out.append(f"vmstat_delta.{{{','.join(sub)}}}")
            continue
        leaves: dict[str, None] = {}
        for entry in sub.values():
            _numeric_leaves("", entry, leaves)
        out.append(f"{top}.{{{','.join(sub)}}}.{{{','.join(leaves)}}}")
    return out


def plot_sweep(
    run_dirs: Sequence[Path], x: str, y: str, path: Path
) -> tuple[Path, list[tuple[float, float]]]:
    """``y`` (a summary.json metric) against ``x`` (a run parameter) over ``run_dirs``; runs
    with the same ``x`` (different seeds) are drawn as points and their mean as the line. A
    folder holding ``sweep.json`` (``mmemu sweep``) gives one point per run of its table."""
    points: list[tuple[float, float]] = []
    for d in run_dirs:
        sweep = Path(d) / "sweep.json"
        if sweep.is_file():  # a table from mmemu sweep: one summary per row
            rows = json.loads(sweep.read_text(encoding="utf-8"))["runs"]
            found = []
            for r in rows:
                where = f"{sweep} run {r['index']}"
                try:
                    row = RunSummary.parse(r["summary"], Path(where))
                except SummaryError as exc:
                    raise RunFolderError(str(exc)) from None
                found.append((where, dict(row.params), row.seed, r["summary"]))
        else:
            summary = load_summary(d)
            found = [(str(summary.path), dict(summary.params), summary.seed, summary.to_json())]
        for where, params, seed, doc in found:
            params.setdefault("seed", seed)
            if x not in params:
                raise KeyError(f"parameter {x!r} not in {where} (have: {', '.join(params)})")
            value = params[x]
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise RunFolderError(f"{where}: parameter {x!r} is not a number")
            try:
                metric = metric_of(doc, y)
            except KeyError:
                raise KeyError(
                    f"metric {y!r} not in {where} (have: {'; '.join(metric_keys(doc))})"
                ) from None
            points.append((float(value), metric))
    points.sort()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = np.asarray([p[0] for p in points])
    ys = np.asarray([p[1] for p in points])
    ax.scatter(xs, ys, alpha=0.6, label="runs")
    ux = np.unique(xs)
    means = [float(ys[xs == v].mean()) for v in ux]
    ax.plot(ux, means, marker="o", label="mean per value")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{y} against {x} ({len(points)} runs)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, {"points": len(points), "x": x, "y": y}), points
