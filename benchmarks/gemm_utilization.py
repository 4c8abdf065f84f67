"""MXM utilisation of lowered int8 GEMMs (:func:`firmware.lower.lower_gemm`) per preset.

For each shape the GEMM is lowered, run on the golden model and checked against the NumPy
reference; the table gives the cycles the lowering predicted and the golden model took, and
the MXM utilisation (useful MACs ``M*K*N`` / (cycles x ``config.macs_per_cycle``)) over the
whole program and over the matmul phase (first ``ABC`` to the last ``ABCO``, the instruction
that emits a result: the first weight load before it and the requantisation and writes after
it are pipeline fill and drain).

A plane's queue issues one of ``LW``, ``IW``, ``ABC``, ``ABCO``, ``ACC`` per cycle. The last K
step's ``ABCO`` emits each row's sum, so no cycle goes to ``ACC``; the phase cannot beat the
share of the plane's instructions that multiply, less the padding of ``K`` and ``N`` to the
lane count (column ``ceil``: what the phase would reach if the plane never waited). ``lost``
gives the share of the phase's MXM issue slots spent on padded MACs / ``ACC`` / ``LW`` +
``IW`` / nothing (a plane waiting).

Usage: ``python benchmarks/gemm_utilization.py [--presets ecp5,sim,groqchip] [--quick]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import numpy as np

from firmware.lower import gemm_reference, lower_gemm
from firmware.timing import issue_times
from openlpu.config import PRESETS
from openlpu.isa import Opcode
from sim_models.golden import run_program

SHAPES = {
    "ecp5": [(16, 16, 16), (5, 37, 19), (64, 64, 64), (64, 256, 64), (64, 384, 32),
             (96, 256, 32)],
    "sim": [(32, 32, 32), (5, 37, 19), (128, 256, 128), (256, 512, 128), (256, 1024, 64),
            (512, 512, 128)],
    "groqchip": [(320, 320, 320), (640, 1280, 640), (640, 2560, 640), (1280, 3200, 1280)],
}
QUICK = {"ecp5": SHAPES["ecp5"][:4], "sim": SHAPES["sim"][:4],
         "groqchip": SHAPES["groqchip"][:2]}


def bench(preset: str, shape: tuple[int, int, int], seed: int = 0) -> dict:
    """Lower, run and check one GEMM; returns its figures."""
    config = PRESETS[preset]
    M, K, N = shape  # noqa: N806
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (M, K)).astype(np.int8)
    w = rng.integers(-128, 128, (K, N)).astype(np.int8)
    mult = rng.integers(1 << 20, 1 << 30, N)
    t0 = time.perf_counter()
    lg = lower_gemm(config, x, w, mult, 36)
    t1 = time.perf_counter()
    res = run_program(config, lg.program)
    t2 = time.perf_counter()
    ok = np.array_equal(lg.read_output(res.outputs), gemm_reference(x, w, mult, 36))
    r = lg.report()
    t = lg.tiling
    # every plane issues one MXM instruction per cycle of the phase: count what it issues then
    first, last = lg.stats.first_abc, lg.stats.last_acc
    ops = Counter(op for p in range(t.planes)
                  for c, op in issue_times(config, lg.program.queues)[f"mxm{p}"]
                  if first <= c <= last)
    slots = r["matmul_cycles"] * t.planes
    abc = ops[Opcode.ABC] + ops[Opcode.ABCO]
    busy = abc + ops[Opcode.ACC] + ops[Opcode.LW] + ops[Opcode.IW]
    return {**r, "golden_cycles": res.cycles, "ok": ok, "lower_s": t1 - t0, "run_s": t2 - t1,
            "pad": (abc / slots) * (1 - r["macs"] / r["issued_macs"]),
            "acc_share": ops[Opcode.ACC] / slots,
            "lw_share": (ops[Opcode.LW] + ops[Opcode.IW]) / slots,
            "idle": 1 - sum(ops.values()) / slots,
            "ceiling": abc / busy * r["macs"] / r["issued_macs"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="ecp5,sim,groqchip")
    ap.add_argument("--quick", action="store_true", help="fewer, smaller shapes")
    args = ap.parse_args(argv)
    shapes = QUICK if args.quick else SHAPES
    print(f"{'preset':9} {'M x K x N':>16} {'pl':>2} {'cycles':>8} {'golden':>8} "
          f"{'util':>6} {'phase':>6} {'ceil':>6} {'lost pad/ACC/LW/idle':>23} {'SRAM B':>9} "
          f"{'words':>5} {'lower':>6} {'golden':>7}  variant")
    bad = 0
    for preset in args.presets.split(","):
        for shape in shapes[preset]:
            r = bench(preset, shape)
            same = r["golden_cycles"] == r["predicted_cycles"] and r["ok"]
            bad += not same
            print(f"{preset:9} {'x'.join(map(str, shape)):>16} {r['planes']:>2} "
                  f"{r['predicted_cycles']:>8} {r['golden_cycles']:>8} "
                  f"{r['utilisation']:6.1%} {r['matmul_utilisation']:6.1%} {r['ceiling']:6.1%} "
                  f"{r['pad']:5.1%}/{r['acc_share']:5.1%}/{r['lw_share']:4.1%}/"
                  f"{r['idle']:4.1%} "
                  f"{r['sram_bytes']:>9} "
                  f"{r['queue_words']:>5} {r['lower_s']:5.1f}s {r['run_s']:6.1f}s  "
                  f"{r['variant']}{'' if same else '  MISMATCH'}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
