"""``@pytest.mark.explore``: run a test body under many schedules; replay a failing one.

``@pytest.mark.explore(runs=50, strategy="pct", depth=3, perturb=False, seed=0)`` on an async
test that uses the ``mm_kernel`` fixture runs the body ``runs`` times; in run ``i`` every kernel
the body makes with ``mm_kernel(...)`` is scheduled by ``strategy`` seeded with ``seed + i``
(``--mm-seed`` moves ``seed``), whatever strategy the body asks for. The first run that fails
stops the test: the failure names the run and its seed, and a schedule file (the decisions every
kernel made in that run) is written under ``.mmemu/replays/``. ``pytest --mm-replay FILE`` then
runs that test alone, once, with exactly those decisions.

Fixtures other than ``mm_kernel`` are made once for all runs: a body should keep its per-run
state inside itself.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from emulator import __version__
from emulator.engine import PCT, RandomStrategy, Replay, Strategy
from emulator.engine.strategy import MAX_DEPTH, PCT_DEFAULT_DEPTH
from emulator.testing import EmulatedKernel

__all__ = ["REPLAY_FORMAT", "ExploreState", "explore_state", "install"]

REPLAY_FORMAT = "mmemu-pytest-replay/1"
STATE_KEY = pytest.StashKey["ExploreState"]()


@attrs.define
class ExploreState:
    """The schedule of the current run of an exploring (or replaying) test."""

    strategy: str = "pct"
    depth: int = PCT_DEFAULT_DEPTH
    perturb: bool = False
    seed: int = 0
    #: the decisions per kernel to replay (``--mm-replay``), else None
    replay: list[list[tuple[int, int]]] | None = None
    kernels: list[EmulatedKernel] = attrs.field(factory=list)

    def strategy_for_next_kernel(self) -> Strategy:
        if self.replay is not None:
            k = len(self.kernels)
            decisions = self.replay[k] if k < len(self.replay) else []
            return Replay(decisions, delays=self.perturb)
        if self.strategy == "random":
            return RandomStrategy(self.seed, perturb=self.perturb)
        # steps: the usual size of a test's schedule; PCT's change points fall among them
        return PCT(self.seed, self.depth, steps=2_000, perturb=self.perturb)


def explore_state(node: pytest.Item) -> ExploreState | None:
    return node.stash.get(STATE_KEY, None)


def _options(marker: pytest.Mark, nodeid: str) -> dict[str, Any]:
    known = {"runs", "strategy", "depth", "perturb", "seed"}
    extra = set(marker.kwargs) - known
    if marker.args or extra:
        raise pytest.UsageError(
            f"{nodeid}: @pytest.mark.explore takes keywords {', '.join(sorted(known))}"
        )
    opts = {"runs": 20, "strategy": "pct", "depth": PCT_DEFAULT_DEPTH, "perturb": False}
    opts["seed"] = 0
    opts.update(marker.kwargs)
    if not isinstance(opts["runs"], int) or not 1 <= opts["runs"] <= 1_000_000:
        raise pytest.UsageError(f"{nodeid}: explore(runs=...) must be an int in 1..1000000")
    if opts["strategy"] not in ("random", "pct"):
        raise pytest.UsageError(f"{nodeid}: explore(strategy=...) must be 'random' or 'pct'")
    if not isinstance(opts["depth"], int) or not 1 <= opts["depth"] <= MAX_DEPTH:
        raise pytest.UsageError(f"{nodeid}: explore(depth=...) must be an int in 1..{MAX_DEPTH}")
    return opts


def _replay_path(root: Path, nodeid: str, seed: int) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]
    return root / ".mmemu" / "replays" / f"{name}-seed{seed}.json"


def _explored(item: pytest.Function, fn: Callable[..., Awaitable[Any]]) -> Any:
    marker = item.get_closest_marker("explore")
    assert marker is not None
    opts = _options(marker, item.nodeid)
    base_seed = opts["seed"] + int(item.config.getoption("--mm-seed"))
    root = Path(item.config.rootpath)

    @functools.wraps(fn)
    async def explore(*args: Any, **kwargs: Any) -> None:
        for i in range(opts["runs"]):
            seed = base_seed + i
            state = ExploreState(opts["strategy"], opts["depth"], opts["perturb"], seed)
            item.stash[STATE_KEY] = state
            try:
                await fn(*args, **kwargs)
            except Exception as exc:
                path = _replay_path(root, item.nodeid, seed)
                path.parent.mkdir(parents=True, exist_ok=True)
                doc = {
                    "format": REPLAY_FORMAT,
                    "mmemu_version": __version__,
                    "test": item.nodeid,
                    "run": i,
                    "strategy": {
                        "name": opts["strategy"],
                        "seed": seed,
                        "depth": opts["depth"],
                        "perturb": opts["perturb"],
                    },
                    "delays": opts["perturb"],
                    "kernels": [[list(d) for d in k.sim.decisions] for k in state.kernels],
                    "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                }
                path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
                raise AssertionError(
                    f"explore: run {i} of {opts['runs']} (schedule seed {seed}, "
                    f"{opts['strategy']}) failed: {type(exc).__name__}: {exc}\n"
                    f"replay: pytest --mm-replay {path}"
                ) from exc
            finally:
                del item.stash[STATE_KEY]

    return explore


def _replayed(item: pytest.Function, fn: Callable[..., Awaitable[Any]], doc: dict[str, Any]) -> Any:
    @functools.wraps(fn)
    async def replay(*args: Any, **kwargs: Any) -> None:
        state = ExploreState(
            doc["strategy"]["name"],
            doc["strategy"]["depth"],
            bool(doc["delays"]),
            doc["strategy"]["seed"],
            replay=[[(int(n), int(v)) for n, v in k] for k in doc["kernels"]],
        )
        item.stash[STATE_KEY] = state
        try:
            await fn(*args, **kwargs)
        finally:
            del item.stash[STATE_KEY]
        for k, recorded in zip(state.kernels, state.replay or [], strict=False):
            made = [tuple(d) for d in k.sim.decisions]
            if made != [tuple(d) for d in recorded]:
                raise AssertionError(
                    f"--mm-replay: the test made other decisions than recorded "
                    f"({len(made)} against {len(recorded)}): the test or mmemu changed"
                )

    return replay


def load_replay(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--mm-replay {path}: cannot read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != REPLAY_FORMAT:
        raise pytest.UsageError(f"--mm-replay {path}: not a {REPLAY_FORMAT!r} file")
    if doc.get("mmemu_version") != __version__:
        raise pytest.UsageError(
            f"--mm-replay {path}: recorded with mmemu {doc.get('mmemu_version')}, this is "
            f"mmemu {__version__}; a replay is exact only with the same version"
        )
    return doc


def install(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Wrap the exploring tests (collection time); with ``--mm-replay``, keep only its test."""
    replay_file = config.getoption("--mm-replay")
    if replay_file:
        doc = load_replay(replay_file)
        keep = [it for it in items if it.nodeid == doc["test"]]
        if not keep:
            raise pytest.UsageError(f"--mm-replay {replay_file}: no test {doc['test']!r} here")
        config.hook.pytest_deselected(items=[it for it in items if it not in keep])
        items[:] = keep
        item = keep[0]
        assert isinstance(item, pytest.Function)
        item.obj = _replayed(item, item.obj, doc)
        return
    for item in items:
        if item.get_closest_marker("explore") is None or not isinstance(item, pytest.Function):
            continue
        if not inspect.iscoroutinefunction(item.obj):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.explore needs an async test")
        item.obj = _explored(item, item.obj)
