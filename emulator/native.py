"""The optional compiled build: the hot path compiled with mypyc, the same source as pure Python.

Pure Python is the reference. Where a C compiler and mypy (which ships mypyc) are present,
``python -m emulator.compile`` (``python3 dev.py`` runs it on install) compiles the modules
in :data:`COMPILED` into C extensions, from an untouched copy of the source, and stores them
outside the source tree, under ``sys.prefix`` (the venv), in a folder named by a digest of
every source file of the package, the Python version and the module list. Importing
``emulator`` then loads those extensions in place of the ``.py`` files, all of them or none:

* a build made from other sources (any ``.py`` of the package edited since) is never loaded:
  the run is pure Python until the next build;
* ``MMEMU_PURE_PYTHON=1`` forces pure Python; ``MMEMU_PURE_PYTHON=0`` uses the build even under
  pytest, which otherwise runs the pure-Python reference (the tests patch and subclass engine
  classes, which compiled classes do not allow).

Where no compiler or no mypyc is found, the build prints one line saying so and the package
runs as pure Python. ``mmemu --version`` says which is in use (:func:`describe`).
``tests/test_native_build.py`` checks that both give byte-identical events, schedule and
kernel files.

This module is never compiled itself, and imports nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = [
    "COMPILED",
    "ENV",
    "build",
    "build_dir",
    "describe",
    "fresh_build",
    "install",
    "mode",
    "why_not",
]

#: the modules compiled with mypyc: the engine's scheduler and primitives, the recorder, the
#: mm code that is functions over the model's structs (the buddy core, pcp refill and free
#: paths, watermarks, fallback, LRU, migration, the compaction scanners) and the CPUs' workload
#: loop (CpuProgram). A compiled class runs its ``__init__`` when it is unpickled (the set-up
#: cache), so the compiled classes the cache holds pickle their constructor's arguments and
#: their state (``__reduce__``: the engine's locks and wait queues, CpuProgram, Cpu,
#: PerCpuPages, Rmap) or define ``__new__`` (PageAllocator, Memmap, Lruvec, whose
#: constructors build state); and it takes no weak references (per-allocator state of other
#: modules lives in ``PageAllocator.extensions``). Zone stays interpreted (it has several
#: bases; a compiled class has one).
COMPILED: tuple[str, ...] = (
    "emulator.engine.actor",
    "emulator.engine.recorder",
    "emulator.engine.sim",
    "emulator.engine.sync",
    "emulator.mm.alloc_latency",
    "emulator.mm.compaction.compact",
    "emulator.mm.compaction.isolate_free",
    "emulator.mm.compaction.isolate_migrate",
    "emulator.mm.memmap",
    "emulator.mm.migrate",
    "emulator.mm.page_alloc.allocator",
    "emulator.mm.page_alloc.buddy",
    "emulator.mm.page_alloc.drain",
    "emulator.mm.page_alloc.fallback",
    "emulator.mm.page_alloc.highatomic",
    "emulator.mm.page_alloc.isolation",
    "emulator.mm.page_alloc.page_free",
    "emulator.mm.page_alloc.pcp",
    "emulator.mm.page_alloc.rmqueue",
    "emulator.mm.page_alloc.watermark",
    "emulator.mm.reclaim.lru",
    "emulator.mm.reclaim.lruvec",
    "emulator.mm.reclaim.rmap",
    "emulator.workload.cpu",
)
#: ``1``: always pure Python; ``0``: the compiled build where there is one, even under pytest
ENV = "MMEMU_PURE_PYTHON"
_PACKAGE = Path(__file__).resolve().parent
_MANIFEST = "manifest.json"
_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def source_digest() -> str:
    """sha256 over every source file of the package, the Python version and :data:`COMPILED`
    (a build is used only with exactly the sources it was compiled from)."""
    h = hashlib.sha256()
    h.update(f"{sys.implementation.cache_tag} {_SUFFIX} {' '.join(COMPILED)}\n".encode())
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(_PACKAGE)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def _stamps() -> list[list[object]]:
    """(path, size, mtime) of every source file: a cheap first check of the digest."""
    return [
        [str(p.relative_to(_PACKAGE)), st.st_size, st.st_mtime_ns]
        for p in sorted(_PACKAGE.rglob("*.py"))
        for st in (p.stat(),)
    ]


def build_root() -> Path:
    """Where builds are stored: beside the installed packages, never in the source tree."""
    return Path(sys.prefix) / "mmemu-compiled"


def build_dir(digest: str | None = None) -> Path:
    """The folder of the build for ``digest`` (default: the current sources)."""
    return build_root() / (digest or source_digest())[:24]


def fresh_build() -> tuple[Path, dict[str, str]] | None:
    """The current sources' build folder and its files by module name, or None."""
    root = build_root()
    if not root.is_dir():
        return None
    stamps = _stamps()
    for folder in root.iterdir():
        try:
            manifest = json.loads((folder / _MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if manifest.get("stamps") == stamps and manifest.get("modules") == list(COMPILED):
            break  # the sources are untouched since this build (same sizes and times)
    else:
        folder = build_dir()
        try:
            manifest = json.loads((folder / _MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("digest") != source_digest():
            return None
    files: dict[str, str] = manifest.get("files", {})
    if set(COMPILED) - files.keys() or not all((folder / f).is_file() for f in files.values()):
        return None
    return folder, files


class _CompiledFinder(importlib.abc.MetaPathFinder):
    """Loads the compiled modules (and mypyc's shared library for them) from the build."""

    def __init__(self, folder: Path, files: dict[str, str]) -> None:
        self.folder = folder
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        name = self.files.get(fullname)
        if name is None:
            return None
        where = str(self.folder / name)
        loader = importlib.machinery.ExtensionFileLoader(fullname, where)
        return importlib.util.spec_from_file_location(fullname, where, loader=loader)


_mode: str | None = None


def _decide() -> str:
    forced = os.environ.get(ENV, "")
    if forced == "1":
        return f"pure Python ({ENV}=1)"
    if forced != "0" and "_pytest" in sys.modules:
        return "pure Python (the reference, under pytest)"
    found = fresh_build()
    if found is None:
        if build_root().is_dir():
            return "pure Python (no compiled build of these sources: python -m emulator.compile)"
        return "pure Python"
    folder, files = found
    if any(m in sys.modules for m in COMPILED):
        return "pure Python (modules were imported before the compiled build was found)"
    sys.meta_path.insert(0, _CompiledFinder(folder, files))
    return f"compiled (mypyc, {len(COMPILED)} modules)"


def install() -> str:
    """Decide once, before the first compiled module is imported, whether this process runs the
    compiled build, and install its loader if so. Returns :func:`mode`."""
    global _mode
    if _mode is None:
        _mode = _decide()
    return _mode


def mode() -> str:
    """``"compiled (mypyc, N modules)"`` or ``"pure Python ..."`` (with the reason)."""
    return install()


def describe() -> str:
    """The build in use, for ``mmemu --version``."""
    return mode()


# -- building ---------------------------------------------------------------------------------


def _mypy_config(pyproject: Path) -> str:
    """The ``[tool.mypy]`` sections of the project's pyproject.toml (mypyc type-checks first)."""
    if not pyproject.is_file():
        return '[tool.mypy]\npython_version = "3.11"\n'
    keep: list[str] = []
    on = False
    for line in pyproject.read_text().splitlines():
        if line.startswith("["):
            on = line.lstrip("[").startswith("tool.mypy")
        if on:
            keep.append(line)
    return "\n".join(keep) + "\n"


def why_not() -> str | None:
    """Why this machine cannot compile (no C compiler, no mypyc), or None if it can."""
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc (part of mypy) is not installed"
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools (which mypyc builds with) is not installed"
    cc = os.environ.get("CC", "cc").split()[0]
    if shutil.which(cc) is None and shutil.which("gcc") is None:
        return "no C compiler (cc/gcc) found"
    return None


def build(quiet: bool = True) -> tuple[bool, str]:
    """Compile :data:`COMPILED` for the current sources into :func:`build_dir` (unless already
    built). Returns (compiled?, a one-line message)."""
    digest = source_digest()
    dest = build_dir(digest)
    if (dest / _MANIFEST).is_file() and fresh_build() is not None:
        return True, f"compiled build up to date ({dest})"
    reason = why_not()
    if reason is not None:
        return False, f"{reason}: running as pure Python"
    build_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmemu-mypyc-") as tmp:
        work = Path(tmp)
        skip = shutil.ignore_patterns("__pycache__", "*.so")
        shutil.copytree(_PACKAGE, work / "emulator", ignore=skip)
        (work / "pyproject.toml").write_text(_mypy_config(_PACKAGE.parent / "pyproject.toml"))
        paths = [m.replace(".", "/") + ".py" for m in COMPILED]
        proc = subprocess.run(
            [sys.executable, "-m", "mypyc", *paths],
            cwd=work,
            capture_output=True,
            text=True,
            env={**os.environ, "MYPY_CACHE_DIR": str(work / ".mypy_cache")},
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["?"]
            return False, f"mypyc failed ({tail[0][:200]}): running as pure Python"
        files = {m: m.replace(".", "/") + _SUFFIX for m in COMPILED}
        for lib in work.glob(f"*__mypyc{_SUFFIX}"):
            files[lib.name[: -len(_SUFFIX)]] = lib.name
        staged = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=build_root()))
        for rel in files.values():
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / rel, staged / rel)
        manifest = {
            "digest": digest,
            "modules": list(COMPILED),
            "files": files,
            "stamps": _stamps(),
        }
        (staged / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    # one build per digest: replace an older build of the same sources whole, drop stale ones
    for old in build_root().iterdir():
        if old != staged:
            shutil.rmtree(old, ignore_errors=True)
    staged.rename(dest)
    return True, f"compiled {len(COMPILED)} modules with mypyc ({dest})"
