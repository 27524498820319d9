"""pytest plugin (entry point ``mmemu``): fixtures for test suites written against mmemu.

* ``mm_kernel`` — a factory: ``k = mm_kernel(memory="1G", cpus=4, strategy="random(3)")``
  returns an :class:`emulator.testing.EmulatedKernel`; ``await k.run(per_cpu=fn)`` runs one
  actor per CPU and checks every invariant afterwards.
* ``mm_seed`` — the seed for this test: ``--mm-seed N`` on the command line, else 0. Loop a
  suite over seeds with ``for s in $(seq 50); do pytest --mm-seed $s; done``.
* ``@pytest.mark.explore(runs=N, strategy="pct"|"random", depth=D, perturb=False, seed=S)`` —
  runs an async test body under ``N`` schedules; a failing one is written to a file that
  ``pytest --mm-replay FILE`` reruns exactly (:mod:`emulator.pytest_explore`).

Trio mode: an ``async def`` test that uses one of these fixtures is marked ``@pytest.mark.trio``
by the plugin, so it runs under pytest-trio without ``trio_mode = true`` in the project's
configuration (a project outside this repository needs nothing but ``pip install mmemu[test]``).
Tests that already carry a ``trio``, ``anyio`` or ``asyncio`` marker are left alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from emulator.pytest_explore import explore_state, install
from emulator.testing import EmulatedKernel, make_kernel

FIXTURES = frozenset({"mm_kernel", "mm_seed"})
_OTHER_ASYNC_MARKERS = ("trio", "anyio", "asyncio")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--mm-seed", type=int, default=0, help="seed for mmemu's mm_seed fixture")
    parser.addoption(
        "--mm-replay",
        metavar="FILE",
        default=None,
        help="rerun the test a failed @pytest.mark.explore run wrote FILE for, on that schedule",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "explore(runs=20, strategy='pct', depth=3, perturb=False, seed=0): run the test body "
        "under many schedules of the mm_kernel it makes (mmemu)",
    )


def _wants_trio(item: pytest.Item) -> bool:
    fn = getattr(item, "obj", None)
    if fn is None or not inspect.iscoroutinefunction(fn):
        return False
    if not FIXTURES & set(getattr(item, "fixturenames", ())):
        return False
    return all(item.get_closest_marker(m) is None for m in _OTHER_ASYNC_MARKERS)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Wrap the exploring tests, and mark the async tests that use mmemu's fixtures for
    pytest-trio."""
    install(config, items)
    marked = [item for item in items if _wants_trio(item)]
    if not marked:
        return
    if not config.pluginmanager.hasplugin("trio"):
        raise pytest.UsageError(
            f"{marked[0].nodeid} is an async test using mmemu's fixtures, which needs "
            "pytest-trio: pip install 'mmemu[test]' (or pytest-trio)"
        )
    for item in marked:
        item.add_marker(pytest.mark.trio)


@pytest.fixture
def mm_seed(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--mm-seed"))


@pytest.fixture
def mm_kernel(mm_seed: int, request: pytest.FixtureRequest) -> Callable[..., EmulatedKernel]:
    def factory(**kwargs: Any) -> EmulatedKernel:
        kwargs.setdefault("seed", mm_seed)
        state = explore_state(request.node)
        if state is not None:
            # an exploring (or replaying) run: its schedule, whatever the body asked for
            kwargs["strategy"] = state.strategy_for_next_kernel()
            kwargs["perturb"] = state.perturb
            kernel = make_kernel(**kwargs)
            state.kernels.append(kernel)
            return kernel
        return make_kernel(**kwargs)

    return factory
