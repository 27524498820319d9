"""``mmemu list``: the bundled scenarios, one line each; ``--params NAME``: one's parameters."""

from __future__ import annotations

import argparse

from emulator.cli import UsageError
from emulator.scenario import ScenarioError, bundled_scenarios, find_scenario, load_scenario

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", metavar="SCENARIO", help="list one scenario's parameters")


def run(args: argparse.Namespace) -> int:
    try:
        if args.params:
            scenario = load_scenario(find_scenario(args.params))
            print(f"{scenario.name}: {scenario.summary}")
            for name, (default, help_) in scenario.param_help().items():
                print(f"  {name:<16s} {default!s:<10s} {help_}")
            print("  vm.<sysctl>=N    any sysctl by kernel name; cost.<name>=NS any cost")
            return 0
        for name, path in bundled_scenarios().items():
            scenario = load_scenario(path)
            print(f"{name:<18s} {scenario.summary}")
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    return 0
