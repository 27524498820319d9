"""tie_race: a check-then-act race between two actors that meet at the same instant.

Both actors wake at ``race_at``. ``setter`` publishes a flag; ``checker`` acts on it and raises
if it is not yet set. Arrival order (fifo) runs ``setter`` first, so the default schedule is
clean; a schedule that lets ``checker`` win the tie crashes it. The CPUs meanwhile run a
small order-0 workload, so every schedule has many other decisions a shrinker must drop.
"""

from emulator.scenario import Param, Scenario
from emulator.workload import AllocClass, Phase, Workload


def build(p):
    return Workload([Phase("churn", [AllocClass(0, "GFP_KERNEL")], rate=p["rate"], duration=None)])


def actors(p, ctx):
    sim = ctx.sim
    flag = {"set": False}

    async def setter():
        await sim.delay(200_000)
        await sim.sync()
        flag["set"] = True

    async def checker():
        await sim.delay(200_000)
        await sim.sync()
        if not flag["set"]:
            raise AssertionError("checker ran before setter published the flag")

    return [("setter", setter), ("checker", checker)]


SCENARIO = Scenario(
    "tie_race",
    "two actors racing at one instant; the checker crashes if it wins the tie",
    build,
    defaults={"memory": "256M", "cpus": 2, "duration": "400us", "sample": "50us"},
    params={"rate": Param(100_000.0, "order-0 allocations per second per CPU", 1, 1e8)},
    actors=actors,
)
