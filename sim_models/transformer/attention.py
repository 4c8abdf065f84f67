"""Integer multi-head / grouped-query attention over an int8 KV cache.

For query head ``h`` the keys and values of KV head ``h // kv_groups`` are used (GQA; plain
multi-head attention is ``kv_groups = 1``). Per head:

* ``scores = ABC(K, q)``: the cached keys ``K`` [S, dh] are the MXM weights (one key per
  output lane), each query row is streamed through: int32 ``[T, S]``, ``|s| <= 2**14 dh``;
* causal mask ``key_pos <= query_pos`` (a compile-time predicate vector per query row) and
  :func:`~sim_models.transformer.softmax.int_softmax` -> int8 probabilities, scale 1/127;
* ``ctx = ABC(V.T, p)``: ``V.T`` [dh, S] as weights, the probability row streamed through:
  int32, ``|ctx| <= 127 * 128 * S``, one ``REQ.i8`` to the context scale.

The cache is the chip's SRAM: appending a token is a MEM ``WRITE`` (not arithmetic, so it is
not traced; the appended tensors are, where they are computed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ops import IntOps, int_range
from .quantize import Requant
from .softmax import SoftmaxParams, int_softmax

__all__ = ["AttentionParams", "IntKVCache", "int_attention"]


class IntKVCache:
    """int8 keys and values of the positions seen so far, ``[kv_heads, length, head_dim]``.

    Parameters
    ----------
    num_kv_heads, head_dim : int
        Cache geometry.
    capacity : int
        Most positions it may hold (the compiled layer's ``max_positions``).
    """

    def __init__(self, num_kv_heads: int, head_dim: int, capacity: int):
        self.capacity = int(capacity)
        self.k = np.zeros((num_kv_heads, 0, head_dim), dtype=np.int8)
        self.v = np.zeros((num_kv_heads, 0, head_dim), dtype=np.int8)

    @property
    def length(self) -> int:
        """Number of cached positions."""
        return self.k.shape[1]

    def append(self, k, v) -> None:
        """Append int8 ``k``, ``v`` ``[kv_heads, T, head_dim]`` at the next positions.

        Raises
        ------
        ValueError
            Wrong geometry, values outside int8, or the cache would exceed its capacity.
        """
        k = np.asarray(k)
        v = np.asarray(v)
        if k.shape != v.shape or k.shape[0] != self.k.shape[0] or k.shape[2] != self.k.shape[2]:
            raise ValueError(f"k {k.shape} / v {v.shape} do not fit a cache of "
                             f"[{self.k.shape[0]}, S, {self.k.shape[2]}]")
        lo, hi = int_range(8)
        for a in (k, v):
            if a.size and (a.min() < lo or a.max() > hi):
                raise ValueError("KV cache entries must be int8")
        if self.length + k.shape[1] > self.capacity:
            raise ValueError(f"KV cache full: {self.length} + {k.shape[1]} positions exceed "
                             f"its capacity {self.capacity}")
        self.k = np.concatenate([self.k, k.astype(np.int8)], axis=1)
        self.v = np.concatenate([self.v, v.astype(np.int8)], axis=1)


@dataclass(frozen=True)
class AttentionParams:
    """Constants of the attention core (between the projections)."""

    num_heads: int
    kv_groups: int  #: query heads per KV head
    softmax: SoftmaxParams
    ctx: Requant  #: ``REQ.i8``: P @ V accumulator -> context scale


def int_attention(ops: IntOps, q, cache: IntKVCache, positions, p: AttentionParams,
                  causal: bool) -> np.ndarray:
    """Attention of int8 queries ``q`` ``[heads, T, dh]`` over everything in ``cache``.

    ``positions`` [T] are the queries' absolute positions; with ``causal`` a query sees the
    keys at positions ``<= `` its own, otherwise all cached keys. Returns the int8 context
    ``[T, heads * dh]``. Records ``scores``, the softmax steps under ``softmax.``,
    ``ctx.acc`` and ``ctx``.
    """
    q = np.asarray(q)
    heads, t, dh = q.shape
    if heads != p.num_heads:
        raise ValueError(f"q has {heads} heads, constants are for {p.num_heads}")
    k = np.repeat(cache.k, p.kv_groups, axis=0)  # head h reads KV head h // kv_groups
    v = np.repeat(cache.v, p.kv_groups, axis=0)
    scores = ops.abc("scores", k, q)  # [heads, T, S]
    mask = None
    if causal:
        pos = np.asarray(positions)
        mask = (np.arange(cache.length)[None, :] <= pos[:, None])[None]
    probs = int_softmax(ops.scope("softmax"), scores, p.softmax, mask)
    acc = ops.abc("ctx.acc", np.swapaxes(v, 1, 2), probs)  # [heads, T, dh]
    ctx = p.ctx.apply(ops, "ctx", acc)
    return ctx.transpose(1, 0, 2).reshape(t, heads * dh)
