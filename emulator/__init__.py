"""mmemu: an actor-based emulator of the Linux page allocator and memory compaction.

Layers (each imports only those above it; docs/architecture.md has the full table):

* :mod:`emulator.engine`   generic virtual-time actor runtime on trio (knows nothing of memory);
* :mod:`emulator.mm`       the kernel model, a package per kernel mechanism;
* :mod:`emulator.workload` what CPUs do;
* :mod:`emulator.scenario` the scenario API; :mod:`emulator.cli` the ``mmemu`` command.
"""

from emulator.native import install as _install_native

__version__ = "0.1.0"

# before any compiled module is imported: use the compiled build if there is one for exactly
# these sources (emulator.native)
_install_native()
