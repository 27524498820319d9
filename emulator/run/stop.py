"""Stop signals (SIGINT, SIGTERM, SIGHUP) at any moment of ``mmemu run``, from the first import
to the last file written.

:class:`StopSignals` is installed first thing by :func:`emulator.cli.main`, before the
subcommands' imports. Until the machine's boot starts, a signal is only recorded (nothing is
lost, nothing half-done is interrupted); at the boot a recorded signal stops the run at once.
During the boot and the scenario's set-up (plain Python, possibly a minute for a big machine)
a signal raises :class:`KeyboardInterrupt` where it lands; during the run the engine's watcher
cancels the run between actor steps (:func:`emulator.runner.run_sim`); while the results are
written further signals are only counted. Either way the run ends with exit status
128 + the signal's number, a one-line message, and summary.json saying the ``reason`` and the
``stage`` the run had reached when the signal came.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import attrs

__all__ = ["PHASES", "STOP_SIGNALS", "StopSignals"]

#: the signals that stop a run cleanly, and the ``reason`` each gives in summary.json
STOP_SIGNALS: dict[int, str] = {
    signal.SIGINT: "interrupted",
    signal.SIGTERM: "terminated",
    signal.SIGHUP: "hangup",
}

#: a run's phases in order: ``import`` (mmemu's modules), ``validate`` (every input checked,
#: nothing written), ``boot`` (the machine), ``set-up`` (the scenario's past), ``run``
#: (virtual time), ``collect`` (results written)
PHASES = ("import", "validate", "boot", "set-up", "run", "collect")

#: phases in which a signal raises KeyboardInterrupt where it lands (plain Python, long)
_RAISING = ("boot", "set-up")


@attrs.define
class StopSignals:
    """The first stop signal's ``reason`` and ``stage``; the exit status it asks for."""

    signum: int | None = None
    extra: int = 0
    raise_now: bool = False
    #: the phase the run is in (one of :data:`PHASES`)
    stage: str = "import"
    #: the phase the run was in when the first signal came
    stage_at_signal: str | None = None
    _saved: dict[int, Any] = attrs.field(factory=dict)

    @property
    def reason(self) -> str | None:
        return STOP_SIGNALS[self.signum] if self.signum is not None else None

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signum) if self.signum is not None else 0

    def install(self) -> bool:
        """Take over the stop signals (main thread only); False where that is impossible."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in STOP_SIGNALS:
            self._saved[sig] = signal.signal(sig, self._handler)
        return True

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    def restore(self) -> None:
        """Give the signals back; after a stop, later ones are ignored instead (the process is
        about to exit with the first one's status, its results written)."""
        for sig, old in self._saved.items():
            signal.signal(sig, old if self.signum is None else signal.SIG_IGN)
        self._saved.clear()

    def enter(self, stage: str) -> None:
        """The run enters ``stage``; raises KeyboardInterrupt if a signal is pending and the
        stage is one a signal interrupts (boot, set-up)."""
        self.stage = stage
        self.raise_now = stage in _RAISING
        if self.raise_now and self.signum is not None:
            raise KeyboardInterrupt

    def note(self, signum: int) -> bool:
        """Record a signal; True if it is the first."""
        if self.signum is None:
            self.signum = signum
            self.stage_at_signal = self.stage
            return True
        self.extra += 1
        return False

    def _handler(self, signum: int, _frame: Any) -> None:
        if self.note(signum) and self.raise_now:
            raise KeyboardInterrupt
