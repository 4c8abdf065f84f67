"""``openlpu layer``: compile one layer of a Hugging Face checkpoint for a chip config, run it
on the golden model or the RTL and report correctness and performance
(:mod:`firmware.layer_run` does the work).

Exit status: 0 when the run is bit exact (golden model = integer reference, and for an RTL
backend RTL = golden model, cycle counts included), 1 otherwise or on a user error (one
line on stderr naming the problem).
"""

from __future__ import annotations

import json
import sys

import numpy as np

__all__ = ["add_parser"]


def _progress(text: str) -> None:
    print(f"[openlpu layer] {text}", file=sys.stderr, flush=True)


def _config(args):
    from .config import get_config

    config = get_config(args.config)
    if args.queue_depth is not None:
        config = config.replace(queue_depth=args.queue_depth)
    return config


def _queue_depth_hint(e, args):
    """``e`` (a :class:`~firmware.lower.errors.QueueDepthError`) with how to raise the depth
    from the command line added to its message."""
    from .config import MAX_QUEUE_DEPTH

    if e.required > MAX_QUEUE_DEPTH:
        hint = (f"no config may have queues deeper than {MAX_QUEUE_DEPTH} words: lower --seq")
    else:
        given = "" if args.queue_depth is None else f" instead of {args.queue_depth}"
        hint = (f"for deeper queues pass --queue-depth {e.required}{given}, or a --config "
                f".json file with \"queue_depth\": {e.required}")
    return type(e)(f"{e}; {hint}", e.queue, e.needed, e.available)


def _print_report(rep: dict, run) -> None:
    cfg = run.config
    print(f"{rep['family']} layer {rep['layer']} of {rep['model']}")
    print(f"config {cfg.name} ({cfg.lanes} lanes, {cfg.mxm_planes} MXM plane(s), "
          f"{cfg.clock_mhz:g} MHz), backend {rep['backend']}, {rep['seq']} token(s) prefill"
          + (f" + {rep['decode']} decode step(s)" if rep["decode"] else ""))
    for r in rep["runs"]:
        rtl = (f", RTL {r['rtl_cycles']:,} cycles "
               f"({'matches' if r['matches_golden'] else 'DIFFERS from'} the golden model)"
               if "rtl_cycles" in r else "")
        print(f"  {r['name']:<9} {r['tokens']:>3} token(s) at {r['start']:<4} "
              f"predicted {r['predicted_cycles']:>9,} golden {r['golden_cycles']:>9,}{rtl}; "
              f"MXM {r['mxm_utilization']:.1%}, {r['programs']} program(s), longest queue "
              f"{r['queue_words']:,}/{r['queue_depth']:,} words")
    print(f"cycles {rep['cycles']:,} (predicted {rep['predicted_cycles']:,}) = "
          f"{rep['seconds_at_clock'] * 1e6:,.1f} us at {cfg.clock_mhz:g} MHz")
    print(f"MXM utilisation {rep['mxm_utilization']:.1%} over the layer; prefill per phase: "
          + ", ".join(f"{p} {c:,} cycles {rep['phase_mxm_utilization'][p]:.0%}"
                      for p, c in rep["phases"].items()))
    reused = " (words of dead tensors reused)" if rep["sram_reuse"] else ""
    print(f"SRAM used {rep['sram_bytes_used']:,} of {rep['sram_bytes_available']:,} bytes"
          f"{reused}")
    if "decode_tokens_per_s" in rep:
        print(f"decode {rep['decode_tokens_per_s']:,.0f} tokens/s at {cfg.clock_mhz:g} MHz; "
              f"weight-streaming bound {rep['decode_bound_tokens_per_s']:,.0f} tokens/s "
              f"({rep['weight_bytes']:,} weight bytes at {cfg.stream_bytes_per_cycle:,} "
              f"B/cycle): {rep['decode_efficiency']:.1%}; bound with the SRAM's read bandwidth "
              f"({min(cfg.stream_bytes_per_cycle, cfg.sram_read_bytes_per_cycle):,} B/cycle) "
              f"{rep['decode_sram_bound_tokens_per_s']:,.0f} tokens/s: "
              f"{rep['decode_sram_efficiency']:.1%}")
    if "rtl_build_seconds" in rep:
        print(f"RTL: build {rep['rtl_build_seconds']:.1f} s, run {rep['rtl_run_seconds']:.1f} s")
    print(f"cosine similarity with the float32 reference: {rep['cosine_vs_float']:.5f}")
    print("bit exact: " + ("yes (golden model = integer reference"
                           + (", RTL = golden model" if rep["backend"] != "golden" else "")
                           + ", cycles as predicted)" if rep["bit_exact"] else "NO"))
    for m in rep["mismatches"]:
        if "detail" in m:
            print(f"  {m['run']}: {m['where']}: {m['detail']}")
        else:
            print(f"  {m['run']}: {m['where']}: {m['tensor']} ({m['op']}): {m['count']} "
                  f"element(s) differ, first at {m['index']} (got {m['got']}, expected "
                  f"{m['expected']}), max |error| {m['max_error']}")


def _check_output_path(option: str, path: str | None) -> None:
    """Refuse an output file that cannot be written before the (possibly long) run."""
    from pathlib import Path

    from firmware.layer_run import LayerRunError

    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise LayerRunError(f"{option} {path}: is a directory; give a file name")
    if not p.parent.is_dir():
        raise LayerRunError(f"{option} {path}: directory {p.parent} does not exist")


def _save_output(path: str, run) -> None:
    q8, s8 = run.int8_output()
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a bare name
        np.savez(f, int8=q8, int8_scale=np.float64(s8), int32=run.output.astype(np.int32),
                 float=run.output_float, reference_float=run.reference_float,
                 reference_int32=run.reference.astype(np.int32), input=run.prepared.x_float)


def _cmd_layer(args) -> int:
    from firmware.layer_run import LayerRunError, prepare_layer, run_layer
    from firmware.lower.errors import QueueDepthError
    from firmware.schedule_trace import write_schedule_trace

    progress = None if args.quiet else _progress
    if args.decode < 0:
        raise LayerRunError(f"--decode must be >= 0, not {args.decode}")
    _check_output_path("--save-output", args.save_output)
    _check_output_path("--trace-schedule", args.trace_schedule)
    config = _config(args)
    tokens = None if args.seq is None else args.seq + args.decode
    prepared = prepare_layer(args.model, args.layer, tokens, input_path=args.input,
                             seed=args.seed, progress=progress)
    warning = prepared.input_range()["warning"]
    if warning:  # also with --quiet: a warning is not a progress line
        print(f"openlpu layer: warning: {warning}", file=sys.stderr, flush=True)
    seq = args.seq if args.seq is not None else len(prepared.x_int) - args.decode
    try:
        run = run_layer(prepared, config, seq=seq, decode=args.decode, backend=args.backend,
                        sram_access=args.sram_access, sram_reuse=args.sram_reuse,
                        progress=progress)
    except QueueDepthError as e:
        raise _queue_depth_hint(e, args) from None
    rep = run.report()
    if args.save_output:
        _save_output(args.save_output, run)
        rep["saved_output"] = args.save_output
    if args.trace_schedule:
        n = write_schedule_trace(args.trace_schedule, [(r.name, r.lowered) for r in run.runs])
        rep["trace_schedule"] = args.trace_schedule
        if progress:
            progress(f"wrote {n:,} trace events to {args.trace_schedule} (open it in "
                     f"ui.perfetto.dev)")
    if args.json:
        print(json.dumps(rep))
    else:
        _print_report(rep, run)
    return 0 if rep["bit_exact"] else 1


def add_parser(sub) -> None:
    """Add ``openlpu layer`` to the CLI's subparsers."""
    from firmware.layer_run import SRAM_REUSE
    from tb.backdoor import SRAM_ACCESS

    from .config import PRESETS

    p = sub.add_parser("layer", help="compile one transformer layer of a checkpoint, run it "
                                     "and report accuracy and performance")
    p.add_argument("--model", required=True, metavar="DIR",
                   help="Hugging Face checkpoint directory (config.json + model.safetensors; "
                        "BERT or Llama family)")
    p.add_argument("--layer", type=int, default=0, metavar="N", help="layer index (default 0)")
    p.add_argument("--config", required=True,
                   help=f"preset ({', '.join(PRESETS)}) or .json file")
    p.add_argument("--queue-depth", type=int, metavar="WORDS",
                   help="instruction queue depth instead of the config's (a power of two); a "
                        "layer whose code does not fit the queues runs as several programs")
    p.add_argument("--backend", default="golden", choices=["golden", "verilator", "icarus"],
                   help="golden model (default), or the RTL compared with the golden model")
    p.add_argument("--sram-access", default="backdoor", choices=SRAM_ACCESS,
                   help="RTL backends: load the weights and read the tensors back through the "
                        "simulator (backdoor, default: no simulated time) or through the "
                        "chip's host bus (bus: as a board does, one cycle per 4 bytes)")
    p.add_argument("--sram-reuse", default="auto", choices=list(SRAM_REUSE),
                   help="hand out the SRAM words of dead tensors again: only when the layer "
                        "does not fit otherwise (auto, default), always, or never (every "
                        "tensor keeps its own words, all readable in the final SRAM)")
    p.add_argument("--seq", type=int, metavar="T",
                   help="tokens of the prefill (default: the input's rows minus --decode)")
    p.add_argument("--decode", type=int, default=0, metavar="K",
                   help="single-token decode steps after the prefill (Llama family)")
    p.add_argument("--input", metavar="X.npy",
                   help="float32 hidden states [seq + decode, hidden] (default: seeded random "
                        "tokens through the embeddings and the layers before N); a warning "
                        "names the values outside the range the layer was calibrated for")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input and of the "
                                                       "calibration samples")
    p.add_argument("--save-output", metavar="OUT.npz",
                   help="write int8, int32, float (dequantised) and reference_float outputs")
    p.add_argument("--trace-schedule", metavar="FILE.json",
                   help="write the schedule as Chrome trace-event JSON (ui.perfetto.dev)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_layer)
