"""Bit-exact integer arithmetic of the vector unit (VXM).

This module is the single definition of every VXM arithmetic operation that is not a plain
wrapping add / compare: rounding shifts, requantisation and the special functions
``EXP``, ``RECIP``, ``RSQRT``, ``SIGMOID``, ``TANH``, ``GELU`` and ``SILU``. The NumPy golden
model, the integer transformer layers and the Amaranth RTL all use these definitions, so each
function is written as the integer datapath an RTL pipeline implements: leading-zero count,
shifts, lookups in small ROMs, multiplies of at most 32 x 32 -> 64 bits, adds and clamps.
No floating point is used at call time; the ROM contents are computed once, at import, from
a formula (``round`` of a float64 value, which is deterministic) and exported as read-only
``int64`` NumPy arrays with UPPER_CASE names, every entry inside the signed 32-bit range.

All functions are vectorised: they accept Python ints or NumPy integer arrays of any integer
dtype, compute in ``int64`` and return ``int64`` (an array of the input's shape, or an
``np.int64`` scalar for scalar input) whose values already lie in the stated output range.

Notation
--------
``Qm.n`` / ``Qn``: a two's-complement integer ``q`` that represents ``q / 2**n``.
``rshr(a, s)``: the round-half-up arithmetic shift :func:`shift_right_round`,
``(a + 2**(s-1)) >> s`` for ``s > 0`` and ``a`` for ``s == 0``; in hardware
``(a >> s) + ((a >> (s-1)) & 1)``, i.e. add the last bit shifted out.
``lerp(T, i, r, n)``: linear interpolation in a ROM ``T``: ``T[i] + rshr((T[i+1] - T[i]) * r,
n)`` where ``r`` is the ``n``-bit fraction below the index ``i`` (two ROM reads, or one read
of a base ROM and one of a difference ROM).

Integer helpers
---------------
``wrap(x, bits)``
    Two's-complement wrap to ``bits`` bits (keep the low bits, sign-extend).
``saturate(x, bits)``
    Clamp to ``[-2**(bits-1), 2**(bits-1) - 1]``.
``shift_right_round(x, s)``
    ``rshr`` above, for ``s`` in ``0..63`` and any int64 ``x`` (in particular every product of
    two int32 values, ``|x| <= 2**62``). It never forms ``x + 2**(s-1)``, so it cannot
    overflow.
``requantize(x, mult, s, out_bits)``
    ``saturate(rshr(x * mult, s), out_bits)``; ``x`` and ``mult`` int32 (a 32 x 32 -> 64 bit
    signed multiply), ``s`` in ``0..63``. Round to nearest, ties toward +infinity.

EXP: ``exp_q`` (Q16.16 in, Q15 out)
-----------------------------------
1. Clamp ``x`` to ``[EXP_IN_MIN, 0]`` with ``EXP_IN_MIN = -12 * 2**16`` (for any
   ``v < -12`` the exact result is below ``0.2`` LSB and rounds to 0 anyway) and negate:
   ``a = -x`` in ``[0, 786432]`` (20 bits, Q16).
2. ``t = rshr(a * LOG2E_Q30, 22)`` with ``LOG2E_Q30 = round(log2(e) * 2**30) = 1549082005``:
   ``t = -v * log2(e)`` in Q24 (``EXP_T_FRAC_BITS``), ``t <= 17.32 * 2**24`` (29 bits).
3. Split ``t``: integer part ``n = t >> 24`` (0..17), index ``i = (t >> 16) & 0xFF`` (8 bits),
   fraction ``r = t & 0xFFFF`` (16 bits).
4. ``y = lerp(EXP2_TABLE, i, r, 16)``: ``2**-(t - n)`` in Q30, in ``(2**29, 2**30]``.
   ``EXP2_TABLE[k] = round(2**(-k/256) * 2**30)``, ``k = 0..256`` (257 entries).
5. Result ``rshr(y, 15 + n)`` (Q30 -> Q15 and the ``2**-n`` scaling in one shift, 15..32).

``exp_q(0) == 32768``. Inputs ``> 0`` give 32768 (clamped); ``exp_q`` is non-decreasing and
is 0 exactly for ``x < -726817`` (``v < -11.09``).

RECIP: ``recip_q`` (integer in, ``2**30 / x`` out, exactly rounded)
-------------------------------------------------------------------
1. ``x <= 0`` gives ``2**31 - 1``; otherwise ``x`` is saturated to int32.
2. Normalise: ``k = clz32(x) - 1`` (0..30), ``m = x << k`` in ``[2**30, 2**31)``, i.e. the
   mantissa ``M = m / 2**30`` in ``[1, 2)`` and ``x = M * 2**(30 - k)``.
3. Seed: ``f = m - 2**30``; index ``i = f >> 22`` (8 bits), fraction ``r = f & (2**22 - 1)``
   (22 bits); ``y0 = lerp(RECIP_TABLE, i, r, 22)``, ``1/M`` in Q30.
   ``RECIP_TABLE[k] = round(2**30 / (1 + k/256))``, ``k = 0..256`` (257 entries). The seed's
   relative error is at most 3.8e-6 (``2**-18``).
4. One Newton step ``y1 = y0 * (2 - M * y0)`` in the form ``y1 = y0 + y0 * (1 - M * y0)``:
   ``d = 2**60 - m * y0`` (Q60, ``|d| < 2**42``), ``d' = rshr(d, 12)`` (Q48, fits int32),
   ``y1 = y0 + rshr(y0 * d', 48)`` (Q30, error below one Q30 ulp).
5. Denormalise: ``q = rshr(y1, 30 - k)`` (0..30). ``q`` is within one of the exact result.
6. Correction (one multiply, two compares): if ``(2q + 1) * x <= 2**31`` then ``q += 1``;
   else if ``(2q - 1) * x > 2**31`` then ``q -= 1``. Afterwards
   ``q == floor(2**30 / x + 1/2)`` exactly, for every int32 ``x >= 1`` (verified
   exhaustively), i.e. ``recip_q(x) == (2**31 + x) // (2 * x)``.

``recip_q(1) == 2**30``, ``recip_q(2**31 - 1) == 1``.

RSQRT: ``rsqrt_q`` (integer in, ``2**30 / sqrt(x)`` out, exactly rounded)
-------------------------------------------------------------------------
1. ``x <= 0`` gives ``2**31 - 1``; otherwise ``x`` is saturated to int32.
2. Normalise to an even exponent: ``s = clz32(x) - 1`` (0..30); ``e = s`` if ``s`` is even else
   ``s + 1``; ``j = e / 2`` (0..15); ``m = x << e`` in ``[2**30, 2**32)`` (32-bit unsigned),
   i.e. ``M = m / 2**30`` in ``[1, 4)`` and ``2**30 / sqrt(x) = 2**(j - 15) * 2**30/sqrt(M)``.
3. Seed: ``f = m - 2**30`` (< ``3 * 2**30``); index ``i = f >> 24`` (0..191), fraction
   ``r = f & (2**24 - 1)`` (24 bits); ``y0 = lerp(RSQRT_TABLE, i, r, 24)``, ``1/sqrt(M)`` in
   Q30. ``RSQRT_TABLE[k] = round(2**30 / sqrt(1 + k/64))``, ``k = 0..192`` (193 entries).
   The seed's relative error is below ``2**-15``.
4. One Newton step ``y1 = y0 * (3 - M y0**2) / 2 = y0 + y0 * (1 - M y0**2) / 2`` as
   ``u = rshr(m * y0, 29)`` (``M y0 ~ sqrt(M)`` in Q31, < ``2**32``: an unsigned 32 x 31 bit
   multiply), ``d = rshr(2**61 - u * y0, 17)`` (``1 - M y0**2`` in Q44, ``|d| < 2**29.6``),
   ``y1 = y0 + rshr(y0 * d, 45)`` (Q30; the ``/ 2`` is the extra shift bit). ``y1`` is within
   1.5 Q30 ulp of ``2**30 / sqrt(M)``.
5. Denormalise: ``q = rshr(y1, 15 - j)`` (0..15). ``q`` is within one of the exact result.
6. Correction: with ``c = 2q + 1``, ``h = c * c * x - 2**62`` and ``l = h - 8 * q * x`` are
   ``(2q + 1)**2 x - 2**62`` and ``(2q - 1)**2 x - 2**62``. Both are below ``2**51`` in
   magnitude, so only the low 64 bits of ``(c * c) * x`` are needed (``c * c`` is a 32 x 32
   multiply; ``q * x < 2**46``). If ``h <= 0`` then ``q += 1``; else if ``l > 0`` then
   ``q -= 1``. Afterwards ``q == floor(2**30 / sqrt(x) + 1/2)`` exactly, for every int32
   ``x >= 1`` (verified exhaustively).

``rsqrt_q(1) == 2**30``, ``rsqrt_q(4) == 2**29``, ``rsqrt_q(2**(2k)) == 2**(30-k)``,
``rsqrt_q(2**31 - 1) == 23170``.

SIGMOID / TANH / SILU: one sigmoid ROM (Q16.16 in, Q16.16 out)
--------------------------------------------------------------
``SIGMOID_TABLE[k] = round(sigmoid(k/16) * 2**30)``, ``k = 0..256`` (257 entries, Q30, the
grid ``[0, 16]`` at step 1/16). Negative arguments use the symmetry
``sigmoid(-v) = 1 - sigmoid(v)``, which gives the same 1/16 step as a table over ``[-8, 8)``
but moves the saturation point out to ``|v| = 16``, where ``1 - sigmoid(16) < 2**-23``.
(Saturating at ``|v| = 8`` would cost ``3.4e-4 > 2**-12`` for sigmoid and, through
``tanh(v) = 2 sigmoid(2v) - 1``, ``6.7e-4`` for tanh.)

``sig30(a)`` for ``a >= 0`` in Q16: if ``a >= 16 * 2**16`` then ``2**30``; else with
``i = a >> 12`` (8 bits) and ``r = a & 0xFFF`` (12 bits), ``lerp(SIGMOID_TABLE, i, r, 12)``.

* ``sigmoid_q(x)``: ``p = rshr(sig30(|x|), 14)`` (Q16); result ``p`` if ``x >= 0`` else
  ``2**16 - p`` (so ``sigmoid_q(-x) == 65536 - sigmoid_q(x)`` exactly). Range ``[0, 65536]``.
* ``tanh_q(x)``: ``tanh(v) = 2 sigmoid(2v) - 1``: ``s = sig30(2|x|)`` (saturates for
  ``|v| >= 8``), ``p = rshr(s - 2**29, 13)`` (Q16); result ``sign(x) * p`` (odd exactly).
  Range ``[-65536, 65536]``.
* ``silu_q(x)``: ``s = sig30(|x|)``, and ``2**30 - s`` if ``x < 0`` (sigmoid(v) in Q30);
  result ``rshr(x * s, 30)`` (32 x 31 bit multiply, Q16.16).

GELU: the Phi ROM (Q16.16 in, Q16.16 out)
-----------------------------------------
``PHI_TABLE[k] = round(Phi(k/32) * 2**30)``, ``k = 0..256`` (257 entries, Q30, grid
``[0, 8]`` at step 1/32), ``Phi(v) = (1 + erf(v / sqrt(2))) / 2`` (exact erf GELU, as BERT).
As for sigmoid, ``Phi(-v) = 1 - Phi(v)``: the 1/32 step of a ``[-4, 4)`` table, saturating at
``|v| = 8`` (``8 * (1 - Phi(8)) < 2**-47``) instead of ``|v| = 4`` (where it would cost
``1.3e-4``).

* ``phi30(a)`` for ``a >= 0`` in Q16: ``2**30`` if ``a >= 8 * 2**16``, else with
  ``i = a >> 11`` (8 bits) and ``r = a & 0x7FF`` (11 bits), ``lerp(PHI_TABLE, i, r, 11)``.
* ``gelu_q(x)``: ``s = phi30(|x|)``, and ``2**30 - s`` if ``x < 0``; result
  ``rshr(x * s, 30)``.

Measured accuracy
-----------------
Against float64 NumPy (LSB = one unit of the output format; "exhaustive" = every int32 input
that is not saturated, checked off-line once; ``tests/test_fixedpoint.py`` repeats the checks
on dense grids and random inputs, :func:`accuracy_report` on a smaller grid):

========= ======================== ===========================================================
function  max abs error            notes
========= ======================== ===========================================================
exp_q     0.529 LSB Q15 (1.61e-5)  exhaustive; rel err 2.4e-4 where ``e**v >= 2**-4`` (that is
                                   the output rounding); target was 2 LSB
recip_q   0.5 LSB                  exactly rounded, exhaustive over all int32 ``x >= 1``;
                                   rel err <= 4.77e-7 (``2**-21``) where ``2**30/x >= 2**20``
rsqrt_q   0.5 LSB                  exactly rounded, exhaustive over all int32 ``x >= 1``;
                                   rel err <= 4.77e-7 (``2**-21``) where
                                   ``2**30/sqrt(x) >= 2**20``
sigmoid_q 5.46e-5 (3.58 LSB Q16)   exhaustive over ``|v| <= 64`` (saturated beyond: error
                                   ``< 2**-23``); below ``2**-14``
tanh_q    1.015e-4 (6.65 LSB Q16)  exhaustive over ``|v| <= 64``; below ``2**-13``
silu_q    8.57e-5 (5.62 LSB Q16)   exhaustive over ``|v| <= 64``; in the saturated region
                                   ``|v| >= 16`` the error is ``|v| e**-|v| < 2**-19``
gelu_q    4.34e-5 (2.84 LSB Q16)   exhaustive over ``|v| <= 64``; saturated region
                                   ``|v| >= 8``: error ``< 2**-47``
========= ======================== ===========================================================

All four activations meet the ``2**-12`` (2.44e-4) target over ``|v| <= 32`` and in fact over
the whole int32 input range; the errors are dominated by the linear interpolation (step 1/16
resp. 1/32) plus 0.5 LSB of output rounding.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ACT_FRAC_BITS",
    "EXP2_TABLE",
    "EXP_IN_FRAC_BITS",
    "EXP_IN_MIN",
    "EXP_OUT_FRAC_BITS",
    "EXP_T_FRAC_BITS",
    "INT32_MAX",
    "INT32_MIN",
    "LOG2E_Q30",
    "PHI_TABLE",
    "RECIP_ONE_BITS",
    "RECIP_TABLE",
    "RSQRT_TABLE",
    "SIGMOID_TABLE",
    "TABLE_FRAC_BITS",
    "accuracy_report",
    "exp_q",
    "gelu_q",
    "recip_q",
    "requantize",
    "rsqrt_q",
    "saturate",
    "shift_right_round",
    "sigmoid_q",
    "silu_q",
    "tanh_q",
    "wrap",
]

# --------------------------------------------------------------------------------------------
# Format constants
# --------------------------------------------------------------------------------------------

#: Largest / smallest int32.
INT32_MAX = (1 << 31) - 1
INT32_MIN = -(1 << 31)

#: ``exp_q`` input format: Q16.16.
EXP_IN_FRAC_BITS = 16
#: ``exp_q`` output format: Q15 (``exp_q(0) == 2**15``).
EXP_OUT_FRAC_BITS = 15
#: Fraction bits of ``t = -v * log2(e)`` inside ``exp_q``.
EXP_T_FRAC_BITS = 24
#: Inputs below this (Q16.16, i.e. ``v < -12``) are clamped to it; the result there is 0.
EXP_IN_MIN = -12 << EXP_IN_FRAC_BITS
#: ``log2(e)`` in Q30.
LOG2E_Q30 = round(math.log2(math.e) * (1 << 30))

#: ``recip_q`` / ``rsqrt_q`` compute ``2**RECIP_ONE_BITS / x`` and ``2**RECIP_ONE_BITS / sqrt(x)``.
RECIP_ONE_BITS = 30

#: Input and output format of sigmoid_q, tanh_q, gelu_q, silu_q: Q16.16.
ACT_FRAC_BITS = 16
#: Fraction bits of every ROM entry (all tables are Q30).
TABLE_FRAC_BITS = 30

#: Index bits of the EXP2 / RECIP tables (256 intervals, 257 entries).
EXP2_INDEX_BITS = 8
RECIP_INDEX_BITS = 8
#: RSQRT table step is 2**-6 over [1, 4]: 192 intervals, 193 entries.
RSQRT_STEP_BITS = 6
#: Sigmoid table: step 2**-4 over [0, 16]; Phi table: step 2**-5 over [0, 8].
SIGMOID_STEP_BITS = 4
SIGMOID_RANGE = 16
PHI_STEP_BITS = 5
PHI_RANGE = 8

_ONE30 = 1 << 30

# --------------------------------------------------------------------------------------------
# ROM contents (built once at import from a formula)
# --------------------------------------------------------------------------------------------


def _rom(values: list[float]) -> np.ndarray:
    """Round float values to Q30 integers and freeze them as a read-only int64 array."""
    arr = np.array([round(v * _ONE30) for v in values], dtype=np.int64)
    assert arr.min() >= INT32_MIN and arr.max() <= INT32_MAX
    arr.setflags(write=False)
    return arr


#: ``round(2**(-k/256) * 2**30)``, k = 0..256: 2**-f for f in [0, 1] in Q30.
EXP2_TABLE = _rom([2.0 ** (-k / 256) for k in range(257)])
#: ``round(2**30 / (1 + k/256))``, k = 0..256: 1/M for M in [1, 2] in Q30.
RECIP_TABLE = _rom([1.0 / (1.0 + k / 256) for k in range(257)])
#: ``round(2**30 / sqrt(1 + k/64))``, k = 0..192: 1/sqrt(M) for M in [1, 4] in Q30.
RSQRT_TABLE = _rom([1.0 / math.sqrt(1.0 + k / 64) for k in range(193)])
#: ``round(sigmoid(k/16) * 2**30)``, k = 0..256: sigmoid on [0, 16] in Q30.
SIGMOID_TABLE = _rom([1.0 / (1.0 + math.exp(-k / 16)) for k in range(257)])
#: ``round(Phi(k/32) * 2**30)``, k = 0..256: the standard normal CDF on [0, 8] in Q30.
PHI_TABLE = _rom([0.5 * (1.0 + math.erf(k / 32 / math.sqrt(2.0))) for k in range(257)])

# --------------------------------------------------------------------------------------------
# Integer helpers
# --------------------------------------------------------------------------------------------


def _i64(x) -> np.ndarray:
    """``x`` as an int64 array (no copy when it already is one)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"integer input required, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _out(arr: np.ndarray) -> np.ndarray:
    """Return int64; a 0-d result becomes an ``np.int64`` scalar."""
    return np.asarray(arr, dtype=np.int64)[()]


def _check_bits(bits: int) -> int:
    bits = int(bits)
    if not 1 <= bits <= 63:
        raise ValueError(f"bits must be in 1..63, got {bits}")
    return bits


def _rshr(x: np.ndarray, shift) -> np.ndarray:
    """Round-half-up arithmetic shift right; internal, no checks, ``shift`` in 0..63."""
    shift = np.asarray(shift, dtype=np.int64)
    if shift.ndim == 0:
        s = int(shift)
        if s == 0:
            return x.copy()
        return (x >> s) + ((x >> (s - 1)) & 1)
    s1 = np.maximum(shift - 1, 0)
    return (x >> shift) + ((x >> s1) & 1) * (shift > 0)


def _clz32(x: np.ndarray) -> np.ndarray:
    """Leading zeros of ``x`` as a 32-bit unsigned word (0..32), binary search, 5 steps."""
    n = np.zeros(x.shape, dtype=np.int64)
    v = x
    for s in (16, 8, 4, 2, 1):
        empty = (v >> (32 - s)) == 0
        n = n + np.where(empty, s, 0)
        v = np.where(empty, v << s, v)
    return n + ((v >> 31) == 0)


def _lerp(table: np.ndarray, idx: np.ndarray, frac: np.ndarray, frac_bits: int) -> np.ndarray:
    """``T[i] + rshr((T[i+1] - T[i]) * r, frac_bits)``."""
    lo = table[idx]
    return lo + _rshr((table[idx + 1] - lo) * frac, frac_bits)


def wrap(x, bits: int) -> np.ndarray:
    """Two's-complement wrap to a signed ``bits``-bit value.

    Parameters
    ----------
    x : int or array_like of int
        Values representable in int64.
    bits : int
        Target width (8, 16 or 32 in the VXM; any of 1..63 is accepted).

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        The low ``bits`` bits of ``x``, sign-extended: in
        ``[-2**(bits-1), 2**(bits-1) - 1]``.
    """
    bits = _check_bits(bits)
    x = _i64(x)
    half = np.int64(1 << (bits - 1))
    mask = np.int64((1 << bits) - 1)
    return _out(((x & mask) ^ half) - half)  # keep the low bits, sign-extend


def saturate(x, bits: int) -> np.ndarray:
    """Clamp to the signed ``bits``-bit range.

    Parameters
    ----------
    x : int or array_like of int
        Values representable in int64.
    bits : int
        Target width (8, 16 or 32 in the VXM; any of 1..63 is accepted).

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``min(max(x, -2**(bits-1)), 2**(bits-1) - 1)``.
    """
    bits = _check_bits(bits)
    x = _i64(x)
    return _out(np.clip(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1))


def shift_right_round(x, shift) -> np.ndarray:
    """Arithmetic shift right with round-half-up (ties toward +infinity).

    Computes ``(x + 2**(shift-1)) >> shift`` for ``shift > 0`` and ``x`` for ``shift == 0``,
    without forming the sum: ``(x >> shift) + ((x >> (shift-1)) & 1)``. Exact for every int64
    ``x``, in particular for every product of two int32 values (``|x| <= 2**62``).

    Parameters
    ----------
    x : int or array_like of int
        Values representable in int64.
    shift : int or array_like of int
        Shift count(s) in ``0..63``, broadcast against ``x``.

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``floor(x / 2**shift + 1/2)``.

    Raises
    ------
    ValueError
        If a shift count is outside ``0..63``.
    """
    x = _i64(x)
    shift = _i64(shift)
    if shift.size and (shift.min() < 0 or shift.max() > 63):
        raise ValueError("shift must be in 0..63")
    return _out(_rshr(x, shift))


def requantize(x, mult, shift, out_bits: int) -> np.ndarray:
    """Requantise: ``saturate(shift_right_round(x * mult, shift), out_bits)``.

    The VXM ``REQ`` operation: a signed 32 x 32 -> 64 bit multiply, a round-half-up
    arithmetic shift (round to nearest, ties toward +infinity: 2.5 -> 3, -2.5 -> -2) and a
    saturation to the output width.

    Parameters
    ----------
    x : int or array_like of int
        Int32 values (e.g. MXM accumulator contents).
    mult : int or array_like of int
        Int32 multiplier(s); may be negative.
    shift : int or array_like of int
        Right shift(s) in ``0..63``.
    out_bits : int
        Output width: 8, 16 or 32.

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        Values in ``[-2**(out_bits-1), 2**(out_bits-1) - 1]``.
    """
    prod = _i64(x) * _i64(mult)
    return saturate(shift_right_round(prod, shift), out_bits)


# --------------------------------------------------------------------------------------------
# Special functions
# --------------------------------------------------------------------------------------------


def exp_q(x) -> np.ndarray:
    """``e**v`` for ``v = x / 2**16`` (Q16.16 in, Q15 out).

    Inputs above 0 are clamped to 0 (softmax only needs ``v <= 0``). See the module docstring
    for the datapath: ``t = -v * log2(e)`` in Q24, ``2**-frac(t)`` from the 257-entry Q30
    ``EXP2_TABLE`` with linear interpolation, one rounding shift by ``15 + floor(t)``.

    Parameters
    ----------
    x : int or array_like of int
        Q16.16 values (int32).

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``round(e**min(v, 0) * 2**15)`` within 0.529 LSB, in ``[0, 32768]``;
        ``exp_q(0) == 32768``.
    """
    x = _i64(x)
    a = -np.clip(x, EXP_IN_MIN, 0)  # 0 .. 12 * 2**16
    shift_t = EXP_IN_FRAC_BITS + 30 - EXP_T_FRAC_BITS  # 22
    t = _rshr(a * LOG2E_Q30, shift_t)  # Q24
    n = t >> EXP_T_FRAC_BITS
    low_bits = EXP_T_FRAC_BITS - EXP2_INDEX_BITS  # 16
    i = (t >> low_bits) & ((1 << EXP2_INDEX_BITS) - 1)
    r = t & ((1 << low_bits) - 1)
    y = _lerp(EXP2_TABLE, i, r, low_bits)  # Q30
    return _out(_rshr(y, 30 - EXP_OUT_FRAC_BITS + n))


def recip_q(x) -> np.ndarray:
    """``2**30 / x`` for integer ``x >= 1``, exactly rounded (half up).

    Datapath (module docstring): normalise by the leading-zero count to ``M`` in ``[1, 2)``,
    seed ``1/M`` from the 257-entry Q30 ``RECIP_TABLE`` with linear interpolation, one Newton
    step, a rounding denormalisation shift and a one-multiply +-1 correction.

    Parameters
    ----------
    x : int or array_like of int
        Int32 values; values above ``2**31 - 1`` are saturated to it.

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``floor(2**30 / x + 1/2)`` (``== (2**31 + x) // (2 * x)``) for ``x >= 1``, so
        ``recip_q(1) == 2**30``; ``2**31 - 1`` for ``x <= 0``.
    """
    x = _i64(x)
    valid = x >= 1
    xs = np.clip(x, 1, INT32_MAX)
    k = _clz32(xs) - 1  # 0..30
    m = xs << k  # [2**30, 2**31)
    f = m - _ONE30
    low_bits = 30 - RECIP_INDEX_BITS  # 22
    y = _lerp(RECIP_TABLE, f >> low_bits, f & ((1 << low_bits) - 1), low_bits)
    # Newton: y += y * (1 - M y); d = 2**60 - m*y in Q60, |d| < 2**43.
    d = _rshr((1 << 60) - m * y, 12)  # Q48, fits int32
    y = y + _rshr(y * d, 48)
    q = _rshr(y, 30 - k)
    # Correction to the exactly rounded quotient: (2q - 1) x <= 2**31 < (2q + 1) x.
    two_q = 2 * q
    q = q + ((two_q + 1) * xs <= (1 << 31)) - ((two_q - 1) * xs > (1 << 31))
    return _out(np.where(valid, q, INT32_MAX))


def rsqrt_q(x) -> np.ndarray:
    """``2**30 / sqrt(x)`` for integer ``x >= 1``, exactly rounded (half up).

    Datapath (module docstring): normalise by an even shift to ``M`` in ``[1, 4)``, seed
    ``1/sqrt(M)`` from the 193-entry Q30 ``RSQRT_TABLE`` with linear interpolation, one
    Newton step ``y <- y * (3 - M y**2) / 2``, a rounding denormalisation shift and a +-1
    correction decided by the sign of ``(2q +- 1)**2 x - 2**62``.

    Parameters
    ----------
    x : int or array_like of int
        Int32 values; values above ``2**31 - 1`` are saturated to it.

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``floor(2**30 / sqrt(x) + 1/2)`` for ``x >= 1``, so ``rsqrt_q(1) == 2**30`` and
        ``rsqrt_q(4) == 2**29``; ``2**31 - 1`` for ``x <= 0``.
    """
    x = _i64(x)
    shape = x.shape
    x = x.reshape(-1)  # 1-d inside: the wrapping uint64 products below must not warn
    valid = x >= 1
    xs = np.clip(x, 1, INT32_MAX)
    s = _clz32(xs) - 1  # 0..30
    e = s + (s & 1)  # even, 0..30
    m = xs << e  # [2**30, 2**32)
    f = m - _ONE30
    low_bits = 30 - RSQRT_STEP_BITS  # 24
    y = _lerp(RSQRT_TABLE, f >> low_bits, f & ((1 << low_bits) - 1), low_bits)
    # Newton: y += y * (1 - M y**2) / 2.
    u = _rshr(m * y, 29)  # M * y = sqrt(M) in Q31, < 2**32
    d = _rshr((1 << 61) - u * y, 17)  # 1 - M y**2 in Q44, fits int32
    y = y + _rshr(y * d, 45)
    q = _rshr(y, 15 - (e >> 1))
    # Correction to the exactly rounded result: (2q - 1)**2 x <= 2**62 < (2q + 1)**2 x.
    # |(2q +- 1)**2 x - 2**62| < 2**51, so the low 64 bits of the products decide.
    c = (2 * q + 1).astype(np.uint64)
    hi = ((c * c) * xs.astype(np.uint64) - np.uint64(1 << 62)).view(np.int64)
    lo = hi - 8 * q * xs  # (2q - 1)**2 x - 2**62 = (2q + 1)**2 x - 2**62 - 8 q x
    q = q + (hi <= 0) - (lo > 0)
    return _out(np.where(valid, q, INT32_MAX).reshape(shape))


def _sig30(a: np.ndarray) -> np.ndarray:
    """sigmoid(a / 2**16) in Q30 for ``a >= 0`` (Q16), saturating to 2**30 at a >= 16."""
    low_bits = ACT_FRAC_BITS - SIGMOID_STEP_BITS  # 12
    limit = SIGMOID_RANGE << ACT_FRAC_BITS
    ac = np.minimum(a, limit - 1)
    y = _lerp(SIGMOID_TABLE, ac >> low_bits, ac & ((1 << low_bits) - 1), low_bits)
    return np.where(a >= limit, _ONE30, y)


def _phi30(a: np.ndarray) -> np.ndarray:
    """Phi(a / 2**16) in Q30 for ``a >= 0`` (Q16), saturating to 2**30 at a >= 8."""
    low_bits = ACT_FRAC_BITS - PHI_STEP_BITS  # 11
    limit = PHI_RANGE << ACT_FRAC_BITS
    ac = np.minimum(a, limit - 1)
    y = _lerp(PHI_TABLE, ac >> low_bits, ac & ((1 << low_bits) - 1), low_bits)
    return np.where(a >= limit, _ONE30, y)


def sigmoid_q(x) -> np.ndarray:
    """Logistic sigmoid, Q16.16 in and out.

    ``SIGMOID_TABLE`` (257 Q30 entries, ``[0, 16]`` step 1/16) with linear interpolation on
    ``|v|``, rounded to Q16, mirrored as ``1 - sigmoid(|v|)`` for ``v < 0``; saturates to
    1 / 0 for ``|v| >= 16``.

    Parameters
    ----------
    x : int or array_like of int
        Q16.16 values (int32; wider values are saturated to int32).

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``sigmoid(v)`` in Q16.16, in ``[0, 65536]``, max abs error 5.46e-5 (< 2**-14);
        ``sigmoid_q(-x) == 65536 - sigmoid_q(x)``.
    """
    x = np.clip(_i64(x), INT32_MIN, INT32_MAX)
    p = _rshr(_sig30(np.abs(x)), 30 - ACT_FRAC_BITS)
    return _out(np.where(x >= 0, p, (1 << ACT_FRAC_BITS) - p))


def tanh_q(x) -> np.ndarray:
    """Hyperbolic tangent, Q16.16 in and out, as ``2 * sigmoid(2v) - 1``.

    Uses the sigmoid ROM at ``2|v|`` (saturating to +-1 for ``|v| >= 8``) and the odd
    symmetry ``tanh(-v) = -tanh(v)``.

    Parameters
    ----------
    x : int or array_like of int
        Q16.16 values (int32; wider values are saturated to int32).

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``tanh(v)`` in Q16.16, in ``[-65536, 65536]``, max abs error 1.015e-4 (< 2**-13);
        ``tanh_q(-x) == -tanh_q(x)``.
    """
    x = np.clip(_i64(x), INT32_MIN, INT32_MAX)
    s = _sig30(2 * np.abs(x))
    p = _rshr(s - (_ONE30 >> 1), 30 - ACT_FRAC_BITS - 1)
    return _out(np.where(x >= 0, p, -p))


def silu_q(x) -> np.ndarray:
    """SiLU / swish ``v * sigmoid(v)``, Q16.16 in and out.

    ``sigmoid(v)`` is taken in Q30 from the sigmoid ROM (before any rounding to Q16) and
    multiplied by ``x``: ``rshr(x * s, 30)``.

    Parameters
    ----------
    x : int or array_like of int
        Q16.16 values (int32; wider values are saturated to int32).

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``v * sigmoid(v)`` in Q16.16, max abs error 8.57e-5 for ``|v| <= 32`` (and at any
        larger ``|v|``, where the result is ``x`` or 0).
    """
    x = np.clip(_i64(x), INT32_MIN, INT32_MAX)
    s = _sig30(np.abs(x))
    s = np.where(x >= 0, s, _ONE30 - s)
    return _out(_rshr(x * s, 30))


def gelu_q(x) -> np.ndarray:
    """GELU ``v * Phi(v)`` (erf form, as BERT), Q16.16 in and out.

    ``Phi`` from ``PHI_TABLE`` (257 Q30 entries, ``[0, 8]`` step 1/32) with linear
    interpolation on ``|v|``, mirrored as ``1 - Phi(|v|)`` for ``v < 0``, saturating for
    ``|v| >= 8``; then ``rshr(x * Phi30, 30)``.

    Parameters
    ----------
    x : int or array_like of int
        Q16.16 values (int32; wider values are saturated to int32).

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``v * Phi(v)`` in Q16.16, max abs error 4.34e-5 over the whole int32 range.
    """
    x = np.clip(_i64(x), INT32_MIN, INT32_MAX)
    s = _phi30(np.abs(x))
    s = np.where(x >= 0, s, _ONE30 - s)
    return _out(_rshr(x * s, 30))


# --------------------------------------------------------------------------------------------
# Accuracy measurement
# --------------------------------------------------------------------------------------------


def _errors(got: np.ndarray, ref: np.ndarray, rel_floor: float) -> dict[str, float]:
    err = np.abs(got - ref)
    big = np.abs(ref) >= rel_floor
    rel = float(np.max(err[big] / np.abs(ref[big]))) if big.any() else 0.0
    return {"max_abs_err": float(np.max(err)), "max_rel_err": rel}


def _erf(v: np.ndarray) -> np.ndarray:
    """float64 erf, vectorised (math.erf per element is fine for a report-sized grid)."""
    return np.frompyfunc(math.erf, 1, 1)(v).astype(np.float64)


def accuracy_report() -> dict[str, dict[str, float]]:
    """Measure every special function against float64 NumPy on a dense grid.

    Errors are taken on the real value each output encodes: ``out / 2**15`` for ``exp_q``,
    ``out / 2**16`` for the activations and the integer ``out`` itself for ``recip_q`` and
    ``rsqrt_q`` (whose value is ``2**30 / x`` resp. ``2**30 / sqrt(x)``). ``max_rel_err`` is
    the largest ``|err| / |ref|`` over the grid points where the reference is at least
    ``2**-4`` (exp_q and the activations) or ``2**20`` (recip_q, rsqrt_q); below that the
    absolute error is the meaningful figure.

    Grids: exp_q every 3rd Q16.16 value in ``[-13, 0.1]``; recip_q and rsqrt_q every
    ``x <= 2**18`` plus 2**17 log-spaced values up to ``2**31 - 1``; the activations every
    16th Q16.16 value in ``[-32, 32]``.

    Returns
    -------
    dict
        ``{name: {"max_abs_err": float, "max_rel_err": float}}`` for ``exp_q``, ``recip_q``,
        ``rsqrt_q``, ``sigmoid_q``, ``tanh_q``, ``silu_q`` and ``gelu_q``.
    """
    rep: dict[str, dict[str, float]] = {}
    one16 = float(1 << ACT_FRAC_BITS)

    xe = np.arange(-13 << 16, (1 << 16) // 10, 3, dtype=np.int64)
    ref = np.exp(np.minimum(xe, 0) / one16)
    rep["exp_q"] = _errors(exp_q(xe) / float(1 << EXP_OUT_FRAC_BITS), ref, 2.0**-4)

    xr = np.concatenate(
        [
            np.arange(1, (1 << 18) + 1, dtype=np.int64),
            np.unique(np.geomspace(1 << 18, INT32_MAX, 1 << 17).astype(np.int64)),
        ]
    )
    xf = xr.astype(np.float64)
    rep["recip_q"] = _errors(recip_q(xr).astype(np.float64), 2.0**30 / xf, 2.0**20)
    rep["rsqrt_q"] = _errors(rsqrt_q(xr).astype(np.float64), 2.0**30 / np.sqrt(xf), 2.0**20)

    xa = np.arange(-32 << 16, (32 << 16) + 1, 16, dtype=np.int64)
    v = xa / one16
    sig = 1.0 / (1.0 + np.exp(-v))
    refs = {
        "sigmoid_q": (sigmoid_q, sig),
        "tanh_q": (tanh_q, np.tanh(v)),
        "silu_q": (silu_q, v * sig),
        "gelu_q": (gelu_q, v * 0.5 * (1.0 + _erf(v / math.sqrt(2.0)))),
    }
    for name, (fn, r) in refs.items():
        rep[name] = _errors(fn(xa) / one16, r, 2.0**-4)
    return rep
