"""The building blocks of a lowered layer, step for step the integer reference's modules.

Each function mirrors one function of :mod:`sim_models.transformer` (same instruction kinds,
same trace names, same constants) on :class:`~firmware.lower.graph.LayerGraph` tensors:
:func:`linear` (``IntLinear.forward``), :func:`requant` (``Requant.apply``), :func:`norm`
(``int_layernorm`` / ``int_rmsnorm``), :func:`softmax` (``int_softmax``), :func:`rope`
(``int_rope``) and :func:`attention` (``int_attention`` over a :class:`KVCache` resident in
SRAM).

Layouts (``L`` lanes, ``dh`` head size, ``DT = ceil(dh / L)``): projections put every head
on its own ``DT`` words (:func:`~firmware.lower.layout.head_columns`); the key cache is
``[positions, kv_heads * DT * L]``, one row per position; the value cache is stored
transposed, ``[kv_heads * DT * L, positions]`` (a channel per row, a position per lane), so
that its rows are the MXM weight rows of ``P @ V`` (:func:`append_values` transposes new
values on the MXM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openlpu.isa import Opcode

from .alloc import Tensor
from .elementwise import Word
from .graph import LayerGraph
from .head_packing import context_layout, heads_per_word, pack_heads
from .layout import Layout, head_columns
from .matmul import MxmBlock

__all__ = ["KVCache", "append_values", "attention", "flat_view", "heads_view", "linear",
           "norm", "requant", "rope", "softmax"]


def _weight_tiles(g: LayerGraph, weight: np.ndarray, in_cols: np.ndarray):
    """``{kt: [N, L] int8 matrix}``: row ``n`` of ``weight`` laid over input tile ``kt``."""
    L = g.L  # noqa: N806
    tiles = {}
    for kt in np.unique(in_cols // L):
        sel = in_cols // L == kt
        m = np.zeros((weight.shape[0], L), np.int64)
        m[:, in_cols[sel] % L] = weight[:, sel]
        tiles[int(kt)] = m
    return tiles


#: A linear layer's weight rows sit in the slices on the side of the MXM plane that loads them
#: when its rows per tile are fewer than this many times the ``LW``\ s a tile takes (measured:
#: the Llama h256 decode step on ``sim`` 3,499 -> 3,202 cycles, its 4-token prefill 5,305 ->
#: 5,183; at 32 tokens, spread over both sides, 10,454 against 10,569).
_SIDE_ROWS = 2


def _row_blocks(n: int, depth: int) -> list[range]:
    count = -(-n // depth)
    size = -(-n // count)
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def linear(g: LayerGraph, name: str, x: Tensor, weight, cols: np.ndarray | None = None,
           bias=None) -> Tensor:
    """``ABC`` (``name.acc``: ``wrap32(x @ weight.T)``, output channel ``n`` at column
    ``cols[n]``) and, with a bias, ``ADD.i32`` (``name.bias``)."""
    L = g.L  # noqa: N806
    weight = np.asarray(weight, np.int64)
    n, k = weight.shape
    t = x.layout.shape[0]
    cols = np.arange(n) if cols is None else np.asarray(cols)
    layout = Layout.plain((t, n), L, cols)
    tiles = _weight_tiles(g, weight, x.layout.col_map())
    kts = sorted(tiles)
    blocks, outs = [], []
    cfg = g.config
    row_blocks = _row_blocks(t, cfg.mxm_acc_depth)
    # few rows per weight tile: the planes mostly load weights, and a plane's rows read from
    # the far side's slices collide with the loads of the planes there (with one plane, the
    # other side's slices only add bandwidth)
    one_side = cfg.mxm_planes > 1 and len(row_blocks) == 1 and t < _SIDE_ROWS * L / min(
        cfg.streams_per_direction, cfg.mem_slices_per_hemisphere)
    for nt in np.unique(cols // L):
        lane_of = {int(cols[i]) % L: i for i in np.nonzero(cols // L == nt)[0]}
        side = None
        if one_side:
            plane = len(blocks) % cfg.mxm_planes  # run_blocks deals blocks round-robin
            side = "w" if g.pl.pos[f"mxm{plane}"] < g.pl.v else "e"
        wrows = [[Word(*g.plan.const_word(8, tiles[kt][lane_of[i]], what=f"{name} weights",
                                          turn=i + kt + int(nt), side=side))
                  if i in lane_of else None for i in range(L)] for kt in kts]
        for rows in row_blocks:
            blocks.append(MxmBlock(wrows, [[g.word(x, r, kt) for kt in kts] for r in rows],
                                   []))
            outs.append([(r, int(nt)) for r in rows])
    acc = g.mxm(f"{name}.acc", layout, blocks, outs, t * k * n)
    if bias is not None:
        acc = g.vxm(f"{name}.bias", Opcode.ADD, 32, acc, np.asarray(bias, np.int64))
    return acc


def append_values(g: LayerGraph, v: Tensor, cache: KVCache, start: int) -> None:
    """Write int8 values ``v`` ``[T, kv_heads * dh]`` (head columns) into the transposed
    value cache at positions ``start ..`` (not traced: the reference's cache append).

    The MXM transposes: with ``v``'s rows installed as weights (token ``s`` on output lane
    ``s mod L``), streaming the unit vector of channel ``c`` gives the cache row of ``c``
    (``ACC``, int32; ``CVT.i8.i32`` narrows it exactly). A first prefill fills the other
    lanes of the words it writes with zeros (zero weight rows); later appends merge their
    lanes into the cached words (``SEL.i8`` against a lane mask)."""
    L = g.L  # noqa: N806
    t = v.layout.shape[0]
    into = cache.v_cols("v.cache", start, t)
    cols = v.layout.col_map()
    rows_of = into.layout.mrow[0]
    zero = Word(*g.plan.const_word(8, np.zeros(L, np.int64))) if start == 0 else None
    blocks, outs = [], []
    for ct in np.unique(cols // L):
        chans = np.nonzero(cols // L == ct)[0]
        unit = [Word(*g.plan.const_word(8, np.eye(L, dtype=np.int64)[cols[c] % L]))
                for c in chans]
        for ts in range(start // L, (start + t - 1) // L + 1):
            weights = [[g.word(v, p - start, int(ct)) if 0 <= p - start < t else zero
                        for p in range(ts * L, ts * L + L)]]
            for part in _row_blocks(len(chans), g.config.mxm_acc_depth):
                blocks.append(MxmBlock(weights, [[unit[i]] for i in part], []))
                outs.append([(int(rows_of[chans[i]]), ts) for i in part])
    vt = g.mxm("v.t", into.layout, blocks, outs, 0)
    if start == 0:
        g.vxm("v.cache", Opcode.CVT, 8, vt, stype_bits=32, out=into)
        return
    v8 = g.vxm("v.t8", Opcode.CVT, 8, vt, stype_bits=32)
    g.vxm("v.cache", Opcode.SEL, 8, v8, into, np.full(into.layout.shape, -1, np.int64),
          out=into)


def requant(g: LayerGraph, name: str, x: Tensor, rq, out: Tensor | None = None) -> Tensor:
    """``Requant.apply``: ``REQ.i<bits>`` with the (per-channel) multiplier."""
    return g.vxm(name, Opcode.REQ, rq.bits, x, np.asarray(rq.mult, np.int64), shift=rq.shift,
                 out=out)


def norm(g: LayerGraph, prefix: str, h: Tensor, p) -> tuple[Tensor, Tensor | None]:
    """``int_layernorm`` (``p.mean`` set: returns ``(out, wide)``) or ``int_rmsnorm``
    (returns ``(out, None)``), trace names under ``prefix``."""
    c = h
    if p.mean is not None:
        total = g.reduce(f"{prefix}sum", Opcode.ADD, h)
        mean = requant(g, f"{prefix}mean", total, p.mean)
        c = g.vxm(f"{prefix}centered", Opcode.SUB, 32, h, mean)
    sq = g.vxm(f"{prefix}sq", Opcode.REQ, 32, c, c, shift=p.sq_shift)
    v = requant(g, f"{prefix}var", g.reduce(f"{prefix}sum_sq", Opcode.ADD, sq), p.var)
    v = g.vxm(f"{prefix}var_eps", Opcode.ADDS, 32, v, np.int64(p.eps))
    v = g.vxm(f"{prefix}var_min1", Opcode.MAX, 32, v, np.int64(1))
    r = g.vxm(f"{prefix}rsqrt", Opcode.RSQRT, 32, v)
    y = g.vxm(f"{prefix}norm", Opcode.REQ, 32, c, r, shift=p.norm_shift)
    if p.mean is None:
        return requant(g, f"{prefix}out", y, p.gamma), None
    z = requant(g, f"{prefix}gamma", y, p.gamma)
    z = g.vxm(f"{prefix}beta", Opcode.ADDS, 32, z, np.asarray(p.beta, np.int64))
    return requant(g, f"{prefix}out", z, p.out), z


def softmax(g: LayerGraph, prefix: str, scores: Tensor, p, mask=None) -> Tensor:
    """``int_softmax`` of int32 ``scores`` over the last axis -> int8 probabilities."""
    from sim_models.transformer.softmax import MASK_VALUE, PROB_ONE

    s = scores
    if mask is not None:
        cond = np.broadcast_to(np.where(np.asarray(mask) != 0, -1, 0), s.layout.shape)
        s = g.vxm(f"{prefix}masked", Opcode.SEL, 32, s, np.int64(MASK_VALUE), cond)
    m = g.reduce(f"{prefix}max", Opcode.MAX, s)
    d = g.vxm(f"{prefix}sub_max", Opcode.SUB, 32, s, m)
    e = g.vxm(f"{prefix}exp", Opcode.EXP, 32, requant(g, f"{prefix}logits", d, p.to_q16))
    total = g.reduce(f"{prefix}sum", Opcode.ADD, e)
    total = g.vxm(f"{prefix}sum_shr", Opcode.SHRR, 32, total, np.int64(p.sum_shift))
    r = g.vxm(f"{prefix}recip", Opcode.RECIP, 32, total)
    r = g.vxm(f"{prefix}recip127", Opcode.MUL, 32, r, np.int64(PROB_ONE))
    return g.vxm(f"{prefix}probs", Opcode.REQ, 8, e, r, shift=30 + p.sum_shift)


def rope(g: LayerGraph, prefix: str, x: Tensor, positions, tables) -> Tensor:
    """``int_rope`` of int16 ``x`` ``[heads, T, dh]`` -> int32."""
    d = x.layout.shape[-1]
    pos = np.asarray(positions)
    x32 = g.vxm(f"{prefix}x32", Opcode.CVT, 32, x, stype_bits=16,
                kind="CVT.i32")
    xp = g.permute(f"{prefix}rot", x32, (np.arange(d) + d // 2) % d)
    a = g.vxm(f"{prefix}cos", Opcode.MUL, 32, x32, tables.cos[pos])
    b = g.vxm(f"{prefix}sin", Opcode.MUL, 32, xp, tables.sin_signed[pos])
    return g.vxm(f"{prefix}sum", Opcode.ADD, 32, a, b)


@dataclass
class KVCache:
    """The KV cache in SRAM: int8 keys ``[positions, kv_heads * DT * L]`` and values
    transposed, ``[kv_heads * DT * L, positions]`` (see the module docstring)."""

    kv_heads: int
    dh: int
    capacity: int
    k: Tensor
    v: Tensor

    @classmethod
    def allocate(cls, g: LayerGraph, kv_heads: int, dh: int, capacity: int) -> KVCache:
        """Allocate both caches (first, so that every program of a layer agrees on them)."""
        L = g.L  # noqa: N806
        hc = head_columns(kv_heads, dh, L).reshape(kv_heads, 1, dh)
        s = np.arange(capacity).reshape(1, capacity, 1)
        width = kv_heads * -(-dh // L) * L
        k = g.plan.tensor("cache.k", 8, Layout.matrix(s, hc, L, capacity, width), keep=True)
        v = g.plan.tensor("cache.v", 8, Layout.matrix(hc, s, L, width, capacity), keep=True)
        return cls(kv_heads, dh, capacity, k, v)

    def k_rows(self, name: str, pos0: int, t: int) -> Tensor:
        """View of the key rows of positions ``pos0 ..`` as ``[kv_heads, t, dh]``."""
        lay = self.k.layout
        return self.k.view(name, Layout(
            (self.kv_heads, t, self.dh), lay.mrow[:, pos0:pos0 + t], lay.mcol[:, pos0:pos0 + t],
            lay.rows, lay.tiles, lay.lanes))

    def v_cols(self, name: str, pos0: int, t: int, logical_tn: bool = True) -> Tensor:
        """View of the value columns of positions ``pos0 ..`` as ``[t, kv_heads * dh]``."""
        lay = self.v.layout
        rows = lay.mrow[:, pos0:pos0 + t].transpose(1, 0, 2).reshape(t, -1)
        cols = lay.mcol[:, pos0:pos0 + t].transpose(1, 0, 2).reshape(t, -1)
        return self.v.view(name, Layout((t, rows.shape[1]), rows, cols, lay.rows, lay.tiles,
                                        lay.lanes))


def heads_view(t: Tensor, name: str, heads: int, dh: int) -> Tensor:
    """``[T, heads * dh]`` (head columns) seen as ``[heads, T, dh]``."""
    lay = t.layout
    n = lay.shape[0]
    rows = lay.mrow.reshape(n, heads, dh).transpose(1, 0, 2)
    cols = lay.mcol.reshape(n, heads, dh).transpose(1, 0, 2)
    return t.view(name, Layout((heads, n, dh), rows, cols, lay.rows, lay.tiles, lay.lanes))


def flat_view(t: Tensor, name: str) -> Tensor:
    """``[heads, T, dh]`` seen as ``[T, heads * dh]`` (the reference's ``transpose(1, 0, 2)
    .reshape``)."""
    lay = t.layout
    h, n, dh = lay.shape
    rows = lay.mrow.transpose(1, 0, 2).reshape(n, h * dh)
    cols = lay.mcol.transpose(1, 0, 2).reshape(n, h * dh)
    return t.view(name, Layout((n, h * dh), rows, cols, lay.rows, lay.tiles, lay.lanes))


def attention(g: LayerGraph, prefix: str, q: Tensor, cache: KVCache, length: int, positions,
              p, causal: bool) -> Tensor:
    """``int_attention`` of int8 ``q`` ``[heads, T, dh]`` over the first ``length`` cached
    positions (the context ``[heads, T, dh]`` is op ``attn.ctx``); returns the context as
    ``[T, heads * dh]`` for the output projection: a view of it (heads in columns of their
    own) or, for heads of at most half a word, its heads packed
    (:mod:`firmware.lower.head_packing`)."""
    L = g.L  # noqa: N806
    heads, t, dh = q.layout.shape
    dt = -(-dh // L)
    st = -(-length // L)
    groups = p.kv_groups
    depth = g.config.mxm_acc_depth
    # scores[h, t, s] at row h * T + t, column s
    hs, ts, ss = np.meshgrid(np.arange(heads), np.arange(t), np.arange(length), indexing="ij")
    s_layout = Layout.matrix(hs * t + ts, ss, L, heads * t, st * L)
    blocks, outs = [], []
    for h in range(heads):
        kv = h // groups
        for nt in range(st):
            weights = [[g.word(cache.k, s, kv * dt + kt) if s < length else None
                        for s in range(nt * L, nt * L + L)] for kt in range(dt)]
            qrow = q.layout.mrow[h, :, 0]
            for rows in _row_blocks(t, depth):
                blocks.append(MxmBlock(weights, [[g.word(q, int(qrow[i]), h * dt + kt)
                                                  for kt in range(dt)] for i in rows], []))
                outs.append([(h * t + i, nt) for i in rows])
    scores = g.mxm(f"{prefix}scores", s_layout, blocks, outs, heads * t * length * dh)
    mask = None
    if causal:
        pos = np.asarray(positions)
        mask = (np.arange(length)[None, :] <= pos[:, None])[None]
    probs = softmax(g, f"{prefix}softmax.", scores, p.softmax, mask)
    packed = heads_per_word(dh, L) > 1
    if packed:  # ctx[h, t, d] at row h * T + t, lane (h mod n) * dh + d (head_packing)
        c_layout = context_layout(heads, t, dh, L)
    else:  # ctx[h, t, d] at row t, column h * DT * L + d
        c_layout = Layout.matrix(ts[:, :, :1] * 0 + np.arange(t)[None, :, None],
                                 head_columns(heads, dh, L).reshape(heads, 1, dh), L, t,
                                 heads * dt * L)
    blocks, outs = [], []
    for h in range(heads):
        kv = h // groups
        # the output lane of channel d: its head's lane offset when packed, else d
        first = int(c_layout.mcol[h, 0, 0]) % L
        for nt in range(dt):
            weights = [[g.word(cache.v, kv * dt * L + d, kt) if 0 <= d < dh else None
                        for d in range(nt * L - first, nt * L + L - first)]
                       for kt in range(st)]
            for rows in _row_blocks(t, depth):
                blocks.append(MxmBlock(weights, [[g.word(probs, h * t + i, kt)
                                                  for kt in range(st)] for i in rows], []))
                outs.append([(h * t + i, 0) if packed else (i, h * dt + nt) for i in rows])
    acc = g.mxm(f"{prefix}ctx.acc", c_layout, blocks, outs, heads * t * length * dh)
    ctx = requant(g, f"{prefix}ctx", acc, p.ctx)
    if packed:
        return pack_heads(g, f"{prefix}ctx.packed", ctx)
    return flat_view(ctx, "ctx.flat")
