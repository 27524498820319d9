"""A run's event log as ftrace text, the way ``trace-cmd report`` prints it.

Each line is ``COMM-PID [CPU] SECONDS: EVENT: FIELDS`` with FIELDS rendered by the kernel's
``TP_printk`` format of the tracepoint (include/trace/events/kmem.h, compaction.h, vmscan.h,
lock.h), so scripts written for real ftrace output parse a run. Time is the run's virtual time
(µs precision like ``trace-cmd report``; ``ns=True`` prints all nine digits like
``trace-cmd report -t``).

Simplifications: ``page=%p`` prints the address the page's ``struct page`` would have in the
x86-64 vmemmap (``0xffffea0000000000 + pfn * 64``), unhashed; ``lock_addr`` prints the lock's
label (e.g. ``zone->lock:0:Normal``) instead of an address; a CPU actor ``cpuN`` is the task
``cpuN`` with pid ``1000 + N`` on CPU N, and other actors (kswapd, kcompactd, ...) get pids from
100 up in order of appearance and print on CPU 0. Events with no kernel tracepoint (the
``mmemu_*`` markers) and events the table does not know print as ``name=value`` pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import IO

from emulator.mm.compaction.control import CompactResult

__all__ = ["COMPACTION_STATUS", "format_event", "format_line", "write_ftrace"]

VMEMMAP_START = 0xFFFFEA0000000000
STRUCT_PAGE_SIZE = 64

#: enum compact_result value -> the string COMPACTION_STATUS prints for it
COMPACTION_STATUS = {int(r): r.status for r in CompactResult}
#: ZONE_TYPE of include/trace/events/mmflags.h on x86-64 (no HIGHMEM)
ZONE_TYPE = ("DMA", "DMA32", "Normal", "Movable")
#: include/trace/events/lock.h contention_begin flags
LCB_FLAGS = ((1, "SPIN"), (2, "READ"), (4, "WRITE"), (8, "RT"), (16, "PERCPU"), (32, "MUTEX"))
PAGEBLOCK_ORDER = 9


def _page(pfn: int) -> str:
    if pfn is None or pfn < 0:
        return "0000000000000000"
    return f"{VMEMMAP_START + pfn * STRUCT_PAGE_SIZE:016x}"


def _pfn(pfn: int) -> str:
    return f"0x{max(pfn, 0):x}"


def _status(v: int | str) -> str:
    return COMPACTION_STATUS.get(v, str(v)) if isinstance(v, int) else str(v)


def _zone(v: int | str) -> str:
    name = ZONE_TYPE[v] if isinstance(v, int) and 0 <= v < len(ZONE_TYPE) else str(v)
    return f"{name:<8s}"


def _mode(sync: object) -> str:
    return "sync" if sync in (True, 1, "sync") else "async"


def _flags(v: int) -> str:
    return "|".join(n for bit, n in LCB_FLAGS if v & bit) or "0"


def _g(e: dict, k: str, default: object = 0) -> object:
    return e.get(k, default)


_Fmt = Callable[[dict], str]

FORMATS: dict[str, _Fmt] = {
    # include/trace/events/kmem.h
    "mm_page_alloc": lambda e: (
        f"page={_page(e['pfn'])} pfn={_pfn(e['pfn'])} order={e['order']} "
        f"migratetype={e['migratetype']} gfp_flags={e['gfp_flags']}"
    ),
    "mm_page_free": lambda e: f"page={_page(e['pfn'])} pfn={_pfn(e['pfn'])} order={e['order']}",
    "mm_page_free_batched": lambda e: f"page={_page(e['pfn'])} pfn={_pfn(e['pfn'])} order=0",
    "mm_page_alloc_zone_locked": lambda e: (
        f"page={_page(e['pfn'])} pfn={_pfn(e['pfn'])} order={e['order']} "
        f"migratetype={e['migratetype']} percpu_refill={e['percpu_refill']}"
    ),
    "mm_page_pcpu_drain": lambda e: (
        f"page={_page(e['pfn'])} pfn={_pfn(e['pfn'])} order={e['order']} "
        f"migratetype={e['migratetype']}"
    ),
    "mm_page_alloc_extfrag": lambda e: (
        f"page={_page(e['pfn'])} pfn={_pfn(e['pfn'])} alloc_order={e['alloc_order']} "
        f"fallback_order={e['fallback_order']} pageblock_order={PAGEBLOCK_ORDER} "
        f"alloc_migratetype={e['alloc_migratetype']} "
        f"fallback_migratetype={e['fallback_migratetype']} "
        f"fragmenting={int(e['fallback_order'] < PAGEBLOCK_ORDER)} "
        f"change_ownership={e['change_ownership']}"
    ),
    # include/trace/events/compaction.h
    "mm_compaction_isolate_migratepages": lambda e: _isolate(e),
    "mm_compaction_isolate_freepages": lambda e: _isolate(e),
    "mm_compaction_fast_isolate_freepages": lambda e: _isolate(e),
    "mm_compaction_migratepages": lambda e: (
        f"nr_migrated={_g(e, 'nr_migrated')} nr_failed={_g(e, 'nr_failed')}"
    ),
    "mm_compaction_begin": lambda e: (
        f"zone_start={_pfn(e['zone_start'])} migrate_pfn={_pfn(e['migrate_pfn'])} "
        f"free_pfn={_pfn(e['free_pfn'])} zone_end={_pfn(e['zone_end'])}, "
        f"mode={_mode(e.get('sync'))}"
    ),
    "mm_compaction_end": lambda e: (
        f"zone_start={_pfn(e['zone_start'])} migrate_pfn={_pfn(e['migrate_pfn'])} "
        f"free_pfn={_pfn(e['free_pfn'])} zone_end={_pfn(e['zone_end'])}, "
        f"mode={_mode(e.get('sync'))} status={_status(e['status'])}"
    ),
    "mm_compaction_try_to_compact_pages": lambda e: (
        f"order={e['order']} gfp_mask={_g(e, 'gfp_mask', _g(e, 'gfp_flags', 'none'))} "
        f"priority={_g(e, 'prio', _g(e, 'priority'))}"
    ),
    "mm_compaction_finished": lambda e: _suitable(e),
    "mm_compaction_suitable": lambda e: _suitable(e),
    "mm_compaction_deferred": lambda e: _defer(e),
    "mm_compaction_defer_compaction": lambda e: _defer(e),
    "mm_compaction_defer_reset": lambda e: _defer(e),
    "mm_compaction_kcompactd_sleep": lambda e: f"nid={e['nid']}",
    "mm_compaction_wakeup_kcompactd": lambda e: _kcompactd_wake(e),
    "mm_compaction_kcompactd_wake": lambda e: _kcompactd_wake(e),
    # include/trace/events/vmscan.h
    "mm_vmscan_kswapd_sleep": lambda e: f"nid={e['nid']}",
    "mm_vmscan_kswapd_wake": lambda e: f"nid={e['nid']} order={e['order']}",
    "mm_vmscan_wakeup_kswapd": lambda e: (
        f"nid={e['nid']} order={e['order']} gfp_flags={_g(e, 'gfp_flags', 'none')}"
    ),
    "mm_vmscan_direct_reclaim_begin": lambda e: (
        f"order={e['order']} gfp_flags={_g(e, 'gfp_flags', 'none')}"
    ),
    "mm_vmscan_direct_reclaim_end": lambda e: f"nr_reclaimed={_g(e, 'nr_reclaimed')}",
    # include/trace/events/lock.h
    "contention_begin": lambda e: f"{e['lock_addr']} (flags={_flags(int(e['flags']))})",
    "contention_end": lambda e: f"{e['lock_addr']} (ret={e['ret']})",
    "lock_acquired": lambda e: f"{e['lock_addr']} {e['name']}",
    "lock_release": lambda e: f"{e['lock_addr']} {e['name']}",
}


def _isolate(e: dict) -> str:
    return (
        f"range=({_pfn(e['start_pfn'])} ~ {_pfn(e['end_pfn'])}) "
        f"nr_scanned={e['nr_scanned']} nr_taken={e['nr_taken']}"
    )


def _suitable(e: dict) -> str:
    return f"node={e['nid']} zone={_zone(e['idx'])} order={e['order']} ret={_status(e['ret'])}"


def _defer(e: dict) -> str:
    return (
        f"node={e['nid']} zone={_zone(e['idx'])} order={e['order']} "
        f"order_failed={e['order_failed']} consider={e['considered']} "
        f"limit={1 << int(e['defer_shift'])}"
    )


def _kcompactd_wake(e: dict) -> str:
    return (
        f"nid={e['nid']} order={e['order']} "
        f"classzone_idx={_zone(e.get('highest_zoneidx', e.get('classzone_idx', 0)))}"
    )


def format_event(e: dict) -> str:
    """The TP_printk text of one event (``name=value`` pairs for unknown events)."""
    fmt = FORMATS.get(e["event"])
    if fmt is not None:
        try:
            return fmt(e)
        except (KeyError, TypeError, ValueError):
            pass  # a field the model does not record: fall back to the raw fields
    return " ".join(f"{k}={v}" for k, v in e.items() if k not in ("t", "actor", "event"))


class _Tasks:
    """comm, pid and CPU of each actor (see the module docstring)."""

    def __init__(self) -> None:
        self.others: dict[str, int] = {}

    def __call__(self, actor: str | None) -> tuple[str, int, int]:
        name = actor or "<idle>"
        if name.startswith("cpu") and name[3:].isdigit():
            n = int(name[3:])
            return name, 1000 + n, n
        if actor is None:
            return name, 0, 0
        pid = self.others.setdefault(name, 100 + len(self.others))
        return name, pid, 0


def format_line(e: dict, tasks: _Tasks, ns: bool = False) -> str:
    comm, pid, cpu = tasks(e.get("actor"))
    t = int(e["t"])
    stamp = (
        f"{t // 1_000_000_000}.{t % 1_000_000_000:09d}"
        if ns
        else (f"{t // 1_000_000_000}.{(t // 1000) % 1_000_000:06d}")
    )
    task = f"{comm}-{pid}"
    return f"{task:>16s} [{cpu:03d}] {stamp}: {e['event'] + ':':<22s} {format_event(e)}"


def lines(events: Iterable[dict], ns: bool = False) -> Iterator[str]:
    tasks = _Tasks()
    for e in events:
        yield format_line(e, tasks, ns)


def write_ftrace(
    events: Iterable[dict],
    out: IO[str],
    cpus: int,
    ns: bool = False,
    only: set[str] | None = None,
) -> int:
    """Write the trace-cmd report text for ``events``; returns the number of lines."""
    out.write(f"cpus={cpus}\n")
    n = 0
    for line in lines((e for e in events if only is None or e["event"] in only), ns):
        out.write(line)
        out.write("\n")
        n += 1
    return n
