"""``mmemu diff A B``: two runs (or a run and a saved real /proc folder) side by side.

A side is a results folder of ``mmemu run`` (it has ``summary.json``) or a folder holding a
machine's ``/proc`` files (``buddyinfo``, and optionally ``pagetypeinfo``, ``zoneinfo``,
``vmstat``), as ``mmemu inspect`` reads them. The sections are:

* **fragmentation** — per node the fragmentation score, per zone free pages, the largest free
  order, the order-9 fragmentation index, free pages and pageblocks per migratetype (computed
  with :func:`emulator.report.inspect.analyse`, the same code as ``mmemu inspect``);
* **buddyinfo** — free blocks per order per zone;
* **vmstat** — /proc/vmstat counters (kernel names) that either side has non-zero; for a run
  also the counters accumulated during the run (``vmstat_delta``);
* **allocations** — per order: attempts, failures, pcp hits and latency percentiles (runs);
* **lock_stat** — per lock class: contentions, wait and hold times (runs);
* **latency parts** — per order, each part's share of the total allocation latency
  (:mod:`emulator.report.latency`), A beside B;
* **compaction** — the ``compact_*`` counters and ``mm_compaction_end`` statuses.

Every row shows A, B and B−A; rows that differ carry ``*`` in the first column. A real
machine's vmstat counts since boot while a run counts from its start: compare shapes, not
totals, and the tables say which side is which.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from rich import box
from rich.console import Console
from rich.table import Table

from emulator.mm.mmflags import COMPACTION_STATUS
from emulator.report.inspect import analyse, load
from emulator.report.latency import diff_rows
from emulator.report.run_folder import EventLog, RunFolderError, load_summary
from emulator.run.summary import RunSummary

__all__ = ["Side", "diff_sections", "load_side", "print_diff"]

Value = int | float | str | None
Row = tuple[str, Value, Value]


@attrs.frozen
class Side:
    """One side of a diff: a run's results folder or a saved /proc folder."""

    path: Path
    kind: str  # "run" or "proc"
    #: the run's summary.json (empty for a /proc folder)
    summary: RunSummary
    vmstat: dict[str, int]
    report: dict[str, Any] | None
    #: the run's event log as read (bad lines skipped and counted), None for a /proc folder
    events: EventLog | None = None

    @property
    def label(self) -> str:
        if self.kind == "run":
            return f"{self.path.name} (run {self.summary.scenario})"
        return f"{self.path.name} (/proc)"


def _parse_vmstat(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if path.exists():
        for line in _text(path).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
    return out


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise RunFolderError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise RunFolderError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RunFolderError(f"{path}: not UTF-8 text") from None


def load_side(path: str | Path) -> Side:
    """Read one side; raises ValueError (a :class:`RunFolderError` for a results folder)
    naming what is missing or malformed."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{path!r} is not a directory")
    events = None
    if (p / "summary.json").exists():
        summary = load_summary(p)
        kind = "run"
        if (p / "events.jsonl").exists():
            events = EventLog(p / "events.jsonl")
    elif (p / "buddyinfo").exists() or (p / "vmstat").exists():
        summary, kind = RunSummary(), "proc"
    else:
        raise ValueError(
            f"{path!r} is neither a results folder (summary.json) nor a saved /proc folder "
            "(buddyinfo, vmstat)"
        )
    try:
        report = analyse(load(str(p))) if (p / "buddyinfo").exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFolderError(f"{p}: cannot read its /proc files: {exc}") from None
    return Side(p, kind, summary, _parse_vmstat(p / "vmstat"), report, events)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _frag_rows(side: Side) -> dict[str, Value]:
    out: dict[str, Value] = {}
    if side.report is None:
        return out
    for node in side.report["fragmentation_score"]["nodes"]:
        n = node["node"]
        out[f"node {n} fragmentation score"] = node["score"]
        for z in node["zones"]:
            key = f"node {n} {z['zone']}"
            out[f"{key} free pages"] = z["free_pages"]
            out[f"{key} largest free order"] = z["largest_free_order"]
            out[f"{key} fragindex order 9"] = z["fragindex_order9"]
            for mt, v in (z.get("free_pages_by_migratetype") or {}).items():
                out[f"{key} free pages {mt}"] = v
            for mt, v in (z.get("pageblocks_by_migratetype") or {}).items():
                out[f"{key} pageblocks {mt}"] = v
    return out


def _buddy_rows(side: Side) -> dict[str, Value]:
    out: dict[str, Value] = {}
    path = side.path / "buddyinfo"
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        # Node 0, zone   Normal   1   2 ...
        head, _, counts = line.partition("zone")
        parts = counts.split()
        if not parts:
            continue
        node = head.replace("Node", "").strip(" ,")
        for order, v in enumerate(parts[1:]):
            out[f"node {node} {parts[0]} order {order}"] = int(v)
    return out


def _alloc_rows(side: Side) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for order, s in sorted(side.summary.allocations.items()):
        out[f"order {order} attempts"] = s.attempts
        out[f"order {order} failures"] = s.failures
        if s.attempts:
            out[f"order {order} failure %"] = round(100 * s.failures / s.attempts, 2)
        out[f"order {order} pcp hits"] = s.pcp_hits
        latency = s.latency_ns
        for p, v in (("p50", latency.p50), ("p99", latency.p99), ("max", latency.max)):
            out[f"order {order} latency {p} (ns)"] = v
    return out


def _lock_rows(side: Side) -> dict[str, Value]:
    out: dict[str, Value] = {}
    # counts as they are; times in µs with 2 decimals, as /proc/lock_stat prints them
    for name, s in side.summary.lock_stat.items():
        out[f"{name} contentions"] = s.contentions
        out[f"{name} acquisitions"] = s.acquisitions
        for k, v in (
            ("waittime-total", s.waittime_total),
            ("waittime-max", s.waittime_max),
            ("holdtime-avg", s.holdtime_avg),
        ):
            out[f"{name} {k} (µs)"] = round(v / 1000, 2)
    return out


def _compaction_rows(side: Side) -> dict[str, Value]:
    out: dict[str, Value] = {k: v for k, v in side.vmstat.items() if k.startswith("compact_")}
    if side.events is not None:
        statuses: Counter[str] = Counter()
        for e in side.events:
            if e["event"] == "mm_compaction_end":
                s = e.get("status")
                statuses[COMPACTION_STATUS.get(s, str(s)) if isinstance(s, int) else str(s)] += 1
        for s, n in sorted(statuses.items()):
            out[f"mm_compaction_end status={s}"] = n
    return out


def _pair(a: Mapping[str, Value], b: Mapping[str, Value], keep_zero: bool = True) -> list[Row]:
    keys = list({**a, **b})
    if not keep_zero:
        keys = [k for k in keys if a.get(k) or b.get(k)]
    return [(k, a.get(k), b.get(k)) for k in keys]


def diff_sections(a: Side, b: Side) -> dict[str, list[Row]]:
    """The rows of every section both sides can fill, in print order."""
    out: dict[str, list[Row]] = {
        "fragmentation": _pair(_frag_rows(a), _frag_rows(b)),
        "buddyinfo": _pair(_buddy_rows(a), _buddy_rows(b)),
        "vmstat": _pair(a.vmstat, b.vmstat, keep_zero=False),
    }
    if a.kind == b.kind == "run":
        out["vmstat during the run"] = _pair(
            dict(a.summary.vmstat_delta), dict(b.summary.vmstat_delta), False
        )
    if "run" in (a.kind, b.kind):
        out["allocations"] = _pair(_alloc_rows(a), _alloc_rows(b))
        out["lock_stat"] = _pair(_lock_rows(a), _lock_rows(b))
        out["latency parts"] = [(k, va, vb) for k, va, vb in diff_rows(a.summary, b.summary)]
    out["compaction"] = _pair(_compaction_rows(a), _compaction_rows(b))
    return {k: v for k, v in out.items() if v}


def _fmt(v: Value, key: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if "fragindex" in key else f"{v:.2f}"
    return str(v)


#: rows whose change is shown as a plain difference, never as a percentage: an index on a fixed
#: scale (extfrag_index: -1.000 = enough free memory, 0 .. 1 = lack of memory .. fragmentation)
#: and values that already are percentages
_NO_PERCENT = ("fragindex", "share %", "failure %")


def _delta(a: Value, b: Value, key: str = "") -> str:
    if isinstance(a, int | float) and isinstance(b, int | float):
        d = b - a
        if d == 0:
            return "0"
        if any(tag in key for tag in _NO_PERCENT):
            return f"{d:+.3f}" if "fragindex" in key else f"{d:+.2f}"
        pct = f" ({100 * d / a:+.0f}%)" if a else ""
        return (f"{d:+.2f}" if isinstance(d, float) else f"{d:+d}") + pct
    return "" if a == b else "≠"


def differs(a: Value, b: Value) -> bool:
    return a != b


def print_diff(a: Side, b: Side, console: Console, only_diff: bool = False) -> int:
    """Print every section; returns the number of rows that differ."""
    n_diff = 0
    console.print(f"A: {a.path}  {a.label}")
    console.print(f"B: {b.path}  {b.label}")
    if "proc" in (a.kind, b.kind) and "run" in (a.kind, b.kind):
        console.print("note: a real machine's vmstat counts since boot, a run's since its start")
    for title, rows in diff_sections(a, b).items():
        table = Table(title=title, box=box.SIMPLE, title_justify="left", highlight=False)
        table.add_column("", width=1)
        table.add_column("")
        table.add_column("A", justify="right")
        table.add_column("B", justify="right")
        table.add_column("B−A", justify="right")
        shown = 0
        for key, va, vb in rows:
            d = differs(va, vb)
            n_diff += d
            if only_diff and not d:
                continue
            table.add_row(
                "*" if d else "",
                key,
                _fmt(va, key),
                _fmt(vb, key),
                _delta(va, vb, key),
                style="bold" if d else None,
            )
            shown += 1
        if shown:
            console.print(table)
    console.print(f"{n_diff} rows differ (marked *)")
    return n_diff
