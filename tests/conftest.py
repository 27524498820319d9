"""Suite-wide settings: machine set-ups are cached in a folder of the test session's own (one
per pytest-xdist worker), never in the user's ~/.cache."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_setup_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    old = os.environ.get("MMEMU_CACHE_DIR")
    os.environ["MMEMU_CACHE_DIR"] = str(tmp_path_factory.mktemp("setup-cache"))
    yield
    if old is None:
        os.environ.pop("MMEMU_CACHE_DIR", None)
    else:
        os.environ["MMEMU_CACHE_DIR"] = old
