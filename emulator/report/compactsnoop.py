"""One line per compaction of a run, like bcc's ``compactsnoop`` (tools/compactsnoop.py).

bcc's tool times ``compact_zone`` from the ``mm_compaction_begin`` to the ``mm_compaction_end``
tracepoint of the same task and prints::

    COMM           PID    NODE ZONE         ORDER MODE    LAT(ms)           STATUS

and with ``-e`` also ``FRAGIDX MIN LOW HIGH FREE`` between MODE and LAT(ms). This module
reads the same two events from ``events.jsonl``. The order is the one of the task's last
``mm_compaction_try_to_compact_pages`` (direct compaction) or ``mm_compaction_kcompactd_wake``
since kcompactd last slept (kcompactd_do_work); a kcompactd pass with no wake-up since its
last ``mm_compaction_kcompactd_sleep`` is proactive and prints -1, as ``cc->order`` is then
(compact_node). The zone is the one whose ``start_pfn`` (from the run's zoneinfo) equals the
event's ``zone_start``.

The ``-e`` columns differ from bcc's, which reads them from the compacting zone at the instant
(bcc kprobes ``compaction_suitable``/``fragmentation_index`` and ``zone->_watermark``,
``zone_page_state(zone, NR_FREE_PAGES)``):

* MIN, LOW, HIGH: this zone's watermarks, but from the run's zoneinfo, so at the end of the
  run (they only move with ``watermark_boost``, which zoneinfo does not include);
* FRAGIDX: from the event when it carries ``fragindex``; otherwise mm/vmstat.c:
  fragmentation_index for the order over the sampler's free lists nearest before the
  compaction, of **all zones together** (not this zone); 0.000 for a proactive pass (order -1
  has no index);
* FREE: from the event when it carries ``free``; otherwise the sampled ``nr_free_pages`` of the
  **whole node** nearest before the compaction, not this zone's at the instant.

An approximation bcc does not need, said here so nobody mistakes it for the instant's value.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from emulator.mm.mmflags import COMPACTION_STATUS
from emulator.mm.procfs.parse import ProcParseError, parse_zoneinfo
from emulator.mm.tracepoints import TRACEPOINTS
from emulator.mm.vmstat import fragmentation_index
from emulator.report.ftrace import _Tasks
from emulator.report.run_folder import EVENT_ERRORS, EventLog, RunFolderError
from emulator.run.summary import RunSummary, Timeseries

__all__ = ["Compaction", "compactions", "format_compactsnoop", "header"]

#: bcc's zone_idx_to_str (x86-64)
BCC_ZONES = {"DMA": "ZONE_DMA", "DMA32": "ZONE_DMA32", "Normal": "ZONE_NORMAL"}

#: compact_zone's slice: mm_compaction_begin and the end event its declaration names
_BEGIN = "mm_compaction_begin"
_END = TRACEPOINTS[_BEGIN].role.end


@attrs.frozen
class Compaction:
    """One compact_zone run, as compactsnoop reports it (times in virtual ns)."""

    t: int
    comm: str
    pid: int
    node: int
    zone: str
    order: int
    sync: bool
    lat_ns: int
    status: str
    fragindex: int | None = None
    wmark_min: int = 0
    wmark_low: int = 0
    wmark_high: int = 0
    free: int | None = None


@attrs.define
class _Zones:
    by_start: dict[int, tuple[int, str, int, int, int]]

    @classmethod
    def load(cls, run_dir: Path) -> _Zones:
        path = run_dir / "zoneinfo"
        out: dict[int, tuple[int, str, int, int, int]] = {}
        if path.exists():
            try:
                text = path.read_bytes().decode("utf-8")
                snap = parse_zoneinfo(text, str(path))
            except IsADirectoryError:
                raise RunFolderError(f"{path}: is a directory, not a zoneinfo file") from None
            except OSError as exc:
                raise RunFolderError(f"{path}: cannot read: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise RunFolderError(f"{path}: not a zoneinfo file (not UTF-8 text)") from None
            except ProcParseError as exc:
                raise RunFolderError(" ".join(str(exc).split())[:300]) from None
            for node in snap.nodes:
                for z in node.zones:
                    out[z.start_pfn] = (z.node, z.name, z.wmark_min, z.wmark_low, z.wmark_high)
        return cls(out)

    def find(self, zone_start: int) -> tuple[int, str, int, int, int]:
        got = self.by_start.get(zone_start)
        if got is None:
            return (0, "?", 0, 0, 0)
        return got


def _status(v: object) -> str:
    return COMPACTION_STATUS.get(v, str(v)) if isinstance(v, int) else str(v)


def compactions(
    events: Iterable[dict[str, Any]], run_dir: Path, summary: RunSummary | None = None
) -> Iterator[Compaction]:
    """Pair each task's mm_compaction_begin with its mm_compaction_end. ``events`` is
    usually an :class:`EventLog`: an event lacking a field compactsnoop needs, or holding one
    of the wrong type, is then rejected there (a bad line) and the pairing goes on."""
    zones = _Zones.load(run_dir)
    series = summary.series if summary is not None else RunSummary().series
    log = events if isinstance(events, EventLog) else None
    tasks = _Tasks()
    order_of: dict[str, int] = {}
    begun: dict[str, dict[str, Any]] = {}
    for e in events:
        try:
            c = _one(e, zones, series, tasks, order_of, begun)
        except EVENT_ERRORS as exc:
            if log is None:
                raise
            log.reject(exc)
            continue
        if c is not None:
            yield c


def _one(
    e: dict[str, Any],
    zones: _Zones,
    series: Timeseries,
    tasks: _Tasks,
    order_of: dict[str, int],
    begun: dict[str, dict[str, Any]],
) -> Compaction | None:
    name = e["event"]
    actor = e.get("actor") or ""
    if name == "mm_compaction_try_to_compact_pages" or name == "mm_compaction_kcompactd_wake":
        order_of[actor] = int(e.get("order", -1))
    elif name == "mm_compaction_kcompactd_sleep":
        # a wake-up's order is served before kcompactd sleeps again: a pass after this
        # sleep without a new wake is proactive (compact_node: cc.order = -1)
        order_of[actor] = -1
    elif name == _BEGIN:
        int(e.get("zone_start", -1))  # checked here, where the bad line is known
        begun[actor] = e
    elif name == _END and actor in begun:
        b = begun.pop(actor)
        comm, pid, _cpu = tasks(actor)
        node, zname, wmin, wlow, whigh = zones.find(int(b.get("zone_start", -1)))
        order = order_of.get(actor, -1)
        frag = b.get("fragindex")
        free = b.get("free")
        if frag is not None and (isinstance(frag, bool) or not isinstance(frag, int)):
            raise TypeError("fragindex")
        if free is not None and not isinstance(free, int):
            raise TypeError("free")
        i = bisect.bisect_right(series.t_ns, b["t"]) - 1
        if i >= 0:
            if frag is None and order >= 0 and series.free_pages_per_order:
                pages = series.free_pages_per_order[i]
                frag = fragmentation_index([int(p) >> o for o, p in enumerate(pages)], order)
            if free is None and series.nr_free_pages:
                free = int(series.nr_free_pages[i])
        return Compaction(
            t=b["t"],
            comm=comm,
            pid=pid,
            node=node,
            zone=BCC_ZONES.get(zname, zname),
            order=order,
            sync=b.get("sync") in (True, 1, "sync"),
            lat_ns=e["t"] - b["t"],
            status=_status(e.get("status")),
            fragindex=frag,
            wmark_min=wmin,
            wmark_low=wlow,
            wmark_high=whigh,
            free=free,
        )
    return None


def header(extended: bool = False, timestamp: bool = False) -> str:
    """bcc compactsnoop's header line."""
    out = f"{'TIME(s)':<14s} " if timestamp else ""
    out += f"{'COMM':<14s} {'PID':<6s} {'NODE':<4s} {'ZONE':<12s} {'ORDER':<5s} {'MODE':<7s} "
    if extended:
        out += f"{'FRAGIDX':<8s} {'MIN':<8s} {'LOW':<8s} {'HIGH':<8s} {'FREE':<8s} "
    return out + f"{'LAT(ms)':>9s} {'STATUS':>16s}"


def format_compactsnoop(c: Compaction, extended: bool = False, timestamp: bool = False) -> str:
    """One line in bcc compactsnoop's layout."""
    out = f"{c.t / 1e9:<14.9f} " if timestamp else ""
    out += (
        f"{c.comm[:14]:<14s} {c.pid!s:<6s} {c.node!s:<4s} {c.zone:<12s} {c.order!s:<5s} "
        f"{'SYNC' if c.sync else 'ASYNC':<7s} "
    )
    if extended:
        frag = (c.fragindex or 0) / 1000
        free = "-" if c.free is None else str(c.free)
        out += (
            f"{frag:<8.3f} {c.wmark_min!s:<8s} {c.wmark_low!s:<8s} {c.wmark_high!s:<8s} {free:<8s} "
        )
    return out + f"{c.lat_ns / 1e6:9.3f} {c.status:>16s}"
