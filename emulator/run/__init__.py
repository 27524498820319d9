"""A run of a scenario as phases (import, validate, boot, set-up, run, collect) and the
results folder it writes: :mod:`emulator.run.stop` (stop signals at any phase) and
:mod:`emulator.run.folder` (a results folder written whole or not at all)."""
