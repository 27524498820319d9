"""A small real run of the default scenario, shared by the report tests (module scope)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.cli import main


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "default"
    rc = main(
        [
            "run",
            "default",
            "--set",
            "memory=1G",
            "--set",
            "cpus=4",
            "--set",
            "duration=40ms",
            "--set",
            "thp_weight=3",
            "--out",
            str(out),
            "--quiet",
            "--plots",
        ]
    )
    assert rc == 0
    return out
