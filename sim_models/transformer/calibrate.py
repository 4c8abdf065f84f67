"""Calibration: float reference on sample inputs -> activation ranges -> integer layer constants.

1. The float reference layers (:mod:`sim_models.float_layers`) run on the sample inputs;
   :func:`activation_ranges` reduces their ``acts`` to one range per tensor (the maximum
   absolute value, or a percentile of ``|x|`` to clip rare outliers) and
   :func:`channel_ranges` to one maximum per channel (last axis).
2. Each tensor gets a symmetric scale: int8 tensors ``range / 127``; the int32 residual stream
   ``range / 2**res_bits``; the int16 pre-RoPE queries / keys ``range / 2**14``; the wide
   BERT tensors ``range / (127 * 2**8)``. The attention context, a convex combination of
   value rows, gets the value scale (its ``REQ`` is a plain ``/ 127``) and so never
   saturates: its observed range is smaller only because few sequences are seen (position 0
   always has ``ctx = v_0``), and calibrating on it clipped the context of new sequences.
3. int8 tensors read only by a matmul get one scale per channel (:func:`smooth_scales`,
   SmoothQuant with migration strength ``alpha``), which the producing ``REQ`` realises with
   per-lane multipliers and the weights absorb (:class:`IntLinear`). ``alpha = None`` gives
   plain per-tensor scales; ``alpha = "auto"`` (default) picks, per matmul input, the
   candidate of :data:`ALPHA_CANDIDATES` whose quantised matmul is closest to the float one
   on held-out calibration samples (:func:`choose_alpha`). Smoothing pays off where channels
   have outliers (BERT's LayerNorm outputs: worst MiniLM layer 0.9926 -> 0.9986 cosine);
   without outliers per-tensor scales generalise better to unseen tokens.
4. Weights are quantised per output channel, biases to accumulator units, and every
   rescaling between two tensors becomes ``REQ`` constants (:class:`Requant`).

:func:`calibrate_bert_layer` and :func:`calibrate_llama_layer` do all of it for one layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from firmware.model_import import BertConfig, BertLayerWeights, LlamaConfig, LlamaLayerWeights

from .. import float_layers as fl
from .attention import AttentionParams
from .bert import IntBertLayer
from .linear import IntLinear
from .llama import IntLlamaLayer
from .norm import WIDE_FRAC_BITS, NormParams
from .quantize import Requant, quantize_weight_per_channel, symmetric_scale
from .rope import ROPE_FRAC_BITS, RopeTables
from .softmax import PROB_ONE, SoftmaxParams

__all__ = [
    "ALPHA_CANDIDATES",
    "Q16_ONE",
    "activation_ranges",
    "calibrate_bert_layer",
    "calibrate_llama_layer",
    "channel_ranges",
    "choose_alpha",
    "res_bits",
    "smooth_scales",
]

#: One in Q16.16 (the GELU / SILU / EXP input format).
Q16_ONE = 1 << 16
#: SmoothQuant migration strengths tried by ``alpha="auto"`` (None: per-tensor scale).
ALPHA_CANDIDATES: tuple[float | None, ...] = (None, 0.5, 0.7, 0.85)
#: Calibrated maximum of the int16 pre-RoPE queries / keys (a factor 2 below saturation).
_Q16_BITS = 14
#: Largest score of an int8 . int8 dot product, per lane.
_SCORE_PER_LANE = 1 << 14
_WIDE = 127 << WIDE_FRAC_BITS


def res_bits(hidden: int) -> int:
    """Bits of the residual stream's calibrated maximum for hidden size ``hidden``.

    ``min(20, 29 - ceil(log2 H))``: with a factor 2 of headroom the LayerNorm / RMSNorm sums
    over ``H`` values stay below ``2**30``; 20 bits are far more than int8 outputs need.
    """
    return min(20, 29 - math.ceil(math.log2(hidden)))


def activation_ranges(acts: Sequence[Mapping[str, np.ndarray]],
                      percentile: float | None = None) -> dict[str, float]:
    """One range per tensor name over all samples: ``max|x|`` or ``percentile(|x|)``.

    Parameters
    ----------
    acts : sequence of mappings name -> float array
        The ``acts`` of the float reference layers, one per calibration sample.
    percentile : float, optional
        If given (e.g. 99.99), the range is that percentile of ``|x|`` over every value of
        every sample instead of the maximum.
    """
    if not acts:
        raise ValueError("calibration needs at least one sample")
    out = {}
    for name in acts[0]:
        vals = np.concatenate([np.abs(np.asarray(a[name], dtype=np.float64)).ravel()
                               for a in acts])
        r = float(np.percentile(vals, percentile)) if percentile is not None else vals.max()
        out[name] = float(r)
    return out


def channel_ranges(acts: Sequence[Mapping[str, np.ndarray]], name: str) -> np.ndarray:
    """``max|x|`` of tensor ``name`` per channel (last axis) over all samples and tokens."""
    return np.max([np.abs(np.asarray(a[name], dtype=np.float64)).reshape(
        -1, a[name].shape[-1]).max(axis=0) for a in acts], axis=0)


def smooth_scales(ranges, weights: Sequence[np.ndarray], alpha: float | None,
                  qmax: int = 127) -> np.ndarray:
    """Per-channel int8 scales of a matmul input (SmoothQuant).

    Channel ``j`` is divided by ``f_j = r_j**alpha / w_j**(1 - alpha)`` (``r_j`` its activation
    range, ``w_j`` the largest weight of column ``j`` over ``weights``, the matrices that read
    this input) and the result is quantised with one scale ``s``; i.e. channel ``j`` has scale
    ``s f_j`` and the weight columns absorb ``f_j``. ``alpha = None``: one scale for all.

    Returns
    -------
    numpy.ndarray of float64
        ``[K]`` per-channel scales, or a 0-d array when ``alpha`` is None.
    """
    r = np.asarray(ranges, dtype=np.float64)
    if alpha is None:
        return np.asarray(symmetric_scale(float(r.max()), qmax))
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    w = np.max([np.abs(np.asarray(m, dtype=np.float64)).max(axis=0) for m in weights], axis=0)
    # dead channels (all-zero activations or weights) must not divide by zero
    r = np.maximum(r, max(r.max(), 1e-30) * 1e-6)
    w = np.maximum(w, max(w.max(), 1e-30) * 1e-6)
    f = r**alpha / w ** (1.0 - alpha)
    return f * float(np.max(r / f)) / qmax


def _tokens(acts: Sequence[Mapping[str, np.ndarray]], name: str) -> list[np.ndarray]:
    """Tensor ``name`` of each sample as token vectors [tokens, channels], float64."""
    return [np.asarray(a[name], dtype=np.float64).reshape(-1, a[name].shape[-1]) for a in acts]


def _matmul_error(x: np.ndarray, weights: Sequence[np.ndarray], scale: np.ndarray) -> float:
    """Squared error of the int8 x int8 matmuls against float, relative (summed over weights)."""
    xq = np.clip(np.floor(x / scale + 0.5), -128, 127)
    err = ref_norm = 0.0
    for w in weights:
        wq, ws = quantize_weight_per_channel(np.asarray(w, dtype=np.float64) * scale)
        ref = x @ np.asarray(w, dtype=np.float64).T
        err += float(np.sum((xq @ (wq.astype(np.float64) * ws[:, None]).T - ref) ** 2))
        ref_norm += float(np.sum(ref**2))
    return err / max(ref_norm, 1e-300)


def choose_alpha(samples: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                 candidates: Sequence[float | None] = ALPHA_CANDIDATES) -> float | None:
    """The SmoothQuant strength giving the most accurate int8 matmuls ``x @ w.T``.

    ``samples`` holds one ``[tokens, K]`` matrix per calibration sample. Leave-one-sample-out:
    ranges fitted on the other samples are scored on each sample, so per-channel ranges that
    merely fit the calibration tokens (and clip new ones, as with random Gaussian weights) lose
    against ones that generalise, while structural outliers (BERT's first position) are seen
    in every fold. With a single sample the ranges are scored on it.
    """
    xs = [np.asarray(x, dtype=np.float64) for x in samples]
    best, best_err = candidates[0], math.inf
    for a in candidates:
        if len(xs) == 1:
            err = _matmul_error(xs[0], weights,
                                smooth_scales(np.abs(xs[0]).max(axis=0), weights, a))
        else:
            err = 0.0
            for i, held_out in enumerate(xs):
                fit = np.max([np.abs(x).max(axis=0) for j, x in enumerate(xs) if j != i], axis=0)
                err += _matmul_error(held_out, weights, smooth_scales(fit, weights, a))
        if err < best_err:
            best, best_err = a, err
    return best


def _input_scales(acts, name: str, weights: Sequence[np.ndarray], alpha) -> np.ndarray:
    """Per-channel (or per-tensor) int8 scales of matmul input ``name`` for ``alpha``."""
    if alpha == "auto":
        alpha = choose_alpha(_tokens(acts, name), weights)
    return smooth_scales(channel_ranges(acts, name), weights, alpha)


def _softmax_params(s_q: float, s_k: float, head_dim: int, max_keys: int) -> SoftmaxParams:
    return SoftmaxParams.build(s_q * s_k / math.sqrt(head_dim), max_keys,
                               _SCORE_PER_LANE * head_dim)


def calibrate_bert_layer(w: BertLayerWeights, config: BertConfig,
                         samples: Sequence[np.ndarray], *, percentile: float | None = None,
                         alpha: float | str | None = "auto", max_keys: int | None = None,
                         in_scale: float | None = None) -> IntBertLayer:
    """Integer constants of one BERT layer from float inputs ``samples`` (each [T, hidden]).

    Parameters
    ----------
    w, config : the layer's float weights and the model config.
    samples : sequence of float arrays [T, hidden]
        Calibration inputs (the layer's float input, e.g. embeddings of sample sentences).
    percentile : float, optional
        Per-tensor ranges as this percentile of ``|x|`` instead of the maximum.
    alpha : float, None or "auto"
        SmoothQuant strength of the per-channel int8 scales of matmul inputs (None:
        per-tensor scales; "auto": :func:`choose_alpha` per input).
    max_keys : int, optional
        Longest sequence the softmax must serve (default ``config.max_position_embeddings``).
    in_scale : float, optional
        Scale of the wide int32 input (the previous layer's ``scales["out"]`` when layers
        are chained); by default calibrated from ``samples``.
    """
    c = config
    acts = [fl.bert_layer(w, c, x)[1] for x in samples]
    r = activation_ranges(acts, percentile)
    rb = res_bits(c.hidden_size)
    s: dict = {n: symmetric_scale(r[n], 127) for n in ("q", "k", "v")}
    s["ctx"] = s["v"]  # a convex combination of value rows: it cannot saturate
    s["x"] = in_scale if in_scale is not None else symmetric_scale(r["x"], _WIDE)
    s["x8"] = _input_scales(acts, "x", [w.wq, w.wk, w.wv], alpha)
    s["y1"] = _input_scales(acts, "y1", [w.w_in], alpha)
    s["y1_wide"] = symmetric_scale(r["y1"], _WIDE)
    s["ffn_act"] = _input_scales(acts, "ffn_act", [w.w_out], alpha)
    s["out8"] = symmetric_scale(r["out"], 127)
    s["out"] = symmetric_scale(r["out"], _WIDE)
    s["h1"] = symmetric_scale(r["h1"], 1 << rb)
    s["h2"] = symmetric_scale(r["h2"], 1 << rb)
    q = IntLinear.quantize(w.wq, w.bq, s["x8"])
    k = IntLinear.quantize(w.wk, w.bk, s["x8"])
    v = IntLinear.quantize(w.wv, w.bv, s["x8"])
    o = IntLinear.quantize(w.wo, w.bo, s["ctx"])
    ffn_in = IntLinear.quantize(w.w_in, w.b_in, s["y1"])
    ffn_out = IntLinear.quantize(w.w_out, w.b_out, s["ffn_act"])
    keys = max_keys if max_keys is not None else c.max_position_embeddings
    attn = AttentionParams(
        num_heads=c.num_heads, kv_groups=1,
        softmax=_softmax_params(s["q"], s["k"], c.head_dim, keys),
        ctx=Requant.from_real(s["v"] / PROB_ONE / s["ctx"], 8),
    )
    return IntBertLayer(
        config=c, scales=s,
        x_in=Requant.from_real(s["x"] / s["x8"], 8),
        q=q, k=k, v=v,
        q_out=Requant.from_real(q.acc_scale / s["q"], 8),
        k_out=Requant.from_real(k.acc_scale / s["k"], 8),
        v_out=Requant.from_real(v.acc_scale / s["v"], 8),
        attn=attn, o=o,
        o_res=Requant.from_real(o.acc_scale / s["h1"], 32),
        x_res=Requant.from_real(s["x"] / s["h1"], 32),
        ln1=NormParams.build(c.hidden_size, s["h1"], rb + 1, c.layer_norm_eps,
                             w.ln1_weight, w.ln1_bias, s["y1"], s["y1_wide"]),
        ffn_in=ffn_in,
        ffn_q16=Requant.from_real(ffn_in.acc_scale * Q16_ONE, 32),
        ffn_act=Requant.from_real(1.0 / (Q16_ONE * s["ffn_act"]), 8),
        ffn_out=ffn_out,
        ffn_res=Requant.from_real(ffn_out.acc_scale / s["h2"], 32),
        y1_res=Requant.from_real(s["y1_wide"] / s["h2"], 32),
        ln2=NormParams.build(c.hidden_size, s["h2"], rb + 1, c.layer_norm_eps,
                             w.ln2_weight, w.ln2_bias, s["out8"], s["out"]),
    )


def calibrate_llama_layer(w: LlamaLayerWeights, config: LlamaConfig,
                          samples: Sequence[np.ndarray], *, percentile: float | None = None,
                          alpha: float | str | None = "auto",
                          max_positions: int | None = None,
                          in_scale: float | None = None) -> IntLlamaLayer:
    """Integer constants of one Llama layer from float residual inputs ``samples``.

    Each sample [T, hidden] is run as a prefill from position 0. ``max_positions`` (default
    ``min(config.max_position_embeddings, 4096)``) sizes the RoPE tables, the KV cache and
    the softmax constants; ``in_scale`` fixes the int32 input scale (chained layers).
    ``percentile`` and ``alpha`` as for :func:`calibrate_bert_layer`.
    """
    c = config
    acts = [fl.llama_layer(w, c, x)[1] for x in samples]
    r = activation_ranges(acts, percentile)
    rb = res_bits(c.hidden_size)
    npos = max_positions if max_positions is not None else min(c.max_position_embeddings, 4096)
    s: dict = {n: symmetric_scale(r[n], 127) for n in ("v", "q_rope", "k_rope")}
    s["ctx"] = s["v"]  # a convex combination of value rows: it cannot saturate
    s["x"] = in_scale if in_scale is not None else symmetric_scale(r["x"], 1 << rb)
    for n in ("h", "out"):
        s[n] = symmetric_scale(r[n], 1 << rb)
    s["q"] = symmetric_scale(r["q"], 1 << _Q16_BITS)
    s["k"] = symmetric_scale(r["k"], 1 << _Q16_BITS)
    s["xn1"] = _input_scales(acts, "xn1", [w.wq, w.wk, w.wv], alpha)
    s["xn2"] = _input_scales(acts, "xn2", [w.w_gate, w.w_up], alpha)
    s["act"] = _input_scales(acts, "act", [w.w_down], alpha)
    q = IntLinear.quantize(w.wq, None, s["xn1"])
    k = IntLinear.quantize(w.wk, None, s["xn1"])
    v = IntLinear.quantize(w.wv, None, s["xn1"])
    o = IntLinear.quantize(w.wo, None, s["ctx"])
    gate = IntLinear.quantize(w.w_gate, None, s["xn2"])
    up = IntLinear.quantize(w.w_up, None, s["xn2"])
    down = IntLinear.quantize(w.w_down, None, s["act"])
    # s_up = s_act * 2**(16 - act_shift) per channel, with max|up| <= 2**15 units of s_up
    ratio = np.maximum(channel_ranges(acts, "up"), 1e-30) / (2**15 * s["act"])
    act_shift = min(63, max(0, math.floor(16 - math.log2(float(np.max(ratio))))))
    s["up"] = s["act"] * 2.0 ** (16 - act_shift)
    rope_unit = 2.0**-ROPE_FRAC_BITS
    attn = AttentionParams(
        num_heads=c.num_heads, kv_groups=c.kv_groups,
        softmax=_softmax_params(s["q_rope"], s["k_rope"], c.head_dim, min(npos, 65535)),
        ctx=Requant.from_real(s["v"] / PROB_ONE / s["ctx"], 8),
    )
    return IntLlamaLayer(
        config=c, scales=s,
        ln_attn=NormParams.build(c.hidden_size, s["x"], rb + 1, c.rms_norm_eps,
                                 w.attn_norm, None, s["xn1"]),
        q=q, k=k, v=v,
        q_out=Requant.from_real(q.acc_scale / s["q"], 16),
        k_out=Requant.from_real(k.acc_scale / s["k"], 16),
        v_out=Requant.from_real(v.acc_scale / s["v"], 8),
        rope=RopeTables.build(c.head_dim, c.rope_theta, npos),
        q_rope=Requant.from_real(s["q"] * rope_unit / s["q_rope"], 8),
        k_rope=Requant.from_real(s["k"] * rope_unit / s["k_rope"], 8),
        attn=attn, o=o,
        o_res=Requant.from_real(o.acc_scale / s["h"], 32),
        x_res=Requant.from_real(s["x"] / s["h"], 32),
        ln_ffn=NormParams.build(c.hidden_size, s["h"], rb + 1, c.rms_norm_eps,
                                w.ffn_norm, None, s["xn2"]),
        gate=gate,
        gate_q16=Requant.from_real(gate.acc_scale * Q16_ONE, 32),
        up=up,
        up_scaled=Requant.from_real(up.acc_scale / s["up"], 32),
        act_shift=act_shift,
        down=down,
        down_res=Requant.from_real(down.acc_scale / s["out"], 32),
        h_res=Requant.from_real(s["h"] / s["out"], 32),
    )
