"""nondeterministic: a deliberately broken scenario whose probe reads state that survives from
one run to the next in the same process (a module-level counter), so a second run differs."""

from emulator.scenario import Scenario
from emulator.workload import AllocClass, Phase, Workload

RUNS = [0]


def build(p):
    return Workload([Phase("churn", [AllocClass(0, "GFP_KERNEL")], duration=None)])


def actors(p, ctx):
    sim = ctx.sim
    RUNS[0] += 1
    late = RUNS[0]

    async def probe():
        await sim.delay(100_000 + late)
        await sim.sync()
        sim.recorder.emit("mmemu_probe", run=late)

    return [("probe", probe)]


SCENARIO = Scenario(
    "nondeterministic",
    "a probe whose timing depends on how many runs this process made before",
    build,
    defaults={"memory": "256M", "cpus": 2, "duration": "200us", "sample": "50us"},
    actors=actors,
)
