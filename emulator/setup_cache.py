"""The machine after a scenario's set-up, cached on disk and reused by later runs.

A scenario's ``setup`` hook stands for the machine's past (the default scenario's fills 4 GiB
with a random mix of allocations, page cache and slab): it is a pure function of the scenario,
its parameters and the seed, so its result can be kept and loaded again instead of being
rebuilt. The cache keeps the whole :class:`~emulator.runner.RunContext` as it stands after
the set-up (machine, allocator, CPU programs and their random streams), pickled, with the run's
own :class:`~emulator.engine.Sim` and recorder left out and put back on loading. A run from the
cache is byte-identical to one that ran the set-up (``tests/scenarios/test_setup_cache.py``).

The key is exact: the mmemu version, the Python version, a digest of mmemu's own source, the
build in use (compiled or pure Python, :mod:`emulator.native`), the scenario file's bytes,
every parameter (the seed included), and the engine options that reach the set-up (strict
mode, driver). A scenario without a file (built in code) is never cached.

Where: ``$MMEMU_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmemu/machines``, else
``~/.cache/mmemu/machines``. ``MMEMU_CACHE=off`` (or ``mmemu run --no-cache``) turns it off.
Only set-ups that took at least :data:`MIN_SETUP_S` of CPU time are stored (a small machine is
quicker to build than to load), at most :data:`MAX_ENTRIES` entries are kept (the least
recently used go first), and an entry that cannot be read is rebuilt and replaced.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

import emulator
from emulator import native

__all__ = ["MAX_ENTRIES", "MIN_SETUP_S", "SetupCache", "default_cache"]

#: set-ups quicker than this (CPU seconds) are not stored
MIN_SETUP_S = 0.5
#: entries kept on disk (least recently used removed first)
MAX_ENTRIES = 16
#: a pickled machine larger than this is not stored (a 64 GiB machine)
MAX_BYTES = 1 << 30
_FORMAT = 1


@functools.cache
def source_digest() -> str:
    """sha256 over mmemu's own source files (a changed model never loads an old machine)."""
    root = Path(emulator.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class _Pickler(pickle.Pickler):
    def __init__(self, f: io.BytesIO, external: dict[int, str]) -> None:
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self._external = external

    def persistent_id(self, obj: Any) -> str | None:
        return self._external.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: io.BytesIO, external: dict[str, Any]) -> None:
        super().__init__(f)
        self._external = external

    def persistent_load(self, pid: Any) -> Any:
        return self._external[pid]


@attrs.define
class SetupCache:
    """A folder of cached post-set-up machines (see the module docstring)."""

    root: Path
    min_setup_s: float = MIN_SETUP_S
    max_entries: int = MAX_ENTRIES
    #: what the last :meth:`run_setup` did: ``"hit"``, ``"stored"``, ``"skipped"`` or ``"off"``
    last: str = "off"

    def key(
        self, scenario_path: str | None, params_json: dict[str, Any], engine: dict[str, Any]
    ) -> str | None:
        """The entry's name, or None when the run cannot be cached (no scenario file)."""
        if scenario_path is None:
            return None
        try:
            scenario_bytes = Path(scenario_path).read_bytes()
        except OSError:
            return None
        h = hashlib.sha256()
        h.update(
            json.dumps(
                {
                    "format": _FORMAT,
                    "mmemu": emulator.__version__,
                    "python": sys.version,
                    "source": source_digest(),
                    "build": native.mode(),
                    "scenario": hashlib.sha256(scenario_bytes).hexdigest(),
                    "params": params_json,
                    "engine": engine,
                },
                sort_keys=True,
                default=str,
            ).encode()
        )
        return h.hexdigest()

    def run_setup(
        self,
        key: str | None,
        ctx: Any,
        external: dict[str, Any],
        setup: Callable[[], None],
    ) -> Any:
        """The context after the set-up: loaded from the cache when ``key`` is stored, else
        ``ctx`` after ``setup()``, stored when the set-up was slow enough. ``external`` names
        the objects that belong to this run and are not cached (the Sim, the recorders): they
        stand in for themselves in the loaded context."""
        if key is None:
            self.last = "off"
            setup()
            return ctx
        path = self.root / f"{key}.pickle"
        loaded = self._load(path, external)
        if loaded is not None:
            self.last = "hit"
            return loaded
        c0 = time.process_time()
        setup()
        if time.process_time() - c0 < self.min_setup_s:
            self.last = "skipped"
            return ctx
        self.last = "stored" if self._store(path, ctx, external) else "skipped"
        return ctx

    def _load(self, path: Path, external: dict[str, Any]) -> Any:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            ctx = _Unpickler(io.BytesIO(data), external).load()
        except Exception:
            # unreadable (truncated, from an incompatible build): rebuild and replace it
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # most recently used
        return ctx

    def _store(self, path: Path, ctx: Any, external: dict[str, Any]) -> bool:
        buf = io.BytesIO()
        try:
            _Pickler(buf, {id(obj): name for name, obj in external.items()}).dump(ctx)
        except Exception:
            return False  # a scenario put something unpicklable on the machine: not cached
        data = buf.getbuffer()
        if data.nbytes > MAX_BYTES:
            return False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)  # atomic: concurrent runs never see half an entry
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._prune()
        except OSError:
            return False  # a read-only or full cache folder only costs the speed-up
        return True

    def _prune(self) -> None:
        entries = []
        for p in self.root.glob("*.pickle"):
            try:
                entries.append((p.stat().st_mtime, p))
            except OSError:
                continue
        entries.sort(reverse=True)
        for _, p in entries[self.max_entries :]:
            p.unlink(missing_ok=True)


def default_cache() -> SetupCache | None:
    """The user's cache (see the module docstring), or None when ``MMEMU_CACHE=off``."""
    if os.environ.get("MMEMU_CACHE", "").lower() in {"off", "0", "no", "false"}:
        return None
    where = os.environ.get("MMEMU_CACHE_DIR")
    if where:
        return SetupCache(Path(where))
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return SetupCache(Path(base) / "mmemu" / "machines")
