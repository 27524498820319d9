"""Render lock statistics as /proc/lock_stat text.

Models kernel/locking/lockdep_proc.c: seq_header, seq_stats, seq_lock_time and snprint_time
(version 0.4). Times are printed in microseconds with two decimals after the kernel's rounding
(``(ns + 5) / 1000`` and the remainder's tens). Classes are sorted by contentions, most first,
as ``lock_stat_cmp`` sorts them.

Simplifies: a call site has no address, so the ``[<%p>]`` column prints a zero pointer and the
``%pS`` symbol column prints the site name as given to ``acquire(site=...)``. The kernel keeps
the first four distinct sites it sees (LOCKSTAT_POINTS); this keeps every site and prints the
four most frequent.
"""

from __future__ import annotations

from collections.abc import Iterable

from emulator.engine.sync import LockStats

__all__ = ["LOCKSTAT_POINTS", "merge_lock_stats", "render_lock_stat", "snprint_time"]

LOCKSTAT_POINTS = 4
_WIDTH = 40 + 1 + 12 * (14 + 1)
_COLUMNS = (
    "class name",
    "con-bounces",
    "contentions",
    "waittime-min",
    "waittime-max",
    "waittime-total",
    "waittime-avg",
    "acq-bounces",
    "acquisitions",
    "holdtime-min",
    "holdtime-max",
    "holdtime-total",
    "holdtime-avg",
)


def snprint_time(ns: int) -> str:
    """lockdep_proc.c: snprint_time — ns as µs with two decimals, kernel rounding."""
    ns += 5
    div, rem = divmod(ns, 1000) if ns >= 0 else (-((-ns) // 1000), -((-ns) % 1000))
    return f"{div}.{int(rem / 10):02d}"


def _line(ch: str, offset: int, length: int) -> str:
    return " " * offset + ch * length + "\n"


def _lock_time(nr: int, lo: int, hi: int, total: int) -> str:
    avg = total // nr if nr else 0
    return f"{nr:14d}" + "".join(f" {snprint_time(v):>14s}" for v in (lo, hi, total, avg))


def render_lock_stat(stats: Iterable[LockStats]) -> str:
    """The whole /proc/lock_stat file for these lock classes."""
    out = ["lock_stat version 0.4\n", _line("-", 0, _WIDTH)]
    out.append(f"{_COLUMNS[0]:>40s} " + " ".join(f"{c:>14s}" for c in _COLUMNS[1:]) + "\n")
    out.append(_line("-", 0, _WIDTH))
    out.append("\n")
    ordered = sorted(stats, key=lambda s: -s.contentions)
    for s in ordered:
        if s.acquisitions == 0:
            continue
        name = s.name[:37]
        out.append(f"{name:>40s}:")
        out.append(f"{s.con_bounces:14d} ")
        out.append(_lock_time(s.contentions, s.wait_min, s.wait_max, s.wait_total))
        out.append(f" {s.acq_bounces:14d} ")
        out.append(_lock_time(s.acquisitions, s.hold_min, s.hold_max, s.hold_total))
        out.append("\n")
        if s.contentions == 0:
            continue
        namelen = len(name)
        for points in (s.contention_points, s.contending_points):
            for i, (site, n) in enumerate(points.most_common(LOCKSTAT_POINTS)):
                if i == 0:
                    out.append(_line("-", 40 - namelen, namelen))
                ip = "[<0000000000000000>]"
                out.append(f"{name:>40s} {n:14d} {ip:>29s} {site or '?'}\n")
        out.append("\n")
        out.append(_line(".", 0, _WIDTH))
        out.append("\n")
    return "".join(out)


def merge_lock_stats(name: str, stats: Iterable[LockStats]) -> LockStats:
    """One lock class's statistics from several lock instances (lockdep keeps statistics per
    class: every zone's ``zone->lock`` is the class ``&zone->lock``)."""
    out = LockStats(name)
    for s in stats:
        if s.contentions:
            out.wait_min = s.wait_min if not out.contentions else min(out.wait_min, s.wait_min)
            out.wait_max = max(out.wait_max, s.wait_max)
            out.wait_total += s.wait_total
        if s.acquisitions:
            out.hold_min = s.hold_min if not out.acquisitions else min(out.hold_min, s.hold_min)
            out.hold_max = max(out.hold_max, s.hold_max)
            out.hold_total += s.hold_total
        out.contentions += s.contentions
        out.con_bounces += s.con_bounces
        out.acquisitions += s.acquisitions
        out.acq_bounces += s.acq_bounces
        out.trylock_failures += s.trylock_failures
        out.contention_points.update(s.contention_points)
        out.contending_points.update(s.contending_points)
    return out
