"""Digests of the results folders of a fixed set of short runs, to show that a change to the code's
layout leaves every output byte-identical.

For each of the scenarios default, proactive, thp_fault_storm and compaction_test under the fifo
and random strategies (seed 7, a short ``--set duration=...``), it runs ``mmemu run`` in-process
and takes the SHA-256 of ``events.jsonl``, ``trace.json``, every kernel-format file,
``summary.json`` with its wall-clock fields (``wall_s``, ``setup_s``) removed and
``schedule.json`` with the scenario file's location and hash removed (``scenario_path``,
``scenario_sha256``: they name the source text, which a change of layout edits, and the folder
it was run from, which lets two checkouts be compared).

    python3 dev.py python benchmarks/run_output_digests.py --check
    python3 dev.py python benchmarks/run_output_digests.py --save   # after a change of output

``--check`` prints every file whose digest differs and exits 1 if any does. Run by hand (it takes
about a minute of CPU). The digests of the current model are kept beside this script
(``run_output_digests.json``, the default file of both options): a commit that changes what a
run writes re-saves them and says why in its message; a commit that only moves code leaves them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from emulator.cli import main as mmemu
from emulator.report.results import KERNEL_FILES

RUNS: list[tuple[str, str]] = [
    ("default", "30ms"),
    ("proactive", "600ms"),
    ("thp_fault_storm", "30ms"),
    ("compaction_test", "300ms"),
]
STRATEGIES = ("fifo", "random")
#: the digests of the current model's outputs
SAVED = Path(__file__).with_name("run_output_digests.json")
LEFT_OUT = {
    "summary.json": ("wall_s", "setup_s"),
    "schedule.json": ("scenario_path", "scenario_sha256"),
}


def _json_digest(path: Path) -> str:
    data: dict[str, Any] = json.loads(path.read_text())
    for key in LEFT_OUT[path.name]:
        data.pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def digests() -> dict[str, str]:
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario, duration in RUNS:
            for strategy in STRATEGIES:
                folder = Path(tmp) / f"{scenario}-{strategy}"
                args = ["run", scenario, "--out", str(folder), "--seed", "7", "--quiet"]
                args += ["--strategy", strategy, "--set", f"duration={duration}"]
                if mmemu(args) != 0:
                    raise SystemExit(f"run_output_digests: mmemu {' '.join(args)} failed")
                for name in ("events.jsonl", "trace.json", *KERNEL_FILES):
                    data = (folder / name).read_bytes()
                    out[f"{scenario}/{strategy}/{name}"] = hashlib.sha256(data).hexdigest()
                for name in LEFT_OUT:
                    out[f"{scenario}/{strategy}/{name}"] = _json_digest(folder / name)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--save", type=Path, nargs="?", const=SAVED, help=f"write the digests (default {SAVED})"
    )
    group.add_argument(
        "--check", type=Path, nargs="?", const=SAVED, help=f"compare with saved ones ({SAVED})"
    )
    ns = ap.parse_args(argv)
    now = digests()
    if ns.save is not None:
        ns.save.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"{len(now)} digests written to {ns.save}")
        return 0
    before: dict[str, str] = json.loads(ns.check.read_text())
    differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    for key in differ:
        print(f"differs: {key}")
    print(f"{len(now) - len(differ)} of {len(now)} digests identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
