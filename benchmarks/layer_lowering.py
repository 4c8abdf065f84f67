"""Whole transformer layers lowered to one program (:mod:`firmware.lower.layer`): cycles and
MXM utilisation.

Each case is lowered, run on the golden model and checked: cycles equal to the prediction and
every tensor of the integer reference's trace reproduced bit for bit. The table gives the
cycles, the MXM utilisation (useful MACs / (cycles x ``config.macs_per_cycle``)) of the layer
and of each phase (over the cycles in which one of its ops is active,
:meth:`LoweredLayer.phase_cycles`: phases overlap, an op starts as soon as its inputs are in
SRAM), the SRAM the layer occupies and the longest queue (in instruction words;
``queue_depth`` is raised where a layer needs more).

Cases: a random Llama layer (hidden 40, 5 heads, 1 KV head, FFN 50) on ``ecp5`` and ``sim``
(prefill of 8 tokens and one decode step at position 8), a random Llama layer with
hidden 128, 4 heads, 2 KV heads, FFN 256 on ``sim`` (prefill of 16 tokens, one decode step),
and layer 0 of all-MiniLM-L6-v2 (hidden 384, 12 heads, FFN 1536; needs the checkpoint, see
``tests/minilm.py``) on ``sim`` with 8 tokens.

Usage: ``python benchmarks/layer_lowering.py [--quick]`` (``--quick``: no MiniLM).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from firmware.lower import lower_bert_layer, lower_llama_layer
from firmware.model_import import load_bert, load_llama, write_random_llama_checkpoint
from openlpu.config import PRESETS
from sim_models import float_layers as fl
from sim_models.transformer import calibrate_bert_layer, calibrate_llama_layer, quantize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from minilm import minilm_dir  # noqa: E402

PHASES = ("norms", "qkv", "attention", "out_proj", "ffn")


def config(name: str):
    """The preset with queues deep enough for a whole layer's code."""
    return PRESETS[name].replace(queue_depth=1 << 16)


def run_case(label: str, lower, trace, x, cache=None) -> tuple:
    """Lower, run, check; returns the lowered layer and the run."""
    t0 = time.time()
    lowered = lower()
    secs = time.time() - t0
    runs = lowered.run_golden(x, cache)
    res = runs[-1]
    cycles = sum(r.cycles for r in runs)
    assert cycles == lowered.predicted_cycles, (cycles, lowered.predicted_cycles)
    diff = lowered.compare(trace, res.sram)
    assert diff is None, str(diff)
    util = lowered.phase_utilization()
    print(f"| {label} | {lowered.config.name} | {lowered.tokens} | {lowered.start} | "
          f"{lowered.predicted_cycles:,} | {lowered.mxm_utilization:.3f} | "
          + " | ".join(f"{util.get(p, 0):.3f}" for p in PHASES)
          + f" | {lowered.sram_bytes_used:,} | {lowered.report()['queue_words']:,} | "
          f"{secs:.1f} |", flush=True)
    return lowered, res


def llama_cases(shape: dict, presets: list[str], tokens: int, seed: int = 3) -> None:
    """Prefill of ``tokens`` tokens, then one decode step, on each preset."""
    with tempfile.TemporaryDirectory() as d:
        m = load_llama(write_random_llama_checkpoint(d, seed=seed, **shape))
    rng = np.random.default_rng(11)

    def sample(t):
        return m.embed_tokens[rng.integers(0, m.config.vocab_size, t)]

    layer = calibrate_llama_layer(m.layers[0], m.config, [sample(t) for t in (8, 16)],
                                  max_positions=2 * tokens)
    xs = quantize(sample(tokens + 1), layer.scales["x"], 32)
    label = f"llama h{shape['hidden_size']}"
    for p in presets:
        cache = layer.new_cache()
        _, trace = layer.forward(xs[:tokens], cache)
        lowered, res = run_case(label, lambda p=p: lower_llama_layer(config(p), layer, tokens),
                                trace, xs[:tokens])
        kv = lowered.read_cache(res.sram)
        _, trace = layer.forward(xs[tokens:], cache)
        run_case(label, lambda p=p: lower_llama_layer(config(p), layer, 1, start=tokens), trace,
                 xs[tokens:], kv)


def minilm_case(tokens: int) -> None:
    """Layer 0 of all-MiniLM-L6-v2 on ``sim``."""
    d = minilm_dir()
    if d is None:
        print("| minilm | (checkpoint not found, see tests/minilm.py) |")
        return
    m = load_bert(d, layers=[0])
    rng = np.random.default_rng(12)

    def sample(t):
        return fl.bert_embed(m.embeddings, m.config, rng.integers(1000, m.config.vocab_size, t))

    layer = calibrate_bert_layer(m.layers[0], m.config, [sample(t) for t in (16, 24)])
    x = quantize(sample(tokens), layer.scales["x"], 32)
    _, trace = layer.forward(x)
    run_case("MiniLM L0", lambda: lower_bert_layer(config("sim"), layer, tokens), trace, x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="leave out the MiniLM layer")
    args = ap.parse_args(argv)
    print("| layer | config | tokens | start | cycles | MXM util | "
          + " | ".join(PHASES) + " | SRAM bytes | queue words | lowering s |")
    print("|" + "---|" * (11 + len(PHASES) - 1))
    small = dict(hidden_size=40, num_heads=5, num_kv_heads=1, intermediate_size=50,
                 head_dim=8)
    llama_cases(small, ["ecp5", "sim"], 8)
    mid = dict(hidden_size=128, num_heads=4, num_kv_heads=2, intermediate_size=256,
               head_dim=32)
    llama_cases(mid, ["sim"], 16)
    if not args.quick:
        minilm_case(8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
