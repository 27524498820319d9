"""Parsers: real kernel output, malformed files (file and line in the error), property round trips.

``data/live-6.18`` holds /proc/buddyinfo, pagetypeinfo and zoneinfo as captured from a real
one-node x86-64 machine running 6.18 (no CONFIG_CMA: pagetypeinfo has no CMA column; its
zoneinfo pagesets print high_min/high_max and ``count:    0`` alignment, newer than 6.12).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.mm.compaction.sysctl import COMPACTION_PROACTIVENESS
from emulator.mm.procfs.parse import (
    ProcParseError,
    combine_snapshots,
    parse_buddyinfo,
    parse_pagetypeinfo,
    parse_sysctl_int,
    parse_zoneinfo,
)
from emulator.mm.procfs.render import migratetype_columns, render_buddyinfo, render_pagetypeinfo
from emulator.mm.snapshot import MachineSnapshot, NodeSnapshot, PcpSnapshot, ZoneSnapshot

DATA = Path(__file__).parent / "data" / "live-6.18"


def read(name: str) -> str:
    return (DATA / name).read_text()


# ------------------------------------------------------------------------- real kernel output


def test_real_buddyinfo_parses_and_renders_back_byte_for_byte() -> None:
    text = read("buddyinfo")
    m = parse_buddyinfo(text)
    assert [z.name for z in m.zones] == ["DMA", "DMA32", "Normal"]
    assert m.zones[0].nr_free == (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3)
    assert m.zones[1].nr_free[10] == 752
    assert render_buddyinfo(m) == text


def test_real_pagetypeinfo_without_cma_parses_and_renders_back() -> None:
    text = read("pagetypeinfo")
    m = parse_pagetypeinfo(text)
    normal = m.zones[2]
    assert normal.name == "Normal"
    assert normal.pageblocks_by_mt == (43, 317, 24, 0, 0, 0)  # CMA (4) absent -> 0
    assert normal.nr_free_by_mt is not None
    assert normal.nr_free_by_mt[2][:3] == (415, 112, 53)  # Reclaimable
    assert normal.nr_free_by_mt[4] == (0,) * 11  # CMA
    columns = migratetype_columns(["Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate"])
    assert render_pagetypeinfo(m, columns) == text


def test_real_zoneinfo_parses_every_zone() -> None:
    m = parse_zoneinfo(read("zoneinfo"))
    (node,) = m.nodes
    assert [z.name for z in node.zones] == ["DMA", "DMA32", "Normal", "Movable", "Device"]
    assert [z.populated for z in node.zones] == [True, True, True, False, False]
    dma32 = node.zones[1]
    assert (dma32.wmark_min, dma32.wmark_low, dma32.wmark_high, dma32.wmark_promo) == (
        13416, 16770, 20124, 23478,
    )  # fmt: skip
    assert (dma32.spanned, dma32.present, dma32.managed, dma32.start_pfn) == (
        1044480, 782336, 772917, 4096,
    )  # fmt: skip
    assert dma32.lowmem_reserve == (0, 0, 768, 768, 768)
    assert dma32.pcp == (PcpSnapshot(0, 0, 8385, 63, 24), PcpSnapshot(1, 0, 0, 63, 24))
    assert dma32.free_pages == 772917
    assert ("nr_free_pages_blocks", 771072) in dma32.zone_stats  # a 6.18 line, kept
    assert ("numa_hit", 0) in dma32.zone_stats
    assert not any(k == "nr_free_pages" for k, _ in dma32.zone_stats)
    assert node.node_stats[0] == ("nr_inactive_anon", 996)
    assert node.present_pages == 3998 + 782336 + 5505024
    assert node.node_unreclaimable is False


def test_real_files_combine_into_one_snapshot() -> None:
    m = combine_snapshots(
        parse_buddyinfo(read("buddyinfo")),
        parse_pagetypeinfo(read("pagetypeinfo")),
        parse_zoneinfo(read("zoneinfo")),
        compaction_proactiveness=30,
    )
    assert len(m.zones) == 5 and m.compaction_proactiveness == 30
    normal = m.zones[2]
    assert normal.nr_free[0] == 1636 and normal.managed == 196608
    assert normal.pageblocks_by_mt == (43, 317, 24, 0, 0, 0)


MULTI_NODE_BUDDYINFO = """\
Node 0, zone      DMA      1      1      0      0      2      1      1      0      1      1      3 
Node 0, zone    DMA32   3140   2705   1880   1214    733    301     99     27     10      3    412 
Node 0, zone   Normal  21570  13011   6040   2303    704    140     15      2      0      0      0 
Node 1, zone   Normal  88215  40301  12960   3011    810    173     31      4      1      0      0 
Node 3, zone   Normal     12      7      1      0      0      0      0      0      0      0   1870 
"""  # noqa: W291


def test_multi_node_buddyinfo_with_a_gap_in_node_numbers() -> None:
    m = parse_buddyinfo(MULTI_NODE_BUDDYINFO)
    assert [n.node for n in m.nodes] == [0, 1, 3]
    assert [len(n.zones) for n in m.nodes] == [3, 1, 1]
    assert m.nodes[1].zones[0].nr_free[:3] == (88215, 40301, 12960)
    assert render_buddyinfo(m) == MULTI_NODE_BUDDYINFO


def test_buddyinfo_tolerates_missing_trailing_spaces_and_crlf() -> None:
    stripped = "\r\n".join(line.rstrip() for line in MULTI_NODE_BUDDYINFO.splitlines())
    assert parse_buddyinfo(stripped) == parse_buddyinfo(MULTI_NODE_BUDDYINFO)


# ------------------------------------------------------------------------------ bad input


def error_of(fn, text: str, name: str) -> ProcParseError:
    with pytest.raises(ProcParseError) as info:
        fn(text, name)
    return info.value


def test_buddyinfo_short_line_names_file_and_line() -> None:
    text = MULTI_NODE_BUDDYINFO.replace("   3140   2705", "   3140")
    err = error_of(parse_buddyinfo, text, "saved/buddyinfo")
    assert (err.filename, err.line) == ("saved/buddyinfo", 2)
    assert str(err) == "saved/buddyinfo:2: zone DMA32: expected 11 counts, got 10"
    assert "\n" not in str(err)


def test_buddyinfo_bad_number_and_garbage_lines() -> None:
    err = error_of(parse_buddyinfo, MULTI_NODE_BUDDYINFO.replace("88215", "88x15"), "b")
    assert err.line == 4 and "'88x15' is not a count" in str(err)
    err = error_of(parse_buddyinfo, "Node 0, zone DMA 1 2 3 4 5 6 7 8 9 10 11\nhello\n", "b")
    assert str(err).startswith("b:2: expected 'Node N, zone NAME'")
    err = error_of(parse_buddyinfo, "", "b")
    assert str(err) == "b:1: no zones found (empty file?)"


def test_buddyinfo_duplicate_zone() -> None:
    line = MULTI_NODE_BUDDYINFO.splitlines()[0]
    err = error_of(parse_buddyinfo, f"{line}\n{line}\n", "b")
    assert err.line == 2 and "appears twice" in str(err)


def test_pagetypeinfo_errors_carry_line_numbers() -> None:
    text = read("pagetypeinfo")
    lines = text.split("\n")
    bad = "\n".join([*lines[:6], lines[6].replace("Reclaimable", "Reclaimabel"), *lines[7:]])
    err = error_of(parse_pagetypeinfo, bad, "pt")
    assert str(err) == "pt:7: unknown migratetype 'Reclaimabel'"
    err = error_of(parse_pagetypeinfo, text.replace("order: 9", "order: 10"), "pt")
    assert str(err) == "pt:1: pageblock order '10', the model uses 9"
    bad = text.replace("Normal           43", "Normal           4x3")
    err = error_of(parse_pagetypeinfo, bad, "pt")
    assert str(err) == "pt:24: Normal pageblocks: '4x3' is not a count"
    truncated = "\n".join(lines[:19])  # no "Number of blocks" section
    err = error_of(parse_pagetypeinfo, truncated, "pt")
    assert err.line == 5 and "no 'Number of blocks' line" in str(err)


def test_zoneinfo_errors_carry_line_numbers() -> None:
    text = read("zoneinfo")
    lines = text.split("\n")
    i = lines.index("  pages free     772917")
    bad = "\n".join([*lines[:i], "  pages free     lots", *lines[i + 1 :]])
    err = error_of(parse_zoneinfo, bad, "zi")
    assert str(err) == f"zi:{i + 1}: pages free: 'lots' is not a number"
    bad = "\n".join([*lines[:i], "garbage", *lines[i + 1 :]])
    assert error_of(parse_zoneinfo, bad, "zi").line == i + 1
    j = lines.index("        managed  772917")
    bad = "\n".join([*lines[:j], *lines[j + 1 :]])
    err = error_of(parse_zoneinfo, bad, "zi")
    assert str(err) == "zi:99: zone DMA32 of node 0 has no 'managed' line"
    err = error_of(parse_zoneinfo, "  pages free 3\n", "zi")
    assert str(err) == "zi:1: line before the first 'Node N, zone NAME'"


def test_zoneinfo_skips_unknown_indented_lines() -> None:
    text = read("zoneinfo").replace(
        "  pagesets\n", "  pagesets\n  all_unreclaimable: 0\n  some future line with words\n", 1
    )
    assert parse_zoneinfo(text) == parse_zoneinfo(read("zoneinfo"))


def test_sysctl_files() -> None:
    assert parse_sysctl_int("20\n", "p", COMPACTION_PROACTIVENESS) == 20
    with pytest.raises(ProcParseError, match=r"^p:1: .*'abc' is not an integer: valid 0..100"):
        parse_sysctl_int("abc\n", "p", COMPACTION_PROACTIVENESS)
    with pytest.raises(ProcParseError, match=r"^p:1: .*=101 is out of range: valid 0..100"):
        parse_sysctl_int("101", "p", COMPACTION_PROACTIVENESS)


def test_combine_rejects_files_from_different_machines() -> None:
    buddy = parse_buddyinfo(MULTI_NODE_BUDDYINFO)
    msg = r"^zi: zone Normal of node 1 is missing or has no present pages$"
    with pytest.raises(ProcParseError, match=msg):
        combine_snapshots(buddy, zoneinfo=parse_zoneinfo(read("zoneinfo")), names=("b", "p", "zi"))
    with pytest.raises(ProcParseError, match=r"^p: zone Normal of node 1 is missing$"):
        combine_snapshots(
            buddy, pagetypeinfo=parse_pagetypeinfo(read("pagetypeinfo")), names=("b", "p", "zi")
        )


# ------------------------------------------------------------------------ property tests

counts = st.lists(st.integers(0, 10**7), min_size=11, max_size=11).map(tuple)
zone_names = st.sampled_from(["DMA", "DMA32", "Normal", "Movable", "HighMem", "Device"])


@st.composite
def machines(draw: st.DrawFn) -> MachineSnapshot:
    node_ids = draw(st.lists(st.integers(0, 1023), min_size=1, max_size=4, unique=True))
    nodes = []
    for nid in node_ids:
        names = draw(st.lists(zone_names, min_size=1, max_size=4, unique=True))
        zones = tuple(ZoneSnapshot(node=nid, name=n, nr_free=draw(counts)) for n in names)
        nodes.append(NodeSnapshot(nid, zones))
    return MachineSnapshot(tuple(nodes))


@settings(max_examples=60, deadline=None)
@given(machines())
def test_buddyinfo_round_trip_property(m: MachineSnapshot) -> None:
    text = render_buddyinfo(m)
    assert all(line.endswith(" ") for line in text.splitlines())
    assert parse_buddyinfo(text) == m


per_mt = st.lists(
    st.lists(st.integers(0, 300000), min_size=11, max_size=11).map(tuple), min_size=6, max_size=6
).map(tuple)


@settings(max_examples=40, deadline=None)
@given(per_mt, st.lists(st.integers(0, 10**6), min_size=6, max_size=6).map(tuple))
def test_pagetypeinfo_round_trip_property_with_cap(
    by_mt: tuple[tuple[int, ...], ...], blocks: tuple[int, ...]
) -> None:
    zone = ZoneSnapshot(
        node=0,
        name="Normal",
        nr_free=tuple(sum(c) for c in zip(*by_mt, strict=True)),
        nr_free_by_mt=by_mt,
        pageblocks_by_mt=blocks,
    )
    parsed = parse_pagetypeinfo(render_pagetypeinfo(MachineSnapshot((NodeSnapshot(0, (zone,)),))))
    (got,) = parsed.zones
    capped = tuple(tuple(min(n, 100000) for n in row) for row in by_mt)
    assert got.nr_free_by_mt == capped
    assert got.pageblocks_by_mt == blocks
    assert got.nr_free == tuple(sum(c) for c in zip(*capped, strict=True))


stat_lists = st.lists(
    st.tuples(st.from_regex(r"nr_[a-z_]{1,20}", fullmatch=True), st.integers(0, 10**12)),
    max_size=4,
).map(tuple)
small = st.integers(0, 10**9)


@st.composite
def zoneinfo_machines(draw: st.DrawFn) -> MachineSnapshot:
    nodes = []
    for nid in draw(st.lists(st.integers(0, 63), min_size=1, max_size=3, unique=True)):
        names = draw(st.lists(zone_names, min_size=1, max_size=4, unique=True))
        nr_reserve = len(names)
        zones = []
        for name in names:
            populated = draw(st.booleans())
            common = dict(
                node=nid, name=name, nr_free=(0,) * 11, spanned=draw(small),
                managed=draw(small), cma=draw(small), wmark_min=draw(small),
                wmark_low=draw(small), wmark_high=draw(small), wmark_promo=draw(small),
                boost=draw(small),
                lowmem_reserve=tuple(draw(small) for _ in range(nr_reserve)),
            )  # fmt: skip
            if populated:
                pcp = tuple(
                    PcpSnapshot(cpu, draw(small), draw(small), draw(small), draw(small))
                    for cpu in range(draw(st.integers(0, 3)))
                )
                zones.append(ZoneSnapshot(
                    **common, present=draw(st.integers(1, 10**9)), start_pfn=draw(small),
                    nr_free_pages=draw(small), pcp=pcp, zone_stats=draw(stat_lists),
                ))  # fmt: skip
            else:
                zones.append(ZoneSnapshot(**common, present=0, nr_free_pages=0, populated=False))
        has_memory = any(z.populated for z in zones)
        nodes.append(
            NodeSnapshot(
                nid,
                tuple(zones),
                node_stats=draw(stat_lists) if has_memory else (),
                node_unreclaimable=draw(st.booleans()) if has_memory else False,
            )
        )
    return MachineSnapshot(tuple(nodes))


@settings(max_examples=60, deadline=None)
@given(zoneinfo_machines())
def test_zoneinfo_round_trip_property(m: MachineSnapshot) -> None:
    from emulator.mm.procfs.render import render_zoneinfo

    text = render_zoneinfo(m)
    assert parse_zoneinfo(text) == m
    assert render_zoneinfo(parse_zoneinfo(text)) == text
