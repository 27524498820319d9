"""What CPUs do: allocation mixes, rates, lifetimes, phases, concurrent streams, free patterns,
and the CPU actor."""

from emulator.workload.cpu import STAT_INTERVAL_NS, CpuProgram
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
    "STAT_INTERVAL_NS",
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
