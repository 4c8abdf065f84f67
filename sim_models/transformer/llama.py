"""Integer Llama decoder layer with RoPE, GQA and a KV cache (constants from :mod:`.calibrate`).

The residual stream is int32 (scale ``scales["x"]`` in, ``scales["out"]`` out, calibrated
maximum at ``2**res_bits``, ``res_bits = min(20, 29 - ceil(log2 H))``). Dataflow (trace
names in quotes)::

    "ln_attn.*"        RMSNorm              int32 x -> int8
    "q|k.acc" "q|k"    ABC, REQ.i16         int16 pre-RoPE q, k (calibrated max at 2**14)
    "v.acc" "v"        ABC, REQ.i8
    "rope_q|k.*"       CVT, PERMUTE, MUL, MUL, ADD   (rope.py), Q15 * q
    "q_rope" "k_rope"  REQ.i8               int8 rotated q, k; k_rope and v enter the cache
    "attn.*"           attention            causal over the cache, int8 context
    "o.acc"            ABC
    "h.attn" "h.x" "h" REQ.i32 x2, ADDS.i32 residual 1
    "ln_ffn.*"         RMSNorm              -> int8
    "gate.acc" "gate.q16" "ffn.silu"        ABC, REQ.i32 -> Q16.16, SILU (Q16.16)
    "up.acc" "up.scaled"                    ABC, REQ.i32 -> int32 with scale s_u
    "ffn.act"          REQ.i8 (a=silu, b=up) silu(g) * u -> int8: the SwiGLU product is the
                                            64-bit REQ product, scaled by 2**-act_shift
    "down.acc" "out.ffn" "out.h" "out"      ABC, REQ.i32 x2, ADDS.i32 residual 2

The int8 tensors read only by a matmul (``ln_attn.out``, ``ln_ffn.out``, ``ffn.act``) have one
scale per channel (SmoothQuant-style, folded into the weights; see :mod:`.linear`).

SwiGLU scaling: with ``s_u = s_act 2**(16 - act_shift)`` (per channel) the product
``silu_q16 * u / 2**act_shift`` is exactly ``silu * up / s_act``; ``act_shift`` is chosen so
that the calibrated ``max|up|`` maps to at most ``2**15`` units of ``s_u``, so the product of
the int32 Q16.16 SiLU value and ``u`` stays far inside 64 bits.

One :meth:`IntLlamaLayer.forward` call handles prefill (``T`` tokens into an empty cache) and
decode (one token per call): the tokens sit at positions ``cache.length ..``. Because masked
keys get exactly zero probability, a decode step reproduces, bit for bit, the matching row of
a prefill over the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.model_import import LlamaConfig

from .attention import AttentionParams, IntKVCache, int_attention
from .linear import IntLinear
from .norm import NormParams, int_rmsnorm
from .ops import IntOps
from .quantize import Requant
from .rope import RopeTables, int_rope
from .trace import Trace

__all__ = ["IntLlamaLayer"]


@dataclass(frozen=True)
class IntLlamaLayer:
    """Every integer constant of one Llama decoder layer, and its forward pass.

    ``scales`` gives the real value of one unit of the named tensors (``x``, ``xn1``, ``q``,
    ``k``, ``v``, ``q_rope``, ``k_rope``, ``ctx``, ``h``, ``xn2``, ``up``, ``act``, ``out``;
    ``xn1``, ``xn2``, ``up`` and ``act`` have one value per channel).
    """

    config: LlamaConfig
    scales: dict[str, float | np.ndarray]
    ln_attn: NormParams
    q: IntLinear
    k: IntLinear
    v: IntLinear
    q_out: Requant
    k_out: Requant
    v_out: Requant
    rope: RopeTables
    q_rope: Requant
    k_rope: Requant
    attn: AttentionParams
    o: IntLinear
    o_res: Requant
    x_res: Requant
    ln_ffn: NormParams
    gate: IntLinear
    gate_q16: Requant
    up: IntLinear
    up_scaled: Requant
    act_shift: int
    down: IntLinear
    down_res: Requant
    h_res: Requant

    @property
    def max_positions(self) -> int:
        """Positions the RoPE tables (and so the KV cache) cover."""
        return self.rope.max_positions

    def new_cache(self) -> IntKVCache:
        """An empty KV cache for this layer."""
        c = self.config
        return IntKVCache(c.num_kv_heads, c.head_dim, self.max_positions)

    def forward(self, x, cache: IntKVCache | None = None,
                ops: IntOps | None = None) -> tuple[np.ndarray, Trace]:
        """Run the layer on int32 ``x`` [T, hidden] at positions ``cache.length ..``.

        The new keys and values are appended to ``cache`` (a new one when None: prefill).
        Returns ``(int32 out [T, hidden], trace)``.
        """
        ops = ops if ops is not None else IntOps()
        c = self.config
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != c.hidden_size:
            raise ValueError(f"x must be [T, {c.hidden_size}], got {x.shape}")
        cache = cache if cache is not None else self.new_cache()
        t, dh = x.shape[0], c.head_dim
        pos = np.arange(cache.length, cache.length + t)

        def heads(a, n):
            return a.reshape(t, n, dh).transpose(1, 0, 2)

        xn = int_rmsnorm(ops.scope("ln_attn"), x, self.ln_attn)
        q = self.q_out.apply(ops, "q", self.q.forward(ops, "q", xn))
        k = self.k_out.apply(ops, "k", self.k.forward(ops, "k", xn))
        v = self.v_out.apply(ops, "v", self.v.forward(ops, "v", xn))
        qr = int_rope(ops.scope("rope_q"), heads(q, c.num_heads), pos, self.rope)
        qr = self.q_rope.apply(ops, "q_rope", qr)
        kr = int_rope(ops.scope("rope_k"), heads(k, c.num_kv_heads), pos, self.rope)
        kr = self.k_rope.apply(ops, "k_rope", kr)
        cache.append(kr, heads(v, c.num_kv_heads))
        ctx = int_attention(ops.scope("attn"), qr, cache, pos, self.attn, causal=True)
        o = self.o.forward(ops, "o", ctx)
        h = ops.adds("h", self.o_res.apply(ops, "h.attn", o), self.x_res.apply(ops, "h.x", x))
        hn = int_rmsnorm(ops.scope("ln_ffn"), h, self.ln_ffn)
        g = self.gate_q16.apply(ops, "gate.q16", self.gate.forward(ops, "gate", hn))
        g = ops.silu("ffn.silu", g)
        u = self.up_scaled.apply(ops, "up.scaled", self.up.forward(ops, "up", hn))
        a = ops.req("ffn.act", g, u, self.act_shift, 8)
        d = self.down.forward(ops, "down", a)
        out = ops.adds("out", self.down_res.apply(ops, "out.ffn", d),
                       self.h_res.apply(ops, "out.h", h))
        return out, ops.trace
