"""Golden-model speed: simulated cycles per second for each preset, on a dense workload.

The workload keeps every queue of the chip busy every cycle: west MEM slices READ, every VXM
ALU adds, east MEM slices WRITE the sums, both SXMs shift a passing stream and every MXM plane
runs ABC. That is the worst case for the model (its cost is per issued instruction; idle
cycles are free), so the figures are a floor for real programs.

Usage: ``python benchmarks/golden_speed.py [--cycles N] [--presets a,b]``
"""

from __future__ import annotations

import argparse
import sys
import time

from firmware.program import Program
from firmware.timing import predict_cycles
from openlpu.config import PRESETS, ChipConfig, SliceKind
from openlpu.isa import Direction, Instruction, Opcode, stream_code
from sim_models.golden import run_program


def dense_program(config: ChipConfig, cycles: int) -> Program:
    """A program in which every queue issues one instruction per cycle for ``cycles``."""
    n = config.mem_slices_per_hemisphere
    s = config.streams_per_direction
    alus = config.vxm_alus_per_lane
    start = config.positions + 4  # every stream has been filled by then

    def run(first, instr, step=0, count=cycles):
        code = [Instruction(Opcode.NOP, nop_count=first)] if first else []
        return code + [instr, Instruction(Opcode.REPEAT, rep_n=count - 1, rep_d=1,
                                          rep_step=step)]

    # producers run long enough that every consumer finds a value in each of its cycles
    long = cycles + 2 * config.positions + 8  # the ALUs outlast their consumers
    longest = long + start + config.positions  # and the READs outlast the ALUs
    west_src = stream_code(Direction.WEST, 1 % s) if alus > 1 else \
        stream_code(Direction.WEST, 0)
    queues = {}
    for i in range(n):  # west slices stream words east, forever re-reading one word
        queues[f"mem_w{i}"] = run(0, Instruction(
            Opcode.READ, dst=stream_code(Direction.EAST, i % s), addr=i), count=longest)
    for j in range(alus):  # ALU j: E(j mod n) + 1 -> E(j) (even j) or W(j) (odd j)
        out_dir = Direction.EAST if j % 2 == 0 else Direction.WEST
        queues[f"vxm{j}"] = run(start, Instruction(
            Opcode.ADD, dst=stream_code(out_dir, j % s),
            a=stream_code(Direction.EAST, j % min(n, s)), bimm=1, imm=1), count=long)
    east_alus = [j for j in range(alus) if j % 2 == 0]
    for i in range(n):  # east slices write the eastbound sums into bank 1
        queues[f"mem_e{i}"] = run(start + 4 + n, Instruction(
            Opcode.WRITE, addr=(1 << config.offset_bits) + i,
            a=stream_code(Direction.EAST, east_alus[i % len(east_alus)] % s)))
    if alus == 1:  # no westbound ALU result: mem_e0 feeds the west units instead
        queues["mem_e0"] = run(0, Instruction(Opcode.READ, dst=west_src, addr=0),
                               count=longest)
    for name, src, d in (("sxm_w", west_src, Direction.WEST),
                         ("sxm_e", stream_code(Direction.EAST, 0), Direction.EAST)):
        queues[name] = run(start + 4 + n, Instruction(
            Opcode.SHIFT, dst=stream_code(d, s - 1), a=src, imm=1))
    for sl in config.slices:  # every plane multiplies the stream that reaches it
        if sl.kind is SliceKind.MXM:
            west = sl.position < config.slice_by_name["vxm"].position
            src = west_src if west else stream_code(Direction.EAST, 0)
            queues[sl.name] = run(start + 4 + 2 * n, Instruction(
                Opcode.ABC, addr=0, a=src))
    return Program(config_name=config.name, config_hash=config.config_hash,
                   lanes=config.lanes, queues=queues, mem_init=[], outputs=[], source={})


def measure(config: ChipConfig, cycles: int) -> dict:
    """Run the dense workload once; returns the figures printed by :func:`main`."""
    program = dense_program(config, cycles)
    t0 = time.perf_counter()
    result = run_program(config, program)
    seconds = time.perf_counter() - t0
    issued = sum(result.counters["issued"].values())
    assert result.cycles == predict_cycles(config, program.queues)
    return {"preset": config.name, "queues": len(config.queues), "cycles": result.cycles,
            "issued": issued, "seconds": seconds, "cycles_per_s": result.cycles / seconds,
            "instr_per_s": issued / seconds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=2000, help="busy cycles per preset")
    p.add_argument("--presets", default=",".join(PRESETS))
    args = p.parse_args(argv)
    print(f"{'preset':<10} {'queues':>6} {'cycles':>8} {'instrs':>9} {'seconds':>8} "
          f"{'cycles/s':>10} {'instr/s':>10}")
    for name in args.presets.split(","):
        config = PRESETS[name]
        print(f"{name:<10} running {args.cycles} busy cycles ...", end="\r", flush=True,
              file=sys.stderr)
        r = measure(config, args.cycles)
        print(f"{r['preset']:<10} {r['queues']:>6} {r['cycles']:>8} {r['issued']:>9} "
              f"{r['seconds']:>8.2f} {r['cycles_per_s']:>10,.0f} {r['instr_per_s']:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
