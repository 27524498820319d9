"""The kernel's race and fragmentation mitigations, each switchable as if its commit were reverted.

Every entry of :data:`MITIGATIONS` is one 6.12 mechanism that exists to close a race between
allocators, compactors and reclaimers, or to fight fragmentation: the commit that introduced it,
the kernel function that carries it, what it does, and what the model does with it turned off.
"Off" takes the code path the kernel had before that commit (not a stub): e.g. with ``capture``
off, direct compaction publishes no ``capture_control`` and the allocator tries the free lists
afterwards, as before 5e1f0f098b46.

The values of one machine are a :class:`Mitigations` (``machine.mitigations``), all on by
default (6.12 behaviour). A run sets them with the parameters ``mitigation.NAME=on|off`` (see
:func:`check_mitigation`); model code asks ``machine.mitigations.on("capture")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from emulator.mm.tunable import OnOff, Tunable

__all__ = [
    "MITIGATIONS",
    "MITIGATION_TUNABLES",
    "PARAM_PREFIX",
    "Mitigation",
    "Mitigations",
    "check_mitigation",
]

#: the parameter namespace: ``mitigation.capture=off``
PARAM_PREFIX = "mitigation."


@attrs.frozen
class Mitigation:
    """One switchable kernel mechanism."""

    #: the switch's name (``mitigation.<name>``)
    name: str
    #: the commit that introduced it (12 hex digits) and its subject line
    commit: str
    subject: str
    #: the kernel function(s) that carry it in 6.12
    kernel_function: str
    #: what it does (on, 6.12)
    summary: str
    #: what turning it off does in the model (the pre-commit path)
    off_effect: str


MITIGATIONS: dict[str, Mitigation] = {
    m.name: m
    for m in (
        Mitigation(
            "capture",
            "5e1f0f098b46",
            "mm, compaction: capture a page under direct compaction",
            "mm/compaction.c: compact_zone_order; mm/page_alloc.c: compaction_capture",
            "a direct compactor publishes a capture_control; a block of the requested order "
            "that it frees is handed to it by __free_one_page instead of going to the free lists",
            "no capture_control: the freed block goes to the free lists, where any CPU may take "
            "it before the compactor's get_page_from_freelist",
        ),
        Mitigation(
            "kswapd_wakes_kcompactd",
            "698b1b30642f",
            "mm, compaction: introduce kcompactd",
            "mm/vmscan.c: kswapd_try_to_sleep (prepare_kswapd_sleep)",
            "kswapd, having balanced the node for a high-order request, wakes kcompactd for that "
            "order before it sleeps",
            "kswapd sleeps without waking kcompactd: the reclaimed gap is compacted only by "
            "direct compactors (or kcompactd's own 500 ms timer)",
        ),
        Mitigation(
            "boost_wakes_kcompactd",
            "1c30844d2dfe",
            "mm: reclaim small amounts of memory when an external fragmentation event occurs",
            "mm/vmscan.c: balance_pgdat",
            "after reclaiming for a watermark boost (a fragmenting fallback), kswapd wakes "
            "kcompactd at pageblock order to undo the mixing",
            "boosted reclaim frees pages but nothing compacts the mixed pageblocks",
        ),
        Mitigation(
            "alloc_nofragment",
            "6bb154504f8b",
            "mm, page_alloc: spread allocations across zones before introducing fragmentation",
            "mm/page_alloc.c: alloc_flags_nofragment, get_page_from_freelist",
            "the fast path first tries every zone without fragmenting fallbacks (ALLOC_NOFRAGMENT) "
            "and only then allows a fallback in the preferred zone",
            "no ALLOC_NOFRAGMENT: a fallback that mixes a pageblock is taken in the preferred "
            "zone before lower zones are tried",
        ),
        Mitigation(
            "skip_claim",
            "e380bebe4771",
            "mm, compaction: keep migration source private to a single compaction instance",
            "mm/compaction.c: isolate_migratepages_block (test_and_set_skip)",
            "the migration scanner test-and-sets the pageblock's skip bit under the lock as a "
            "claim; a compactor that finds the bit already set abandons the block",
            "no claim: parallel compactors isolate from, and migrate, the same source block",
        ),
        Mitigation(
            "whole_zone",
            "06ed29989f39",
            "mm, compaction: make whole_zone flag ignore cached scanner positions",
            "mm/compaction.c: compact_zone_order, compact_zone (cc->whole_zone)",
            "a direct compaction at COMPACT_PRIO_SYNC_FULL, the allocator's last priority, "
            "starts its scanners at the zone's edges whatever positions other compactors "
            "(kcompactd among them) cached, so its failure means the whole zone was scanned",
            "the SYNC_FULL round starts at the zone's cached scanner positions like the other "
            "priorities (whole_zone only if they happen to be at the zone start): where "
            "kcompactd or another compactor left them, ending COMPACT_PARTIAL_SKIPPED",
        ),
        Mitigation(
            "async_contended_abort",
            "c67fe3752abe",
            "mm: compaction: Abort async compaction if locks are contended or taking too long",
            "mm/compaction.c: compact_lock_irqsave, __compact_finished (COMPACT_CONTENDED)",
            "async compaction trylocks zone->lock and lru_lock; a failed trylock sets "
            "cc->contended and compaction stops with COMPACT_CONTENDED at the next check",
            "async compaction spins for the lock like sync compaction and keeps scanning, "
            "queueing behind the allocators on zone->lock",
        ),
        Mitigation(
            "drain_after_reclaim",
            "9ee493ce0a60",
            "mm: page allocator: drain per-cpu lists after direct reclaim allocation fails",
            "mm/page_alloc.c: __alloc_pages_direct_reclaim",
            "when the attempt after direct reclaim fails, drain_all_pages(NULL) returns every "
            "CPU's pcp pages to the buddy lists and the attempt is repeated",
            "no drain: pages freed to remote pcp lists stay hidden from a high-order request, "
            "which goes on to retry or fail",
        ),
        Mitigation(
            "pcp_high_autotune",
            "51a755c56dc0",
            "mm: tune PCP high automatically",
            "mm/page_alloc.c: nr_pcp_high, nr_pcp_alloc, decay_pcp_high",
            "pcp->high moves between high_min and high_max with the CPU's alloc/free pattern "
            "(grows while freeing, decays every second, shrinks when the zone is below high)",
            "pcp->high is fixed at high_min (zone_highsize of the low watermark), as before the "
            "v6.7 auto-tuning series",
        ),
        Mitigation(
            "compaction_deferral",
            "4f92e2586b43",
            "mm: compaction: defer compaction using an exponential backoff when compaction fails",
            "mm/compaction.c: defer_compaction, compaction_deferred (try_to_compact_pages, "
            "kcompactd_do_work)",
            "a zone whose sync compaction failed (COMPLETE or PARTIAL_SKIPPED) is skipped by the "
            "next 1, 2, 4 .. 64 compaction attempts at that order or above",
            "every direct compactor (and kcompactd) scans the zone again, however often it has "
            "just failed",
        ),
        Mitigation(
            "proactive_backoff",
            "facdaa917c4d",
            "mm: proactive compaction",
            "mm/compaction.c: kcompactd (proactive_defer)",
            "a proactive pass that does not lower the node's fragmentation score makes the next "
            "wait 500 ms << COMPACT_MAX_DEFER_SHIFT (32 s)",
            "no back-off: kcompactd repeats a fruitless proactive pass every 500 ms",
        ),
    )
}

_WORDS = {
    "on": True,
    "true": True,
    "yes": True,
    "1": True,
    "off": False,
    "false": False,
    "no": False,
    "0": False,
}


def check_mitigation(name: str, value: Any) -> bool:
    """``mitigation.NAME`` (or ``NAME``) and its value (on/off, true/false, 1/0, a bool) ->
    the bool. ValueError naming the valid names or values."""
    short = name[len(PARAM_PREFIX) :] if name.startswith(PARAM_PREFIX) else name
    if short not in MITIGATIONS:
        raise ValueError(f"unknown mitigation; valid: {', '.join(MITIGATIONS)}")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        return _WORDS[value.strip().lower()]
    raise ValueError("expected on or off")


@attrs.frozen
class Mitigations:
    """The on/off value of every mitigation of one machine (all on: 6.12)."""

    off: frozenset[str] = frozenset()

    def __attrs_post_init__(self) -> None:
        unknown = sorted(self.off - MITIGATIONS.keys())
        if unknown:
            raise ValueError(f"unknown mitigations {unknown}; valid: {', '.join(MITIGATIONS)}")

    @classmethod
    def from_values(cls, values: Mapping[str, bool]) -> Mitigations:
        """From ``{"capture": False, ...}`` (names with or without the ``mitigation.`` prefix)."""
        off = set()
        for name, value in values.items():
            if not check_mitigation(name, value):
                off.add(name[len(PARAM_PREFIX) :] if name.startswith(PARAM_PREFIX) else name)
        return cls(frozenset(off))

    def on(self, name: str) -> bool:
        """Is mitigation ``name`` on? (KeyError for a name not in :data:`MITIGATIONS`.)"""
        if name not in MITIGATIONS:
            raise KeyError(f"no mitigation {name!r}")
        return name not in self.off

    def as_dict(self) -> dict[str, str]:
        """``{"capture": "on", ...}`` in table order (summary.json ``mitigations``)."""
        return {n: "off" if n in self.off else "on" for n in MITIGATIONS}


def _switch(m: Mitigation) -> Tunable:
    """``mitigation.NAME`` as a tunable of the registry (emulator.mm.sysctl.TUNABLES); its value
    lives in ``machine.mitigations``."""

    def load(machine: Any) -> bool:
        return bool(machine.mitigations.on(m.name))

    def store(machine: Any, on: bool) -> None:
        off = machine.mitigations.off
        machine.mitigations = Mitigations(off - {m.name} if on else off | {m.name})

    return Tunable(
        PARAM_PREFIX + m.name,
        "mitigations",
        True,
        OnOff(),
        f"{m.summary}. Commit {m.commit} ({m.subject}), {m.kernel_function}. Off: {m.off_effect}",
        f"{m.kernel_function} (commit {m.commit}: {m.subject})",
        load=load,
        store=store,
    )


#: every switch as a tunable, on by default (6.12)
MITIGATION_TUNABLES = tuple(_switch(m) for m in MITIGATIONS.values())
