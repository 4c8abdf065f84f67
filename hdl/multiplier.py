"""Wide products split into FPGA-multiplier-sized partial products.

A deep pipeline (``ChipConfig.vxm_deep_pipeline``) registers each partial product at the
output of its multiplier block and adds them in the next cycle, so that no cycle holds both a
multiplier and the adder tree behind it. :func:`partial_products` gives the pieces; the caller
places the registers (:class:`hdl.vxm_special._Pipe`, :class:`hdl.vxm_alu.VxmAluTile`).
"""

from __future__ import annotations

from amaranth.hdl import Const, Value

__all__ = ["PIECE_BITS", "pieces", "partial_products", "sum_shifted"]

#: Bits of an unsigned operand piece: 17 unsigned (or 18 signed) bits fit one ECP5 MULT18X18D
#: (18 x 18 signed); an iCE40 SB_MAC16 (16 x 16) takes them in LUTs plus one block.
PIECE_BITS = 17


def pieces(v) -> list[tuple[Value, int]]:
    """``v`` as pieces and their bit offsets: unsigned :data:`PIECE_BITS`-bit pieces from the
    bottom, then a top piece of at most one bit more (signed if ``v`` is)."""
    v = Value.cast(v)
    shape = v.shape()
    top_bits = PIECE_BITS + 1 if shape.signed else PIECE_BITS
    out, lo = [], 0
    while shape.width - lo > top_bits:
        out.append((v[lo:lo + PIECE_BITS], lo))
        lo += PIECE_BITS
    top = v[lo:]
    out.append((top.as_signed() if shape.signed else top, lo))
    return out


def partial_products(a, b, bits: int | None = None) -> list[tuple[Value, int]]:
    """The partial products of ``a * b`` (``b`` may be an int constant) and their bit offsets:
    ``a * b == sum(p << offset)``. With ``bits``, products that only reach bits at or above
    ``bits`` are left out (the sum is then right modulo ``2**bits``)."""
    b = Const(b) if isinstance(b, int) else b
    return [(pa * pb, oa + ob) for pa, oa in pieces(a) for pb, ob in pieces(b)
            if bits is None or oa + ob < bits]


def sum_shifted(terms) -> Value:
    """``sum(value << offset for value, offset in terms)``."""
    total = None
    for value, offset in terms:
        shifted = Value.cast(value) << offset
        total = shifted if total is None else total + shifted
    return total
