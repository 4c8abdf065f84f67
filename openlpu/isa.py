"""The OpenLPU instruction set: opcodes, 64-bit encodings, operands, latencies, validation.

This module is the single definition of the ISA. The golden model (``sim_models``), the
assembler and compiler (``firmware``) and the RTL decoders (``hdl``) import :data:`OPS`,
:class:`Opcode`, :data:`FIELDS` and :func:`latency`; none of them restates a number.

Instruction word (64 bits). Fields sit at fixed positions so that a decoder can slice them
without first decoding the opcode; each opcode uses the subset listed in its :class:`OpSpec`::

    63      56 55 54 53 52 51    46 45    40 39    34 33    28 27 26 25   22 21  16 15     0
    | opcode  |dtype|stype|  dst   |   a    |   b    |   c    |bi|ac| (0)   | count |  addr  |
                                                                   |     imm24 [23:0]        |
    RDWR: waddr[39:24] (the WRITE's address; ``addr`` is the READ's)
    ICU:  NOP count[31:0];  REPEAT n[23:0] d[39:24] step[55:40] (signed)

``imm`` (bits 23..0) overlaps ``count`` and ``addr``, ``waddr`` overlaps ``b``, ``c``, ``bimm``
and ``accumulate``; no opcode uses two overlapping fields.

Stream operands are 6 bits: ``dir << 5 | index`` with dir 0 = eastward, 1 = westward.
A group operand (int16 / int32, a Gather/Permute map) names the lowest stream of an aligned
group of 2 or 4 adjacent streams holding the value's bytes little-endian.

Timing (all in cycles of superlane 0; superlane ``k`` does the same ``k`` cycles later):

- an instruction issued in cycle ``t`` reads its stream operands from the stream registers at
  its own slice's position during cycle ``t``;
- its stream result is present in the stream register at its slice's position during cycle
  ``t + latency``, then moves one position per cycle in the stream's direction unless another
  slice overwrites it;
- MEM ``READ``/``GATHER`` access the bank in cycle ``t``; ``WRITE``/``SCATTER`` in cycle
  ``t + 1`` (visible to accesses from ``t + 2``);
- MXM ``LW`` updates the shadow buffer for an ``IW`` issued from ``t + 1``; ``IW`` installs
  the weights used by ``ABC``s issued from ``t + 1``; ``ABC`` writes its accumulator entry at
  ``t + latency``; ``ACC`` reads its entry in cycle ``t``; ``ABCO`` is an ``ABC`` whose new
  accumulator value is also present on its ``dst`` group at ``t + latency`` (no ``ACC``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from amaranth.lib import enum as aenum

from .config import ChipConfig, SliceKind

__all__ = [
    "WORD_BITS", "Direction", "DType", "Unit", "Opcode", "OperandKind", "Field", "FIELDS",
    "OpSpec", "OPS", "Instruction", "IsaError", "encode", "decode", "latency", "stream_code",
    "stream_parts", "stream_name", "validate", "unit_for_slice", "STEP_FIELD_RANGE",
    "OPS_BY_NAME", "VXM_SPECIAL", "operand_dtype", "group_width", "stream_fields",
    "check_queue_program", "SPECIAL_FUNCTION_QUEUE", "VXM_MULTIPLY", "missing_feature",
    "vxm_alu_index", "MXM_PRODUCT_OPS", "MEM_READ_OPS", "MEM_WRITE_OPS",
]

WORD_BITS = 64


class Direction(aenum.Enum, shape=1):
    """Stream flow direction."""

    EAST = 0
    WEST = 1


class DType(aenum.Enum, shape=2):
    """Element types of VXM/SXM operands; the value is log2 of the byte width."""

    I8 = 0
    I16 = 1
    I32 = 2

    @property
    def nbytes(self) -> int:
        """Bytes per element = streams per group."""
        return 1 << self.value

    @property
    def bits(self) -> int:
        """Bits per element."""
        return 8 << self.value

    @property
    def label(self) -> str:
        """Assembly suffix: ``i8``, ``i16``, ``i32``."""
        return f"i{self.bits}"


class Unit(aenum.Enum, shape=3):
    """Which kind of queue executes an opcode (ICU opcodes run on every queue)."""

    ICU = 0
    MEM = 1
    VXM = 2
    MXM = 3
    SXM = 4
    C2C = 5


def unit_for_slice(kind: SliceKind) -> Unit:
    """The unit whose instructions a slice kind's queues execute."""
    return {SliceKind.MEM: Unit.MEM, SliceKind.VXM: Unit.VXM, SliceKind.MXM: Unit.MXM,
            SliceKind.SXM: Unit.SXM}[kind]


class Opcode(aenum.Enum, shape=8):
    """Every opcode. Bits [63:56] of the instruction word."""

    # ICU (any queue). END is 0 so that a zeroed queue memory ends at once.
    END = 0x00
    NOP = 0x01
    REPEAT = 0x02
    SYNC = 0x03
    NOTIFY = 0x04
    # MEM
    READ = 0x10
    WRITE = 0x11
    GATHER = 0x12
    SCATTER = 0x13
    RDWR = 0x14
    # MXM
    LW = 0x20
    IW = 0x21
    ABC = 0x22
    ACC = 0x23
    ABCO = 0x24
    # SXM
    SHIFT = 0x30
    PERMUTE = 0x31
    DISTRIBUTE = 0x32
    TRANSPOSE = 0x33
    # VXM: binary
    ADD = 0x40
    SUB = 0x41
    ADDS = 0x42
    SUBS = 0x43
    MUL = 0x44
    MIN = 0x45
    MAX = 0x46
    AND = 0x47
    OR = 0x48
    XOR = 0x49
    SHL = 0x4A
    SHR = 0x4B
    SHRU = 0x4C
    SHRR = 0x4D
    CMPEQ = 0x4E
    CMPNE = 0x4F
    CMPLT = 0x50
    CMPLE = 0x51
    CMPGT = 0x52
    CMPGE = 0x53
    # VXM: ternary select
    SEL = 0x54
    # VXM: unary, conversion, requantisation
    MOV = 0x58
    NEG = 0x59
    ABS = 0x5A
    NOT = 0x5B
    RELU = 0x5C
    CVT = 0x5D
    REQ = 0x5E
    # VXM: special functions (int32, fixed point, see openlpu.fixedpoint)
    EXP = 0x60
    RECIP = 0x61
    RSQRT = 0x62
    SIGMOID = 0x63
    TANH = 0x64
    GELU = 0x65
    SILU = 0x66
    # C2C: encodings reserved, not implemented yet
    SEND = 0xF0
    RECEIVE = 0xF1
    DESKEW = 0xF2


class OperandKind(aenum.Enum):
    """How an assembly operand is written and checked."""

    STREAM = "stream"  # E3 / W3, a single stream or the base of a dtype-sized group
    STREAM_OR_IMM = "stream_or_imm"  # a stream, or #imm in the imm24 field (sets bimm)
    ADDR = "addr"  # MEM address (bank bit above the offset), or an MXM row / acc entry
    UINT = "uint"
    SINT = "sint"


@dataclass(frozen=True)
class Field:
    """A bit field of the instruction word."""

    name: str
    lsb: int
    width: int
    signed: bool = False

    @property
    def msb(self) -> int:
        """Highest bit."""
        return self.lsb + self.width - 1

    @property
    def min(self) -> int:
        """Smallest encodable value."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        """Largest encodable value."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("opcode", 56, 8),
    Field("dtype", 54, 2),
    Field("stype", 52, 2),
    Field("dst", 46, 6),
    Field("a", 40, 6),
    Field("b", 34, 6),
    Field("c", 28, 6),
    Field("bimm", 27, 1),
    Field("accumulate", 26, 1),
    Field("count", 16, 6),
    Field("imm", 0, 24, signed=True),
    Field("addr", 0, 16),
    Field("waddr", 24, 16),
    # ICU formats reuse the word differently
    Field("nop_count", 0, 32),
    Field("rep_n", 0, 24),
    Field("rep_d", 24, 16),
    Field("rep_step", 40, 16, signed=True),
)}

#: Range of the Repeat step (signed 16 bits).
STEP_FIELD_RANGE = (FIELDS["rep_step"].min, FIELDS["rep_step"].max)


@dataclass(frozen=True)
class OpSpec:
    """Everything the toolchain knows about one opcode.

    ``operands`` lists ``(field, kind)`` in assembly order (destination first).
    ``fields`` lists every encoded field. ``step_field`` is the field a ``REPEAT`` advances.
    ``suffix`` is the assembly modifier: ``"dtype"`` (``ADD.i8``), ``"cvt"`` (``CVT.i32.i8``),
    ``"acc"`` (optional ``ABC.acc``) or ``None``.
    """

    opcode: Opcode
    unit: Unit
    operands: tuple[tuple[str, OperandKind], ...]
    latency: Callable[[ChipConfig], int] | None
    summary: str
    suffix: str | None = None
    step_field: str | None = None
    extra_fields: tuple[str, ...] = ()
    dtypes: tuple[DType, ...] = (DType.I8, DType.I16, DType.I32)
    reserved: bool = False

    @property
    def name(self) -> str:
        """Mnemonic."""
        return self.opcode.name

    @functools.cached_property  # computed once per opcode: validate() asks per field
    def fields(self) -> tuple[str, ...]:
        """Every encoded field except the opcode."""
        names = [f for f, _ in self.operands] + list(self.extra_fields)
        if self.suffix in ("dtype", "cvt"):
            names += ["dtype", "stype"]
        if self.suffix == "acc":
            names.append("accumulate")
        if any(k is OperandKind.STREAM_OR_IMM for _, k in self.operands):
            names += ["bimm", "imm"]
        return tuple(dict.fromkeys(names))


def _const(n: int) -> Callable[[ChipConfig], int]:
    return lambda cfg: n


def _mxm_latency(cfg: ChipConfig) -> int:
    # input register, multiplier register, adder tree over one superlane (one register per
    # level), one hop per superlane to reduce across the wavefront, accumulator read and
    # write (2 cycles: a synchronous read port, then add and write).
    return 4 + math.ceil(math.log2(cfg.lanes_per_superlane)) + cfg.superlanes


def _cross_superlane_latency(cfg: ChipConfig) -> int:
    # Data may move from the last superlane to the first, which sees its inputs superlanes-1
    # cycles earlier: the SXM waits for the whole wavefront before it emits.
    return 2 + cfg.superlanes


_S = OperandKind.STREAM
_SI = OperandKind.STREAM_OR_IMM
_A = OperandKind.ADDR
_U = OperandKind.UINT
_SN = OperandKind.SINT


def _icu(op, operands, summary):
    return OpSpec(op, Unit.ICU, operands, None, summary)


def _vxm(op, operands, lat, summary, dtypes=(DType.I8, DType.I16, DType.I32), suffix="dtype",
         deep=None):
    """A VXM opcode of latency ``lat``; ``deep`` (default ``lat + 2``) is its latency when the
    config has ``vxm_deep_pipeline``: the deep datapaths are longer
    (:func:`hdl.vxm_alu.datapath_depth`: the ALU group one stage; the special functions
    :func:`hdl.vxm_special.natural_depth`), and every result is registered once more before
    the stream write."""
    deep_lat = lat + 2 if deep is None else deep

    def fn(cfg: ChipConfig) -> int:
        return deep_lat if cfg.vxm_deep_pipeline else lat
    return OpSpec(op, Unit.VXM, operands, fn, summary, suffix=suffix, dtypes=dtypes)


_I32 = (DType.I32,)
_BIN = (("dst", _S), ("a", _S), ("b", _SI))
_UN = (("dst", _S), ("a", _S))

#: The opcodes that run the array (``W @ x`` into an accumulator): what utilisation counts.
MXM_PRODUCT_OPS = frozenset({Opcode.ABC, Opcode.ABCO})
#: The MEM opcodes that read a bank in their issue cycle / write one in the next.
MEM_READ_OPS = frozenset({Opcode.READ, Opcode.GATHER, Opcode.RDWR})
MEM_WRITE_OPS = frozenset({Opcode.WRITE, Opcode.SCATTER, Opcode.RDWR})

_SPECS = [
    _icu(Opcode.END, (), "end of this queue's program"),
    _icu(Opcode.NOP, (("nop_count", _U),), "issue nothing for N cycles (N >= 1)"),
    _icu(Opcode.REPEAT, (("rep_n", _U), ("rep_d", _U), ("rep_step", _SN)),
         "re-issue the previous instruction N more times, D cycles apart, advancing its "
         "step field by STEP each time"),
    _icu(Opcode.SYNC, (), "park this queue until a NOTIFY from any queue"),
    _icu(Opcode.NOTIFY, (), "release every parked queue; they issue again next cycle"),
    OpSpec(Opcode.READ, Unit.MEM, (("dst", _S), ("addr", _A)), _const(2),
           "vector at addr -> stream dst", step_field="addr"),
    OpSpec(Opcode.WRITE, Unit.MEM, (("addr", _A), ("a", _S)), _const(2),
           "stream a -> vector at addr", step_field="addr"),
    OpSpec(Opcode.GATHER, Unit.MEM, (("dst", _S), ("addr", _A), ("b", _S)), _const(2),
           "lane l of dst <- lane l of word (offset(addr) + map_l) mod words, bank(addr); "
           "map b is an int16 group", step_field="addr"),
    OpSpec(Opcode.SCATTER, Unit.MEM, (("addr", _A), ("b", _S), ("a", _S)), _const(2),
           "lane l of stream a -> lane l of word (offset(addr) + map_l) mod words; "
           "map b is an int16 group", step_field="addr"),
    OpSpec(Opcode.RDWR, Unit.MEM, (("dst", _S), ("addr", _A), ("waddr", _A), ("a", _S)),
           _const(2), "READ dst, addr and WRITE waddr, a in one issue (read port in t, write "
           "port in t + 1)"),
    OpSpec(Opcode.LW, Unit.MXM, (("addr", _A), ("a", _S), ("count", _U)), _const(1),
           "load weight rows addr..addr+count-1 of the shadow buffer from streams a.."
           "a+count-1", step_field="addr"),
    OpSpec(Opcode.IW, Unit.MXM, (), _const(1),
           "install the shadow buffer as the array's weights"),
    OpSpec(Opcode.ABC, Unit.MXM, (("addr", _A), ("a", _S)), _mxm_latency,
           "acc[addr] (+)= W @ x, x the int8 vector on stream a; .acc accumulates",
           suffix="acc", step_field="addr"),
    OpSpec(Opcode.ACC, Unit.MXM, (("dst", _S), ("addr", _A)), _const(2),
           "emit acc[addr] as int32 on the 4-stream group dst", step_field="addr"),
    OpSpec(Opcode.ABCO, Unit.MXM, (("dst", _S), ("addr", _A), ("a", _S)), _mxm_latency,
           "ABC[.acc] addr, a, and emit the new acc[addr] as int32 on the 4-stream group dst",
           suffix="acc", step_field="addr"),
    OpSpec(Opcode.SHIFT, Unit.SXM, (("dst", _S), ("a", _S), ("imm", _SN)),
           _cross_superlane_latency, "dst[l] = a[l - n] (zero fill); n > 0 moves data to "
           "higher lanes", suffix="dtype"),
    OpSpec(Opcode.PERMUTE, Unit.SXM, (("dst", _S), ("a", _S), ("b", _S)),
           _cross_superlane_latency, "dst[l] = a[map_l] (0 if map_l >= lanes); map b is an "
           "int16 group", suffix="dtype"),
    OpSpec(Opcode.DISTRIBUTE, Unit.SXM, (("dst", _S), ("a", _S), ("b", _S)), _const(2),
           "dst[l] = a[superlane_base(l) + map_l] (0 if map_l >= lanes_per_superlane); map b "
           "is one int8 stream", suffix="dtype"),
    OpSpec(Opcode.TRANSPOSE, Unit.SXM, (("dst", _S), ("a", _S)), _const(2),
           "transpose each superlane's lps x lps byte tile: streams a.. -> dst.."),
    _vxm(Opcode.ADD, _BIN, 2, "a + b, wrapping"),
    _vxm(Opcode.SUB, _BIN, 2, "a - b, wrapping"),
    _vxm(Opcode.ADDS, _BIN, 2, "a + b, saturating"),
    _vxm(Opcode.SUBS, _BIN, 2, "a - b, saturating"),
    _vxm(Opcode.MUL, _BIN, 3, "a * b, low bits (wrapping)", deep=5),
    _vxm(Opcode.MIN, _BIN, 2, "min(a, b)"),
    _vxm(Opcode.MAX, _BIN, 2, "max(a, b)"),
    _vxm(Opcode.AND, _BIN, 2, "a & b"),
    _vxm(Opcode.OR, _BIN, 2, "a | b"),
    _vxm(Opcode.XOR, _BIN, 2, "a ^ b"),
    _vxm(Opcode.SHL, _BIN, 2, "a << (b mod bits)"),
    _vxm(Opcode.SHR, _BIN, 2, "a >> (b mod bits), arithmetic"),
    _vxm(Opcode.SHRU, _BIN, 2, "a >> (b mod bits), logical"),
    _vxm(Opcode.SHRR, _BIN, 2, "a >> (b mod bits), arithmetic, round half up"),
    _vxm(Opcode.CMPEQ, _BIN, 2, "-1 if a == b else 0"),
    _vxm(Opcode.CMPNE, _BIN, 2, "-1 if a != b else 0"),
    _vxm(Opcode.CMPLT, _BIN, 2, "-1 if a < b else 0"),
    _vxm(Opcode.CMPLE, _BIN, 2, "-1 if a <= b else 0"),
    _vxm(Opcode.CMPGT, _BIN, 2, "-1 if a > b else 0"),
    _vxm(Opcode.CMPGE, _BIN, 2, "-1 if a >= b else 0"),
    _vxm(Opcode.SEL, (("dst", _S), ("c", _S), ("a", _S), ("b", _SI)), 2,
         "a if c != 0 else b"),
    _vxm(Opcode.MOV, _UN, 2, "a"),
    _vxm(Opcode.NEG, _UN, 2, "-a, wrapping"),
    _vxm(Opcode.ABS, _UN, 2, "|a|, saturating"),
    _vxm(Opcode.NOT, _UN, 2, "~a"),
    _vxm(Opcode.RELU, _UN, 2, "max(a, 0)"),
    _vxm(Opcode.CVT, _UN, 2, "convert stype -> dtype: sign-extend, or saturate",
         suffix="cvt"),
    _vxm(Opcode.REQ, (("dst", _S), ("a", _S), ("b", _SI), ("c", _U)), 4,
         "saturate(round_half_up((a * b) >> c)) to dtype; a int32, b int32 multiplier", deep=6),
    _vxm(Opcode.EXP, _UN, 6, "e^x, x Q16.16 (clamped to <= 0) -> Q15", dtypes=_I32,
         deep=15),
    _vxm(Opcode.RECIP, _UN, 8, "2^30 / x, x >= 1 (else INT32_MAX)", dtypes=_I32, deep=26),
    _vxm(Opcode.RSQRT, _UN, 8, "2^30 / sqrt(x), x >= 1 (else INT32_MAX)", dtypes=_I32,
         deep=29),
    _vxm(Opcode.SIGMOID, _UN, 6, "sigmoid, Q16.16 -> Q16.16", dtypes=_I32, deep=11),
    _vxm(Opcode.TANH, _UN, 6, "tanh, Q16.16 -> Q16.16", dtypes=_I32, deep=11),
    _vxm(Opcode.GELU, _UN, 6, "x * Phi(x) (erf GELU), Q16.16 -> Q16.16", dtypes=_I32,
         deep=17),
    _vxm(Opcode.SILU, _UN, 6, "x * sigmoid(x), Q16.16 -> Q16.16", dtypes=_I32, deep=17),
    OpSpec(Opcode.SEND, Unit.C2C, (), None, "reserved: send a vector over a C2C link",
           reserved=True),
    OpSpec(Opcode.RECEIVE, Unit.C2C, (), None, "reserved: receive a vector from a C2C link",
           reserved=True),
    OpSpec(Opcode.DESKEW, Unit.C2C, (), None, "reserved: align to the C2C link epoch",
           reserved=True),
]

#: Every opcode's specification, keyed by opcode.
OPS: dict[Opcode, OpSpec] = {s.opcode: s for s in _SPECS}
assert set(OPS) == set(Opcode), "every opcode needs an OpSpec"

#: Opcodes by mnemonic (upper case).
OPS_BY_NAME: dict[str, OpSpec] = {s.name: s for s in _SPECS}

#: VXM opcodes whose b operand and result are predicates / shift counts, etc. are all in OPS;
#: these sets group opcodes the way the golden model and RTL dispatch them.
VXM_SPECIAL = frozenset({Opcode.EXP, Opcode.RECIP, Opcode.RSQRT, Opcode.SIGMOID, Opcode.TANH,
                         Opcode.GELU, Opcode.SILU})

#: The first VXM queue, whose ALU has the special-function pipelines in the default config
#: (``ChipConfig.vxm_special_alus = 1``): they cost about eight multipliers per lane, so they
#: are built once per lane, not per ALU.
SPECIAL_FUNCTION_QUEUE = "vxm0"

#: VXM opcodes that need the ALU's 32 x 32 multiplier (``ChipConfig.vxm_multiplier``).
VXM_MULTIPLY = frozenset({Opcode.MUL, Opcode.REQ})


def vxm_alu_index(queue_name: str) -> int | None:
    """The ALU number of a VXM queue name (``vxm3`` -> 3), None for other queues."""
    if queue_name.startswith("vxm") and queue_name[3:].isdigit():
        return int(queue_name[3:])
    return None


def missing_feature(op: Opcode, queue_name: str, config: ChipConfig) -> str | None:
    """Why queue ``queue_name`` of ``config`` lacks the hardware for ``op`` (a VXM ALU
    without the special-function unit or the multiplier, or no ``REPEAT`` in the ICUs), naming
    the config field that leaves it out, or None if it has it (or ``op`` needs none)."""
    if op in VXM_SPECIAL:
        alu = vxm_alu_index(queue_name)
        if alu is None or not config.vxm_alu_has_special(alu):
            n = config.vxm_special_alus
            which = ("no VXM ALU has the special-function unit" if n == 0 else
                     f"only queue{'s' if n > 1 else ''} "
                     f"{', '.join(f'vxm{i}' for i in range(n))} {'have' if n > 1 else 'has'} "
                     "the special-function unit")
            return f"{op.name} is a special function; {which} (vxm_special_alus = {n})"
    if op in VXM_MULTIPLY and not config.vxm_multiplier:
        return (f"{op.name} needs the VXM multiplier, which this config leaves out "
                f"(vxm_multiplier = False)")
    if op is Opcode.REPEAT and not config.icu_repeat:
        return "the instruction queues of this config do not execute REPEAT (icu_repeat = False)"
    return None


class IsaError(ValueError):
    """An instruction field is outside what the encoding or the chip config allows."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
        #: Position of the offending instruction in its queue, where known.
        self.index: int | None = None


@dataclass(frozen=True)
class Instruction:
    """One decoded instruction. Fields an opcode does not use stay 0.

    Stream fields (``dst``, ``a``, ``b``, ``c`` when a stream) hold the 6-bit stream code
    (see :func:`stream_code`).
    """

    op: Opcode
    dtype: int = 0
    stype: int = 0
    dst: int = 0
    a: int = 0
    b: int = 0
    c: int = 0
    bimm: int = 0
    accumulate: int = 0
    count: int = 0
    imm: int = 0
    addr: int = 0
    nop_count: int = 0
    rep_n: int = 0
    rep_d: int = 0
    rep_step: int = 0
    waddr: int = 0

    @property
    def spec(self) -> OpSpec:
        """The opcode's specification."""
        return OPS[self.op]

    def replace(self, **changes) -> Instruction:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def stream_code(direction: Direction | int, index: int) -> int:
    """The 6-bit code of stream ``index`` flowing in ``direction``."""
    try:  # the lowering asks millions of times: a table, not an enum lookup, where it can
        return _DIRECTION_BITS[direction] | index
    except (KeyError, TypeError):
        return int(Direction(direction).value) << 5 | index


#: ``stream_code``'s direction bit, by :class:`Direction` and by its value.
_DIRECTION_BITS = {k: int(d.value) << 5 for d in Direction for k in (d, int(d.value))}


_STREAM_PARTS = tuple((Direction(code >> 5), code & 31) for code in range(64))


def stream_parts(code: int) -> tuple[Direction, int]:
    """``(direction, index)`` of a 6-bit stream code."""
    return _STREAM_PARTS[code]


def stream_name(code: int) -> str:
    """Assembly spelling of a stream code: ``E3`` or ``W12``."""
    d, i = stream_parts(code)
    return f"{'E' if d is Direction.EAST else 'W'}{i}"


def _field_value(instr: Instruction, name: str) -> int:
    return getattr(instr, name)


def encode(instr: Instruction) -> int:
    """The 64-bit word of an instruction.

    Raises
    ------
    IsaError
        A field does not fit its bit width.
    """
    spec = OPS[instr.op]
    word = int(instr.op.value) << FIELDS["opcode"].lsb
    for name in spec.fields:
        f = FIELDS[name]
        v = _field_value(instr, name)
        if not f.min <= v <= f.max:
            raise IsaError(f"{spec.name}: field {name} = {v} does not fit "
                           f"{f.width} bits ({f.min}..{f.max})", name)
        word |= (v & ((1 << f.width) - 1)) << f.lsb
    return word


def decode(word: int) -> Instruction:
    """The instruction of a 64-bit word.

    Raises
    ------
    IsaError
        Unknown opcode, or bits set outside the opcode's fields.
    """
    if not 0 <= word < 1 << WORD_BITS:
        raise IsaError(f"instruction word {word:#x} is not a 64-bit value")
    raw_op = word >> FIELDS["opcode"].lsb
    try:
        op = Opcode(raw_op)
    except ValueError:
        raise IsaError(f"unknown opcode {raw_op:#04x} in word {word:#018x}", "opcode") from None
    spec = OPS[op]
    values = {}
    used = ((1 << 8) - 1) << FIELDS["opcode"].lsb
    for name in spec.fields:
        f = FIELDS[name]
        raw = (word >> f.lsb) & ((1 << f.width) - 1)
        used |= ((1 << f.width) - 1) << f.lsb
        if f.signed and raw >> (f.width - 1):
            raw -= 1 << f.width
        values[name] = raw
    if word & ~used:
        raise IsaError(f"{spec.name}: word {word:#018x} has bits set outside its fields "
                       f"(mask {word & ~used:#018x})")
    return Instruction(op, **values)


def latency(op: Opcode, config: ChipConfig) -> int:
    """Cycles from issue until the result is present (see the module docstring)."""
    spec = OPS[op]
    if spec.latency is None:
        raise IsaError(f"{spec.name} has no result latency")
    return spec.latency(config)


def operand_dtype(instr: Instruction, field: str) -> DType:
    """The element type a stream operand is read or written as (its group width)."""
    op = instr.op
    if op in (Opcode.GATHER, Opcode.SCATTER, Opcode.PERMUTE) and field == "b":
        return DType.I16
    if op is Opcode.ACC or (op is Opcode.ABCO and field == "dst"):
        return DType.I32
    if op is Opcode.REQ and field in ("a", "b"):
        return DType.I32
    if OPS[op].unit in (Unit.VXM, Unit.SXM) and op is not Opcode.TRANSPOSE:
        if op is Opcode.DISTRIBUTE and field == "b":
            return DType.I8
        return DType(instr.dtype if field == "dst" else instr.stype)
    return DType.I8


def group_width(instr: Instruction, field: str, config: ChipConfig) -> int:
    """Number of adjacent streams a stream operand covers."""
    if instr.op is Opcode.TRANSPOSE:
        return config.lanes_per_superlane
    if instr.op is Opcode.LW and field == "a":
        return instr.count
    return operand_dtype(instr, field).nbytes


def stream_fields(instr: Instruction) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(read_fields, written_fields)``: which fields of ``instr`` name streams."""
    spec = OPS[instr.op]
    reads, writes = [], []
    for name, kind in spec.operands:
        if kind is OperandKind.STREAM or (kind is OperandKind.STREAM_OR_IMM and not instr.bimm):
            (writes if name == "dst" else reads).append(name)
    return tuple(reads), tuple(writes)


def validate(instr: Instruction, config: ChipConfig) -> None:
    """Check every field of ``instr`` against the encoding and ``config``.

    Raises
    ------
    IsaError
        Naming the field, its value and the allowed range for this config.
    """
    spec = OPS[instr.op]
    name = spec.name
    if spec.reserved:
        raise IsaError(f"{name} is a reserved C2C encoding, not implemented in this version")

    def need(field, ok, allowed):
        v = getattr(instr, field)
        if not ok(v):
            raise IsaError(f"{name}: {field} = {v} is out of range for config "
                           f"{config.name!r}; allowed: {allowed}", field)

    for f in spec.fields:
        fd = FIELDS[f]
        need(f, lambda v, fd=fd: fd.min <= v <= fd.max, f"{fd.min}..{fd.max} ({fd.width} bits)")
    # a field the opcode does not encode (or that its immediate form leaves unused) must be 0,
    # so that nothing is silently dropped by encode
    unused = [f.name for f in dataclasses.fields(Instruction)
              if f.name != "op" and f.name not in spec.fields]
    if "bimm" in spec.fields:
        unused.append("b" if instr.bimm else "imm")
    for f in unused:
        need(f, lambda v: v == 0, f"0 ({f} is not used by {name}"
             + (" with this b operand form)" if f in ("b", "imm") else ")"))
    if instr.op is Opcode.LW:
        need("count", lambda v: 1 <= v <= config.streams_per_direction,
             f"1..{config.streams_per_direction}")

    if spec.suffix in ("dtype", "cvt"):
        types = ", ".join(d.label for d in DType)
        need("dtype", lambda v: v in {d.value for d in DType}, f"{types} (0..2)")
        need("stype", lambda v: v in {d.value for d in DType}, f"{types} (0..2)")
        allowed = [d.value for d in spec.dtypes]
        need("dtype", lambda v: v in allowed, ", ".join(DType(d).label for d in allowed))
        if spec.suffix == "dtype" and instr.op is not Opcode.REQ:
            need("stype", lambda v: v == instr.dtype, f"equal to dtype ({instr.dtype})")
        if instr.op is Opcode.REQ:
            need("stype", lambda v: v == DType.I32.value, "i32 (REQ reads int32)")

    s = config.streams_per_direction
    reads, writes = stream_fields(instr)
    for field in reads + writes:
        width = group_width(instr, field, config)
        code = getattr(instr, field)
        idx = code & 31
        if instr.op is not Opcode.LW and idx % width:
            raise IsaError(f"{name}: stream {stream_name(code)} in field {field} is not "
                           f"aligned to its {width}-stream group", field)
        if idx + width > s:
            raise IsaError(f"{name}: stream {stream_name(code)} in field {field} (group of "
                           f"{width}) is out of range for config {config.name!r}; streams "
                           f"0..{s - 1} per direction", field)

    if spec.unit is Unit.MEM:
        need("addr", lambda v: v < config.address_space,
             f"0..{config.address_space - 1} (bank bit {config.offset_bits})")
    if instr.op is Opcode.RDWR:
        need("waddr", lambda v: v < config.address_space,
             f"0..{config.address_space - 1} (bank bit {config.offset_bits})")
    if instr.op is Opcode.LW:
        need("addr", lambda v: v + instr.count <= config.lanes,
             f"row + count <= {config.lanes} rows")
    if instr.op in (Opcode.ABC, Opcode.ABCO, Opcode.ACC):
        need("addr", lambda v: v < config.mxm_acc_depth,
             f"0..{config.mxm_acc_depth - 1} accumulator entries")
    if instr.bimm:
        dt = DType(instr.dtype if instr.op is not Opcode.REQ else DType.I32.value)
        if instr.op in (Opcode.SHL, Opcode.SHR, Opcode.SHRU, Opcode.SHRR):
            need("imm", lambda v: 0 <= v < dt.bits, f"0..{dt.bits - 1} (shift count)")
        else:
            lo = max(-(1 << (dt.bits - 1)), FIELDS["imm"].min)
            hi = min((1 << dt.bits) - 1, FIELDS["imm"].max)
            need("imm", lambda v: lo <= v <= hi, f"{lo}..{hi} for {dt.label}")
    if instr.op is Opcode.REQ:
        need("c", lambda v: 0 <= v <= 63, "0..63 (shift)")
    if instr.op is Opcode.SHIFT:
        need("imm", lambda v: -config.lanes <= v <= config.lanes,
             f"{-config.lanes}..{config.lanes} lanes")
    if instr.op is Opcode.NOP:
        need("nop_count", lambda v: v >= 1, ">= 1")
    if instr.op is Opcode.REPEAT:
        need("rep_n", lambda v: v >= 1, ">= 1")
        need("rep_d", lambda v: v >= 1, ">= 1")


def check_queue_program(program: list[Instruction], unit: Unit, config: ChipConfig,
                        queue_name: str = "?") -> None:
    """Check a whole queue program: each instruction valid for ``config`` and runnable on a
    queue of ``unit``; ``REPEAT`` only after a unit instruction and with a step only where the
    repeated opcode has a step field.

    Raises
    ------
    IsaError
        With ``index`` set to the offending instruction's position in ``program``.
    """
    words = len(program) + (0 if program and program[-1].op is Opcode.END else 1)
    if words > config.queue_depth:
        e = IsaError(f"queue {queue_name} needs {words} instruction words (with its END); "
                     f"config {config.name!r} has queue_depth {config.queue_depth}")
        e.index = config.queue_depth
        raise e
    prev: Instruction | None = None
    for index, instr in enumerate(program):
        try:
            validate(instr, config)
            spec = instr.spec
            if spec.unit not in (Unit.ICU, unit):
                raise IsaError(f"{spec.name} is a {spec.unit.name} instruction; queue "
                               f"{queue_name} feeds a {unit.name} slice")
            missing = missing_feature(instr.op, queue_name, config)
            if missing:
                raise IsaError(f"{spec.name} cannot run on queue {queue_name} of config "
                               f"{config.name!r}: {missing}")
            if instr.op is Opcode.REPEAT:
                if prev is None or prev.spec.unit is Unit.ICU:
                    raise IsaError("REPEAT must follow a unit instruction (not "
                                   f"{prev.spec.name if prev else 'the start of the queue'})")
                if instr.rep_step and prev.spec.step_field is None:
                    raise IsaError(f"REPEAT step {instr.rep_step} given, but {prev.spec.name} "
                                   "has no field a REPEAT can advance", "rep_step")
                last = getattr(prev, prev.spec.step_field) + instr.rep_n * instr.rep_step \
                    if prev.spec.step_field else 0
                if prev.spec.step_field:
                    validate(prev.replace(**{prev.spec.step_field: last}), config)
        except IsaError as e:
            e.index = index
            raise
        prev = instr
