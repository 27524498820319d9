"""``mmemu list``: the bundled scenarios, one line each; ``--params NAME``: one's parameters,
every sysctl, every cost and every kernel mitigation switch, each with its default and valid
range."""

from __future__ import annotations

import argparse

from rich import box
from rich.console import Console
from rich.table import Table

from emulator.cli import UsageError
from emulator.mm.costs import COST_NOTES, Costs
from emulator.mm.sysctl import TUNABLES
from emulator.scenario import (
    COST_PARAM,
    ScenarioError,
    bundled_scenarios,
    find_scenario,
    format_duration,
    load_scenario,
)

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        metavar="SCENARIO",
        help="list one scenario's parameters, the sysctls and the costs with their ranges",
    )


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    return console


def _params(name: str) -> None:
    scenario = load_scenario(find_scenario(name))
    console = _console()
    console.print(f"{scenario.name}: {scenario.summary}")
    table = Table(box=box.SIMPLE_HEAD)
    for col in ("parameter", "default", "valid", "meaning"):
        table.add_column(col)
    for pname, p in scenario.param_specs().items():
        table.add_row(pname, str(p.default), p.describe_range(), p.help)
    for t in TUNABLES.values():
        default = "computed at boot" if t.default is None else t.render(t.default).strip()
        table.add_row(t.name, default, t.describe(), t.doc)
    for cname, value in Costs().as_dict().items():
        table.add_row(
            f"cost.{cname}", format_duration(value), COST_PARAM.describe_range(), COST_NOTES[cname]
        )
    console.print(table)


def run(args: argparse.Namespace) -> int:
    try:
        if args.params:
            _params(args.params)
            return 0
        for name, path in bundled_scenarios().items():
            scenario = load_scenario(path)
            print(f"{name:<18s} {scenario.summary}")
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    return 0
