"""cocotb test module: run one program on the chip top and record what the host reads back.

The job (program file, config, words to read back, expected cycle count) comes as JSON in the
file named by ``OPENLPU_JOB``; the result goes to the job's ``result`` path. With
``"sram_access": "backdoor"`` in the job, the queues and SRAM are written, cleared and read
back through :class:`tb.backdoor.Backdoor` instead of the host bus. :mod:`tb.runner` writes
the job and compares the result with the golden model.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from firmware.program import load
from openlpu.config import ChipConfig
from tb.backdoor import Backdoor
from tb.host import CocotbPorts, HostBus

CLOCK_PERIOD_NS = 10


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
    backdoor = Backdoor(dut, config) if job.get("sram_access") == "backdoor" else None
    results = []
    for i, run in enumerate(job["runs"], 1):
        program = load(run["program"])
        clear = [tuple(w) for w in run["clear"]]
        readback = [tuple(w) for w in run["readback"]]
        t0 = time.perf_counter()
        if backdoor is None:
            await bus.clear_words(clear)
            await bus.load(program)
        else:
            backdoor.clear(clear)
            backdoor.load(program)
        t1 = time.perf_counter()
        cycles = await bus.run(run["expected_cycles"], job["max_cycles"])
        t2 = time.perf_counter()
        counters = await bus.read_counters()
        if backdoor is None:
            words = await bus.read_words(readback)
        else:
            words = backdoor.read_words(readback)
        t3 = time.perf_counter()
        results.append({"cycles": cycles, "counters": counters, "words": words.tolist(),
                        "load_seconds": t1 - t0, "run_seconds": t2 - t1,
                        "readback_seconds": t3 - t2})
        # progress for long runs (a layer's programs on a large preset take minutes each)
        print(f"[rtl] program {i}/{len(job['runs'])}: loaded in {t1 - t0:.1f} s, "
              f"{cycles:,} cycles in {t2 - t1:.1f} s, read back in {t3 - t2:.1f} s",
              file=sys.stderr, flush=True)
    Path(job["result"]).write_text(json.dumps(results))
