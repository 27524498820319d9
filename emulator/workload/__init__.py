"""What CPUs do: allocation mixes, rates, lifetimes, phases, concurrent streams, free patterns,
and the CPU actor."""

from emulator.workload.cpu import CpuProgram
from emulator.workload.spec import (
    FOREVER,
    AllocClass,
    FreePattern,
    Lifetime,
    Phase,
    Stream,
    Workload,
    parse_duration,
    parse_lifetime,
    parse_size_mib,
)

__all__ = [
    "FOREVER",
    "AllocClass",
    "CpuProgram",
    "FreePattern",
    "Lifetime",
    "Phase",
    "Stream",
    "Workload",
    "parse_duration",
    "parse_lifetime",
    "parse_size_mib",
]
