"""Integer post-LN BERT encoder layer (the constants come from :mod:`.calibrate`).

Input and output are "wide" int32 tensors (about 8 bits finer than int8: what the LayerNorm
computes before its final rounding). The matmuls read int8 versions; the residual path keeps
the extra bits, since BERT's LayerNorm outputs have outlier channels (|y| up to ~30 where most
are ~1) and an int8 residual would cost about 0.005 of cosine similarity per layer. The int8
tensors read only by a matmul (``x8``, ``y1``, ``ffn.act``) have one scale per channel,
folded into the weights (:mod:`.linear`). Dataflow (trace names in quotes)::

    "x8"               REQ.i8           the int8 input of the projections (per channel)
    "q|k|v.acc/.bias"  ABC + ADD.i32    int8 x -> int32 projections (per-channel scales)
    "q|k|v"            REQ.i8           -> int8, one scale per tensor
    "attn.*"           attention        int8 context [T, H] (see attention.py, softmax.py)
    "o.acc/.bias"      ABC + ADD.i32
    "h1.attn"          REQ.i32          output projection in residual units (2**res_bits)
    "h1.x"             REQ.i32          the wide layer input in residual units
    "h1"               ADDS.i32         residual sum
    "ln1.*"            LayerNorm        -> int8 y1 (and wide y1, "ln1.beta")
    "ffn_in.acc/.bias" ABC + ADD.i32
    "ffn_in.q16"       REQ.i32          -> Q16.16 (per-channel factor)
    "ffn.gelu"         GELU             Q16.16
    "ffn.act"          REQ.i8           -> int8 (per-channel scales)
    "ffn_out.acc/.bias" ABC + ADD.i32
    "h2.ffn", "h2.y", "h2"              as h1, with wide y1 as the residual
    "ln2.*"            LayerNorm        -> the wide output "ln2.beta" (and int8 "ln2.out")

The residual terms are ``REQ.i32`` outputs bounded by ``2**res_bits`` in the calibrated range
(``res_bits = min(20, 29 - ceil(log2 H))``); the residual add saturates instead of wrapping
should an input exceed that range by more than the factor 2 of headroom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.model_import import BertConfig

from .attention import AttentionParams, IntKVCache, int_attention
from .linear import IntLinear
from .norm import NormParams, int_layernorm
from .ops import IntOps
from .quantize import Requant
from .trace import Trace

__all__ = ["IntBertLayer"]


@dataclass(frozen=True)
class IntBertLayer:
    """Every integer constant of one BERT encoder layer, and its forward pass.

    ``scales`` gives the real value of one unit of the named tensors (``x``, ``x8``, ``q``,
    ``k``, ``v``, ``ctx``, ``h1``, ``y1``, ``y1_wide``, ``ffn_act``, ``h2``, ``out``,
    ``out8``; a float, or an array with one value per channel for ``x8``, ``y1``,
    ``ffn_act``, ``out8``) for quantising the input and dequantising results.
    """

    config: BertConfig
    scales: dict[str, float | np.ndarray]
    x_in: Requant
    q: IntLinear
    k: IntLinear
    v: IntLinear
    q_out: Requant
    k_out: Requant
    v_out: Requant
    attn: AttentionParams
    o: IntLinear
    o_res: Requant
    x_res: Requant
    ln1: NormParams
    ffn_in: IntLinear
    ffn_q16: Requant
    ffn_act: Requant
    ffn_out: IntLinear
    ffn_res: Requant
    y1_res: Requant
    ln2: NormParams

    def forward(self, x, ops: IntOps | None = None) -> tuple[np.ndarray, Trace]:
        """Run the layer on wide int32 ``x`` [T, hidden] (scale ``scales["x"]``).

        Returns ``(out, trace)``, ``out`` wide int32 [T, hidden] with scale ``scales["out"]``
        (``trace["ln2.out"]`` is its int8 version, scale ``scales["out8"]``). ``ops``
        (optional) selects the trace and a name prefix (``IntOps(trace, "layer0.")``).
        """
        ops = ops if ops is not None else IntOps()
        c = self.config
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != c.hidden_size:
            raise ValueError(f"x must be [T, {c.hidden_size}], got {x.shape}")
        t, nh, dh = x.shape[0], c.num_heads, c.head_dim

        def heads(a):
            return a.reshape(t, nh, dh).transpose(1, 0, 2)

        x8 = self.x_in.apply(ops, "x8", x)
        q = self.q_out.apply(ops, "q", self.q.forward(ops, "q", x8))
        k = self.k_out.apply(ops, "k", self.k.forward(ops, "k", x8))
        v = self.v_out.apply(ops, "v", self.v.forward(ops, "v", x8))
        cache = IntKVCache(nh, dh, t)
        cache.append(heads(k), heads(v))
        ctx = int_attention(ops.scope("attn"), heads(q), cache, np.arange(t), self.attn,
                            causal=False)
        o = self.o.forward(ops, "o", ctx)
        h1 = ops.adds("h1", self.o_res.apply(ops, "h1.attn", o),
                      self.x_res.apply(ops, "h1.x", x))
        y1, y1_wide = int_layernorm(ops.scope("ln1"), h1, self.ln1)
        f = self.ffn_in.forward(ops, "ffn_in", y1)
        f = self.ffn_q16.apply(ops, "ffn_in.q16", f)
        g = ops.gelu("ffn.gelu", f)
        a = self.ffn_act.apply(ops, "ffn.act", g)
        f2 = self.ffn_out.forward(ops, "ffn_out", a)
        h2 = ops.adds("h2", self.ffn_res.apply(ops, "h2.ffn", f2),
                      self.y1_res.apply(ops, "h2.y", y1_wide))
        _, out = int_layernorm(ops.scope("ln2"), h2, self.ln2)
        return out, ops.trace
