"""ISA-exact integer primitives: each method is exactly one OpenLPU instruction's semantics.

The integer transformer layers are written only in terms of :class:`IntOps`, so that a
compiler can lower every step to one instruction kind (applied to as many vectors as the
tensor has) and the chip must reproduce every recorded tensor bit for bit.

* VXM methods build the :class:`openlpu.isa.Instruction` and run it through
  :func:`sim_models.datapath.vxm_execute`, the golden model's own VXM semantics (which take
  their arithmetic from :mod:`openlpu.fixedpoint`); nothing is re-implemented here.
* :meth:`IntOps.abc` is the MXM: ``int8 W [N, K]`` times ``int8 x [K]`` accumulated in int32.
  One ``ABC`` covers ``K <= lanes``; a longer ``K`` is one ``ABC`` plus ``ABC.acc`` per further
  tile, each tile sum exact and the accumulation wrapping at 32 bits (``golden.py``). Since
  wrapping addition is addition modulo ``2**32``, the result is ``wrap32`` of the exact dot
  product for any tiling, which is what :meth:`abc` returns.
* :meth:`reduce_sum` / :meth:`reduce_max` reduce along an axis the way the chip does across
  lanes (SXM shifts feeding VXM ``ADD.i32`` / ``MAX.i32``): a pairwise tree of the VXM op,
  padding an odd count with the identity (SXM ``SHIFT`` fills with zeros; for ``MAX`` the
  compiler pads with ``INT32_MIN``). Wrapping adds are associative modulo ``2**32``, so the
  tree shape does not change the result.
* :meth:`permute` is SXM ``PERMUTE`` (pure data movement, recorded so the trace shows it).

Every operand is checked against its instruction's operand type (int8 for ``ABC``, the dtype
for VXM ops, int32 for ``REQ``'s ``a`` and ``b`` and the special functions): a value the chip
could not hold raises :class:`QuantRangeError` instead of being silently computed in int64.
Broadcasting between operands (a per-row scalar against a row, a per-channel multiplier
against a matrix) stands for the SXM distributing the scalar or the compiler laying out a
constant vector; it is not arithmetic.

Every result is recorded in the :class:`~sim_models.transformer.trace.Trace` under
``prefix + name``.
"""

from __future__ import annotations

import numpy as np

from openlpu.isa import DType, Instruction, Opcode
from sim_models.datapath import vxm_execute

from .trace import Trace

__all__ = ["INT32_MAX", "INT32_MIN", "IntOps", "QuantRangeError", "int_range"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

_DT = {8: DType.I8, 16: DType.I16, 32: DType.I32}


class QuantRangeError(ValueError):
    """An operand does not fit the type its instruction reads (a layer design error)."""


def int_range(bits: int) -> tuple[int, int]:
    """``(min, max)`` of a signed ``bits``-bit integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _as_int(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"integer operand required, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


class IntOps:
    """Runs ISA-exact primitives and records each result in a :class:`Trace`.

    Parameters
    ----------
    trace : Trace, optional
        Where results are recorded (a new one by default).
    prefix : str
        Prepended to every recorded name (see :meth:`scope`).
    """

    def __init__(self, trace: Trace | None = None, prefix: str = ""):
        self.trace = trace if trace is not None else Trace()
        self.prefix = prefix

    def scope(self, name: str) -> IntOps:
        """An :class:`IntOps` on the same trace whose names start with ``prefix + name + '.'``."""
        return IntOps(self.trace, f"{self.prefix}{name}.")

    # ---------------------------------------------------------------------------------------
    # plumbing
    # ---------------------------------------------------------------------------------------

    def _check(self, name: str, op: str, operand: str, x, bits: int) -> np.ndarray:
        arr = _as_int(x)
        lo, hi = int_range(bits)
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise QuantRangeError(
                f"{self.prefix}{name} ({op}): operand {operand} spans "
                f"[{arr.min()}, {arr.max()}], outside int{bits} [{lo}, {hi}]")
        return arr

    def _rec(self, name: str, op: str, value: np.ndarray) -> np.ndarray:
        return self.trace.record(self.prefix + name, op, value)

    def _vxm(self, name: str, opcode: Opcode, bits: int, a, b=None, c=None, *,
             stype_bits: int | None = None, shift: int = 0, b_bits: int | None = None,
             ) -> np.ndarray:
        sbits = bits if stype_bits is None else stype_bits
        label = f"{opcode.name}.i{bits}"
        a = self._check(name, label, "a", a, sbits)
        if b is not None:
            b = self._check(name, label, "b", b, sbits if b_bits is None else b_bits)
        if c is not None:
            c = self._check(name, label, "c", c, sbits)
        instr = Instruction(opcode, dtype=_DT[bits].value, stype=_DT[sbits].value, c=shift)
        if b is not None:
            a, b = np.broadcast_arrays(a, b)
        if c is not None:
            c, a, b = np.broadcast_arrays(c, a, b)
        out = vxm_execute(instr, a, b, c)
        return self._rec(name, label, out)

    # ---------------------------------------------------------------------------------------
    # MXM
    # ---------------------------------------------------------------------------------------

    def abc(self, name: str, weights, x) -> np.ndarray:
        """MXM ``ABC`` (+ ``ABC.acc`` over K tiles): ``wrap32(x @ weights.T)``.

        ``weights`` int8 ``[..., N, K]`` (one installed weight row per output lane), ``x`` int8
        ``[..., M, K]`` (M vectors streamed through); result int32 ``[..., M, N]``. Leading
        axes broadcast (one weight set per head, say).
        """
        w = self._check(name, "ABC", "weights", weights, 8)
        v = self._check(name, "ABC", "x", x, 8)
        if w.shape[-1] != v.shape[-1]:
            raise ValueError(f"{self.prefix}{name} (ABC): weights [..., N, {w.shape[-1]}] "
                             f"and x [..., M, {v.shape[-1]}] disagree on K")
        # float64 is exact: |dot| <= K * 2**14 < 2**53 for any K below 2**39
        if w.shape[-1] >= 1 << 39:
            raise ValueError("K too large for an exact dot product")
        y = np.matmul(v.astype(np.float64), np.swapaxes(w, -1, -2).astype(np.float64))
        exact = y.astype(np.int64)
        lo, hi = int_range(32)
        wrapped = ((exact - lo) & 0xFFFFFFFF) + lo  # wrap32, the accumulator width
        assert wrapped.min(initial=0) >= lo and wrapped.max(initial=0) <= hi
        return self._rec(name, "ABC", wrapped)

    # ---------------------------------------------------------------------------------------
    # VXM: one instruction each
    # ---------------------------------------------------------------------------------------

    def add(self, name: str, a, b, bits: int = 32) -> np.ndarray:
        """``ADD``: ``a + b``, wrapping."""
        return self._vxm(name, Opcode.ADD, bits, a, b)

    def sub(self, name: str, a, b, bits: int = 32) -> np.ndarray:
        """``SUB``: ``a - b``, wrapping."""
        return self._vxm(name, Opcode.SUB, bits, a, b)

    def adds(self, name: str, a, b, bits: int = 32) -> np.ndarray:
        """``ADDS``: ``a + b``, saturating."""
        return self._vxm(name, Opcode.ADDS, bits, a, b)

    def mul(self, name: str, a, b, bits: int = 32) -> np.ndarray:
        """``MUL``: the low ``bits`` bits of ``a * b`` (wrapping)."""
        return self._vxm(name, Opcode.MUL, bits, a, b)

    def max(self, name: str, a, b, bits: int = 32) -> np.ndarray:
        """``MAX``: element-wise maximum."""
        return self._vxm(name, Opcode.MAX, bits, a, b)

    def min(self, name: str, a, b, bits: int = 32) -> np.ndarray:
        """``MIN``: element-wise minimum."""
        return self._vxm(name, Opcode.MIN, bits, a, b)

    def sel(self, name: str, cond, a, b, bits: int = 32) -> np.ndarray:
        """``SEL``: ``a`` where ``cond != 0``, else ``b``."""
        return self._vxm(name, Opcode.SEL, bits, a, b, cond)

    def shrr(self, name: str, a, n, bits: int = 32) -> np.ndarray:
        """``SHRR``: arithmetic shift right by ``n mod bits``, round half up."""
        return self._vxm(name, Opcode.SHRR, bits, a, n)

    def cvt(self, name: str, a, bits: int, from_bits: int) -> np.ndarray:
        """``CVT.i<bits>.i<from_bits>``: sign-extend, or saturate when narrowing."""
        return self._vxm(name, Opcode.CVT, bits, a, stype_bits=from_bits)

    def req(self, name: str, a, mult, shift: int, bits: int) -> np.ndarray:
        """``REQ.i<bits>``: ``saturate(rshr(a * mult, shift))``; ``a``, ``mult`` int32.

        ``mult`` may be a per-lane stream (per-channel multipliers, or another int32 tensor:
        a 32 x 32 -> 64 bit product), ``shift`` is the instruction's 0..63 ``c`` field, one
        value per instruction.
        """
        if not 0 <= int(shift) <= 63:
            raise QuantRangeError(f"{self.prefix}{name} (REQ): shift {shift} outside 0..63")
        return self._vxm(name, Opcode.REQ, bits, a, mult, stype_bits=32, shift=int(shift))

    def _special(self, name: str, opcode: Opcode, a) -> np.ndarray:
        return self._vxm(name, opcode, 32, a)

    def exp(self, name: str, a) -> np.ndarray:
        """``EXP``: ``e**x``, x Q16.16 (clamped to ``[-12, 0]``), result Q15."""
        return self._special(name, Opcode.EXP, a)

    def recip(self, name: str, a) -> np.ndarray:
        """``RECIP``: ``round(2**30 / x)`` for ``x >= 1``."""
        return self._special(name, Opcode.RECIP, a)

    def rsqrt(self, name: str, a) -> np.ndarray:
        """``RSQRT``: ``round(2**30 / sqrt(x))`` for ``x >= 1``."""
        return self._special(name, Opcode.RSQRT, a)

    def gelu(self, name: str, a) -> np.ndarray:
        """``GELU``: ``x * Phi(x)``, Q16.16 in and out."""
        return self._special(name, Opcode.GELU, a)

    def silu(self, name: str, a) -> np.ndarray:
        """``SILU``: ``x * sigmoid(x)``, Q16.16 in and out."""
        return self._special(name, Opcode.SILU, a)

    # ---------------------------------------------------------------------------------------
    # lane reductions (SXM + VXM) and data movement (SXM)
    # ---------------------------------------------------------------------------------------

    def _reduce(self, name: str, opcode: Opcode, identity: int, a, axis: int,
                bits: int) -> np.ndarray:
        label = f"{opcode.name}.i{bits}"
        v = np.moveaxis(self._check(name, label, "a", a, bits), axis, -1)
        instr = Instruction(opcode, dtype=_DT[bits].value, stype=_DT[bits].value)
        if v.shape[-1] == 0:
            raise ValueError(f"{self.prefix}{name}: reduction over an empty axis")
        while v.shape[-1] > 1:
            if v.shape[-1] % 2:
                pad = np.full(v.shape[:-1] + (1,), identity, dtype=np.int64)
                v = np.concatenate([v, pad], axis=-1)
            half = v.shape[-1] // 2
            v = vxm_execute(instr, v[..., :half], v[..., half:], None)
        return self._rec(name, f"{label} (reduce)", np.moveaxis(v, -1, axis))

    def reduce_sum(self, name: str, a, axis: int = -1, bits: int = 32) -> np.ndarray:
        """Sum along ``axis`` with wrapping ``ADD.i<bits>`` (kept as a length-1 axis)."""
        return self._reduce(name, Opcode.ADD, 0, a, axis, bits)

    def reduce_max(self, name: str, a, axis: int = -1, bits: int = 32) -> np.ndarray:
        """Maximum along ``axis`` with ``MAX.i<bits>`` (kept as a length-1 axis)."""
        return self._reduce(name, Opcode.MAX, int_range(bits)[0], a, axis, bits)

    def permute(self, name: str, a, index, axis: int = -1) -> np.ndarray:
        """SXM ``PERMUTE``: ``out[..., l, ...] = a[..., index[l], ...]`` along ``axis``."""
        return self._rec(name, "PERMUTE", np.take(_as_int(a), np.asarray(index), axis=axis))
