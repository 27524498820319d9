"""The README stays short and true: its quick-start commands exist, its links resolve, and its
example output is what `mmemu run default` prints, number for number.

Other changes to the model move those numbers. After one, regenerate the example with::

    MMEMU_REGENERATE_README=1 .venv/bin/pytest tests/docs/test_readme_example.py -k numbers

(it rewrites the block in README.md from a real run; review the diff like any other change).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from emulator.cli import SUBCOMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quick_start_commands_are_devpys() -> None:
    quick = re.search(r"## Quick start\n\n```\n(.*?)```", README, re.S)
    assert quick is not None
    cmds = [line.split("#")[0].split() for line in quick.group(1).splitlines()]
    assert cmds == [["python3", "dev.py", "run"], ["python3", "dev.py", "test"]]
    devpy = (ROOT / "dev.py").read_text()
    assert 'cmd == "run"' in devpy and "test" in devpy


def test_links_resolve_and_commands_exist() -> None:
    links = re.findall(r"\]\(((?:docs/)[\w./-]+)\)", README)
    assert "docs/tutorial.md" in links and "docs/testing.md" in links
    for link in links:
        assert (ROOT / link).exists(), link
    named = re.search(r"`mmemu COMMAND --help` — (.*?)\.\n", README, re.S)
    assert named is not None
    assert set(re.findall(r"`(\w+)`", named.group(1))) <= set(SUBCOMMANDS)


def test_example_output_has_the_summary_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = re.search(r"## Example output\n\n```\n\$ mmemu run default\n(.*?)```", README, re.S)
    assert example is not None
    shown = example.group(1)
    assert (
        main(
            [
                "run",
                "default",
                "--set",
                "memory=512M",
                "--set",
                "duration=5ms",
                "--out",
                str(tmp_path / "r"),
                "--no-trace",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    # the example is a summary of the default scenario, as `mmemu run` prints one: its header
    # and its allocations table (the example is re-run by hand when the format changes)
    for words in ("scenario default  seed 1", "allocations", "order", "zone->lock"):
        assert words in shown and words.split("  ")[0] in printed, words


_EXAMPLE = re.compile(r"(## Example output\n\n```\n\$ mmemu run default\n)(.*?)(```)", re.S)
#: the parts of the output that are not the model's: wall-clock times and the results folder
_WALL = re.compile(r"in [0-9.]+ s wall \(set-up [0-9.]+ s\)")


def _normal(text: str) -> str:
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    lines = [_WALL.sub("in WALL s wall (set-up WALL s)", line) for line in lines]
    return "\n".join(line for line in lines if not line.startswith("results in "))


def test_example_output_numbers_are_a_real_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole summary of the default run (0.5 s virtual, about 12 s of CPU)."""
    m = _EXAMPLE.search(README)
    assert m is not None
    capsys.readouterr()
    assert main(["run", "default", "--out", str(tmp_path / "r"), "--no-trace"]) == 0
    printed = capsys.readouterr().out
    if os.environ.get("MMEMU_REGENERATE_README"):
        body = printed.replace(str(tmp_path / "r"), "results/default-seed1")
        body = "\n".join(line.rstrip() for line in body.splitlines()) + "\n"
        text = README[: m.start(2)] + body + README[m.end(2) :]
        (ROOT / "README.md").write_text(text, encoding="utf-8")
        return
    assert _normal(m.group(2)) == _normal(printed), (
        "README's example output is not what `mmemu run default` prints now; regenerate it: "
        "MMEMU_REGENERATE_README=1 .venv/bin/pytest tests/docs/test_readme_example.py -k numbers"
    )
