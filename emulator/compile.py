"""``python -m emulator.compile``: build the compiled hot path for the current sources
(:mod:`emulator.native`) unless it is built already, or say in one line why this machine runs
pure Python. Silent when the build is up to date.

``python -m emulator.compile --status`` prints the build this process would use. Exit status
0 either way: pure Python is a complete fallback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from emulator.native import ENV, build, fresh_build, mode


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if args == ["--status"]:
        print(mode())
        return 0
    if args:
        print("usage: python -m emulator.compile [--status]", file=sys.stderr)
        return 2
    if os.environ.get(ENV) == "1":
        print(f"mmemu: {ENV}=1: not compiling, running as pure Python", file=sys.stderr)
        return 0
    if fresh_build() is not None:
        return 0
    print("mmemu: compiling the hot path with mypyc (one to two minutes)", file=sys.stderr)
    _compiled, message = build()
    print(f"mmemu: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
