"""The OpenLPU demonstration (``nox -s demo`` or ``python -m openlpu.demo``).

Real transformer layers compiled for the chip and run cycle-exactly: layer 0 of the real
all-MiniLM-L6-v2 (a BERT encoder) and a Llama-style decoder layer with grouped-query attention
and odd sizes (a random checkpoint written on the spot). Each is compiled to instruction
streams (:mod:`firmware.lower`), run on the golden model and on the RTL under Verilator, and
compared with the integer reference (bit for bit), with the float32 reference (cosine) and
with the compiler's cycle prediction. The same runs are ``openlpu layer`` commands; the demo
prints them so they can be repeated one by one.

Both layers run on Verilator: the Llama layer on the ``ecp5`` chip, MiniLM's on the ``sim``
chip (32 lanes, 4 MiB of SRAM for its 1.8 MB of weights). The first run generates and builds
both Verilator models (about 2 and 13 minutes on 2 cores); later runs reuse them from
``build/rtl``. The testbench loads the programs and weights through the simulator
(:mod:`tb.backdoor`), so the MiniLM run itself takes about 2 minutes. ``--quick`` skips the
MiniLM layer on the RTL, ``--no-rtl`` every RTL run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

#: The Llama-style layer: GQA (6 query heads, 2 KV heads), sizes that are no multiple of the
#: lanes.
LLAMA_SHAPE = dict(hidden_size=72, num_heads=6, num_kv_heads=2, intermediate_size=200)


def _step(n: int, total: int, text: str) -> None:
    print(f"\n[{n}/{total}] {text}", flush=True)


def _progress(text: str) -> None:
    print(f"      .. {text}", flush=True)


def _show(run, wall: float) -> dict:
    rep = run.report()
    cfg = run.config
    for r in rep["runs"]:
        rtl = (f", RTL {r['rtl_cycles']:,} ({'=' if r['matches_golden'] else '!='} golden)"
               if "rtl_cycles" in r else "")
        print(f"  {r['name']:<8} {r['tokens']:>2} token(s): {r['predicted_cycles']:>7,} cycles "
              f"predicted, golden {r['golden_cycles']:,}{rtl}; {r['programs']} program(s); "
              f"MXM {r['mxm_utilization']:.1%}")
    print(f"  {rep['cycles']:,} cycles = {rep['seconds_at_clock'] * 1e6:,.1f} us at "
          f"{cfg.clock_mhz:g} MHz; SRAM {rep['sram_bytes_used']:,} of "
          f"{rep['sram_bytes_available']:,} B")
    print("  prefill phases (active cycles, MXM utilisation): "
          + ", ".join(f"{p} {c:,} {rep['phase_mxm_utilization'][p]:.0%}"
                      for p, c in rep["phases"].items()))
    if "decode_tokens_per_s" in rep:
        print(f"  decode: {rep['decode_tokens_per_s']:,.0f} tokens/s at {cfg.clock_mhz:g} MHz")
    print(f"  cosine vs float32 reference {rep['cosine_vs_float']:.5f}; bit exact: "
          + ("yes" if rep["bit_exact"] else "NO"))
    for m in rep["mismatches"]:
        print(f"  MISMATCH {m}")
    rep["wall_seconds"] = wall
    return rep


def _layer(title: str, n: int, total: int, model: Path, config_name: str, seq: int,
           decode: int, backend: str, prepared_cache: dict, golden_runs: dict) -> dict:
    from firmware.layer_run import prepare_layer, run_layer
    from openlpu.config import PRESETS

    cmd = (f"openlpu layer --model {model} --config {config_name} --seq {seq}"
           + (f" --decode {decode}" if decode else "") + f" --backend {backend}")
    _step(n, total, f"{title} on {config_name}, {backend}\n      $ {cmd}")
    t0 = time.perf_counter()
    key = (str(model), config_name, seq, decode)
    if backend != "golden" and key in golden_runs:
        # the programs compiled for the golden-model step, run again on the RTL
        run = golden_runs[key].on_rtl(backend, progress=_progress)
    else:
        if (str(model), seq + decode) not in prepared_cache:
            prepared_cache[str(model), seq + decode] = prepare_layer(
                model, 0, seq + decode, progress=_progress)
        run = run_layer(prepared_cache[str(model), seq + decode], PRESETS[config_name],
                        seq=seq, decode=decode, backend=backend, progress=_progress)
        if backend == "golden":
            golden_runs[key] = run
    rep = _show(run, time.perf_counter() - t0)
    rep["title"] = title
    return rep


def main(argv: list[str] | None = None) -> int:
    """Run the demonstration; returns the process exit status."""
    from firmware.layer_run import LayerRunError
    from firmware.minilm import INSTALL_HINT, minilm_dir
    from openlpu.config import PRESETS

    ap = argparse.ArgumentParser(prog="python -m openlpu.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--no-rtl", action="store_true", help="golden model only (no Verilator)")
    ap.add_argument("--quick", action="store_true",
                    help="skip the MiniLM layer on the sim chip's RTL (the longest step)")
    ap.add_argument("--tokens", type=int, default=8, help="prefill tokens (default 8)")
    args = ap.parse_args(argv)

    minilm = minilm_dir()
    if minilm is None:
        print(f"error: the all-MiniLM-L6-v2 checkpoint is not installed ({INSTALL_HINT}; "
              f"nox -s demo does it)", file=sys.stderr)
        return 1
    total = 3 if args.no_rtl else 4 if args.quick else 5
    g = PRESETS["groqchip"]
    _step(1, total, "the chip: one config, from FPGA scale to the published chip")
    print(f"  groqchip: {g.lanes} lanes, {g.mxm_planes} MXM planes of {g.lanes}x{g.lanes}, "
          f"{g.macs_per_cycle:,} MACs/cycle, {g.sram_bytes / 2**20:.0f} MiB SRAM, "
          f"{g.peak_int8_tops:.2f} int8 TOPS at {g.clock_mhz:g} MHz")
    for name in ("sim", "ecp5"):
        c = PRESETS[name]
        print(f"  {name:<8}: {c.lanes} lanes, {c.mxm_planes} MXM plane(s), "
              f"{c.sram_bytes // 1024:,} KiB SRAM, {c.queue_depth}-word instruction queues, "
              f"{c.clock_mhz:g} MHz")
    try:
        reports = _run_all(args, minilm, total)
    except LayerRunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("\n| layer | config | backend | cycles | predicted | bit exact | cosine vs float32 "
          "| MXM util | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in reports:
        print(f"| {r['title'].split(' (')[0]} | {r['config']} | {r['backend']} | "
              f"{r['cycles']:,} | {r['predicted_cycles']:,} | {r['bit_exact']} | "
              f"{r['cosine_vs_float']:.5f} | {r['mxm_utilization']:.1%} | "
              f"{r['wall_seconds']:.0f} |")
    ok = all(r["bit_exact"] and r["cosine_vs_float"] >= 0.99 for r in reports)
    print("\ndemo finished: " + ("every run bit exact, cycles as predicted, cosine >= 0.99"
                                 if ok else "a check FAILED (see above)"))
    return 0 if ok else 1


def _run_all(args, minilm: Path, total: int) -> list[dict]:
    """Steps 2 .. ``total``: the two layers on the golden model, then on Verilator."""
    from firmware.model_import import write_random_llama_checkpoint

    reports: list[dict] = []
    prepared: dict = {}
    golden: dict = {}
    t = args.tokens
    with tempfile.TemporaryDirectory(prefix="openlpu_demo_") as tmp:
        llama = write_random_llama_checkpoint(Path(tmp) / "llama", seed=3, **LLAMA_SHAPE)
        bert_title = "all-MiniLM-L6-v2 layer 0 (BERT: hidden 384, 12 heads, FFN 1536)"
        llama_title = ("random Llama layer (hidden 72, 6 heads, 2 KV heads, FFN 200), "
                       "prefill + 2 decode steps")
        steps = [(bert_title, minilm, "sim", 0, "golden"),
                 (llama_title, llama, "ecp5", 2, "golden")]
        if not args.no_rtl:
            steps.append((llama_title, llama, "ecp5", 2, "verilator"))
            if not args.quick:
                steps.append((bert_title, minilm, "sim", 0, "verilator"))
        for n, (title, model, config, decode, backend) in enumerate(steps, 2):
            reports.append(_layer(title, n, total, model, config, t, decode, backend,
                                  prepared, golden))
    return reports


if __name__ == "__main__":
    sys.exit(main())
