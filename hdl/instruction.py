"""The instruction word as an Amaranth layout, generated from :data:`openlpu.isa.FIELDS`.

A ``data.View`` of :func:`instruction_layout` gives every field by name (``instr.opcode``,
``instr.dst``, ``instr.addr``, ...), at the bit positions the ISA defines, so a decoder slices
fields without restating a number. Fields overlap where the ISA lets them (no opcode uses both).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Value, signed, unsigned
from amaranth.lib import data

from openlpu.isa import FIELDS, WORD_BITS, Opcode

__all__ = ["instruction_layout", "stream_code_layout", "latency_table", "opcode_in"]


def stream_code_layout() -> data.StructLayout:
    """A 6-bit stream operand: ``index`` (5 bits) then ``west`` (1 bit: 0 east, 1 west)."""
    return data.StructLayout({"index": unsigned(5), "west": unsigned(1)})


def instruction_layout() -> data.FlexibleLayout:
    """The 64-bit instruction word, every ISA field by name; ``opcode`` is the
    :class:`~openlpu.isa.Opcode` enum and stream operands use :func:`stream_code_layout`."""
    streams = {"dst", "a", "b", "c"}
    fields = {}
    for f in FIELDS.values():
        if f.name == "opcode":
            shape = Opcode
        elif f.name in streams:
            shape = stream_code_layout()
        else:
            shape = signed(f.width) if f.signed else unsigned(f.width)
        fields[f.name] = data.Field(shape, f.lsb)
    return data.FlexibleLayout(WORD_BITS, fields)


def opcode_in(opcode, ops) -> Value:
    """1 when the ``opcode`` field (an :class:`~openlpu.isa.Opcode` view) is one of ``ops``
    (a set from :mod:`openlpu.isa`, e.g. ``MEM_READ_OPS``)."""
    return Cat(*(opcode == op for op in sorted(ops, key=lambda o: o.value))).any()


def latency_table(config) -> dict[Opcode, int]:
    """Latency of every opcode that has one, for ``config`` (from :func:`openlpu.isa.latency`)."""
    from openlpu.isa import OPS, latency

    return {op: latency(op, config) for op, spec in OPS.items() if spec.latency is not None}
