"""Strategy specs are parsed strictly, and choosing among tied actors is separate from
injecting delays (``perturb``)."""

from __future__ import annotations

import pytest

from emulator.engine import PCT, PrimitiveMisuse, RandomStrategy, Sim, SpinLock, make_strategy
from emulator.engine.strategy import parse_strategy


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("fifo()", "empty parentheses"),
        ("pct()", "empty parentheses"),
        ("random( )", "empty parentheses"),
        ("fifo(0)", "fifo takes no arguments"),
        ("pct(1_0)", "plain decimal"),
        ("pct(0x1)", "plain decimal"),
        ("pct(+1)", "plain decimal"),
        ("pct(\uff11)", "plain decimal"),  # a full-width digit: int() takes it
        ("random(\u0661)", "plain decimal"),  # an Arabic-Indic digit
        ("random(4294967296)", "seed 4294967296 out of range: valid 0..4294967295"),
        ("random(-1)", "seed -1 out of range"),
        ("pct(1, 0)", "depth 0 out of range: valid 1..64"),
        ("pct(1, 65)", "depth 65 out of range"),
        ("random(1, 2)", "too many arguments for random"),
        ("pct(1, 2, 3)", "too many arguments for pct"),
        ("lifo", "unknown strategy 'lifo'"),
        ("pct(1", "not a strategy"),
    ],
)
def test_bad_specs_are_refused_naming_the_problem_and_the_valid_forms(spec: str, why: str) -> None:
    with pytest.raises(PrimitiveMisuse) as info:
        parse_strategy(spec)
    msg = str(info.value)
    assert why in msg
    assert msg.endswith("valid are fifo, random, random(SEED), pct, pct(SEED), pct(SEED, DEPTH)")
    assert "\n" not in msg


def test_good_specs_parse() -> None:
    assert parse_strategy("fifo") == ("fifo", ())
    assert parse_strategy(" PCT( 7 , 3 ) ") == ("pct", (7, 3))
    assert parse_strategy("random(0)") == ("random", (0,))
    assert parse_strategy("pct(4294967295, 64)") == ("pct", (4294967295, 64))


def test_perturb_is_off_by_default_and_decides_delays() -> None:
    for spec in ("random", "pct", "random(3)", "pct(3, 2)"):
        assert make_strategy(spec, 1).delays is False
        assert make_strategy(spec, 1, perturb=True).delays is True
    assert RandomStrategy(1).delays is False and PCT(1).delays is False
    assert make_strategy("fifo", perturb=True).delays is False
    assert make_strategy("pct", 1, perturb=True).describe()["perturb"] is True


async def _tied_program(strategy: str, perturb: bool) -> tuple[list[tuple[int, int]], list[int]]:
    """Four actors tied at every instant, with a preemption point in each round: returns the
    decisions and the time each actor finished."""
    if strategy == "pct":  # few steps here: place the change points among them
        sim = Sim(PCT(5, depth=3, steps=100, perturb=perturb))
    else:
        sim = Sim(strategy, seed=5, perturb=perturb)
    lock = SpinLock(sim, "L")
    ends: list[int] = [0] * 4

    async def worker(k: int) -> None:
        for _ in range(30):
            await sim.delay(10)
            await sim.preempt("window")
            await lock.acquire(f"w{k}")
            await sim.delay(1)
            lock.release()
        ends[k] = sim.now

    for k in range(4):
        sim.spawn(f"w{k}", worker, k)
    result = await sim.run()
    return list(result.decisions), ends


@pytest.mark.parametrize("strategy", ["random", "pct"])
async def test_choosing_without_perturb_moves_no_clock(strategy: str) -> None:
    _, fifo_ends = await _tied_program("fifo", False)
    decisions, ends = await _tied_program(strategy, False)
    # only choices among tied actors, never a delay; some choices differ from fifo's
    assert decisions and all(n >= 2 for n, _ in decisions)
    assert any(v != 0 for _, v in decisions)
    # the lock serialises the same amount of work: the last actor ends at the same instant
    assert max(ends) == max(fifo_ends)
    perturbed, p_ends = await _tied_program(strategy, True)
    delays = [v for n, v in perturbed if n == 0]
    assert delays and any(v > 0 for v in delays)
    assert max(p_ends) > max(fifo_ends)
