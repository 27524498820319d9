"""delay_race: a race only a long enough delay exposes.

``setter`` passes ``points`` preemption points and then publishes a flag; ``checker`` reads it
``window`` ns after both start and raises if it is not yet set. No ordering of tied actors
breaks it: only delays injected at the setter's preemption points (``--perturb``) adding up to
more than ``window`` do. The CPUs meanwhile run a small order-0 workload, whose own
preemption points draw delays a shrinker must drop.
"""

from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    return Workload([Phase("churn", [AllocClass(0, "GFP_KERNEL")], rate=p["rate"], duration=None)])


def actors(p, ctx):
    sim = ctx.sim
    flag = {"set": False}

    async def setter():
        await sim.delay(100_000)
        for _ in range(p["points"]):
            await sim.preempt("setter")
        flag["set"] = True

    async def checker():
        await sim.delay(100_000 + p["window"])
        await sim.sync()
        if not flag["set"]:
            raise AssertionError("checker read the flag before setter published it")

    return [("setter", setter), ("checker", checker)]


SCENARIO = Scenario(
    "delay_race",
    "the checker crashes if the setter is held back longer than the window",
    build,
    defaults={"memory": "256M", "cpus": 2, "duration": "200us", "sample": "50us"},
    params={
        "rate": Param(100_000.0, "order-0 allocations per second per CPU", 1, 1e8),
        "points": Param(20, "preemption points the setter passes", 1, 1000),
        "window": Param(2000, "ns after which the checker reads the flag", 1, 10**9),
    },
    actors=actors,
)
