#!/usr/bin/env python3
"""Zero-setup entry point: ``python3 dev.py run ...`` and ``python3 dev.py test ...``.

On first use (or when pyproject.toml changes) it creates ``.venv`` beside this file and installs
mmemu into it in editable mode with its test and benchmark extras. Where a C compiler is present
it then compiles the hot path with mypyc (again whenever the sources changed; about a minute of
CPU); where not, it says so in one line and mmemu runs as pure Python (``MMEMU_PURE_PYTHON=1``
skips the compile; see ``emulator/native.py``). Then:

* ``python3 dev.py run [ARGS]``   runs ``mmemu run [ARGS]`` (the default scenario with no ARGS);
* ``python3 dev.py test [ARGS]``  runs ruff, then mypy over ``emulator/`` (its settings are in
  pyproject.toml), then the test suite (``pytest ARGS``) in parallel, one pytest-xdist worker
  per core (``-n N`` or ``MMEMU_TEST_WORKERS=N`` chooses the count, ``0`` runs serially);
* ``python3 dev.py mmemu ARGS``   runs any ``mmemu`` subcommand;
* ``python3 dev.py python ARGS``  runs the venv's python (benchmarks: ``python3 dev.py python
  benchmarks/engine_vs_simpy.py``).

It needs nothing but python3 and access to the package index.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".mmemu-installed"


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> None:
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv (first use)", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("dev.py: installing mmemu and its dependencies into .venv", file=sys.stderr)
    subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[test,bench,cluster,compiled]",
        ],
        check=True,
    )
    STAMP.write_text(_fingerprint())


def ensure_compiled() -> None:
    """Compile the hot path for the current sources if it is not (``python -m
    emulator.compile``: a few seconds to check, about a minute of CPU to compile). Where there
    is no C compiler, or with ``MMEMU_PURE_PYTHON=1``, it says so in one line and mmemu runs as
    pure Python."""
    if os.environ.get("MMEMU_PURE_PYTHON") == "1":
        return
    subprocess.run([str(BIN / "python"), "-m", "emulator.compile"], cwd=ROOT)


def _parallel(args: list[str]) -> list[str]:
    """pytest-xdist options for ``dev.py test``: one worker per core (``-n auto``), the tests of a
    file kept together so module- and session-scoped fixtures are built once per worker.
    Arguments that choose the parallelism themselves (``-n``, ``--numprocesses``, ``-p no:xdist``,
    ``--pdb``) are left alone; ``MMEMU_TEST_WORKERS`` overrides the count (``0``: serial)."""
    chosen = {"--numprocesses", "--pdb", "no:xdist", "-pno:xdist"}
    if any(a in chosen or a.startswith(("-n", "--numprocesses=")) for a in args):
        return []
    workers = os.environ.get("MMEMU_TEST_WORKERS", "auto")
    if workers == "0":
        return []
    return ["-n", workers, "--dist", "loadfile"]


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    try:
        ensure_venv()
    except subprocess.CalledProcessError as exc:
        print(f"dev.py: installing into .venv failed ({exc})", file=sys.stderr)
        return 2
    if cmd in {"run", "test", "mmemu", "python"}:
        ensure_compiled()
    if cmd == "run":
        return subprocess.call([str(BIN / "mmemu"), "run", *rest], cwd=ROOT)
    if cmd == "mmemu":
        return subprocess.call([str(BIN / "mmemu"), *rest], cwd=ROOT)
    if cmd == "python":
        return subprocess.call([str(BIN / "python"), *rest], cwd=ROOT)
    if cmd == "test":
        lint = subprocess.call([str(BIN / "ruff"), "check", "--quiet", "."], cwd=ROOT)
        if lint != 0:
            print("dev.py: ruff check failed", file=sys.stderr)
            return lint
        types = subprocess.call([str(BIN / "mypy")], cwd=ROOT)
        if types != 0:
            print("dev.py: mypy failed", file=sys.stderr)
            return types
        # pytest exits 5 when it collected no test: that is a failure here, like any non-zero.
        return subprocess.call(
            [str(BIN / "python"), "-m", "pytest", *_parallel(rest), *rest], cwd=ROOT
        )
    print(f"dev.py: unknown command {cmd!r} (run, test, mmemu, python)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
