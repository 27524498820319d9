"""/proc/vmstat names in vmstat_text[] order and the vmstat renderer."""

from __future__ import annotations

import pytest

from emulator.mm.procfs.render import render_vmstat
from emulator.mm.vmstat import (
    MODEL_VMSTAT_NAMES,
    VMSTAT_TEXT,
    new_counters,
    zone_event_name,
)


def test_vmstat_text_has_no_duplicates_and_starts_with_zone_stats() -> None:
    assert len(set(VMSTAT_TEXT)) == len(VMSTAT_TEXT)
    assert VMSTAT_TEXT[:2] == ("nr_free_pages", "nr_zone_inactive_anon")
    assert VMSTAT_TEXT[-1] == "direct_map_level3_splits"


def test_kernel_order_of_the_allocator_and_compaction_blocks() -> None:
    def run(first: str, n: int) -> tuple[str, ...]:
        i = VMSTAT_TEXT.index(first)
        return VMSTAT_TEXT[i : i + n]

    # TEXTS_FOR_ZONES without HIGHMEM and ZONE_DEVICE, then allocstall_*, pgskip_*, pgfree
    assert run("pgpgin", 17) == (
        "pgpgin", "pgpgout", "pswpin", "pswpout",
        "pgalloc_dma", "pgalloc_dma32", "pgalloc_normal", "pgalloc_movable",
        "allocstall_dma", "allocstall_dma32", "allocstall_normal", "allocstall_movable",
        "pgskip_dma", "pgskip_dma32", "pgskip_normal", "pgskip_movable", "pgfree",
    )  # fmt: skip
    assert run("pgmigrate_success", 14) == (
        "pgmigrate_success", "pgmigrate_fail", "thp_migration_success", "thp_migration_fail",
        "thp_migration_split", "compact_migrate_scanned", "compact_free_scanned",
        "compact_isolated", "compact_stall", "compact_fail", "compact_success",
        "compact_daemon_wake", "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
    )  # fmt: skip
    assert run("kswapd_low_wmark_hit_quickly", 3) == (
        "kswapd_low_wmark_hit_quickly",
        "kswapd_high_wmark_hit_quickly",
        "pageoutrun",
    )
    # zone stats, then NUMA, node stats, vm_stat_item, then events
    assert VMSTAT_TEXT.index("nr_free_cma") < VMSTAT_TEXT.index("numa_hit")
    assert VMSTAT_TEXT.index("pgdemote_khugepaged") + 1 == VMSTAT_TEXT.index("nr_dirty_threshold")
    assert VMSTAT_TEXT.index("nr_memmap_boot_pages") + 1 == VMSTAT_TEXT.index("pgpgin")


def test_model_names_are_a_subsequence_in_kernel_order() -> None:
    positions = [VMSTAT_TEXT.index(n) for n in MODEL_VMSTAT_NAMES]
    assert positions == sorted(positions)
    for name in ("nr_free_pages", "pgalloc_normal", "pgfree", "compact_stall", "thp_fault_alloc"):
        assert name in MODEL_VMSTAT_NAMES
    assert list(new_counters()) == list(MODEL_VMSTAT_NAMES)
    assert set(new_counters().values()) == {0}


def test_zone_event_name() -> None:
    assert zone_event_name("pgalloc", "DMA32") == "pgalloc_dma32"
    assert zone_event_name("allocstall", "Normal") in MODEL_VMSTAT_NAMES


def test_render_vmstat_prints_model_counters_in_kernel_order() -> None:
    counters = {"pgfree": 7, "nr_free_pages": 1234, "compact_stall": 2, "pgalloc_normal": 9}
    text = render_vmstat(counters)
    lines = text.splitlines()
    assert len(lines) == len(MODEL_VMSTAT_NAMES)
    assert lines[0] == "nr_free_pages 1234"
    assert "pgalloc_normal 9\npgalloc_movable 0\n" in text
    assert lines.index("pgfree 7") < lines.index("compact_stall 2")
    assert text.endswith("\n") and "nr_unstable" not in text


def test_render_vmstat_full_has_every_name_and_the_deprecated_line() -> None:
    text = render_vmstat({"nr_bounce": 3}, full=True)
    lines = text.splitlines()
    assert lines[:3] == ["nr_free_pages 0", "nr_zone_inactive_anon 0", "nr_zone_active_anon 0"]
    assert "nr_bounce 3" in lines
    assert len(lines) == len(VMSTAT_TEXT) + 1
    assert lines[-1] == "nr_unstable 0"


def test_render_vmstat_rejects_unknown_and_negative_counters() -> None:
    with pytest.raises(ValueError, match="pgalloc_highmem"):
        render_vmstat({"pgalloc_highmem": 1})
    with pytest.raises(ValueError, match="nr_bounce"):
        render_vmstat({"nr_bounce": 1})  # a real name the model does not keep
    with pytest.raises(ValueError, match="negative"):
        render_vmstat({"pgfree": -1})
