"""RTL simulation speed: simulated cycles per second per backend and preset, and build times.

Runs the golden-speed dense workload (every queue issues every cycle) on the chip's RTL,
checks it against the golden model, and prints the cycles per second of the run phase (the
chip running free after the program is loaded), the Verilator build time and the total time.
Verilator models are built with ``-O2`` here (the tests use ``-O0`` to build faster).

Usage: ``python benchmarks/rtl_speed.py [--cycles N] [--presets a,b] [--backends x,y]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_speed import dense_program  # noqa: E402

from openlpu.config import PRESETS  # noqa: E402
from tb.verify import verify  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=20000)
    p.add_argument("--presets", default="small,ecp5")
    p.add_argument("--backends", default="verilator,icarus")
    args = p.parse_args(argv)
    print(f"{'backend':<10} {'preset':<8} {'cycles':>8} {'run s':>8} {'cycles/s':>10} "
          f"{'build s':>8} {'match':>6}")
    for backend in args.backends.split(","):
        for name in args.presets.split(","):
            config = PRESETS[name]
            cycles = args.cycles if backend == "verilator" else max(args.cycles // 20, 500)
            print(f"{backend} {name}: building and running {cycles} busy cycles ...",
                  file=sys.stderr, flush=True)
            kwargs = {"optimize": True} if backend != "amaranth" else {}
            (v,) = verify(config, {"dense": dense_program(config, cycles)}, backend, **kwargs)
            r = v.rtl
            print(f"{backend:<10} {name:<8} {r.cycles:>8} {r.run_seconds:>8.2f} "
                  f"{r.cycles / r.run_seconds:>10,.0f} {r.build_seconds:>8.1f} "
                  f"{'yes' if v.matches else 'NO':>6}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
