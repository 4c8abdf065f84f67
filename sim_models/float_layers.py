"""Float32 reference transformer layers: the BERT encoder layer and the Llama decoder layer.

These are the usual Hugging Face computations, written in NumPy float32, and serve as the
accuracy reference and the calibration source for the integer layers of
:mod:`sim_models.transformer`:

* :func:`bert_layer` - post-LN encoder layer: multi-head self-attention (bidirectional),
  residual, LayerNorm; GELU (erf) FFN, residual, LayerNorm.
* :func:`llama_layer` - pre-norm decoder layer: RMSNorm, RoPE (``rope_theta``, the
  ``rotate_half`` convention), grouped-query causal attention over a :class:`FloatKVCache`,
  residual; RMSNorm, SwiGLU FFN, residual. One function serves prefill (``T`` tokens into an
  empty cache) and decode (one token appended per call): the tokens of a call sit at positions
  ``cache.length .. cache.length + T - 1`` and see every earlier position.

Each function returns ``(output, acts)``: ``acts`` maps the names of the intermediate tensors
(the same names the integer layers calibrate on) to float32 arrays.
"""

from __future__ import annotations

import math

import numpy as np

from firmware.model_import import (
    BertConfig,
    BertEmbeddings,
    BertLayerWeights,
    LlamaConfig,
    LlamaLayerWeights,
)

__all__ = [
    "FloatKVCache",
    "bert_embed",
    "bert_layer",
    "gelu",
    "layer_norm",
    "llama_layer",
    "rms_norm",
    "rope_angles",
    "softmax",
]

_F = np.float32


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as PyTorch)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + _F(eps)) * weight + bias).astype(_F)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """Llama RMSNorm over the last axis: ``x / sqrt(mean(x**2) + eps) * weight``."""
    ms = (x * x).mean(axis=-1, keepdims=True)
    return (x / np.sqrt(ms + _F(eps)) * weight).astype(_F)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (max-subtracted; ``-inf`` entries give 0)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(_F)


def _erf(x: np.ndarray) -> np.ndarray:
    # float64 erf element by element: NumPy has none and scipy is not a dependency
    return np.frompyfunc(math.erf, 1, 1)(x.astype(np.float64)).astype(np.float64)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT's ``hidden_act = "gelu"``."""
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(_F)


def _silu(x: np.ndarray) -> np.ndarray:
    return (x / (1.0 + np.exp(-x))).astype(_F)


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, kv_groups: int,
               mask: np.ndarray | None, acts: dict) -> np.ndarray:
    """``q`` [heads, T, dh], ``k``/``v`` [kv_heads, S, dh] -> context [T, heads * dh]."""
    heads, t, dh = q.shape
    k = np.repeat(k, kv_groups, axis=0)
    v = np.repeat(v, kv_groups, axis=0)
    scores = (q @ k.transpose(0, 2, 1)) / _F(math.sqrt(dh))
    if mask is not None:
        scores = np.where(mask, scores, _F(-np.inf))
    probs = softmax(scores)
    ctx = probs @ v
    acts["scores"] = np.where(np.isfinite(scores), scores, 0).astype(_F)
    acts["probs"] = probs
    return ctx.transpose(1, 0, 2).reshape(t, heads * dh).astype(_F)


def bert_embed(emb: BertEmbeddings, config: BertConfig, token_ids: np.ndarray,
               token_type_ids: np.ndarray | None = None) -> np.ndarray:
    """BERT input embeddings (word + position + token type, LayerNorm) of one sequence."""
    token_ids = np.asarray(token_ids)
    t = token_ids.shape[0]
    types = np.zeros(t, dtype=np.int64) if token_type_ids is None else token_type_ids
    x = emb.word[token_ids] + emb.position[:t] + emb.token_type[types]
    return layer_norm(x.astype(_F), emb.ln_weight, emb.ln_bias, config.layer_norm_eps)


def bert_layer(w: BertLayerWeights, config: BertConfig,
               x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One post-LN BERT encoder layer on ``x`` [T, hidden] (all tokens attend to all).

    Returns ``(out, acts)``; ``acts`` holds ``x, q, k, v, scores`` (scaled logits, [heads, T,
    T]), ``probs, ctx, attn_out, h1, y1, ffn_pre, ffn_act, ffn_out, h2, out``.
    """
    x = np.asarray(x, dtype=_F)
    t = x.shape[0]
    nh, dh = config.num_heads, config.head_dim
    acts: dict[str, np.ndarray] = {"x": x}
    q = x @ w.wq.T + w.bq
    k = x @ w.wk.T + w.bk
    v = x @ w.wv.T + w.bv
    acts.update(q=q, k=k, v=v)

    def heads(a):
        return a.reshape(t, nh, dh).transpose(1, 0, 2)

    ctx = _attention(heads(q), heads(k), heads(v), 1, None, acts)
    attn_out = ctx @ w.wo.T + w.bo
    h1 = attn_out + x
    y1 = layer_norm(h1, w.ln1_weight, w.ln1_bias, config.layer_norm_eps)
    ffn_pre = y1 @ w.w_in.T + w.b_in
    ffn_act = gelu(ffn_pre)
    ffn_out = ffn_act @ w.w_out.T + w.b_out
    h2 = ffn_out + y1
    out = layer_norm(h2, w.ln2_weight, w.ln2_bias, config.layer_norm_eps)
    acts.update(ctx=ctx, attn_out=attn_out, h1=h1, y1=y1, ffn_pre=ffn_pre, ffn_act=ffn_act,
                ffn_out=ffn_out, h2=h2, out=out)
    return out, {k_: np.asarray(a, dtype=_F) for k_, a in acts.items()}


def rope_angles(positions: np.ndarray, head_dim: int, theta: float) -> np.ndarray:
    """RoPE angles ``pos * theta**(-2i/head_dim)`` as float64 [len(positions), head_dim / 2]."""
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    return np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]


def _rope(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """Apply RoPE (HF ``rotate_half``) to ``x`` [heads, T, dh] at ``positions`` [T]."""
    dh = x.shape[-1]
    ang = rope_angles(positions, dh, theta)
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1).astype(_F)
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1).astype(_F)
    half = dh // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return (x * cos + rot * sin).astype(_F)


class FloatKVCache:
    """Float keys and values of the tokens seen so far, ``[kv_heads, length, head_dim]``."""

    def __init__(self, num_kv_heads: int, head_dim: int):
        self.k = np.zeros((num_kv_heads, 0, head_dim), dtype=_F)
        self.v = np.zeros((num_kv_heads, 0, head_dim), dtype=_F)

    @property
    def length(self) -> int:
        """Number of cached positions."""
        return self.k.shape[1]

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        """Append ``k``, ``v`` [kv_heads, T, head_dim] at the next positions."""
        self.k = np.concatenate([self.k, k.astype(_F)], axis=1)
        self.v = np.concatenate([self.v, v.astype(_F)], axis=1)


def llama_layer(w: LlamaLayerWeights, config: LlamaConfig, x: np.ndarray,
                cache: FloatKVCache | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One Llama decoder layer on ``x`` [T, hidden] at positions ``cache.length + 0..T-1``.

    The new keys and values are appended to ``cache`` (a fresh cache when None: prefill).
    Returns ``(out, acts)``; ``acts`` holds ``x, xn1, q, k, v, q_rope, k_rope, scores, probs,
    ctx, attn_out, h, xn2, gate, up, act, down, out``.
    """
    c = config
    x = np.asarray(x, dtype=_F)
    t = x.shape[0]
    if cache is None:
        cache = FloatKVCache(c.num_kv_heads, c.head_dim)
    start = cache.length
    pos = np.arange(start, start + t)
    acts: dict[str, np.ndarray] = {"x": x}
    xn1 = rms_norm(x, w.attn_norm, c.rms_norm_eps)
    q = xn1 @ w.wq.T
    k = xn1 @ w.wk.T
    v = xn1 @ w.wv.T
    qh = q.reshape(t, c.num_heads, c.head_dim).transpose(1, 0, 2)
    kh = k.reshape(t, c.num_kv_heads, c.head_dim).transpose(1, 0, 2)
    vh = v.reshape(t, c.num_kv_heads, c.head_dim).transpose(1, 0, 2)
    q_rope = _rope(qh, pos, c.rope_theta)
    k_rope = _rope(kh, pos, c.rope_theta)
    cache.append(k_rope, vh)
    mask = np.arange(cache.length)[None, :] <= pos[:, None]  # [T, S]: causal
    acts.update(xn1=xn1, q=q, k=k, v=v, q_rope=q_rope, k_rope=k_rope)
    ctx = _attention(q_rope, cache.k, cache.v, c.kv_groups, mask[None], acts)
    attn_out = ctx @ w.wo.T
    h = x + attn_out
    xn2 = rms_norm(h, w.ffn_norm, c.rms_norm_eps)
    gate = xn2 @ w.w_gate.T
    up = xn2 @ w.w_up.T
    act = _silu(gate) * up
    down = act @ w.w_down.T
    out = h + down
    acts.update(ctx=ctx, attn_out=attn_out, h=h, xn2=xn2, gate=gate, up=up, act=act,
                down=down, out=out)
    return out.astype(_F), {k_: np.asarray(a, dtype=_F) for k_, a in acts.items()}
