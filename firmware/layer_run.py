"""Run one transformer layer of a Hugging Face checkpoint on OpenLPU, end to end.

This is what ``openlpu layer`` and the demo do, as a library:

1. :func:`prepare_layer` reads the checkpoint (BERT or Llama family, :mod:`firmware.model_import`),
   makes the float input (the user's ``[T, hidden]`` array, or the hidden states of seeded
   random tokens after the float layers before layer ``N``), calibrates the integer layer on
   seeded random samples of the same kind and quantises the input.
2. :func:`run_layer` computes the integer reference (prefill of ``seq`` tokens, then ``decode``
   single-token steps with the KV cache), lowers each run to a program
   (:mod:`firmware.lower.layer`), runs it on the golden model (cycle count = prediction, every
   traced tensor bit exact) and, for an RTL backend, on the RTL (compared with the golden
   model word by word), and collects the figures in a :class:`LayerRun`.

Decode steps continue the KV cache the previous run left in SRAM: the golden model's cache
is bound into the next program, and the RTL runs the same programs, so a difference anywhere
in the chain shows as a mismatch of the run where it arises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from openlpu.config import ChipConfig

__all__ = ["LayerRun", "LayerRunError", "PreparedLayer", "ProgramRun", "prepare_layer",
           "run_layer"]

#: Calibration: seeded random samples of these token counts (never the input itself).
CALIBRATION_TOKENS = (16, 24)
#: ``run_layer(sram_reuse=)`` and ``openlpu layer --sram-reuse``: the lowering's setting.
SRAM_REUSE = {"auto": None, "always": True, "never": False}
#: :meth:`PreparedLayer.input_range` warns when more than this fraction of the input's values
#: lie outside the range its integer format serves (0.1%: a fresh input of the calibration
#: samples' kind has a few values just beyond their maximum, never this many; an input scaled
#: by 2 saturates about 4% of a random BERT layer's int8 input and costs 0.01 of cosine).
INPUT_RANGE_WARN_FRACTION = 1e-3


class LayerRunError(Exception):
    """A request the layer runner cannot serve (bad input file, shape, option); the message
    names the problem."""


def _say(progress: Callable[[str], None] | None, text: str) -> None:
    if progress is not None:
        progress(text)


@dataclass
class PreparedLayer:
    """One calibrated integer layer and its input.

    Attributes
    ----------
    family : str
        ``"bert"`` or ``"llama"``.
    index : int
        The layer's index in the checkpoint.
    weights, model_config :
        The float weights and hyper-parameters (:mod:`firmware.model_import`).
    int_layer :
        :class:`~sim_models.transformer.IntBertLayer` or
        :class:`~sim_models.transformer.IntLlamaLayer`.
    x_float : np.ndarray
        float32 ``[T, hidden]``, the layer's input.
    x_int : np.ndarray
        int64 ``[T, hidden]``, the input quantised to the layer's int32 input scale.
    """

    family: str
    index: int
    source: Path
    weights: object
    model_config: object
    int_layer: object
    x_float: np.ndarray
    x_int: np.ndarray

    def input_range(self) -> dict:
        """How much of the float input lies outside the range the layer's integer format
        serves, its activation scales being calibrated on random samples (figures in the
        input's units):

        * BERT: the values its int8 quantisation (``x8``, one scale per channel) saturates;
        * Llama: every value of a token whose integer RMSNorm overflows (the sum of squares
          exceeds int32 and wraps, or a square saturates), and the values the residual
          path's ``REQ.i32`` saturates. The norm is sized for ``|x|`` up to twice the
          calibrated maximum (``limit_abs``); beyond that a token may overflow.

        Either way also the values the int32 quantisation itself saturates. Keys: ``values``
        (in the input), ``out_of_range`` and ``fraction`` of them, ``limit`` (what goes
        wrong), ``limit_abs`` (``[min, max]`` over the channels of the ``|x|`` up to which a
        value is always in range), ``calibrated_max_abs``, ``input_max_abs``, and
        ``warning``: a sentence when ``fraction`` exceeds :data:`INPUT_RANGE_WARN_FRACTION`,
        else None. Computed from the integer layer's constants; changes nothing.
        """
        from openlpu.fixedpoint import saturate, shift_right_round
        from sim_models.transformer.calibrate import res_bits

        layer = self.int_layer
        s_x = float(layer.scales["x"])
        x = np.asarray(self.x_float, dtype=np.float64)
        int32_max = (1 << 31) - 1
        wide = np.floor(x / s_x + 0.5)  # the int32 quantisation before it saturates
        out = np.abs(wide) > int32_max
        if self.family == "bert":
            req = layer.x_in
            pre = shift_right_round(self.x_int * req.mult, req.shift)
            out |= (pre > 127) | (pre < -128)
            limit = "the int8 input quantisation (x8) saturates"
            bound = 127.5 * np.broadcast_to(np.asarray(layer.scales["x8"], np.float64),
                                            x.shape[1:])
            calibrated = s_x * 127 * 256
        else:
            xi, norm, res = self.x_int, layer.ln_attn, layer.x_res
            sq = shift_right_round(xi * xi, norm.sq_shift)
            out |= (sq > int32_max) | (saturate(sq, 32).sum(axis=-1, keepdims=True) > int32_max)
            pre = shift_right_round(xi * res.mult, res.shift)
            out |= np.abs(pre) > int32_max
            limit = "the integer RMSNorm of their tokens overflows int32"
            in_bits = res_bits(self.model_config.hidden_size) + 1
            bound = np.full(x.shape[1:], s_x * ((1 << in_bits) - 1))
            calibrated = s_x * (1 << (in_bits - 1))
        n, total = int(out.sum()), int(x.size)
        frac = n / max(1, total)
        info = {"values": total, "out_of_range": n, "fraction": frac, "limit": limit,
                "limit_abs": [float(bound.min()), float(bound.max())],
                "calibrated_max_abs": float(calibrated),
                "input_max_abs": float(np.abs(x).max()) if total else 0.0, "warning": None}
        if frac > INPUT_RANGE_WARN_FRACTION:
            lo, hi = info["limit_abs"]
            where = f"|x| {lo:.4g}" if lo == hi else f"|x| {lo:.4g}..{hi:.4g} by channel"
            info["warning"] = (
                f"{n:,} of {total:,} input values ({frac:.1%}) are out of range ({limit}; "
                f"safe up to {where}): the activation scales were calibrated on random "
                f"samples with |x| <= {calibrated:.4g}, the input reaches "
                f"{info['input_max_abs']:.4g}; expect a less accurate output")
        return info

    @property
    def out_scale(self) -> float:
        """Real value of one unit of the layer's int32 output."""
        return float(self.int_layer.scales["out"])

    def float_reference(self) -> np.ndarray:
        """The float32 reference output of the whole input (decode steps of a causal layer
        equal the matching rows of one prefill)."""
        from sim_models import float_layers as fl

        if self.family == "bert":
            return fl.bert_layer(self.weights, self.model_config, self.x_float)[0]
        return fl.llama_layer(self.weights, self.model_config, self.x_float)[0]


def _hidden_states(model, index: int, token_ids: np.ndarray) -> np.ndarray:
    """Float hidden states entering layer ``index`` for ``token_ids`` (embeddings, then the
    float layers before ``index``)."""
    from firmware.model_import import BertModelWeights
    from sim_models import float_layers as fl

    c = model.config
    if isinstance(model, BertModelWeights):
        x = fl.bert_embed(model.embeddings, c, token_ids)
        for i in range(index):
            x = fl.bert_layer(model.layers[i], c, x)[0]
        return x.astype(np.float32)
    x = model.embed_tokens[token_ids].astype(np.float32)
    for i in range(index):
        x = fl.llama_layer(model.layers[i], c, x)[0]
    return x.astype(np.float32)


def _read_input(path: Path, tokens: int | None, hidden: int) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise LayerRunError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(x, np.ndarray):  # an .npz archive loads as a dict of arrays
        names = ", ".join(x.files)
        x.close()
        raise LayerRunError(f"{path}: an .npz archive ({names}), not a .npy array; save the "
                            f"hidden states with np.save")
    if x.ndim != 2 or x.shape[1] != hidden:
        raise LayerRunError(f"{path}: input must be float [T, {hidden}] (the layer's hidden "
                            f"size), not {x.dtype} {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise LayerRunError(f"{path}: input must be float (hidden states), not {x.dtype}")
    if not np.all(np.isfinite(x)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise LayerRunError(f"{path}: input holds NaN or inf (first at {list(bad)})")
    if x.shape[0] == 0:
        raise LayerRunError(f"{path}: input has no rows; the layer needs at least one token")
    if tokens is not None and x.shape[0] != tokens:
        raise LayerRunError(f"{path}: {x.shape[0]} rows, but --seq + --decode = {tokens}")
    return x.astype(np.float32)


def prepare_layer(model_dir: Path | str, index: int, tokens: int | None = None, *,
                  input_path: Path | str | None = None, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> PreparedLayer:
    """Load layer ``index`` of the checkpoint in ``model_dir``, calibrate it and make its
    input: the float32 array in ``input_path`` (``[T, hidden]``, ``T == tokens`` when both
    are given) or, without it, the hidden states of ``tokens`` seeded random tokens.

    Calibration uses seeded random samples (:data:`CALIBRATION_TOKENS` tokens each), never
    the input itself, and sizes a Llama layer's KV cache and RoPE tables for ``T``
    positions.

    Raises
    ------
    ModelImportError
        The checkpoint cannot be read (names the file and what is missing).
    LayerRunError
        Bad ``index``, ``tokens`` or input file.
    """
    from firmware.model_import import BertModelWeights, load_checkpoint
    from sim_models.transformer import calibrate_bert_layer, calibrate_llama_layer, quantize

    if index < 0:
        raise LayerRunError(f"--layer must be >= 0, not {index}")
    if tokens is None and input_path is None:
        raise LayerRunError("give the number of tokens or an input file")
    if tokens is not None and tokens < 1:
        raise LayerRunError(f"the layer needs at least one token, not {tokens}")
    if seed < 0:
        raise LayerRunError(f"--seed must be >= 0, not {seed}")
    _say(progress, f"reading {model_dir} (layers 0..{index})")
    model = load_checkpoint(model_dir, layers=range(index + 1))
    c = model.config
    family = "bert" if isinstance(model, BertModelWeights) else "llama"
    rng = np.random.default_rng(seed)
    vocab = c.vocab_size
    # The first ~1000 ids of a BERT word-piece vocabulary are [PAD], [unusedN] and other
    # special tokens that real text never holds; a small (test) vocabulary has none.
    lo = 1000 if family == "bert" and vocab > 2000 else 0

    def sample(t: int) -> np.ndarray:
        return _hidden_states(model, index, rng.integers(lo, vocab, t))

    x = None if input_path is None else _read_input(Path(input_path), tokens, c.hidden_size)
    t = tokens if x is None else x.shape[0]
    if family == "bert" and t > c.max_position_embeddings:
        raise LayerRunError(f"{t} tokens exceed the model's max_position_embeddings "
                            f"{c.max_position_embeddings}")
    if x is None:
        x = sample(t)
    _say(progress, f"calibrating layer {index} ({family}, hidden {c.hidden_size}, "
                   f"{c.num_heads} heads) on {len(CALIBRATION_TOKENS)} random samples")
    samples = [sample(n) for n in CALIBRATION_TOKENS]
    w = model.layers[index]
    if family == "bert":
        layer = calibrate_bert_layer(w, c, samples)
    else:
        layer = calibrate_llama_layer(w, c, samples, max_positions=t)
    x_int = quantize(x, layer.scales["x"], 32)
    return PreparedLayer(family, index, Path(model_dir), w, c, layer, x, x_int)


@dataclass
class ProgramRun:
    """One run of a layer (the prefill, or one decode step) and what it produced: one program,
    or several run in turn when the layer's code does not fit the instruction queues."""

    name: str
    lowered: object  #: :class:`~firmware.lower.layer.LoweredLayer`
    programs: list  #: the bound :class:`~firmware.program.Program` s
    golden_cycles: int
    golden_seconds: float
    lowering_seconds: float
    #: Ops whose golden-model tensor differs from the integer reference.
    differences: list = field(default_factory=list)
    rtl_cycles: int | None = None
    #: The RTL's comparison with the golden model, when it differs (None: equal).
    rtl_mismatch: str | None = None
    #: Ops whose RTL tensor differs from the integer reference.
    rtl_differences: list = field(default_factory=list)
    #: The final SRAM of the backend that produced the output (golden model or RTL).
    sram: np.ndarray | None = field(default=None, repr=False)
    trace: object = field(default=None, repr=False)  #: the integer reference's trace

    @property
    def bit_exact(self) -> bool:
        """Golden model equals the reference; the RTL (if run) equals both."""
        return (self.golden_cycles == self.lowered.predicted_cycles
                and not self.differences and not self.rtl_differences
                and self.rtl_mismatch is None
                and (self.rtl_cycles is None or self.rtl_cycles == self.golden_cycles))


@dataclass
class LayerRun:
    """A layer's prefill and decode steps on one backend, with the report's figures."""

    prepared: PreparedLayer
    config: ChipConfig
    backend: str
    seq: int
    decode: int
    runs: list[ProgramRun]
    output: np.ndarray  #: int32 [T, hidden], the chip's output rows of every run
    reference: np.ndarray  #: the integer reference's output
    reference_float: np.ndarray
    rtl_build_seconds: float | None = None
    rtl_run_seconds: float | None = None

    def on_rtl(self, backend: str, *, build_root: Path | str = "build/rtl",
               sram_access: str = "backdoor",
               progress: Callable[[str], None] | None = None) -> LayerRun:
        """This golden-model run's programs, run again on the RTL (``verilator`` or
        ``icarus``) and compared with it: a new :class:`LayerRun` whose output is the RTL's
        (see :func:`run_layer` for ``sram_access``). Saves lowering the layer again when both
        results are wanted.

        Raises
        ------
        LayerRunError
            This is not a golden-model run, an unknown backend or SRAM access, or the RTL
            could not be built or run.
        """
        if self.backend != "golden":
            raise LayerRunError(f"on_rtl takes a golden-model run; this one ran on {self.backend}")
        _check_backend(backend, sram_access, ("verilator", "icarus"), "RTL backend")
        lr = replace(self, backend=backend, runs=[replace(r) for r in self.runs])
        _run_on_rtl(lr, backend, build_root, sram_access, progress)
        return lr

    @property
    def output_float(self) -> np.ndarray:
        """The chip's output, dequantised."""
        return (self.output.astype(np.float64) * self.prepared.out_scale).astype(np.float32)

    @property
    def cosine_vs_float(self) -> float:
        """Cosine similarity of the dequantised chip output with the float32 reference (1.0
        when both are all zero, e.g. a Llama layer's output for an all-zero input)."""
        a = self.output_float.astype(np.float64).ravel()
        b = self.reference_float.astype(np.float64).ravel()
        if not a.any() and not b.any():
            return 1.0
        return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))

    @property
    def bit_exact(self) -> bool:
        """Every run bit exact and the output equal to the integer reference."""
        return all(r.bit_exact for r in self.runs) and np.array_equal(self.output,
                                                                      self.reference)

    def int8_output(self) -> tuple[np.ndarray, float]:
        """The layer output as int8 and its scale: BERT's own int8 output (``ln2.out``, the
        chip's tensor); for Llama, whose output is the int32 residual stream, the chip's
        output saturated to int8 by the host at a per-tensor scale."""
        from sim_models.transformer import quantize

        if self.prepared.family == "bert":
            rows = [r.lowered.read("ln2.out", r.sram) for r in self.runs]
            return (np.concatenate(rows).astype(np.int8),
                    float(self.prepared.int_layer.scales["out8"]))
        real = self.output_float
        scale = float(max(np.abs(real).max(), 1e-30) / 127)
        return quantize(real, scale, 8).astype(np.int8), scale

    def report(self) -> dict:
        """The figures ``openlpu layer --json`` prints."""
        from firmware.lower.layer import PHASES

        cfg = self.config
        cycles = sum(r.rtl_cycles if r.rtl_cycles is not None else r.golden_cycles
                     for r in self.runs)
        predicted = sum(r.lowered.predicted_cycles for r in self.runs)
        macs = sum(r.lowered.macs for r in self.runs)
        pre = self.runs[0].lowered
        phase_cycles, phase_util = pre.phase_cycles(), pre.phase_utilization()
        steps = self.runs[1:]
        weight_bytes = _weight_bytes(self.prepared)
        rep = {
            "model": str(self.prepared.source), "family": self.prepared.family,
            "layer": self.prepared.index, "config": cfg.name, "backend": self.backend,
            "seq": self.seq, "decode": self.decode,
            "cycles": cycles, "predicted_cycles": predicted,
            "bit_exact": self.bit_exact,
            "cosine_vs_float": self.cosine_vs_float,
            "mxm_utilization": macs / max(1, predicted * cfg.macs_per_cycle),
            "macs": macs,
            "sram_bytes_used": max(r.lowered.sram_bytes_used for r in self.runs),
            "sram_bytes_available": cfg.sram_bytes,
            "sram_reuse": any(r.lowered.reuses_sram for r in self.runs),
            "clock_mhz": cfg.clock_mhz,
            "seconds_at_clock": cycles / (cfg.clock_mhz * 1e6),
            "phases": {p: phase_cycles.get(p, 0) for p in PHASES},
            "phase_mxm_utilization": {p: phase_util.get(p, 0.0) for p in PHASES},
            "runs": [self._run_report(r) for r in self.runs],
            "mismatches": [m for r in self.runs for m in _mismatches(r)],
            "weight_bytes": weight_bytes,
            "input_range": self.prepared.input_range(),
        }
        rep["warnings"] = [w for w in (rep["input_range"]["warning"],) if w]
        if steps:
            step_cycles = sum(r.lowered.predicted_cycles for r in steps) / len(steps)
            tps = cfg.clock_mhz * 1e6 / step_cycles
            bound = cfg.stream_bytes_per_cycle * cfg.clock_mhz * 1e6 / max(1, weight_bytes)
            rep["decode_tokens_per_s"] = tps
            rep["decode_bound_tokens_per_s"] = bound
            rep["decode_efficiency"] = tps / bound
            # What the chip can reach: weights also leave SRAM one vector per slice and cycle,
            # fewer bytes than the streams carry on chips with fewer slices than streams.
            reach = min(cfg.stream_bytes_per_cycle, cfg.sram_read_bytes_per_cycle)
            sram_bound = reach * cfg.clock_mhz * 1e6 / max(1, weight_bytes)
            rep["decode_sram_bound_tokens_per_s"] = sram_bound
            rep["decode_sram_efficiency"] = tps / sram_bound
        if self.rtl_build_seconds is not None:
            rep["rtl_build_seconds"] = self.rtl_build_seconds
            rep["rtl_run_seconds"] = self.rtl_run_seconds
        return rep

    def _run_report(self, r: ProgramRun) -> dict:
        lo = r.lowered
        out = {"name": r.name, "tokens": lo.tokens, "start": lo.start,
               "programs": len(r.programs), "program_cycles": list(lo.program_cycles),
               "predicted_cycles": lo.predicted_cycles, "golden_cycles": r.golden_cycles,
               "mxm_utilization": lo.mxm_utilization,
               "queue_words": max(len(q) for p in lo.programs for q in p.queues.values()),
               "queue_depth": self.config.queue_depth,
               "sram_bytes_used": lo.sram_bytes_used, "sram_reuse": lo.reuses_sram,
               "bit_exact": r.bit_exact, "lowering_seconds": r.lowering_seconds,
               "golden_seconds": r.golden_seconds}
        if r.rtl_cycles is not None:
            out["rtl_cycles"] = r.rtl_cycles
            out["matches_golden"] = r.rtl_mismatch is None
        return out


def _weight_bytes(p: PreparedLayer) -> int:
    """Bytes of int8 weights a token streams through the MXM (every matmul's weights)."""
    w = p.weights
    names = (("wq", "wk", "wv", "wo", "w_in", "w_out") if p.family == "bert" else
             ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"))
    return int(sum(getattr(w, n).size for n in names))


def _mismatches(r: ProgramRun) -> list[dict]:
    out = [{"run": r.name, "where": where, "tensor": d.name, "op": d.op,
            "index": list(d.index), "got": d.got, "expected": d.expected,
            "max_error": d.max_error, "count": d.count}
           for where, diffs in (("golden", r.differences), ("rtl", r.rtl_differences))
           for d in diffs]
    if r.golden_cycles != r.lowered.predicted_cycles:
        out.append({"run": r.name, "where": "golden", "detail":
                    f"the golden model took {r.golden_cycles} cycles, the compiler predicted "
                    f"{r.lowered.predicted_cycles}"})
    if r.rtl_mismatch is not None:
        out.append({"run": r.name, "where": "rtl-vs-golden", "detail": r.rtl_mismatch})
    return out


def _check_backend(backend: str, sram_access: str, backends: tuple[str, ...],
                   kind: str = "backend") -> None:
    from tb.backdoor import SRAM_ACCESS

    if backend not in backends:
        raise LayerRunError(f"unknown {kind} {backend!r}; choose {', '.join(backends)}")
    if sram_access not in SRAM_ACCESS:
        raise LayerRunError(f"unknown SRAM access {sram_access!r}; choose "
                            f"{' or '.join(SRAM_ACCESS)}")


def run_layer(prepared: PreparedLayer, config: ChipConfig, *, seq: int, decode: int = 0,
              backend: str = "golden", build_root: Path | str = "build/rtl",
              sram_access: str = "backdoor", sram_reuse: str = "auto",
              progress: Callable[[str], None] | None = None) -> LayerRun:
    """Prefill ``seq`` tokens, then ``decode`` single-token steps, on ``backend``
    (``golden``, ``verilator`` or ``icarus``); see the module docstring.

    On an RTL backend, ``sram_access`` says how the testbench loads the weights and reads the
    tensors back: ``"backdoor"`` (through the simulator, in no simulated time) or ``"bus"``
    (through the chip's host bus, as a board does: one cycle per four bytes).

    ``sram_reuse`` (one of :data:`SRAM_REUSE`): hand out the SRAM words of dead tensors again
    only when the layer does not fit otherwise (``"auto"``), ``"always"`` or ``"never"``;
    tensors whose words were reused are compared from the golden model's write log.

    Raises
    ------
    LayerRunError
        Bad ``seq``/``decode`` for this layer, or an RTL simulator that cannot run.
    SramCapacityError, QueueDepthError, LoweringError
        The layer does not fit the chip (:mod:`firmware.lower.errors`).
    """
    from firmware.lower.layer import lower_bert_layer, lower_llama_layer

    p = prepared
    total = len(p.x_int)
    if seq < 1:
        raise LayerRunError(f"--seq must be >= 1, not {seq}")
    if decode < 0:
        raise LayerRunError(f"--decode must be >= 0, not {decode}")
    if seq + decode != total:
        raise LayerRunError(f"the input has {total} tokens, but --seq + --decode = "
                            f"{seq + decode}")
    if decode and p.family == "bert":
        raise LayerRunError("--decode needs a causal (Llama-family) layer: a BERT encoder "
                            "layer attends to every token, so it has no decode step")
    _check_backend(backend, sram_access, ("golden", "verilator", "icarus"))
    if sram_reuse not in SRAM_REUSE:
        raise LayerRunError(f"unknown SRAM reuse {sram_reuse!r}; choose one of "
                            f"{', '.join(SRAM_REUSE)}")
    reuse = SRAM_REUSE[sram_reuse]
    weight_bytes = _weight_bytes(p)
    if weight_bytes > config.sram_bytes:  # refused now, not after minutes of lowering
        from firmware.lower.errors import SramCapacityError

        raise SramCapacityError(
            f"layer {p.index}'s int8 weights alone take {weight_bytes:,} bytes of SRAM; config "
            f"{config.name!r} has {config.sram_bytes:,}", weight_bytes, config.sram_bytes)
    layer = p.int_layer
    cache = layer.new_cache() if p.family == "llama" else None
    steps = [(0, seq)] + [(seq + i, 1) for i in range(decode)]
    runs: list[ProgramRun] = []
    refs: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    kv = None
    for start, t in steps:
        name = "prefill" if start == 0 else f"decode{start - seq}"
        x = p.x_int[start:start + t]
        if p.family == "bert":
            ref, trace = layer.forward(x)
        else:
            ref, trace = layer.forward(x, cache)
        refs.append(ref)
        _say(progress, f"{name}: lowering {t} token(s) at position {start} for {config.name}")
        t0 = time.perf_counter()
        if p.family == "bert":
            lowered = lower_bert_layer(config, layer, t, sram_reuse=reuse)
        else:
            lowered = lower_llama_layer(config, layer, t, start=start, capacity=total,
                                        sram_reuse=reuse)
        t1 = time.perf_counter()
        programs = lowered.bind(x, kv)
        _say(progress, f"{name}: {lowered.predicted_cycles:,} cycles predicted in "
                       f"{len(programs)} program(s); running on the golden model")
        results = lowered.run_bound(programs)
        sram = results[-1].sram
        t2 = time.perf_counter()
        runs.append(ProgramRun(name, lowered, programs, sum(r.cycles for r in results),
                               t2 - t1, t1 - t0, lowered.differences(trace, sram, runs=results),
                               sram=sram,
                               trace=trace))
        outs.append(lowered.read_output(sram))
        if cache is not None:
            kv = lowered.read_cache(sram)
    lr = LayerRun(p, config, "golden", seq, decode, runs, np.concatenate(outs),
                  np.concatenate(refs), p.float_reference())
    if backend != "golden":
        return lr.on_rtl(backend, build_root=build_root, sram_access=sram_access,
                         progress=progress)
    return lr


def _run_on_rtl(lr: LayerRun, backend: str, build_root, sram_access: str, progress) -> None:
    """Run every program of ``lr`` on the RTL in one simulator process and compare; fills
    in ``lr`` (a copy of the golden model's run)."""
    from tb.runner import RtlRunError
    from tb.verify import sram_image, verify

    programs, continues, owner = {}, set(), []
    for r in lr.runs:
        for k, prog in enumerate(r.programs):
            key = f"{r.name}.{k}"
            programs[key] = prog
            owner.append(r)
            if k:
                continues.add(key)
    _say(progress, f"{backend}: building the chip model for {lr.config.name} (cached after "
                   f"the first build) and running {len(programs)} program(s)")
    try:
        verified = verify(lr.config, programs, backend, continues=continues,
                          build_root=build_root, sram_access=sram_access)
    except RtlRunError as e:
        raise LayerRunError(str(e)) from None
    sram = None
    for r in lr.runs:
        r.rtl_cycles = 0
    for key, r, v in zip(programs, owner, verified, strict=True):
        r.rtl_cycles += v.rtl.cycles
        if not v.matches:
            r.rtl_mismatch = ((r.rtl_mismatch + "; ") if r.rtl_mismatch else "") + \
                f"program {key}: {v.comparison}"
        sram = sram_image(lr.config, programs[key], v.rtl,
                          base=sram if key in continues else None)
        if key == f"{r.name}.{len(r.programs) - 1}":
            r.sram = sram
    outs = []
    for r in lr.runs:
        r.rtl_differences = r.lowered.differences(r.trace, r.sram)
        outs.append(r.lowered.read_output(r.sram))
    lr.output = np.concatenate(outs)
    lr.rtl_build_seconds = verified[0].rtl.build_seconds
    lr.rtl_run_seconds = sum(v.rtl.run_seconds for v in verified)
