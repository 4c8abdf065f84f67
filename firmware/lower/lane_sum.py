"""A lane sum of int32 words on the MXM: four int8 dot products with a row of ones.

The butterfly of :mod:`firmware.lower.butterfly` needs ``log2 n`` round trips between the
VXM and an SXM, and the SXMs sit past every MEM slice of their hemisphere: on the full chip
one step costs about 115 cycles (2 x 45 hops and a 22-cycle ``PERMUTE``), so a decode step's
two RMSNorm sums took 40 % of its cycles. The MXM sums all lanes in one pass instead.

An int32 word is four byte planes, one per MEM slice of its group (byte ``k`` in slice
``k``), and each plane is an int8 vector the MXM can stream (``ABC``) against installed
weights. With every weight row equal to ones in lanes ``0 .. n-1``, output lane ``j`` of
``ABC`` on plane ``k`` is that plane's sum over the lanes, in every output lane at once. The
planes are unsigned bytes except the top one, so the word is first ``XOR``-ed with
``0xFF808080``: a low byte ``b`` then reads as the signed ``b - 128`` and the top byte ``s``
as ``-1 - s``. With ``S_k`` the four sums::

    sum(x) = S_0 + 2**8 S_1 + 2**16 S_2 - 2**24 S_3 + 128 n (1 + 2**8 + 2**16) - 2**24 n

modulo ``2**32``, which is wrapping ``ADD``'s result bit for bit. The VXM evaluates it as a
chain of shifts and adds (Horner's rule from the top plane). The result lands in the output
lanes ``0 .. n-1`` (every lane when ``n == L``), as the butterfly's does.
"""

from __future__ import annotations

import math

import numpy as np

from openlpu.isa import FIELDS, Opcode, latency

from .elementwise import CHAINED, VxmStep, Word, vxm_chain, vxm_word
from .matmul import MxmBlock, run_blocks

__all__ = ["XOR_MASK", "lane_sum_constant", "mxm_lane_sums", "mxm_sum_is_faster"]

#: ``0xFF808080`` as the signed 24-bit immediate of ``XOR.i32`` (sign-extended).
XOR_MASK = -0x7F7F80
#: Byte planes per int32 word, each one ``ABC``.
PLANES = 4


#: Slice-cycles one more row's sum on the MXM costs, measured rather than counted: a row makes
#: 72 SRAM accesses (XOR 4 + 4, planes 4 + 16, chain 16 + 28), but 16 rows on ``sim``'s 16
#: slices took 450 cycles against 234 for their butterflies (25 cycles a row), while the full
#: chip's 88 slices make 96 rows cheaper than their butterflies.
_SLICE_CYCLES_PER_ROW = 400


def mxm_sum_is_faster(pl, rows: int, n: int) -> bool:
    """Whether ``rows`` lane sums over ``n`` lanes should go through the MXM rather than the
    butterfly, by an estimate of the cycles each takes: its latency (the butterfly's
    ``ceil(log2 n)`` round trips to an SXM against one to an MXM plane and the combining
    chain) plus the rows' throughput (two SXM slots per butterfly step against four ``ABC``
    per row on the planes, and the SRAM accesses, measured)."""
    cfg = pl.config
    if cfg.mxm_acc_depth < PLANES or n < 2:
        return False
    v = pl.v
    add = latency(Opcode.ADD, cfg)
    steps = math.ceil(math.log2(n))
    hop_sxm = abs(pl.pos["sxm_w"] - v)
    butterfly = (steps * (2 * hop_sxm + latency(Opcode.PERMUTE, cfg) + add)
                 + rows * steps / 2)
    hop_mxm = max(abs(pl.pos[f"mxm{p}"] - v) for p in range(cfg.mxm_planes))
    mxm = (2 * hop_mxm + latency(Opcode.ABC, cfg) + latency(Opcode.XOR, cfg) + 7 * add + 8
           + rows * max(PLANES / cfg.mxm_planes, _SLICE_CYCLES_PER_ROW / cfg.mem_slices))
    return mxm < butterfly


def lane_sum_constant(n: int) -> int:
    """The int32 correction of the XOR-ed planes' sums over ``n`` lanes (module docstring)."""
    c = (128 * n * (1 + (1 << 8) + (1 << 16)) - (n << 24)) & 0xFFFFFFFF
    return c - (1 << 32) if c >= 1 << 31 else c


def mxm_lane_sums(g, name: str, acc: dict[int, Word], n: int, res) -> None:
    """Sum each row's int32 word ``acc[r]`` over its lanes ``0 .. n-1`` into word ``(r, 0)``
    of ``res`` (a :class:`~firmware.lower.graph.LayerGraph` ``g`` lowering op ``name``);
    sets ``res.ready``. Rows go through the MXM in blocks of at most ``mxm_acc_depth // 4``,
    at least one per plane."""
    plan, pl, L = g.plan, g.pl, g.L  # noqa: N806
    byte_group = {plan.groups[gid][0]: gid for gid in plan.by_width[1]}
    ones = np.where(np.arange(L) < n, 1, 0)
    # Row j of the tile in the j-th single-slice group, so one LW loads rows in parallel.
    weights = [[Word(*plan.const_word(8, ones, turn=j)) if j < n else None
                for j in range(L)]]
    rows = list(acc)
    flipped: dict[int, Word] = {}
    for r in rows:
        w = acc[r]
        loc = g.scratch(32, set(plan.groups[w.gid]), f"{name} flipped word")
        pl.op = name
        flipped[r] = Word(*loc, vxm_word(pl, plan, Opcode.XOR, 32, 32, {"a": w}, loc,
                                         imm=XOR_MASK))
    # at least one block per plane (each loads the ones tile once), at most depth / 4 rows
    per_block = g.config.mxm_acc_depth // PLANES
    count = max(-(-len(rows) // per_block), min(g.config.mxm_planes, len(rows)))
    size = -(-len(rows) // count)
    blocks: list[tuple[list[int], MxmBlock]] = []
    for i in range(0, len(rows), size):
        part = rows[i:i + size]
        x, out = [], []
        for r in part:
            w = flipped[r]
            for s in plan.groups[w.gid]:
                x.append([Word(byte_group[s], w.addr, w.ready)])
                out.append(g.scratch(32, {s}, f"{name} plane sum"))
        blocks.append((part, MxmBlock(weights, x, out)))
    pl.op = name
    run_blocks(pl, plan, [b for _, b in blocks])
    for part, blk in blocks:
        for i, r in enumerate(part):
            sums = [Word(*blk.out[PLANES * i + k], blk.ready[PLANES * i + k])
                    for k in range(PLANES)]
            res.ready[r, 0] = _combine(g, name, sums, n, res.loc(r, 0))


def _combine(g, name: str, sums: list[Word], n: int, out: tuple[int, int]) -> int:
    """The VXM chain that turns the four plane sums into the lane sum, written to ``out``;
    returns the cycle it is readable."""
    plan = g.plan
    near = {s for w in sums for s in plan.groups[w.gid]}

    def step(opcode, operands, imm=None, last=False):
        dst = out if last else g.scratch(32, near, f"{name} combine")
        return VxmStep(opcode, 32, 32, operands, dst, imm, 0, name)
    steps = [step(Opcode.SHL, {"a": sums[3]}, 8),
             step(Opcode.SUB, {"a": sums[2], "b": CHAINED}),
             step(Opcode.SHL, {"a": CHAINED}, 8),
             step(Opcode.ADD, {"a": sums[1], "b": CHAINED}),
             step(Opcode.SHL, {"a": CHAINED}, 8),
             step(Opcode.ADD, {"a": sums[0], "b": CHAINED})]
    const = lane_sum_constant(n)
    if FIELDS["imm"].min <= const <= FIELDS["imm"].max:  # the imm24 form of ADD
        steps.append(step(Opcode.ADD, {"a": CHAINED}, const, last=True))
    else:
        c = Word(*plan.const_word(32, np.full(g.L, const), near))
        steps.append(step(Opcode.ADD, {"a": CHAINED, "b": c}, last=True))
    return vxm_chain(g.pl, plan, steps)[-1]
