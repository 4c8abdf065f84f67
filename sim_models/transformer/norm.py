"""Integer LayerNorm and RMSNorm over the last axis (the hidden dimension, across lanes).

The input ``h`` is int32 with scale ``in_scale`` and a guaranteed bound ``|h| < 2**in_bits``
(the residual stream: its calibrated maximum maps to ``2**res_bits`` and ``in_bits =
res_bits + 1`` leaves a factor 2 of headroom). ``H`` is the hidden size, ``L =
ceil(log2 H)``. Instruction sequence and formats:

=========== ====================== ==========================================================
step        instruction            format / bound
=========== ====================== ==========================================================
sum         ``ADD.i32`` reduction  (LayerNorm) ``|sum| < H 2**in_bits <= 2**30``
mean        ``REQ.i32``            (LayerNorm) ``sum / H``
centered    ``SUB.i32``            (LayerNorm) ``c = h - mean``, ``|c| < 2**(in_bits+1)``
sq          ``REQ.i32`` (a=b=c)    ``c*c / 2**sq_shift`` (64-bit product), so that
                                   ``H * max(sq) <= 2**30`` (RMSNorm: ``c = h``)
sum_sq      ``ADD.i32`` reduction  ``< 2**31``
var         ``REQ.i32``            ``v = sum_sq * 2**e / H`` (``2**e <= H``: ``v <= sum_sq``);
                                   ``v = mean(c**2) / 2**t`` with ``t = sq_shift - e`` even
var_eps     ``ADDS.i32``           ``+ round(eps / (in_scale**2 2**t))`` (saturating)
var_min1    ``MAX.i32`` with 1     ``RSQRT`` needs ``x >= 1`` (a constant row has ``v = 0``)
rsqrt       ``RSQRT``              ``r = 2**30 / sqrt(v)``
norm        ``REQ.i32`` (a=c, b=r) ``y = c r / 2**(14 + t/2)``: ``c / std`` in Q16.16;
                                   ``|y| <= sqrt(H) 2**16``
gamma       ``REQ.i32`` / ``.i8``  LayerNorm: ``y * gamma[n]`` in "wide" units (an int32
                                   scale ``wide_scale``, about 2**8 finer than int8);
                                   RMSNorm: straight to the int8 output
beta        ``ADDS.i32``           (LayerNorm) ``+ round(beta[n] / wide_scale)``: the wide
                                   output, which the residual path uses (int8 would cost
                                   accuracy there)
out         ``REQ.i8``             (LayerNorm) wide -> int8, round, saturate
=========== ====================== ==========================================================

The int8 output scale ``out_scale`` may be one value per channel (the ``REQ`` multipliers are
per lane anyway): SmoothQuant-style scales for the matmul that reads it.

``e = floor(log2 H)`` recovers the ``log2 H`` bits the mean of squares would otherwise lose, so
``v`` keeps about ``2 (in_bits - log2 outlier_ratio) - t`` significant bits: ``RSQRT`` is then
accurate to far better than the int8 output step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ops import INT32_MAX, IntOps
from .quantize import Requant

__all__ = ["NormParams", "int_layernorm", "int_rmsnorm"]

#: Default: the wide LayerNorm output has this many more fraction bits than the int8 one.
WIDE_FRAC_BITS = 8


@dataclass(frozen=True)
class NormParams:
    """Constants of one integer LayerNorm (``mean``, ``beta`` set) or RMSNorm (both None)."""

    size: int  #: H, the normalised axis length
    mean: Requant | None  #: ``REQ.i32`` sum -> mean (LayerNorm only)
    sq_shift: int  #: ``REQ.i32`` shift of ``c * c``
    var: Requant  #: ``REQ.i32`` sum of squares -> ``v``
    eps: int  #: eps in ``v`` units
    norm_shift: int  #: ``REQ.i32`` shift of ``c * rsqrt`` -> Q16.16
    gamma: Requant  #: per-channel ``REQ`` of the Q16.16 value (int32 for LayerNorm, int8 RMS)
    beta: np.ndarray | None  #: LayerNorm bias in wide units
    out: Requant | None  #: LayerNorm wide -> int8

    @classmethod
    def build(cls, size: int, in_scale: float, in_bits: int, eps: float, gamma,
              beta, out_scale, wide_scale: float | None = None) -> NormParams:
        """Constants for a LayerNorm (``beta`` given) or an RMSNorm (``beta`` None).

        Parameters
        ----------
        size : int
            Normalised length H.
        in_scale : float
            Real value of one input unit.
        in_bits : int
            Input bound: ``|h| < 2**in_bits``.
        eps : float
            The layer's epsilon (real).
        gamma, beta : array_like of float [H]
            The affine parameters (``beta`` None for RMSNorm).
        out_scale : float or array_like of float [H]
            Real value of one unit of the int8 output (per tensor or per channel).
        wide_scale : float, optional
            LayerNorm: real value of one unit of the wide output (default
            ``max(out_scale) / 2**8``).

        Raises
        ------
        ValueError
            ``H * 2**in_bits > 2**30``: the reductions could wrap.
        """
        lg = math.ceil(math.log2(size)) if size > 1 else 0
        layer = beta is not None
        if lg + in_bits > 30:
            raise ValueError(f"in_bits {in_bits} too large for H = {size}: reductions wrap")
        c_bits = in_bits + 1 if layer else in_bits
        sq_shift = max(0, 2 * c_bits + lg - 30)
        e = min(int(math.floor(math.log2(size))), sq_shift)
        if (sq_shift - e) % 2:
            e -= 1
        t = sq_shift - e
        var = Requant.from_real(2.0**e / size, 32)
        eps_int = min(1 << 30, int(math.floor(eps / (in_scale**2 * 2.0**t) + 0.5)))
        gamma = np.asarray(gamma, dtype=np.float64)
        out_scale = np.asarray(out_scale, dtype=np.float64)
        if layer:
            if wide_scale is None:
                wide_scale = float(np.max(out_scale)) / (1 << WIDE_FRAC_BITS)
            g = Requant.from_real(gamma * 2.0**-16 / wide_scale, 32)
            b = np.floor(np.asarray(beta, dtype=np.float64) / wide_scale + 0.5)
            b = np.clip(b, -INT32_MAX, INT32_MAX).astype(np.int64)
            b.setflags(write=False)
            mean = Requant.from_real(1.0 / size, 32)
            out = Requant.from_real(wide_scale / out_scale, 8)
        else:
            g = Requant.from_real(gamma * 2.0**-16 / out_scale, 8)
            b = mean = out = None
        return cls(size, mean, sq_shift, var, eps_int, 14 + t // 2, g, b, out)


def _normalise(ops: IntOps, c, p: NormParams) -> np.ndarray:
    sq = ops.req("sq", c, c, p.sq_shift, 32)
    ssum = ops.reduce_sum("sum_sq", sq)
    v = p.var.apply(ops, "var", ssum)
    v = ops.adds("var_eps", v, np.int64(p.eps))
    v = ops.max("var_min1", v, np.int64(1))
    r = ops.rsqrt("rsqrt", v)
    return ops.req("norm", c, r, p.norm_shift, 32)


def _check_size(h: np.ndarray, p: NormParams) -> None:
    if h.shape[-1] != p.size:
        raise ValueError(f"norm over {h.shape[-1]} values, constants built for {p.size}")


def int_layernorm(ops: IntOps, h, p: NormParams) -> tuple[np.ndarray, np.ndarray]:
    """LayerNorm of int32 ``h`` over the last axis.

    Returns ``(out, wide)``: ``out`` int8 with scale ``out_scale`` (the next matmul's input)
    and ``wide``, int32 with scale ``wide_scale`` (for the residual path). Records ``sum,
    mean, centered, sq, sum_sq, var, var_eps, var_min1, rsqrt, norm, gamma, beta, out``.
    """
    h = np.asarray(h)
    _check_size(h, p)
    if p.mean is None or p.beta is None or p.out is None:
        raise ValueError("int_layernorm needs LayerNorm constants (mean and beta)")
    total = ops.reduce_sum("sum", h)
    mean = p.mean.apply(ops, "mean", total)
    c = ops.sub("centered", h, mean)
    y = _normalise(ops, c, p)
    z = p.gamma.apply(ops, "gamma", y)
    z = ops.adds("beta", z, p.beta)
    return p.out.apply(ops, "out", z), z


def int_rmsnorm(ops: IntOps, h, p: NormParams) -> np.ndarray:
    """RMSNorm of int32 ``h`` over the last axis -> int8 (scale ``out_scale``).

    Records ``sq, sum_sq, var, var_eps, var_min1, rsqrt, norm, out``.
    """
    h = np.asarray(h)
    _check_size(h, p)
    if p.mean is not None:
        raise ValueError("int_rmsnorm needs RMSNorm constants (no mean)")
    y = _normalise(ops, h, p)
    return p.gamma.apply(ops, "out", y)
