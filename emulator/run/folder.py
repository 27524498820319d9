"""A results folder holds one run, written whole.

A run writes into a fresh temporary folder beside ``--out`` (``.NAME.XXXX.partial``) and moves
it into place when its results are complete: the files of an earlier run in ``--out`` never
sit beside the new ones, a refused run (bad input) never touches ``--out``, and a run that
fails while writing (no space left on the device, say) leaves ``--out`` as it was and removes
its temporary folder.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import attrs

__all__ = ["FolderError", "StagedFolder", "describe_os_error"]


class FolderError(Exception):
    """The results folder cannot be written: one line saying why."""


def describe_os_error(exc: OSError, where: Path | str) -> str:
    """One line for an OSError while writing results (``no space left on device`` first)."""
    if exc.errno == errno.ENOSPC:
        return f"no space left on device writing {where}"
    if exc.errno == errno.EDQUOT:
        return f"disk quota exceeded writing {where}"
    what = exc.strerror or type(exc).__name__
    return f"cannot write {where}: {what}"


@attrs.define
class StagedFolder:
    """``out``'s contents, built in a temporary folder beside it (:attr:`path`)."""

    out: Path
    path: Path

    @classmethod
    def create(cls, out: Path) -> StagedFolder:
        """A fresh temporary folder beside ``out`` (whose parents are created)."""
        if out.exists() and not out.is_dir():
            raise FolderError(f"--out {str(out)!r}: exists and is not a folder")
        parent = out.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=parent))
        except OSError as exc:
            raise FolderError(f"--out {str(out)!r}: {describe_os_error(exc, parent)}") from None
        path.chmod(0o777 & ~_umask())
        return cls(out, path)

    def commit(self) -> None:
        """Put the finished folder in place of ``out`` (an earlier run's folder is replaced
        whole)."""
        old = None
        if self.out.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".old", dir=self.out.parent)
            )
            os.replace(self.out, old / "run")
        try:
            os.replace(self.path, self.out)
        except OSError:
            if old is not None:
                os.replace(old / "run", self.out)
                shutil.rmtree(old, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Remove the temporary folder (a refused or failed run)."""
        shutil.rmtree(self.path, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
