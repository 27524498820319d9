"""Progress on the terminal for ``mmemu run``, with rich: set-up first, then virtual time.

From the first second something moves: booting the machine and the scenario's set-up (which
can take tens of seconds for a large machine's fragmented past) show as their own task with a
spinner and elapsed wall time; the run then shows a bar of virtual time. Wall-clock time is
for display only; the model never sees it. Disabled (every method a no-op) when stderr is not
a terminal or with ``--quiet``.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import (
    Progress as RichProgress,
)

__all__ = ["Progress"]

_STAGES = {
    "boot": "booting the machine",
    "initial state": "loading the initial state",
    "set-up": "scenario set-up (the machine's past)",
    "run": "running",
}


class Progress:
    """Set-up stages and the run's virtual-time bar (``stage`` and ``advance`` callbacks)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._rich: RichProgress | None = None
        self._setup: TaskID | None = None
        self._run: TaskID | None = None
        self._last = 0.0
        if enabled:
            self._rich = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[virtual]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()

    def stage(self, name: str) -> None:
        """A set-up stage (``boot``, ``set-up``) or the run (``run``) begins."""
        rich = self._rich
        if rich is None:
            return
        text = _STAGES.get(name, name)
        if name == "run":
            if self._setup is not None:
                rich.update(self._setup, completed=1, total=1, description="set-up done")
                rich.stop_task(self._setup)
            self._run = rich.add_task("run", total=1.0, virtual="")
            return
        if self._setup is None:
            self._setup = rich.add_task(text, total=None, virtual="")
        else:
            rich.update(self._setup, description=text)

    def advance(self, now_ns: int, duration_ns: int) -> None:
        """The run reached virtual time ``now_ns`` of ``duration_ns`` (throttled to 10/s)."""
        rich = self._rich
        if rich is None or self._run is None:
            return
        t = time.monotonic()
        if t - self._last < 0.1:
            return
        self._last = t
        frac = min(1.0, now_ns / duration_ns) if duration_ns else 1.0
        rich.update(self._run, completed=frac, virtual=f"{now_ns / 1e9:.3f} s virtual")
