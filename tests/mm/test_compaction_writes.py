"""Run-time writes (emulator.workload.writes) and manual compaction against 6.12:
writing 1 to vm.compact_memory runs compact_nodes in the writing task's time, at the write's
virtual time; /sys/devices/system/node/nodeN/compact compacts node N only; anything but 1 to
compact_memory is -EINVAL, a node that does not exist has no file, an out-of-range sysctl is
refused, and a refused write changes nothing.
"""

from __future__ import annotations

import pytest

from emulator.mm.initstate import free_k_of_n
from emulator.mm.reclaim.lru import adopt_allocated
from emulator.scenario import Scenario, ScenarioError
from emulator.testing import make_kernel
from emulator.workload.spec import AllocClass, Phase, Workload
from emulator.workload.writes import (
    WriteError,
    check_writes,
    parse_writes,
    write_file,
    writer_actor,
)


def fragmented(nodes: int = 1):
    # two nodes need memory above 4 GiB in the x86-64 layout
    k = make_kernel("256M" if nodes == 1 else "4608M", cpus=2 * nodes, nodes=nodes, record=True)
    for z in k.allocator.zones:
        free_k_of_n(z, 1, 2)
    adopt_allocated(k.allocator)
    return k


async def test_compact_memory_at_its_time() -> None:
    k = fragmented()
    pa = k.allocator
    writes = parse_writes([("1ms", "/proc/sys/vm/compact_memory", "1")])
    check_writes(k.machine, writes, len(pa.cpus))
    log: list[dict] = []
    await k.run(("writes", writer_actor(pa, writes, log)))
    assert len(log) == 1 and "error" not in log[0]
    assert log[0]["t_ns"] == 1_000_000 and log[0]["done_ns"] > 1_000_000
    begins = k.events("mm_compaction_begin")
    assert begins and all(e["t"] >= 1_000_000 for e in begins)
    assert {e["zone_start"] for e in begins} == {z.zone_start_pfn for z in pa.zones}
    assert all(e["sync"] for e in begins)  # MIGRATE_SYNC
    assert pa.vm_events["pgmigrate_success"] > 0
    assert pa.vm_events["compact_stall"] == 0  # not direct compaction


async def test_node_compact_file_compacts_that_node_only() -> None:
    k = fragmented(nodes=2)
    pa = k.allocator

    async def writer() -> None:
        await write_file(pa, pa.cpus[2], "/sys/devices/system/node/node1/compact", "whatever")

    await k.run(("writer", writer))
    begins = {e["zone_start"] for e in k.events("mm_compaction_begin")}
    assert begins == {z.zone_start_pfn for z in pa.zones if z.node == 1}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("vm.compact_memory", "2", "only 1"),
        ("vm.compact_memory", "0", "only 1"),
        ("vm.compact_memory", "yes", "only 1"),
        ("vm.compact_memory", "1_0", "only 1"),
        ("vm.nr_hugepages", "-1", "valid 0 and above"),
        ("vm.lowmem_reserve_ratio", "256 x", "valid up to 4 integers"),
        ("vm.compaction_proactiveness", "0b1", "not an integer"),
        ("/sys/devices/system/node/node3/compact", "1", "node 3 does not exist"),
        ("vm.extfrag_threshold", "1001", "valid 0..1000"),
        ("vm.no_such_thing", "1", "not a writable file"),
    ],
)
async def test_bad_writes_get_the_kernels_answer_and_change_nothing(
    path: str, value: str, message: str
) -> None:
    k = fragmented()
    pa = k.allocator
    before_events = dict(pa.vm_events)
    threshold = k.machine.extfrag_threshold
    with pytest.raises(WriteError, match=message):
        check_writes(k.machine, parse_writes([(0, path, value)]))
    log: list[dict] = []
    await k.run(("writes", writer_actor(pa, parse_writes([(0, path, value)]), log)))
    assert message in log[0]["error"]
    assert dict(pa.vm_events) == before_events
    assert k.machine.extfrag_threshold == threshold
    assert not k.events("mm_compaction_begin")


async def test_sysctl_write_takes_effect_at_its_time() -> None:
    k = fragmented()
    pa = k.allocator
    seen: list[tuple[int, int]] = []

    async def watcher() -> None:
        for t in (1_000_000, 3_000_000):
            await k.sim.delay(t - k.sim.current.now)
            await k.sim.sync()
            seen.append((t, k.machine.extfrag_threshold))

    writes = parse_writes([("2ms", "vm.extfrag_threshold", "900")])
    await k.run(("writes", writer_actor(pa, writes)), ("watch", watcher))
    assert seen == [(1_000_000, 500), (3_000_000, 900)]


def test_scenario_with_a_bad_write_is_refused_before_running() -> None:
    from emulator.runner import run_scenario

    def build(p):
        return Workload([Phase("idle", [AllocClass(0, "GFP_KERNEL")], rate=1, duration=1_000_000)])

    sc = Scenario("w", "bad write", build, writes=[("1ms", "vm.compact_memory", "7")])
    with pytest.raises(ScenarioError, match="only 1"):
        run_scenario(sc, sc.resolve({"memory": "64M", "duration": "2ms"}), record=False)
    ok = Scenario("w", "good write", build, writes=[("1ms", "vm.compact_memory", "1")])
    res = run_scenario(ok, ok.resolve({"memory": "64M", "duration": "5ms"}), record=False)
    assert res.ctx.findings["writes"][0]["path"] == "vm.compact_memory"
    assert "error" not in res.ctx.findings["writes"][0]
