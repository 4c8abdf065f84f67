"""Integer softmax over the last axis (attention rows), with optional masking.

Instruction sequence and fixed-point formats (``S`` keys per row, ``k = sum_shift``):

============ ========================= ==================================================
step         instruction               format / bound
============ ========================= ==================================================
masked       ``SEL.i32``               masked keys -> ``MASK_VALUE = -2**30`` (a constant
                                       vector: REQ/SEL immediates have only 24 bits)
max          ``MAX.i32`` reduction     the row maximum (an unmasked score)
sub_max      ``SUB.i32``               ``d = s - max <= 0``; ``|d| <= 2**30 + |s|max``
logits       ``REQ.i32``               ``d * score_scale`` in Q16.16, <= 0 (saturating)
exp          ``EXP``                   Q15, ``[0, 32768]``; the max itself gives 32768
sum          ``ADD.i32`` reduction     ``32768 <= sum <= 32768 S``
sum_shr      ``SHRR.i32`` by ``k``     ``sum / 2**k >= 2**(15-k)``
recip        ``RECIP``                 ``2**30 / (sum / 2**k)``, ``<= 2**(15+k)``
recip127     ``MUL.i32`` by 127        ``<= 127 * 2**(15+k) < 2**31`` (``k <= 8``)
probs        ``REQ.i8``, shift 30+k    ``round(127 * e / sum)`` in ``[0, 127]``: scale 1/127
============ ========================= ==================================================

Why nothing overflows: scores are ``int8 . int8`` dot products over ``head_dim`` lanes,
``|s| <= 2**14 head_dim``, so ``|d| < 2**31`` for ``head_dim < 2**16``; ``REQ`` saturates; the
exp sum stays below ``2**31`` for ``S < 65536`` keys. :meth:`SoftmaxParams.build` checks that
a masked key's logit lands below ``EXP``'s zero threshold, so masked keys get exactly 0.

Why ``sum_shift``: ``RECIP`` computes ``2**30 / x``, i.e. ``30 - log2 x`` significant bits;
dividing the sum (``15 + log2 S`` bits) by ``2**k`` before the reciprocal balances the bits
lost in the sum against the bits gained in the quotient. ``k = ceil(log2(max_keys) / 2)``
gives a relative error of about ``sqrt(max_keys) * 2**-15`` (0.07% at 512 keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from openlpu import fixedpoint as fx

from .ops import IntOps
from .quantize import Requant

__all__ = ["MASK_VALUE", "PROB_ONE", "SoftmaxParams", "int_softmax"]

#: Score given to masked keys before the max (far below any int8 . int8 score).
MASK_VALUE = -(1 << 30)
#: Probabilities are int8 with ``p_real = p / PROB_ONE``.
PROB_ONE = 127
_MAX_SUM_SHIFT = 8  # keeps 127 * RECIP below 2**31


@dataclass(frozen=True)
class SoftmaxParams:
    """Constants of one integer softmax."""

    to_q16: Requant  #: ``REQ.i32``: (score - max) -> Q16.16 logit
    sum_shift: int  #: ``SHRR`` of the exp sum before ``RECIP``

    @classmethod
    def build(cls, score_scale: float, max_keys: int, max_abs_score: int) -> SoftmaxParams:
        """Constants for scores whose unit is ``score_scale`` (real logit per score unit).

        Parameters
        ----------
        score_scale : float
            Real logit of one score unit (e.g. ``s_q * s_k / sqrt(head_dim)``).
        max_keys : int
            Most keys a row can have (the KV cache capacity); sets ``sum_shift``.
        max_abs_score : int
            Bound on ``|score|`` (``2**14 * head_dim`` for int8 . int8).

        Raises
        ------
        ValueError
            ``max_keys`` is outside ``1..65535``, or a masked key would not give exp 0.
        """
        if not 1 <= max_keys < 1 << 16:
            raise ValueError(f"max_keys must be in 1..65535, got {max_keys}")
        to_q16 = Requant.from_real(score_scale * (1 << fx.EXP_IN_FRAC_BITS), 32)
        k = min(_MAX_SUM_SHIFT, math.ceil(math.log2(max_keys) / 2)) if max_keys > 1 else 0
        worst_masked = MASK_VALUE + int(max_abs_score)
        logit = fx.requantize(worst_masked, to_q16.mult, to_q16.shift, 32)
        if fx.exp_q(logit) != 0:
            raise ValueError(f"score scale {score_scale:.3g} too small: a masked key's logit "
                             f"{int(logit) / 65536:.3g} does not give exp 0")
        return cls(to_q16, k)


def int_softmax(ops: IntOps, scores, params: SoftmaxParams, mask=None) -> np.ndarray:
    """Softmax of int32 ``scores`` over the last axis -> int8 probabilities (scale 1/127).

    ``mask`` (broadcastable to ``scores``) is nonzero where a key is visible; every row needs
    at least one visible key. Records ``masked`` (with a mask), ``max``, ``sub_max``,
    ``logits``, ``exp``, ``sum``, ``sum_shr``, ``recip``, ``recip127``, ``probs``.
    """
    s = np.asarray(scores)
    if mask is not None:
        cond = np.broadcast_to(np.where(np.asarray(mask) != 0, -1, 0), s.shape)
        s = ops.sel("masked", cond, s, np.int64(MASK_VALUE))
    m = ops.reduce_max("max", s)
    d = ops.sub("sub_max", s, m)
    logits = params.to_q16.apply(ops, "logits", d)
    e = ops.exp("exp", logits)
    total = ops.reduce_sum("sum", e)
    total = ops.shrr("sum_shr", total, np.int64(params.sum_shift))
    r = ops.recip("recip", total)
    r = ops.mul("recip127", r, np.int64(PROB_ONE))
    return ops.req("probs", e, r, 30 + params.sum_shift, 8)
