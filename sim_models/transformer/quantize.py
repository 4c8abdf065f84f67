"""Compile-time quantisation helpers: REQ constants, symmetric scales, per-channel weights.

These run on the host (floating point is fine here); their results are the integer constants
the chip's instructions use.

* :func:`quantize_multiplier` / :func:`quantize_multipliers` turn a real factor (or one per
  output channel) into the ``REQ`` constants ``(mult, shift)`` with
  ``mult * 2**-shift ~= real``. ``REQ`` has one shift per instruction (its ``c`` field) but its
  multiplier ``b`` may be a stream, one int32 per lane, so per-channel factors share a shift
  and get one multiplier each.
* :class:`Requant` bundles those constants with the output width and applies them.
* :func:`quantize_weight_per_channel` makes symmetric int8 weights with one scale per output
  row (``[-127, 127]``; -128 is left unused so that negation cannot saturate).
* :func:`symmetric_scale`, :func:`quantize`, :func:`dequantize` convert between float and the
  integer representation ``real = int * scale`` at the model's edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ops import IntOps

__all__ = [
    "Requant",
    "dequantize",
    "quantize",
    "quantize_multiplier",
    "quantize_multipliers",
    "quantize_weight_per_channel",
    "symmetric_scale",
]

#: Largest ``REQ`` shift (the 6-bit ``c`` field).
MAX_SHIFT = 63


def quantize_multipliers(reals, mult_bits: int = 31) -> tuple[np.ndarray, int]:
    """REQ constants for several factors sharing one shift: ``mults * 2**-shift ~= reals``.

    The shift is the largest in ``0..63`` that keeps every ``|mult| <= 2**mult_bits - 1``, so
    the largest factor gets ``mult_bits`` significant bits (31: a full int32 stream operand;
    23 would fit a ``REQ`` immediate). The relative error of a factor ``f`` is at most
    ``2**-shift / (2 |f|)``.

    Parameters
    ----------
    reals : float or array_like of float
        The real factors (any sign).
    mult_bits : int
        Magnitude bits available for a multiplier (1..31).

    Returns
    -------
    (numpy.ndarray of int64, int)
        Multipliers (the shape of ``reals``) and the common shift.

    Raises
    ------
    ValueError
        A factor is not finite, or too large for any shift (``|f| >= 2**mult_bits``).
    """
    r = np.asarray(reals, dtype=np.float64)
    if not np.all(np.isfinite(r)):
        raise ValueError("requantisation factors must be finite")
    if not 1 <= mult_bits <= 31:
        raise ValueError(f"mult_bits must be in 1..31, got {mult_bits}")
    limit = (1 << mult_bits) - 1
    biggest = float(np.max(np.abs(r))) if r.size else 0.0
    if biggest == 0.0:
        return np.zeros(r.shape, dtype=np.int64), 0
    shift = min(MAX_SHIFT, math.floor(math.log2(limit / biggest)))
    # log2 rounding can be off by one at a power of two: step down until everything fits
    while shift >= 0 and np.max(np.abs(np.round(r * 2.0**shift))) > limit:
        shift -= 1
    if shift < 0:
        raise ValueError(f"factor {biggest} does not fit a {mult_bits}-bit multiplier")
    return np.round(r * 2.0**shift).astype(np.int64), int(shift)


def quantize_multiplier(real: float, mult_bits: int = 31) -> tuple[int, int]:
    """REQ constants ``(mult, shift)`` with ``mult * 2**-shift ~= real`` (one factor).

    See :func:`quantize_multipliers`.
    """
    m, s = quantize_multipliers(np.float64(real), mult_bits)
    return int(m), s


@dataclass(frozen=True)
class Requant:
    """Constants of one ``REQ.i<bits>``: ``saturate(rshr(a * mult, shift))``.

    ``mult`` is an int64 array: 0-d for one factor, ``[N]`` for one per output channel (the
    last axis of the tensor it is applied to).
    """

    mult: np.ndarray
    shift: int
    bits: int

    @classmethod
    def from_real(cls, real, bits: int, mult_bits: int = 31) -> Requant:
        """Constants approximating the real factor(s) ``real``, output width ``bits``."""
        m, s = quantize_multipliers(real, mult_bits)
        m.setflags(write=False)
        return cls(m, s, bits)

    @property
    def factor(self) -> np.ndarray:
        """The real factor(s) the constants realise: ``mult * 2**-shift``."""
        return self.mult * 2.0 ** -self.shift

    def apply(self, ops: IntOps, name: str, a) -> np.ndarray:
        """Run the ``REQ`` on ``a`` (int32) and record it as ``name``."""
        return ops.req(name, a, self.mult, self.shift, self.bits)


def symmetric_scale(max_abs: float, qmax: int) -> float:
    """Scale mapping ``max_abs`` to ``qmax`` (``real = int * scale``); 1.0 for an all-zero
    tensor, so that it stays representable."""
    max_abs = float(max_abs)
    if not math.isfinite(max_abs) or max_abs < 0:
        raise ValueError(f"max_abs must be finite and >= 0, got {max_abs}")
    return max_abs / qmax if max_abs > 0 else 1.0


def quantize(x, scale, bits: int) -> np.ndarray:
    """``saturate(round_half_up(x / scale))`` to signed ``bits`` bits, as int64."""
    q = np.floor(np.asarray(x, dtype=np.float64) / scale + 0.5)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(q, lo, hi).astype(np.int64)


def dequantize(q, scale) -> np.ndarray:
    """``q * scale`` as float32."""
    return (np.asarray(q, dtype=np.float64) * scale).astype(np.float32)


def quantize_weight_per_channel(w) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights with one scale per output row.

    Parameters
    ----------
    w : array_like of float, shape [N, K]
        A linear layer's weight in the ``[out, in]`` orientation.

    Returns
    -------
    (numpy.ndarray of int8 [N, K], numpy.ndarray of float64 [N])
        ``w_q`` in ``[-127, 127]`` and ``scale`` with ``w ~= w_q * scale[:, None]``; an
        all-zero row gets scale 1.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"weight must be 2-d [out, in], got shape {w.shape}")
    amax = np.max(np.abs(w), axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    q = np.clip(np.floor(w / scale[:, None] + 0.5), -127, 127).astype(np.int8)
    return q, scale
