"""``mmemu inspect --proc DIR`` end to end through :func:`emulator.cli.main`.

The saved folder describes a two-node machine: node 0 healthy apart from a DMA zone holding a
single order-8 block, node 1 with all its free memory in blocks below order 3, so proactive
compaction would start there. Expected values are worked out by hand in the comments.
"""

# Kernel output lines are kept verbatim, one per source line, so some are long:
# ruff: noqa: E501

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.report import inspect as inspect_mod

BUDDYINFO = (
    "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      0      0 \n"
    "Node 0, zone   Normal    120     64     33     12      9      4      2      1      0      1      3 \n"
    "Node 1, zone   Normal   5000   3000   1000      0      0      0      0      0      0      0      0 \n"
)  # fmt: skip


def zone_block(node: int, name: str, free: int, present: int, populated: bool = True) -> str:
    """A v6.12 /proc/zoneinfo zone as the kernel prints it (no per-node stats)."""
    text = (
        f"Node {node}, zone {name:>8}\n"
        f"  pages free     {free}\n"
        "        boost    0\n"
        "        min      128\n"
        "        low      160\n"
        "        high     192\n"
        "        promo    224\n"
        f"        spanned  {present}\n"
        f"        present  {present}\n"
        f"        managed  {present}\n"
        "        cma      0\n"
        "        protection: (0, 0, 0, 0)\n"
    )
    if populated:
        text += (
            f"      nr_free_pages {free}\n"
            "      nr_mlock     0\n"
            "  pagesets\n"
            "    cpu: 0\n"
            "              count: 0\n"
            "              high:  0\n"
            "              batch: 1\n"
            "  vm stats threshold: 4\n"
            "  node_unreclaimable:  0\n"
            "  start_pfn:           1\n"
        )
    return text


ZONEINFO = (
    zone_block(0, "DMA", 256, 3998)
    + zone_block(0, "Normal", 4588, 3670016)
    + zone_block(0, "Movable", 0, 0, populated=False)
    + zone_block(1, "Normal", 15000, 4194304)
    + zone_block(1, "Movable", 0, 0, populated=False)
)

# DMA: -1.000 up to order 8; order 9: 1000 - (1000 + 256000/512) = -500; order 10: -250.
# Node 1 Normal: 9000 blocks, 15000 pages; order 3: 1000 - (1000 + 15000000/8)/9000
#   = 1000 - 1876000/9000 = 1000 - 208 = 792; order 10: 1000 - (1000 + 14648)/9000 = 999
EXTFRAG = (
    "Node 0, zone      DMA -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000  0.-500  0.-250 \n"
    "Node 0, zone   Normal -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 -1.000 \n"
    "Node 1, zone   Normal -1.000 -1.000 -1.000  0.792  0.896  0.948  0.974  0.987  0.994  0.997  0.999 \n"
)  # fmt: skip
# node 1 order 1: the 5000 order-0 pages of 15000 are unusable -> 333; order 2: 11000 -> 733
UNUSABLE = (
    "Node 0, zone      DMA 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 1.000 1.000 \n"
    "Node 0, zone   Normal 0.000 0.026 0.054 0.082 0.103 0.135 0.163 0.190 0.218 0.218 0.330 \n"
    "Node 1, zone   Normal 0.000 0.333 0.733 1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000 \n"
)  # fmt: skip
# scores (extfrag_for_order 9): DMA 100; node 0 Normal: 4588 free, 7 order-9 blocks = 3584,
# 1004*100/4588 = 21; node 1 Normal: 100. Weighted over node present + 1:
# DMA 3998*100/3674015 = 0, Normal 3670016*21/3674015 = 20 -> node 0 score 20;
# node 1: 4194304*100/4194305 = 99 > high 90 -> proactive compaction would start.
SCORES = (
    "Node 0, zone      DMA score 100 weighted   0\n"
    "Node 0, zone   Normal score  21 weighted  20\n"
    "Node 0 score  20 low 80 high 90 proactive_compaction no\n"
    "Node 1, zone   Normal score 100 weighted  99\n"
    "Node 1 score  99 low 80 high 90 proactive_compaction yes\n"
)

PAGETYPEINFO_HEADER = (
    "Page block order: 9\n"
    "Pages per block:  512\n"
    "\n"
    "Free pages count per migrate type at order       0      1      2      3      4      5      6      7      8      9     10 \n"
)  # fmt: skip


PT_ZERO = "      0      0      0      0      0      0      0      0      0      0      0 \n"
PT_BLOCKS = (
    "\nNumber of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      Isolate \n"
)
# a kernel without CONFIG_CMA: five migratetype columns
PAGETYPEINFO = (
    PAGETYPEINFO_HEADER
    + "Node    0, zone      DMA, type    Unmovable      0      0      0      0      0      0      0      0      1      0      0 \n"
    + "Node    0, zone      DMA, type      Movable" + PT_ZERO
    + "Node    0, zone      DMA, type  Reclaimable" + PT_ZERO
    + "Node    0, zone      DMA, type   HighAtomic" + PT_ZERO
    + "Node    0, zone      DMA, type      Isolate" + PT_ZERO
    + "Node    0, zone   Normal, type    Unmovable" + PT_ZERO
    + "Node    0, zone   Normal, type      Movable    120     64     33     12      9      4      2      1      0      1      3 \n"
    + "Node    0, zone   Normal, type  Reclaimable" + PT_ZERO
    + "Node    0, zone   Normal, type   HighAtomic" + PT_ZERO
    + "Node    0, zone   Normal, type      Isolate" + PT_ZERO
    + PT_BLOCKS
    + "Node 0, zone      DMA            1            7            0            0            0 \n"
    + "Node 0, zone   Normal           40         7128            0            0            0 \n"
    + PAGETYPEINFO_HEADER
    + "Node    1, zone   Normal, type    Unmovable" + PT_ZERO
    + "Node    1, zone   Normal, type      Movable   5000   3000   1000      0      0      0      0      0      0      0      0 \n"
    + "Node    1, zone   Normal, type  Reclaimable" + PT_ZERO
    + "Node    1, zone   Normal, type   HighAtomic" + PT_ZERO
    + "Node    1, zone   Normal, type      Isolate" + PT_ZERO
    + PT_BLOCKS
    + "Node 1, zone   Normal            0         8192            0            0            0 \n"
)  # fmt: skip


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    (tmp_path / "buddyinfo").write_text(BUDDYINFO)
    (tmp_path / "zoneinfo").write_text(ZONEINFO)
    (tmp_path / "sys" / "vm").mkdir(parents=True)
    (tmp_path / "sys" / "vm" / "compaction_proactiveness").write_text("20\n")
    (tmp_path / "sys" / "vm" / "extfrag_threshold").write_text("500\n")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["inspect", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_show_extfrag_index_prints_exactly_the_debugfs_file(saved: Path, capsys) -> None:
    assert run(capsys, "--proc", str(saved), "--show", "extfrag_index") == (0, EXTFRAG, "")


def test_show_unusable_index_prints_exactly_the_debugfs_file(saved: Path, capsys) -> None:
    assert run(capsys, "--proc", str(saved), "--show", "unusable_index") == (0, UNUSABLE, "")


def test_show_fragmentation_score(saved: Path, capsys) -> None:
    assert run(capsys, "--proc", str(saved), "--show", "fragmentation_score") == (0, SCORES, "")


def test_text_report_without_pagetypeinfo(saved: Path, capsys) -> None:
    rc, out, err = run(capsys, "--proc", str(saved))
    assert rc == 0 and err == ""
    assert out.startswith(f"mmemu inspect: {saved}\n")
    assert f"pagetypeinfo  {saved}/pagetypeinfo: not present -> per-migratetype data omitted" in out
    assert f"vm.compaction_proactiveness = 20  ({saved}/sys/vm/compaction_proactiveness)" in out
    assert "Free memory and pageblocks by migratetype" not in out
    # per-zone table row for node 1: 15000 pages = 58.6 MiB, largest order 2, nothing >= order 9
    row = next(line for line in out.splitlines() if line.split()[:2] == ["1", "Normal"])
    # 15000 free > low 160 + compact_gap(9) 1024 + protection 0: the watermark half passes
    assert row.split() == [
        "1", "Normal", "4194304", "4194304", "58.6", "2", "0.0", "100", "99", "0.997", "1.000",
        "ok", "compact",
    ]  # fmt: skip
    # DMA: fragidx -500 would allow compaction, but 256 free <= 160 + 1024: skipped
    dma = next(line for line in out.splitlines() if line.split()[:2] == ["0", "DMA"])
    assert dma.split()[-5:] == ["-0.500", "1.000", "low", "skip:", "wmark"]
    assert "score low 80, high 90" in out
    assert "node 0: score 20 <= high 90: would not start" in out
    assert (
        "node 1: score 99 > high 90: WOULD START; each zone is compacted until its own score <= 80"
        in out
    )
    assert "extfrag_index (/sys/kernel/debug/extfrag/extfrag_index)\n" + EXTFRAG in out
    assert "unusable_index (/sys/kernel/debug/extfrag/unusable_index)\n" + UNUSABLE in out


def test_text_report_with_pagetypeinfo_and_other_sysctls(saved: Path, capsys) -> None:
    (saved / "pagetypeinfo").write_text(PAGETYPEINFO)
    (saved / "sys" / "vm" / "compaction_proactiveness").write_text("0\n")
    (saved / "sys" / "vm" / "extfrag_threshold").write_text("1000\n")
    rc, out, _ = run(capsys, "--proc", str(saved))
    assert rc == 0
    assert f"pagetypeinfo  {saved}/pagetypeinfo: read" in out
    assert "Free memory and pageblocks by migratetype (pagetypeinfo)" in out
    blocks = [line.split() for line in out.splitlines() if "pageblocks" in line.split()[:1]]
    assert ["pageblocks", "0", "8192", "0", "0", "0", "0"] in blocks
    assert "node 1: score 99; proactive compaction is disabled" in out
    assert "score low 100, high 100" in out
    # with extfrag_threshold 1000 an index of 0.997 means lack of memory: reclaim, not compaction
    row = next(line for line in out.splitlines() if line.split()[:2] == ["1", "Normal"])
    assert row.split()[-1] == "reclaim"


def test_json_output_has_the_same_information(saved: Path, capsys) -> None:
    rc, out, _ = run(capsys, "--proc", str(saved), "--format", "json")
    assert rc == 0
    report = json.loads(out)
    assert report["extfrag_index"] == EXTFRAG and report["unusable_index"] == UNUSABLE
    fs = report["fragmentation_score"]
    assert (fs["wmark_low"], fs["wmark_high"], fs["order"]) == (80, 90, 9)
    assert [(n["node"], n["score"], n["proactive_compaction"]) for n in fs["nodes"]] == [
        (0, 20, False),
        (1, 99, True),
    ]
    dma = fs["nodes"][0]["zones"][0]
    assert dma["extfrag_index"][9:] == [-500, -250]
    assert dma["weighted_score"] == 0 and dma["score"] == 100
    assert report["files"]["pagetypeinfo"]["status"] == "missing"
    assert report["live"] is False


def test_json_show_restricts_to_one_part(saved: Path, capsys) -> None:
    rc, out, _ = run(capsys, "--proc", str(saved), "--show", "unusable_index", "--format", "json")
    assert rc == 0 and json.loads(out) == {"source": str(saved), "unusable_index": UNUSABLE}


def test_without_zoneinfo_weighted_scores_are_unknown(saved: Path, capsys) -> None:
    (saved / "zoneinfo").unlink()
    rc, out, _ = run(capsys, "--proc", str(saved), "--show", "fragmentation_score")
    assert rc == 0
    assert out.splitlines()[0] == "Node 0, zone      DMA score 100 weighted   ?"
    assert "Node 1 score   ? low 80 high 90 proactive_compaction unknown" in out


def test_unreadable_pagetypeinfo_is_reported_not_fatal(
    saved: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    (saved / "pagetypeinfo").write_text(PAGETYPEINFO)
    real_open = open

    def deny(path, *args, **kwargs):
        if str(path).endswith("pagetypeinfo"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(inspect_mod, "open", deny, raising=False)
    rc, out, err = run(capsys, "--proc", str(saved))
    assert rc == 0 and err == ""
    assert (
        f"pagetypeinfo  {saved}/pagetypeinfo: not readable (permission denied) -> "
        "per-migratetype data omitted (mode 0400: run as root to include it)"
    ) in out


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("buddyinfo", BUDDYINFO.replace("    120     64", "    120"), "buddyinfo:2: zone Normal: expected 11 counts, got 10"),
        ("zoneinfo", ZONEINFO.replace("  pages free     4588", "  pages free     many"), "zoneinfo:24: pages free: 'many' is not a number"),
        ("pagetypeinfo", PAGETYPEINFO_HEADER + "Node    0, zone      DMA, type    Unmovable      0\n", "pagetypeinfo:5: DMA Unmovable: expected 11 counts, got 1"),
        ("sys/vm/compaction_proactiveness", "lots\n", "compaction_proactiveness:1: vm.compaction_proactiveness='lots' is not an integer: valid 0..100 (-EINVAL)"),
    ],
)  # fmt: skip
def test_malformed_file_gives_one_error_line_and_status_2(
    saved: Path, capsys, name: str, content: str, message: str
) -> None:
    (saved / name).write_text(content)
    rc, out, err = run(capsys, "--proc", str(saved))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"mmemu inspect: error: {saved}/")
    assert err.rstrip("\n").endswith(message)


def test_missing_buddyinfo_and_directory(tmp_path: Path, capsys) -> None:
    rc, out, err = run(capsys, "--proc", str(tmp_path))
    assert (rc, out, err) == (2, "", f"mmemu inspect: error: {tmp_path}/buddyinfo: no such file\n")
    rc, _, err = run(capsys, "--proc", str(tmp_path / "nope"))
    assert (rc, err) == (2, f"mmemu inspect: error: {tmp_path}/nope: not a directory\n")


def test_files_from_different_machines_are_rejected(saved: Path, capsys) -> None:
    (saved / "zoneinfo").write_text(zone_block(0, "DMA", 256, 3998))
    rc, _, err = run(capsys, "--proc", str(saved))
    assert rc == 2
    assert err == (
        f"mmemu inspect: error: {saved}/zoneinfo: zone Normal of node 0 is missing or has no "
        "present pages\n"
    )


def test_thp_watermark_half_uses_the_movable_protection() -> None:
    from emulator.mm.snapshot import NodeSnapshot, ZoneSnapshot

    def dma32(free: int) -> ZoneSnapshot:
        return ZoneSnapshot(
            node=0, name="DMA32", nr_free=(0,) * 11, present=10000, wmark_low=160,
            lowmem_reserve=(0, 0, 768, 768), nr_free_pages=free,
        )  # fmt: skip

    def node(zone: ZoneSnapshot) -> NodeSnapshot:
        names = ("DMA", "DMA32", "Normal", "Movable")
        others = [ZoneSnapshot(node=0, name=n, nr_free=(0,) * 11) for n in names]
        others[1] = zone
        return NodeSnapshot(0, tuple(others))

    # protection against a ZONE_MOVABLE (index 3) allocation is 768:
    # 1953 > 160 + 1024 + 768 = 1952 passes, 1952 does not (the kernel's check is <=)
    assert inspect_mod._thp_wmark_ok(node(dma32(1953)), dma32(1953)) is True
    assert inspect_mod._thp_wmark_ok(node(dma32(1952)), dma32(1952)) is False
    # unknown without zoneinfo (no present pages, no protection)
    bare = ZoneSnapshot(node=0, name="Normal", nr_free=(0,) * 11)
    assert inspect_mod._thp_wmark_ok(NodeSnapshot(0, (bare,)), bare) is None
