"""``mmemu run [SCENARIO] [--seed N] [--set NAME=VALUE ...] [--out DIR] [--strategy S]``.

Runs a scenario file (or a bundled scenario by name; ``default`` when none is given), shows the
set-up and then the run's progress on a terminal and a short summary at the end, and writes the
results folder, including ``schedule.json``: ``mmemu run --replay DIR/schedule.json`` reproduces
the run exactly.

Every input is checked before anything is written: a bad one is one line on stderr and exit 2.
SIGINT, SIGTERM and SIGHUP stop the run cleanly: the results so far are written (with
``reason`` saying what stopped it) and the exit status is 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from emulator.cli import UsageError
from emulator.cli_progress import Progress
from emulator.engine.recorder import compile_event_filter
from emulator.engine.sim import DRIVERS
from emulator.explore.replay import (
    ScheduleError,
    check_schedule,
    compare_replay,
    file_sha256,
    load_schedule,
    save_schedule,
)
from emulator.mm.tracepoints import unmatched_globs
from emulator.report.latency import LATENCY_FILE
from emulator.report.outputs import PlotFiles, SummaryFiles, TraceFile
from emulator.report.results import KERNEL_FILES, print_summary
from emulator.run.folder import FolderError, StagedFolder, describe_os_error
from emulator.run.stop import STOP_SIGNALS, StopSignals
from emulator.run.summary import StoppedAtStart
from emulator.runner import (
    EventsLog,
    Observer,
    Run,
    RunOptions,
    RunResult,
    ScenarioHookError,
    Stopped,
)
from emulator.scenario import (
    PROC_FILES,
    Scenario,
    ScenarioError,
    bundled_scenarios,
    find_scenario,
    from_proc,
    is_bundled,
    load_scenario,
)
from emulator.setup_cache import default_cache

__all__ = ["configure", "run"]

#: files a run writes besides the kernel files
RUN_FILES = ("events.jsonl", "summary.json", "schedule.json", "trace.json", LATENCY_FILE)

#: the ``reason`` of a run stopped by a signal
STOPPED_REASONS = frozenset(STOP_SIGNALS.values())

#: bytes of events.jsonl and trace.json per virtual second of the default scenario (a 4 GiB,
#: 8-CPU machine; measured: `mmemu run --set duration=20ms` writes 2.7 MB), per CPU
BYTES_PER_CPU_SECOND = 17_000_000
#: wall-clock seconds of boot and set-up per GiB of memory (measured: the default scenario's
#: 4 GiB set-up_s 1.9 s here; a 64 GiB machine about a minute)
SETUP_S_PER_GIB = 1.0
#: say so up front when a run is expected to write more than this, or set up for longer
BIG_OUTPUT_BYTES = 200 * 1024 * 1024
SLOW_SETUP_S = 10.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", help="scenario file or bundled name (default)")
    parser.add_argument("--seed", help="seed (overrides the scenario's), 0..2^32-1")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a parameter: memory=8G, cpus=16, duration=2s, vm.<sysctl>=N, cost.<name>=50ns, "
        "mitigation.<name>=on|off",
    )
    parser.add_argument(
        "--out", help="results folder (default: results/<scenario>-seed<N>[-NAME=VALUE...])"
    )
    parser.add_argument("--strategy", help="fifo, random or pct (seeded with --seed)")
    parser.add_argument(
        "--perturb",
        action="store_true",
        help="let random/pct also inject delays at preemption points (changes timing figures)",
    )
    parser.add_argument("--quantum", help="sync quantum, a duration (0 = exact; e.g. 1us)")
    parser.add_argument(
        "--from-proc",
        metavar="DIR",
        help="start from a real machine's state: DIR holds buddyinfo (needed), pagetypeinfo "
        "and zoneinfo (optional); meminfo and vmstat are not read, memory and nodes come "
        "from the files and the scenario's own set-up is skipped",
    )
    parser.add_argument(
        "--replay",
        metavar="SCHEDULE",
        help="replay a schedule.json from an earlier run exactly (its scenario and params; "
        "the scenario file is found where it was recorded, else beside the schedule)",
    )
    parser.add_argument("--no-events", action="store_true", help="do not record events.jsonl")
    parser.add_argument(
        "--no-trace",
        action="store_true",
        help="do not write trace.json (trace-only events that --events selects are still "
        "recorded in events.jsonl)",
    )
    parser.add_argument(
        "--trace-locks",
        choices=("zone", "contended", "all"),
        default="zone",
        help="lock holds in trace.json: zone (zone->lock, lru_lock; default), contended, all",
    )
    parser.add_argument("--plots", action="store_true", help="also write PNG plots (plots/)")
    parser.add_argument(
        "--events",
        metavar="GLOB[,GLOB]",
        help="record only these tracepoints, e.g. mm_compaction_*,mm_page_alloc",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail if model code touches shared state without synchronising (debugging)",
    )
    parser.add_argument(
        "--driver",
        choices=DRIVERS,
        default=None,
        help="engine driver: fast (default) or trio (the reference; same results, slower)",
    )
    parser.add_argument(
        "--check-determinism",
        action="store_true",
        help="run twice and name the first event where the two runs differ (exit 1 if any)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="build the machine's set-up even if a cached copy exists (MMEMU_CACHE=off: never "
        "cache; MMEMU_CACHE_DIR: where)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or summary")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.sets:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {item[:60]!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    if args.seed is not None:
        out["seed"] = args.seed
    if args.strategy is not None:
        out["strategy"] = args.strategy
    if args.quantum is not None:
        out["quantum"] = args.quantum
    if getattr(args, "perturb", False):
        out["perturb"] = True
    return out


def _default_out(scenario: Scenario, params: Any, args: argparse.Namespace) -> Path:
    """``results/<scenario>-seed<N>`` plus the strategy and quantum when not the defaults,
    every ``--set NAME=VALUE`` and ``replay`` for a replay, so runs that differ do not
    overwrite each other. A folder of that name holding another run (other parameters) is
    never reused: ``-2``, ``-3``, ... is added."""
    name = f"{scenario.name}-seed{params.seed}"
    strategy = str(params["strategy"])
    if args.strategy is not None or strategy != "fifo":
        name += f"-{strategy}"
    if args.quantum is not None or params["quantum"]:
        name += f"-quantum={params['quantum']}ns"
    for item in args.sets:
        k, _, v = item.partition("=")
        name += "-" + f"{k.strip()}={v.strip()}"
    if args.from_proc:
        name += "-from-proc"
    if args.replay:
        name += "-replay"
    for bad in "/ \\()',\"":
        name = name.replace(bad, "_")
    base = Path("results") / name[:200]
    doc = {"scenario": scenario.name, "params": params.as_json()}
    out = base
    n = 1
    while out.exists() and not _same_run(out, doc):
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def _same_run(folder: Path, doc: dict[str, Any]) -> bool:
    """True if ``folder`` holds a run of the same scenario and parameters (a rerun gives the
    same results: replacing it loses nothing)."""
    try:
        old = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and all(old.get(k) == v for k, v in doc.items())


class ProgressDisplay(Observer):
    """The terminal's progress line: the phase, then the run's virtual time as it goes."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def enter(self, stage: str) -> None:
        self.progress.stage(stage)

    def sampled(self, now_ns: int, end_ns: int) -> None:
        self.progress.advance(now_ns, end_ns)


def _options(args: argparse.Namespace, schedule: Any) -> RunOptions:
    """How the run is driven: a replay's strategy, --strict, --driver; the set-up cache (a
    /proc snapshot is not part of the cache key: such runs build their machine)."""
    return RunOptions(
        strategy=schedule.replay() if schedule is not None else None,
        strict=args.strict,
        driver=args.driver,
        until_ns=_replay_until(schedule),
        cache=None if args.no_cache or args.from_proc else default_cache(),
    )


def _replay_until(schedule: Any) -> int | None:
    """The end of a replay of a stopped run: just past the instant it stopped at."""
    if schedule is None or schedule.stopped is None:
        return None
    return int(schedule.stopped["virtual_ns"]) + 1


def _stopped(result: RunResult, events: Path | None) -> dict[str, Any] | None:
    """Where a run stopped early (a signal), for its schedule: a replay goes to there, and
    its first ``events_lines`` events are the recorded run's (``events_sha256``)."""
    if result.reason not in STOPPED_REASONS:
        return None
    doc: dict[str, Any] = {"reason": result.reason, "virtual_ns": result.virtual_ns}
    if events is not None and events.is_file():
        with events.open("rb") as f:
            doc["events_lines"] = sum(1 for _ in f)
    return doc


def _events_differ(schedule: Any, events: Path) -> bool:
    """The replay's events.jsonl (its first ``stopped.events_lines`` lines, for a stopped
    run) against the recording's ``events_sha256``."""
    lines = (schedule.stopped or {}).get("events_lines")
    if not isinstance(lines, int):
        return bool(file_sha256(events) != schedule.events_sha256)
    h = hashlib.sha256()
    with events.open("rb") as f:
        for i, line in enumerate(f):
            if i >= lines:
                break
            h.update(line)
    return bool(h.hexdigest() != schedule.events_sha256)


def _say_what_happens(
    args: argparse.Namespace, scenario: Scenario, params: Any, out: Path, schedule: Any
) -> None:
    """One line on stderr for a run that will write much or set up for long, and which
    scenario (bundled or a file) is used."""
    if args.quiet:
        return
    where = "bundled" if scenario.path and is_bundled(Path(scenario.path)) else "file"
    print(f"mmemu run: scenario {scenario.name} ({where}: {scenario.path})", file=sys.stderr)
    until = _replay_until(schedule)
    seconds = (params.duration_ns if until is None else until) / 1e9
    size = 0 if args.no_events else BYTES_PER_CPU_SECOND * params.cpus * seconds
    if args.no_trace:
        size /= 2
    setup = SETUP_S_PER_GIB * params.memory_mib / 1024
    if size > BIG_OUTPUT_BYTES or setup > SLOW_SETUP_S:
        print(
            f"mmemu run: expect about {_size(size)} of events and trace in {out} "
            f"({seconds:g} s of virtual time, {params.cpus} CPUs) and about {setup:.0f} s "
            "of set-up (--no-events or --events GLOB write less)",
            file=sys.stderr,
        )


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.0f} GB"


def _check_out(out: Path, from_proc: bool) -> None:
    """Refuse an output folder the results cannot be put in (before writing anything)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r}: exists and is not a folder")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {str(out)!r}: not writable")
    if out.is_dir():
        # the run replaces the folder whole: only an earlier run's folder (or an empty one)
        for entry in sorted(out.iterdir()):
            name = entry.name
            if name == "plots" and entry.is_dir():
                continue
            if name not in RUN_FILES and name not in KERNEL_FILES:
                raise UsageError(
                    f"--out {str(out)!r}: holds {name!r}, which is no run's file; a run "
                    "replaces its folder whole: give a new or an earlier run's folder"
                )
            if not entry.is_file() or entry.is_symlink():
                raise UsageError(f"--out {str(out)!r}: {name} exists and is not a regular file")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
        raise UsageError(f"--out {str(out)!r}: {parent} is not a writable folder")


def _prepare(args: argparse.Namespace) -> tuple[Scenario, Any, Any]:
    """Scenario, params and the schedule to replay (or None); every refusal is a UsageError."""
    schedule = None
    try:
        overrides = _overrides(args)
        if args.replay:
            schedule = load_schedule(args.replay)
            if overrides or args.from_proc:
                raise UsageError("--replay takes the scenario's parameters from the schedule")
            where = args.scenario or _replay_scenario(schedule)
            path = find_scenario(where)
            check_schedule(schedule, str(path))
            scenario = load_scenario(path)
            if schedule.from_proc is not None:
                scenario = _from_saved_proc(scenario, schedule.from_proc)
            params = scenario.resolve(dict(schedule.params))
        else:
            scenario = load_scenario(find_scenario(args.scenario))
            if args.from_proc:
                fixed = sorted(k for k in overrides if k in ("memory", "nodes"))
                if fixed:
                    raise UsageError(
                        f"--set {fixed[0]}=: --from-proc takes the machine's {fixed[0]} from "
                        "the saved /proc files"
                    )
                scenario = from_proc(scenario, args.from_proc)
            params = scenario.resolve(overrides)
        compile_event_filter(args.events)
        if args.events is not None:
            problem = unmatched_globs([g.strip() for g in args.events.split(",")])
            if problem is not None:
                raise UsageError(f"--events: {problem}")
    except (ScenarioError, ScheduleError) as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"--events: {' '.join(str(exc).split())[:300]}") from None
    if args.from_proc is not None and not args.quiet:  # said once the input is known good
        print(_from_proc_note(Path(args.from_proc)), file=sys.stderr)
    return scenario, params, schedule


def _from_proc_note(proc: Path) -> str:
    """What --from-proc took from DIR, and what it did not (one line on stderr)."""
    names = ("buddyinfo", "pagetypeinfo", "zoneinfo")
    read = [n for n in names if (proc / n).is_file()]
    ignored = [n for n in ("meminfo", "vmstat") if (proc / n).is_file()]
    note = f"mmemu run: --from-proc {proc}: machine from {', '.join(read)}"
    if ignored:
        note += f" ({', '.join(ignored)} not read)"
    return note + "; the scenario's set-up skipped"


def _replay_scenario(schedule: Any) -> str:
    """The scenario a schedule names: its file as recorded (absolute since this version;
    relative to where the run was started before), else relative to the schedule's folder or
    beside it, else its bundled name."""
    sp = schedule.scenario_path
    if sp is None:
        return str(schedule.scenario)
    recorded = Path(sp)
    if recorded.is_file():
        return str(sp)
    base = Path(schedule.path).parent
    for candidate in (base / recorded, base / recorded.name):
        if not recorded.is_absolute() and candidate.is_file():
            return str(candidate)
    if (base / recorded.name).is_file():
        return str(base / recorded.name)
    if schedule.scenario in bundled_scenarios() and recorded.name == f"{schedule.scenario}.py":
        return str(schedule.scenario)
    raise ScenarioError(
        f"--replay: the schedule's scenario file {sp!r} is neither here nor beside "
        f"{schedule.path}; name it: mmemu run FILE --replay {schedule.path}"
    )


def _selects_trace_only(events: str | None) -> bool:
    """Whether an ``--events`` filter selects any event recorded only for the trace."""
    from emulator.report.trace_capture import TRACE_ONLY

    selected = compile_event_filter(events)
    return selected is not None and any(selected(e) for e in TRACE_ONLY)


def _from_saved_proc(scenario: Scenario, files: dict[str, str]) -> Scenario:
    """``from_proc`` on the /proc files a schedule kept (written to a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="mmemu-proc-") as d:
        for name, text in files.items():
            if name in PROC_FILES:
                (Path(d) / name).write_text(text, encoding="utf-8")
        return from_proc(scenario, d)


def run(args: argparse.Namespace) -> int:
    stop: StopSignals = getattr(args, "stop_signals", None) or StopSignals()
    own = not stop.installed and stop.install()
    try:
        stop.enter("validate")
        scenario, params, schedule = _prepare(args)
        if getattr(args, "check_determinism", False) and args.no_events:
            raise UsageError("--check-determinism compares the events: drop --no-events")
        out = Path(args.out) if args.out else _default_out(scenario, params, args)
        _check_out(out, bool(args.from_proc))
        _say_what_happens(args, scenario, params, out, schedule)
        try:
            staged = StagedFolder.create(out)
        except FolderError as exc:
            raise UsageError(str(exc)) from None
        try:
            return _run(args, scenario, params, schedule, staged, stop)
        finally:
            staged.discard()  # gone already if the run's folder was put in place
    finally:
        if own:
            stop.restore()


def _second_run_differs(
    args: argparse.Namespace,
    scenario: Scenario,
    params: Any,
    schedule: Any,
    out: Path,
    stop: StopSignals,
) -> str | None:
    """Run again (same scenario, params and schedule) into a scratch file and compare the event
    logs: None if byte-identical, else one line naming the first event that differs."""
    import tempfile

    first = out / "events.jsonl"
    with tempfile.TemporaryDirectory(prefix="mmemu-determinism-") as tmp:
        again = Path(tmp) / "events.jsonl"
        Run(
            scenario,
            params,
            options=_options(args, schedule),
            events=EventsLog(again, args.events),
            stop=stop,
        ).execute()
        return first_difference(first, again)


def first_difference(a: Path, b: Path) -> str | None:
    """None if two event logs are byte-identical, else which event differs first and how."""
    with a.open("rb") as fa, b.open("rb") as fb:
        n = 0
        for n, (la, lb) in enumerate(zip(fa, fb, strict=False), start=1):
            if la != lb:
                return f"event {n} differs: first run {_shorten(la)}, second run {_shorten(lb)}"
        rest_a, rest_b = fa.readline(), fb.readline()
    if rest_a or rest_b:
        longer, line = ("first", rest_a) if rest_a else ("second", rest_b)
        return f"event {n + 1} differs: only the {longer} run has it: {_shorten(line)}"
    return None


def _shorten(line: bytes) -> str:
    text = line.decode("utf-8", "replace").strip()
    return text if len(text) <= 200 else text[:200] + "..."


def _run(
    args: argparse.Namespace,
    scenario: Scenario,
    params: Any,
    schedule: Any,
    staged: StagedFolder,
    stop: StopSignals,
) -> int:
    out = staged.path
    progress = Progress(enabled=sys.stderr.isatty() and not args.quiet)
    events = None if args.no_events else out / "events.jsonl"
    write_trace = not (args.no_trace or args.no_events)
    observers: list[Observer] = [ProgressDisplay(progress), SummaryFiles()]
    # --events selecting trace-only events (lock contention, mmemu_* markers) records them in
    # events.jsonl even with --no-trace: the run emits them, trace.json is just not written
    trace = None
    if write_trace or (events is not None and _selects_trace_only(args.events)):
        trace = TraceFile(out, args.trace_locks, write=write_trace)
        observers.append(trace)
    if args.plots:
        observers.append(PlotFiles(trace))
    run = Run(
        scenario,
        params,
        options=_options(args, schedule),
        events=EventsLog(events, args.events, record=not args.no_events),
        observers=observers,
        stop=stop,
    )
    try:
        with progress:
            result = run.execute()
    except (ScenarioHookError, ScenarioError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # the events could not be written (a full disk): nothing is kept
        print(
            f"mmemu run: error: {describe_os_error(exc, staged.out)}; --out unchanged",
            file=sys.stderr,
        )
        return 1
    except Stopped as exc:
        # stopped before the machine existed: the reason and the stage are all there is
        stage = stop.stage_at_signal or "boot"
        doc = StoppedAtStart(scenario.name, params.as_json(), exc.reason, stage)
        try:
            (out / "summary.json").write_text(doc.dumps())
            staged.commit()
        except OSError as err:
            print(f"mmemu run: error: {describe_os_error(err, staged.out)}", file=sys.stderr)
            return stop.exit_status or 130
        print(f"mmemu run: {exc.reason} during {stage}; results in {staged.out}/", file=sys.stderr)
        return stop.exit_status or 130
    # from here on, further signals are only counted: the results are always written
    stop.enter("collect")
    if result.reason in STOPPED_REASONS:
        result.stage = stop.stage_at_signal or "run"
    try:
        run.write(result, out)
        save_schedule(
            out / "schedule.json",
            result.ctx.sim,
            scenario.name,
            str(Path(scenario.path).resolve()) if scenario.path else None,
            params.as_json(),
            events=events,
            stopped=_stopped(result, events),
            from_proc=scenario.proc_files,
        )
        staged.commit()
    except OSError as exc:
        print(
            f"mmemu run: error: {describe_os_error(exc, staged.out)}; --out unchanged",
            file=sys.stderr,
        )
        return 1
    out = staged.out
    if events is not None:
        events = out / "events.jsonl"
    status = 0
    problem = None
    if getattr(args, "check_determinism", False) and stop.reason is None:
        differs = _second_run_differs(args, scenario, params, schedule, out, stop)
        if differs is not None:
            print(f"mmemu run: nondeterministic: {differs}", file=sys.stderr)
            return 1
        if not args.quiet:
            print("determinism: a second run recorded the same events, byte for byte")
    if schedule is not None:
        problem = compare_replay(schedule, list(result.ctx.sim.decisions))
        if result.error is not None and "ReplayDivergence" in result.error:
            why = result.error.split("ReplayDivergence: ", 1)[-1].removeprefix("replay: ")
            problem = f"decision {len(result.ctx.sim.decisions)}: {' '.join(why.split())}"
            result.error = None
        if (
            problem is None
            and schedule.events_sha256
            and events is not None
            and _events_differ(schedule, events)
        ):
            problem = "events.jsonl differs from the recorded run's (events_sha256)"
        if not args.quiet:
            verdict = "exact" if problem is None else "DIVERGED"
            if problem is None and schedule.stopped is not None:
                verdict += (
                    f" to where the recorded run stopped ({schedule.stopped['reason']} at "
                    f"t={schedule.stopped['virtual_ns']} ns)"
                )
            print(f"replay of {args.replay}: {verdict}", file=sys.stderr)
    if not args.quiet:
        print_summary(result)
        print(f"\nresults in {out}/")
    if result.error is not None:
        first = " ".join(result.error.split())
        # "deadlock at t=...", "watchdog: actor ...": say the reason once
        first = first.removeprefix(f"{result.reason}:").removeprefix(result.reason).strip()
        print(f"mmemu run: {result.reason}: {first}", file=sys.stderr)
        status = 1
    elif problem is not None:
        print(f"mmemu run: replay diverged at {problem}", file=sys.stderr)
        status = 1
    elif result.violations:
        v = result.violations[0]
        msg = " ".join(v.message.split())[:300]
        if schedule is not None:
            again = f"--replay {shlex.quote(str(args.replay))}"
        else:
            again = f"--seed {params.seed} --strategy {shlex.quote(str(params['strategy']))}"
            again += " --perturb" if params["perturb"] else ""
        print(
            f"mmemu run: property {v.property} violated at t={v.time_ns} ns: {msg} "
            f"({len(result.violations)} violation(s); rerun with {again})",
            file=sys.stderr,
        )
        status = 1
    elif result.report_error is not None:
        print(f"mmemu run: error: {result.report_error}", file=sys.stderr)
        status = 2
    if stop.reason is not None or result.reason == "interrupted":
        return stop.exit_status or 130
    return status
