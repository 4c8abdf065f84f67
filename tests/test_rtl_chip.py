"""The chip top's Verilog on Verilator and Icarus (and the Amaranth design in Amaranth's
simulator) against the golden model: final SRAM, cycle count and performance counters equal.

Each test runs a batch of programs in one simulator process: a directed program for every
instruction of the ISA, and constrained-random programs drawn with a fresh seed on every run.
The seed is printed (and can be fixed with ``OPENLPU_SEED``) so that a failure can be replayed.
Four configs with different lanes, streams, superlanes, slice counts and resource options run
by default.
"""

import os
import random

import pytest

from firmware.random_program import directed_programs, random_program
from openlpu.config import PRESETS
from openlpu.toolchain import simulator_available
from tb.verify import verify

# Default suite: the two FPGA presets and a small config of its own with two superlanes of 4
# lanes and an MXM plane in each hemisphere (the presets have one, in the west). The sim
# preset (32 lanes, 4 MiB) takes minutes to generate and build: it runs in the slow session.
# The FPGA presets have the deep VXM pipeline; MINI keeps the compact one (the sim and
# groqchip presets'), so both pipelines run on both simulators by default. Likewise MINI's
# ICUs decode the block RAM's output (icu_prefetch = False) and the presets' prefetch.
MINI = PRESETS["small"].replace(name="mini", superlanes=2, streams_per_direction=8,
                                mem_slices_per_hemisphere=4, mem_words_per_bank=64,
                                mxm_planes=2, vxm_alus_per_lane=2, queue_depth=256,
                                vxm_deep_pipeline=False, icu_prefetch=False)
# The ice40 preset has every resource option at its minimum (no special-function unit, no MUL /
# REQ multiplier, no performance counters, no REPEAT, no ICU prefetch, no SXMs) on one lane
# with one MEM slice per side: the refused opcodes never reach the RTL, and every other opcode
# must still match the golden model.
LEAN = PRESETS["ice40"]
CONFIGS = {"small": PRESETS["small"], "ecp5": PRESETS["ecp5"], "mini": MINI, "ice40": LEAN}
PRESET_NAMES = list(CONFIGS)


def seed_for(test: str) -> int:
    seed = int(os.environ.get("OPENLPU_SEED", random.SystemRandom().randrange(2**32)))
    print(f"{test}: seed {seed} (replay with OPENLPU_SEED={seed})")
    return seed


def need(simulator: str):
    ok, why = simulator_available(simulator)
    if not ok:
        pytest.skip(why)


def check(results):
    bad = [f"{r.name}: {r.comparison}" for r in results if not r.matches]
    assert not bad, "RTL differs from the golden model:\n" + "\n".join(bad)


# Icarus spends one host-bus cycle per 32 bits loaded, cleared or read back, and a cycle of the
# ecp5 chip costs it 50-80 ms: for the ~48 programs of a batch, loading took 750 of the 1,200 s
# of simulation on ecp5, and on mini reading back all of SRAM after every program (a check that
# nothing else was written) 250 of 340 s. So on Icarus these programs load
# through the simulator backdoor and read back over the bus only their results (every word
# they write or report; the other words through the backdoor, which must agree with the bus on
# the results): the run and the comparison with the golden model are unchanged. The bus path
# stays covered: these programs use it entirely on every preset and simulator (the first runs
# straight after reset, random0 after a program whose words it clears), every program does on
# Verilator, and test_backdoor_load_writes_what_the_bus_writes checks the backdoor against it.
def access_plan(simulator: str, names: list[str]) -> str | dict[str, str]:
    """How each program of a directed-and-random batch (which has a ``random0``) is loaded
    and read back."""
    if simulator != "icarus":
        return "bus"
    bus = {names[0], "random0"}
    return {n: "bus" if n in bus else "backdoor_load" for n in names}


def run_directed_and_random(simulator, config, name):
    need(simulator)
    seed = seed_for(f"{simulator}/{name}")
    programs = directed_programs(config, seed=seed % 1000, per_program=4)
    rng = random.Random(seed)
    for i in range(3):
        programs[f"random{i}"] = random_program(config, rng.randrange(2**32), 25)
    check(verify(config, programs, simulator,
                 sram_access=access_plan(simulator, list(programs))))


@pytest.mark.parametrize("name", PRESET_NAMES)
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_every_instruction_and_random_programs(simulator, name):
    run_directed_and_random(simulator, CONFIGS[name], name)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_sim_preset(simulator):
    run_directed_and_random(simulator, PRESETS["sim"], "sim")


@pytest.mark.slow
@pytest.mark.parametrize("name", [*PRESET_NAMES, "sim"])
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_many_random_programs(simulator, name):
    need(simulator)
    config = CONFIGS.get(name) or PRESETS[name]
    rng = random.Random(seed_for(f"{simulator}/{name}"))
    programs = {f"random{i}": random_program(config, rng.randrange(2**32), 60)
                for i in range(20)}
    check(verify(config, programs, simulator))


def test_amaranth_backend_runs_the_same_programs():
    config = PRESETS["small"]
    seed = seed_for("amaranth/small")
    programs = {"random": random_program(config, seed, 12),
                "mxm": directed_programs(config, seed % 1000, 3)["MXM"]}
    check(verify(config, programs, "amaranth"))


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_sram_backdoor_loads_and_reads_back_like_the_bus(simulator):
    """The simulator backdoor writes each byte to the lane memory the bus would: programs that
    read their image through the chip's datapath (on two superlanes), and programs that
    continue from what the previous one left, match the golden model."""
    need(simulator)
    seed = seed_for(f"{simulator}/backdoor")
    rng = random.Random(seed)
    programs = {"MXM": directed_programs(MINI, seed % 1000, 3)["MXM"]}
    for i in range(3):
        programs[f"random{i}"] = random_program(MINI, rng.randrange(2**32), 25)
    check(verify(MINI, programs, simulator, continues={"random1", "random2"},
                 sram_access="backdoor"))


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_backdoor_load_writes_what_the_bus_writes(simulator):
    """Programs loaded over the bus, through the backdoor, and through the backdoor with
    their results read over the bus, each clearing what the one before left: after each load,
    every queue word, image word and cleared word reads back through the backdoor, and after
    a backdoor load over the bus as well, as what the load had to write (``check_loads``), and
    every run matches the golden model."""
    need(simulator)
    seed = seed_for(f"{simulator}/backdoor_load")
    rng = random.Random(seed)
    programs = {"MXM": directed_programs(MINI, seed % 1000, 3)["MXM"]}
    for i in range(3):  # small programs: reading their queues over the bus is slow on Icarus
        programs[f"random{i}"] = random_program(MINI, rng.randrange(2**32), 12)
    # each access once, and each clears what a program loaded the other way left
    access = dict(zip(programs, ["bus", "backdoor", "backdoor_load", "bus"], strict=True))
    check(verify(MINI, programs, simulator, sram_access=access, check_loads=True))


def test_unknown_sram_access_is_refused():
    from tb.runner import RtlRunError, run_rtl
    with pytest.raises(RtlRunError, match="unknown sram_access 'vpi'"):
        run_rtl(MINI, [], "verilator", sram_access="vpi")
    with pytest.raises(RtlRunError, match="one of .* per job"):
        run_rtl(MINI, [], "verilator", sram_access=["backdoor_load"])


def _amaranth_run(config, program, after_start) -> None:
    """Load ``program`` into the chip in Amaranth's simulator over the host bus, start it
    (CLEAR | START) and hand the bus to ``await after_start(bus)``."""
    from amaranth.sim import Simulator

    from hdl.chip import Chip
    from openlpu.hostmap import CTRL_CLEAR, CTRL_START, REG
    from tb.host import AmaranthPorts, HostBus

    chip = Chip(config)

    async def bench(ctx):
        bus = HostBus(AmaranthPorts(ctx, chip), config)
        await bus.load(program)
        await bus.write(REG["CTRL"], CTRL_CLEAR | CTRL_START)
        await after_start(bus)

    sim = Simulator(chip)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def _amaranth_status(config, program, max_cycles: int = 200) -> tuple[int, int]:
    """Run ``program`` (:func:`_amaranth_run`) until DONE or DEADLOCK: ``(STATUS, CYCLES)``."""
    from openlpu.hostmap import REG, STATUS_DEADLOCK, STATUS_DONE

    out = {}

    async def wait(bus):
        for _ in range(max_cycles):
            status = await bus.read(REG["STATUS"])
            if status & (STATUS_DONE | STATUS_DEADLOCK):
                break
        lo, hi = await bus.read_many([REG["CYCLES_LO"], REG["CYCLES_HI"]])
        out["result"] = status, hi << 32 | lo

    _amaranth_run(config, program, wait)
    return out["result"]


def test_sync_release_and_deadlock_on_the_rtl():
    """The chip's end-of-run logic on SYNC: a queue released by a NOTIFY ends with DONE after
    the golden model's cycle count; queues parked with nobody left to notify them end with
    DEADLOCK (and not DONE), also when an instruction is still in flight when they park."""
    from firmware.asm import assemble
    from openlpu.hostmap import STATUS_DEADLOCK, STATUS_DONE
    from sim_models.errors import Deadlock
    from sim_models.golden import run_program

    released = assemble(".queue mem_w0\n SYNC\n NOP 2\n.queue vxm0\n NOP 5\n NOTIFY\n", LEAN)
    status, cycles = _amaranth_status(LEAN, released)
    assert status & STATUS_DONE and not status & STATUS_DEADLOCK
    assert cycles == run_program(LEAN, released).cycles

    for text in (".queue mem_w0\n SYNC\n.queue mxm0\n NOP 3\n SYNC\n",
                 ".queue mem_w0\n READ W0, b0:0\n SYNC\n.queue vxm0\n NOP 4\n"):
        parked = assemble(text, LEAN)
        with pytest.raises(Deadlock):
            run_program(LEAN, parked)
        status, _ = _amaranth_status(LEAN, parked)
        assert status & STATUS_DEADLOCK and not status & STATUS_DONE, text


def test_queue_window_reads_0_while_running_and_the_word_after():
    """The queue window through the chip: while a run holds the bus locked a read returns 0
    (the ICU's read port belongs to its sequencer then), and after it the stored word."""
    from firmware.asm import assemble
    from openlpu.hostmap import REG, STATUS_DONE, HostMap
    from openlpu.isa import encode

    program = assemble(".queue mem_w0\n READ W0, b0:0\n NOP 30\n READ W0, b0:1\n", LEAN)
    words = [encode(i) for i in program.queues["mem_w0"]]
    hm = HostMap(LEAN)
    addr = [hm.queue_word(LEAN.queue_by_name["mem_w0"].index, k) + h
            for k in range(2) for h in (0, 4)]
    seen = {}

    async def watch(bus):
        seen["running"] = await bus.read_many(addr)
        seen["busy"] = await bus.read(REG["STATUS"])
        while not await bus.read(REG["STATUS"]) & STATUS_DONE:
            pass
        seen["after"] = await bus.read_many(addr)

    _amaranth_run(LEAN, program, watch)
    assert seen["busy"] & 1 and seen["running"] == [0, 0, 0, 0]
    assert seen["after"] == [w >> s & 0xFFFF_FFFF for w in words[:2] for s in (0, 32)]
    assert any(seen["after"])


def test_a_bus_read_answers_exactly_read_latency_cycles_later():
    """The host bus protocol (docs/architecture.md section 9): the data of a read strobed in
    cycle c, and ``bus_rvalid`` with it, are on the bus in cycle c + READ_LATENCY and in no
    other cycle; reads strobed back to back answer back to back, in order."""
    from amaranth.sim import Simulator

    from hdl.chip import Chip
    from openlpu.hostmap import ID, READ_LATENCY, REG, VERSION

    chip = Chip(LEAN)
    seen = []

    async def bench(ctx):
        await ctx.tick().repeat(2)  # the chip's registered reset
        for addr in (REG["ID"], REG["VERSION"]):
            ctx.set(chip.bus_addr, addr)
            ctx.set(chip.bus_re, 1)
            await ctx.tick()
            seen.append((ctx.get(chip.bus_rvalid), ctx.get(chip.bus_rdata)))
        ctx.set(chip.bus_re, 0)
        for _ in range(READ_LATENCY + 1):
            await ctx.tick()
            seen.append((ctx.get(chip.bus_rvalid), ctx.get(chip.bus_rdata)))

    sim = Simulator(chip)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # seen[k] is the bus in cycle (first strobe) + 1 + k
    valid = [k + 1 for k, (v, _) in enumerate(seen) if v]
    assert valid == [READ_LATENCY, READ_LATENCY + 1]
    assert [seen[k - 1][1] for k in valid] == [ID, VERSION]
