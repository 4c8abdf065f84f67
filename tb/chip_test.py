"""cocotb test module: run one program on the chip top and record what the host reads back.

The job (program file, config, words to read back, expected cycle count) comes as JSON in the
file named by ``OPENLPU_JOB``; the result goes to the job's ``result`` path. Each run's
``"access"`` (:data:`tb.backdoor.PROGRAM_ACCESS`) says how its queues and SRAM are written,
cleared and read back: over the host bus, through :class:`tb.backdoor.Backdoor`, or loaded
through the backdoor with the results read over the bus. :mod:`tb.runner` writes the job and
compares the result with the golden model.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from firmware.program import Program, load
from openlpu.config import ChipConfig
from tb.backdoor import Backdoor
from tb.host import CocotbPorts, HostBus, queue_image

CLOCK_PERIOD_NS = 10


def _image_words(config: ChipConfig, program: Program) -> dict[tuple[int, int], np.ndarray]:
    """The SRAM words ``(mem index, address)`` a load of ``program`` writes, with their bytes
    (later ``mem_init`` entries over earlier ones, as both loads write them in order)."""
    words = {}
    for init in program.mem_init:
        mi = config.slice_by_name[init.slice].index
        for w, row in enumerate(np.asarray(init.data, dtype=np.uint8)):
            padded = np.zeros(config.lanes, dtype=np.uint8)
            padded[:len(row)] = row
            words[(mi, init.addr + w)] = padded
    return words


async def check_load(bus: HostBus, backdoor: Backdoor, config: ChipConfig, program: Program,
                     cleared: list[tuple[int, int]], over_bus: bool) -> list[str]:
    """Read what a load of ``program`` (after clearing ``cleared``) must have left through the
    backdoor and, if ``over_bus``, over the bus; the differences from what it must be, as
    messages. (After a load over the bus, reading it back over the bus checks nothing about
    the backdoor; and bus reads of the queues are slow on Icarus, tens of milliseconds each
    on the small configs: the word read is also the queue's instruction output, which the
    units' logic sees.)"""
    problems = []
    for q in config.queues:
        want = queue_image(program, q.name)
        readings = [("backdoor", backdoor.read_queue(q.name, len(want)))]
        if over_bus:
            readings.append(("bus", await bus.read_queue(q.index, len(want))))
        for how, got in readings:
            bad = [w for w, (a, b) in enumerate(zip(got, want, strict=True)) if a != b]
            if bad:
                w = bad[0]
                problems.append(f"queue {q.name} word {w} read through the {how}: {got[w]:#x}, "
                                f"loaded {want[w]:#x} ({len(bad)} words differ)")
    image = _image_words(config, program)
    zero = np.zeros(config.lanes, dtype=np.uint8)
    words = sorted(set(image) | set(cleared))
    if words:
        want = np.stack([image.get(w, zero) for w in words])
        readings = [("backdoor", backdoor.read_words(words))]
        if over_bus:
            readings.append(("bus", await bus.read_words(words)))
        for how, got in readings:
            bad = np.argwhere(got != want)
            if len(bad):
                i, lane = bad[0]
                problems.append(f"SRAM word {words[i]} lane {lane} read through the {how}: "
                                f"{got[i, lane]}, loaded {want[i, lane]} "
                                f"({len(np.unique(bad[:, 0]))} words differ)")
    return problems


@cocotb.test()
async def run_programs(dut):
    """Load, run and read back each program of the job in turn."""
    job = json.loads(Path(os.environ["OPENLPU_JOB"]).read_text())
    config = ChipConfig(**job["config"])
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)  # the chip's core leaves reset a cycle after rst
    bus = HostBus(CocotbPorts(dut, CLOCK_PERIOD_NS), config)
    await bus.check_identity()
    wanted = any(r["access"] != "bus" or r["check_load"] for r in job["runs"])
    backdoor = Backdoor(dut, config) if wanted else None
    results = []
    for i, run in enumerate(job["runs"], 1):
        program = load(run["program"])
        clear = [tuple(w) for w in run["clear"]]
        readback = [tuple(w) for w in run["readback"]]
        access = run["access"]
        problems = []
        t0 = time.perf_counter()
        if access == "bus":
            await bus.clear_words(clear)
            await bus.load(program)
        else:
            backdoor.clear(clear)
            backdoor.load(program)
        if run["check_load"]:
            problems += await check_load(bus, backdoor, config, program, clear,
                                         over_bus=access != "bus")
        t1 = time.perf_counter()
        cycles = await bus.run(run["expected_cycles"], job["max_cycles"])
        t2 = time.perf_counter()
        counters = await bus.read_counters()
        if access == "bus":
            words = await bus.read_words(readback)
        else:
            words = backdoor.read_words(readback)
        if access == "backdoor_load":
            # The results go over the bus, as a host reads them; the backdoor's reading of
            # them must agree (it vouches for the words read only through it).
            idx = run["bus_readback"]
            via_bus = await bus.read_words([readback[k] for k in idx])
            bad = np.argwhere(via_bus != words[idx])
            if len(bad):
                k, lane = bad[0]
                problems.append(f"SRAM word {readback[idx[k]]} lane {lane} after the run: bus "
                                f"{via_bus[k, lane]}, backdoor {words[idx[k], lane]} "
                                f"({len(np.unique(bad[:, 0]))} words differ)")
            words[idx] = via_bus
        t3 = time.perf_counter()
        results.append({"cycles": cycles, "counters": counters, "words": words.tolist(),
                        "problems": problems, "load_seconds": t1 - t0, "run_seconds": t2 - t1,
                        "readback_seconds": t3 - t2})
        # progress for long runs (a layer's programs on a large preset take minutes each)
        print(f"[rtl] program {i}/{len(job['runs'])} ({access}): loaded in {t1 - t0:.1f} s, "
              f"{cycles:,} cycles in {t2 - t1:.1f} s, read back in {t3 - t2:.1f} s",
              file=sys.stderr, flush=True)
    Path(job["result"]).write_text(json.dumps(results))
