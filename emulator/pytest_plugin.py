"""pytest plugin (entry point ``mmemu``): fixtures for test suites written against mmemu.

* ``mm_kernel`` — a factory: ``k = mm_kernel(memory="1G", cpus=4, strategy="random(3)")``
  returns an :class:`emulator.testing.EmulatedKernel`; ``await k.run(per_cpu=fn)`` runs one
  actor per CPU and checks every invariant afterwards.
* ``mm_seed`` — the seed for this test: ``--mm-seed N`` on the command line, else 0. Loop a
  suite over seeds with ``for s in $(seq 50); do pytest --mm-seed $s; done``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from emulator.testing import EmulatedKernel, make_kernel


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--mm-seed", type=int, default=0, help="seed for mmemu's mm_seed fixture")


@pytest.fixture
def mm_seed(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--mm-seed"))


@pytest.fixture
def mm_kernel(mm_seed: int) -> Callable[..., EmulatedKernel]:
    def factory(**kwargs: Any) -> EmulatedKernel:
        kwargs.setdefault("seed", mm_seed)
        return make_kernel(**kwargs)

    return factory
