"""Review (mutation testing) of the lean recorder: the --events filter takes whole tracepoint
names as ``trace-cmd record -e`` does (a glob matches the entire name, not a substring), and the
hot-path renderer agrees with the structlog pipeline for any stamp, not only int ones."""

from __future__ import annotations

import pytest

from emulator.engine import MemoryRecorder
from emulator.engine.recorder import (
    compile_event_filter,
    render_event,
    render_json_line,
    stamp,
)


@pytest.mark.parametrize(
    ("spec", "name", "want"),
    [
        ("compaction_*", "mm_compaction_begin", False),  # a glob is anchored at the start
        ("mm_compaction_*", "mm_compaction_begin", True),
        ("page_alloc", "mm_page_alloc", False),
        ("mm_page_alloc", "mm_page_alloc_zone_locked", False),  # and at the end
        ("mm_page_alloc*", "mm_page_alloc_zone_locked", True),
        ("*_alloc", "mm_page_alloc", True),
        ("mm_page_?ree", "mm_page_free", True),
        ("kcompactd_wake,mm_page_free", "mm_page_free_batched", False),
    ],
)
def test_event_glob_matches_the_whole_tracepoint_name(spec: str, name: str, want: bool) -> None:
    pred = compile_event_filter(spec)
    assert pred is not None
    assert pred(name) is want
    rec = MemoryRecorder(events=spec)
    rec.emit(name, pfn=1)
    assert (rec.count, rec.dropped) == ((1, 0) if want else (0, 1))


@pytest.mark.parametrize("t", [1.5, 7.0, None])
def test_hot_path_renders_a_non_int_stamp_as_the_pipeline_does(t: object) -> None:
    fields = {"pfn": 3, "order": 0}
    old = render_json_line(
        None, "msg", stamp(lambda: t, lambda: "cpu0")(None, "msg", {"event": "e", **fields})
    )
    assert render_event(t, "cpu0", "e", fields) == old  # type: ignore[arg-type]
