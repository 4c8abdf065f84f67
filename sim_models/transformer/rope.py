"""Integer rotary position embedding (RoPE, the Hugging Face ``rotate_half`` convention).

``rope(x)[i] = x[i] cos(a_i) - x[i + d/2] sin(a_i)`` for ``i < d/2`` and
``x[i] cos(a_i) + x[i - d/2] sin(a_i)`` above, ``a_i = pos * theta**(-2 (i mod d/2) / d)``.
With ``xp = x[(i + d/2) mod d]`` (one SXM ``PERMUTE`` within each head) and a sign-folded sine
table ``sin_signed[i] = -sin`` below ``d/2``, ``+sin`` above, this is::

    x32    CVT.i32.i16 (the int16 input widened for the int32 multiplies)
    rot    PERMUTE     xp
    cos    MUL.i32     x * COS[pos]          COS, SIN: Q15 integer tables (|.| <= 32768)
    sin    MUL.i32     xp * SIN_SIGNED[pos]
    sum    ADD.i32     -> Q15 times the input scale

Bound: the input is int16 (``|x| <= 2**15``), and by Cauchy-Schwarz ``|x c + x' s| <=
sqrt(x**2 + x'**2) sqrt(c**2 + s**2) <= sqrt(2) 2**15 (2**15 + 1) < 2**30.6``: neither the
products nor their sum can wrap. The tables are precomputed per position (compile time,
float64 angles rounded once), like the chip would hold them in SRAM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..float_layers import rope_angles
from .ops import IntOps

__all__ = ["ROPE_FRAC_BITS", "RopeTables", "int_rope"]

#: Fraction bits of the cos / sin tables.
ROPE_FRAC_BITS = 15


@dataclass(frozen=True)
class RopeTables:
    """``cos`` and sign-folded ``sin`` tables, Q15 int64 ``[max_positions, head_dim]``."""

    cos: np.ndarray
    sin_signed: np.ndarray

    @property
    def head_dim(self) -> int:
        """The rotated width."""
        return self.cos.shape[1]

    @property
    def max_positions(self) -> int:
        """Number of positions the tables cover."""
        return self.cos.shape[0]

    @classmethod
    def build(cls, head_dim: int, theta: float, max_positions: int) -> RopeTables:
        """Tables for positions ``0..max_positions-1``; ``head_dim`` must be even."""
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
        ang = rope_angles(np.arange(max_positions), head_dim, theta)
        one = float(1 << ROPE_FRAC_BITS)
        c = np.floor(np.cos(ang) * one + 0.5).astype(np.int64)
        s = np.floor(np.sin(ang) * one + 0.5).astype(np.int64)
        cos = np.concatenate([c, c], axis=1)
        sin = np.concatenate([-s, s], axis=1)
        cos.setflags(write=False)
        sin.setflags(write=False)
        return cls(cos, sin)


def int_rope(ops: IntOps, x, positions, tables: RopeTables) -> np.ndarray:
    """Rotate int16 ``x`` ``[..., T, head_dim]`` at ``positions`` [T] -> int32 (Q15 * x).

    Records ``x32`` (CVT.i32.i16), ``rot`` (PERMUTE), ``cos``, ``sin`` (MUL.i32) and ``sum``
    (ADD.i32).
    """
    x = np.asarray(x)
    d = x.shape[-1]
    if d != tables.head_dim:
        raise ValueError(f"x has head_dim {d}, tables are for {tables.head_dim}")
    pos = np.asarray(positions)
    if pos.size and (pos.min() < 0 or pos.max() >= tables.max_positions):
        raise ValueError(f"positions {pos.min()}..{pos.max()} outside the RoPE tables "
                         f"(0..{tables.max_positions - 1})")
    x = ops.cvt("x32", x, 32, 16)
    xp = ops.permute("rot", x, (np.arange(d) + d // 2) % d, axis=-1)
    a = ops.mul("cos", x, tables.cos[pos])
    b = ops.mul("sin", xp, tables.sin_signed[pos])
    return ops.add("sum", a, b)
