"""Several attention heads in one word for the output projection.

Every head starts on a word of its own in ``q``, the KV cache and the attention context
(:func:`~firmware.lower.layout.head_columns`), which costs nothing in the projections that
produce them (weight rows of unused output lanes are not loaded) but a great deal in the one
that consumes the context: its K dimension is the context's words, and each K step loads a
whole tile of weight rows. With 64-dimensional heads on the full chip's 320 lanes that is five
times the weight rows the output projection needs (and ten times for MiniLM's 32).

So when a head fills less than half a word, the context of head ``h`` is computed at lane
offset ``(h mod n) * head_dim`` of a word of its own (``n`` heads per word: the ``P @ V``
weight rows are loaded at those output lanes), and ``SEL`` against lane masks merges each
token's ``n`` head words into one word of the packed ``[T, heads * head_dim]`` context, the
output projection's input.
"""

from __future__ import annotations

import numpy as np

from openlpu.isa import Opcode

from .alloc import Tensor
from .elementwise import CHAINED, VxmStep, Word, vxm_chain
from .layout import Layout

__all__ = ["context_layout", "heads_per_word", "pack_heads"]


def heads_per_word(dh: int, lanes: int) -> int:
    """How many heads of ``dh`` channels share a word of the packed context (1: none)."""
    return lanes // dh if dh <= lanes // 2 else 1


def context_layout(heads: int, t: int, dh: int, lanes: int) -> Layout:
    """The layout of the context ``[heads, T, dh]`` when heads are packed: head ``h`` of
    token ``i`` on word row ``h * T + i``, at lanes ``(h mod n) * dh ..``."""
    n = heads_per_word(dh, lanes)
    h = np.arange(heads)[:, None, None]
    return Layout.matrix(h * t + np.arange(t)[None, :, None],
                         (h % n) * dh + np.arange(dh)[None, None, :], lanes, heads * t, lanes)


def pack_heads(g, name: str, ctx: Tensor) -> Tensor:
    """The packed context ``[T, heads * dh]`` (channel ``h * dh + j`` of a row in word
    ``h // n`` at lane ``(h mod n) * dh + j``) from ``ctx`` in
    :func:`context_layout`: per token and packed word, a chain of ``SEL.i8`` (a ``MOV`` for
    a word holding one head). Recorded as op ``name``, which no reference tensor checks."""
    heads, t, dh = ctx.layout.shape
    L = g.L  # noqa: N806
    n = heads_per_word(dh, L)
    g._begin(name)
    h = np.arange(heads)[:, None]
    cols = ((h // n) * L + (h % n) * dh + np.arange(dh)[None, :]).reshape(-1)
    out = g.plan.tensor(name, 8, Layout.plain((t, heads * dh), L, cols), g._slices(ctx))
    lanes = np.arange(L)
    masks = [Word(*g.plan.const_word(8, np.where((lanes >= k * dh) & (lanes < (k + 1) * dh),
                                                 -1, 0)))
             for k in range(n)]
    g.pl.op = name
    for word in range(-(-heads // n)):
        group = range(word * n, min(heads, (word + 1) * n))
        for i in range(t):
            src = [g.word(ctx, h * t + i, 0) for h in group]
            near = {s for w in src for s in g.plan.groups[w.gid]}
            steps = []
            if len(src) == 1:
                steps.append(VxmStep(Opcode.MOV, 8, 8, {"a": src[0]}, out.loc(i, word), op=name))
            for k in range(1, len(src)):
                dst = out.loc(i, word) if k == len(src) - 1 else g.scratch(8, near, name)
                steps.append(VxmStep(Opcode.SEL, 8, 8, {"c": masks[k], "a": src[k],
                                                        "b": src[0] if k == 1 else CHAINED},
                                     dst, op=name))
            out.ready[i, word] = vxm_chain(g.pl, g.plan, steps)[-1]
    return g._record(name, "SEL.i8", out)
