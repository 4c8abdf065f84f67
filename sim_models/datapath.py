"""Element-wise semantics of the VXM and lane movement of the SXM, on NumPy vectors.

These functions are what the golden model executes for each VXM/SXM instruction. Arithmetic
comes from :mod:`openlpu.fixedpoint`, the one bit-exact definition shared with the RTL and the
integer transformer layers.

Vectors of a ``dtype`` are ``int64`` arrays of signed element values, one per lane; bytes on
the streams are converted with :func:`bytes_to_values` and :func:`values_to_bytes`.
"""

from __future__ import annotations

import numpy as np

from openlpu import fixedpoint as fx
from openlpu.isa import DType, Instruction, Opcode

__all__ = ["bytes_to_values", "values_to_bytes", "vxm_execute", "sxm_execute"]

_SIGNED = {1: np.int8, 2: np.int16, 4: np.int32}


def bytes_to_values(planes: list[np.ndarray], dtype: DType) -> np.ndarray:
    """Signed element values from the little-endian byte planes of a stream group."""
    if dtype is DType.I8:
        return planes[0].view(np.int8).astype(np.int64)
    stacked = np.ascontiguousarray(np.stack(planes, axis=1))  # [lanes, nbytes]
    return stacked.view(_SIGNED[dtype.nbytes]).reshape(-1).astype(np.int64)


def values_to_bytes(values: np.ndarray, dtype: DType) -> list[np.ndarray]:
    """Little-endian byte planes (one uint8 vector per stream) of wrapped element values."""
    n = dtype.nbytes
    raw = np.ascontiguousarray(values.astype(_SIGNED[n]))
    b = raw.view(np.uint8).reshape(-1, n)
    return [np.ascontiguousarray(b[:, i]) for i in range(n)]


def _shift_count(b: np.ndarray, bits: int) -> np.ndarray:
    return b & (bits - 1)


def vxm_execute(instr: Instruction, a: np.ndarray, b: np.ndarray | None,
                c: np.ndarray | None) -> np.ndarray:
    """The result values (int64, already in ``dtype`` range) of one VXM instruction.

    ``a``/``b``/``c`` are the operand values (``b`` already the sign-extended immediate where
    ``bimm`` is set); for ``REQ`` ``c`` is unused and the shift comes from ``instr.c``.
    """
    op = instr.op
    dt = DType(instr.dtype)
    bits = dt.bits
    w = fx.wrap
    if op is Opcode.ADD:
        return w(a + b, bits)
    if op is Opcode.SUB:
        return w(a - b, bits)
    if op is Opcode.ADDS:
        return fx.saturate(a + b, bits)
    if op is Opcode.SUBS:
        return fx.saturate(a - b, bits)
    if op is Opcode.MUL:
        return w(a * b, bits)
    if op is Opcode.MIN:
        return np.minimum(a, b)
    if op is Opcode.MAX:
        return np.maximum(a, b)
    if op is Opcode.AND:
        return a & b
    if op is Opcode.OR:
        return a | b
    if op is Opcode.XOR:
        return a ^ b
    if op is Opcode.SHL:
        return w(a << _shift_count(b, bits), bits)
    if op is Opcode.SHR:
        return a >> _shift_count(b, bits)
    if op is Opcode.SHRU:
        return w((a & ((1 << bits) - 1)) >> _shift_count(b, bits), bits)
    if op is Opcode.SHRR:
        return w(fx.shift_right_round(a, _shift_count(b, bits)), bits)
    compare = {Opcode.CMPEQ: np.equal, Opcode.CMPNE: np.not_equal, Opcode.CMPLT: np.less,
               Opcode.CMPLE: np.less_equal, Opcode.CMPGT: np.greater,
               Opcode.CMPGE: np.greater_equal}.get(op)
    if compare is not None:
        return np.where(compare(a, b), -1, 0).astype(np.int64)
    if op is Opcode.SEL:
        return np.where(c != 0, a, b)
    if op is Opcode.MOV:
        return a
    if op is Opcode.NEG:
        return w(-a, bits)
    if op is Opcode.ABS:
        return fx.saturate(np.abs(a), bits)
    if op is Opcode.NOT:
        return ~a
    if op is Opcode.RELU:
        return np.maximum(a, 0)
    if op is Opcode.CVT:
        return fx.saturate(a, bits)
    if op is Opcode.REQ:
        return fx.requantize(a, b, instr.c, bits)
    special = {Opcode.EXP: fx.exp_q, Opcode.RECIP: fx.recip_q, Opcode.RSQRT: fx.rsqrt_q,
               Opcode.SIGMOID: fx.sigmoid_q, Opcode.TANH: fx.tanh_q, Opcode.GELU: fx.gelu_q,
               Opcode.SILU: fx.silu_q}.get(op)
    if special is not None:
        return np.asarray(special(a), dtype=np.int64)
    raise ValueError(f"{op.name} is not a VXM opcode")


def sxm_execute(instr: Instruction, planes: list[np.ndarray], map_values: np.ndarray | None,
                lanes_per_superlane: int) -> list[np.ndarray]:
    """Output byte planes of one SXM instruction.

    ``planes`` are the source streams' uint8 vectors (a dtype group, or ``lanes_per_superlane``
    streams for ``TRANSPOSE``); ``map_values`` the map operand's element values.
    """
    op = instr.op
    lanes = planes[0].shape[0]
    if op is Opcode.SHIFT:
        n = instr.imm
        out = []
        for p in planes:
            o = np.zeros_like(p)
            if n >= 0:
                o[n:] = p[:lanes - n]
            else:
                o[:lanes + n] = p[-n:]
            out.append(o)
        return out
    if op in (Opcode.PERMUTE, Opcode.DISTRIBUTE):
        if op is Opcode.PERMUTE:
            idx = map_values & 0xFFFF
            valid = idx < lanes
            src = np.where(valid, idx, 0)
        else:
            idx = map_values & 0xFF
            valid = idx < lanes_per_superlane
            base = (np.arange(lanes) // lanes_per_superlane) * lanes_per_superlane
            src = base + np.where(valid, idx, 0)
        return [np.where(valid, p[src], 0).astype(np.uint8) for p in planes]
    if op is Opcode.TRANSPOSE:
        lps = lanes_per_superlane
        cube = np.stack(planes).reshape(lps, lanes // lps, lps)  # [stream j, superlane, lane i]
        t = cube.transpose(2, 1, 0)  # [lane i -> stream i, superlane, stream j -> lane j]
        return [np.ascontiguousarray(t[i].reshape(lanes)) for i in range(lps)]
    raise ValueError(f"{op.name} is not an SXM opcode")
