"""One VXM ALU for one superlane tile: every VXM opcode on ``lanes_per_superlane`` lanes.

The chip top instantiates ``config.vxm_alus_per_lane`` of these per superlane at the VXM's
position, each fed by its own instruction queue, and ORs their stream writes. Semantics are
those of :func:`sim_models.datapath.vxm_execute` (docs/architecture.md section 6.3), timing that
of section 4.1: operands are read from the stream registers in the issue cycle ``t``, and the
result is driven (``*_we``/``*_data``) in cycle ``t + latency - 1`` so that it is present in
the register in cycle ``t + latency``.

Pipeline (stage ``k`` computes in cycle ``t + k``):

* stage 0: operand fetch. ``a``, ``b`` (or the immediate, wrapped to ``b``'s type) and ``c``
  are gathered from their stream groups, little-endian, and sign-extended to 32 bits
  (:func:`openlpu.isa.operand_dtype` rules); then registered.
* the ALU group (every opcode but ``MUL``, ``REQ`` and the special functions) computes in
  stage 1 on the 32-bit operands; wrapping to ``dtype`` is free because only the low
  ``dtype`` bytes are written.
* ``MUL`` and ``REQ`` share one signed 32 x 32 -> 64 multiplier in stage 1; ``MUL`` takes the
  low bits in stage 2, ``REQ`` shifts (round half up) in stage 2 and saturates in stage 3.
  With ``vxm_deep_pipeline`` the ALU group registers its adders' and shifter's outputs after
  stage 1 and finishes in stage 2; the multiplier's partial products are registered after
  stage 1 and summed in stage 2, so ``MUL`` and ``REQ`` end a stage later; and every result
  is registered once more before the stream write. The latencies in :mod:`openlpu.isa` are
  each datapath's depth + 2 (``ADD`` 4, ``MUL`` 5, ``REQ`` 6).
* the special functions run in one :class:`hdl.vxm_special.SpecialLane` per lane.

Each latency ``L`` of a VXM opcode has its own pipeline of destination records (valid,
direction, stream, dtype, which datapath), ``L - 1`` registers long, ending in the cycle the
result is driven. Results of different latencies can be due in the same cycle (e.g. an ``ADD``
issued 6 cycles after a ``RECIP``): all are written; if two name the same stream register (a
stream conflict, an invalid program) the later-issued one, i.e. the one with the shorter
latency, wins, as in the golden model. A datapath whose opcode's latency leaves more cycles
than it needs is delayed by registers; one that cannot fit is refused at construction.
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.instruction import instruction_layout, latency_table
from hdl.multiplier import partial_products, sum_shifted
from hdl.streams import StreamTileSignature
from hdl.vxm_special import SPECIAL_OPS, SpecialLane, special_latencies
from openlpu.config import ChipConfig
from openlpu.isa import OPS, DType, Opcode, Unit

__all__ = ["VxmAluTile", "ALU_OPS", "datapath_depth"]

#: Opcodes of the single-cycle ALU datapath (stage 1).
ALU_OPS: tuple[Opcode, ...] = (
    Opcode.ADD, Opcode.SUB, Opcode.ADDS, Opcode.SUBS, Opcode.MIN, Opcode.MAX, Opcode.AND,
    Opcode.OR, Opcode.XOR, Opcode.SHL, Opcode.SHR, Opcode.SHRU, Opcode.SHRR, Opcode.CMPEQ,
    Opcode.CMPNE, Opcode.CMPLT, Opcode.CMPLE, Opcode.CMPGT, Opcode.CMPGE, Opcode.SEL,
    Opcode.MOV, Opcode.NEG, Opcode.ABS, Opcode.NOT, Opcode.RELU, Opcode.CVT,
)

# Datapaths ("groups") of the tile and the stage in which each one's result is ready.
_ALU, _MUL, _REQ, _SPECIAL = range(4)
_GROUP_OPS = {_ALU: ALU_OPS, _MUL: (Opcode.MUL,), _REQ: (Opcode.REQ,), _SPECIAL: SPECIAL_OPS}


def datapath_depth(config: ChipConfig) -> dict[str, int]:
    """Stage in which the ALU, MUL and REQ datapaths have their result (special functions:
    :func:`hdl.vxm_special.natural_depth`). The deep pipeline takes one stage more for each:
    the ALU registers its adders' and shifter's outputs before rounding, saturation and the
    result choice; the multiplier registers its partial products (:mod:`hdl.multiplier`)
    before their sum."""
    extra = 1 if config.vxm_deep_pipeline else 0
    return {"alu": 1 + extra, "mul": 2 + extra, "req": 3 + extra}

_COMPARE = {
    Opcode.CMPEQ: lambda a, b: a == b, Opcode.CMPNE: lambda a, b: a != b,
    Opcode.CMPLT: lambda a, b: a < b, Opcode.CMPLE: lambda a, b: a <= b,
    Opcode.CMPGT: lambda a, b: a > b, Opcode.CMPGE: lambda a, b: a >= b,
}

#: What the saturating opcodes saturate (the "sat" result source).
_SATURATED: dict[str, tuple[Opcode, ...]] = {
    "sum": (Opcode.ADDS,), "diff": (Opcode.SUBS,), "abs": (Opcode.ABS,), "a": (Opcode.CVT,),
}
#: The ALU's result sources and the opcodes that take each (one per ALU opcode); the ``is_*``
#: flags say which comparison the ``cmp`` source evaluates.
_ALU_RESULTS: dict[str, tuple[Opcode, ...]] = {
    "sum": (Opcode.ADD,), "diff": (Opcode.SUB,),
    "sat": tuple(op for ops in _SATURATED.values() for op in ops),
    "min": (Opcode.MIN,), "max": (Opcode.MAX,), "and": (Opcode.AND,), "or": (Opcode.OR,),
    "xor": (Opcode.XOR,), "shl": (Opcode.SHL,), "shr": (Opcode.SHR, Opcode.SHRU),
    "shrr": (Opcode.SHRR,), "sel": (Opcode.SEL,), "a": (Opcode.MOV,), "neg": (Opcode.NEG,),
    "not": (Opcode.NOT,), "relu": (Opcode.RELU,), "cmp": tuple(_COMPARE),
    # which comparison (the "cmp" result is -1 when it holds, else 0)
    **{f"is_{op.name}": (op,) for op in _COMPARE},
}
assert sorted(op.value for key, ops in _ALU_RESULTS.items() if not key.startswith("is_")
              for op in ops) == sorted(op.value for op in ALU_OPS), \
    "each ALU opcode needs exactly one result source"


def _one_hot(choices) -> Value:
    """The value whose flag is 1 (0 when none is), for flags of which at most one is 1: an
    AND-OR rather than a priority chain of multiplexers. Assign it to a signal of the
    result's shape (signed terms are sign-extended, so the low bits are exact)."""
    terms = [Mux(flag, value, 0) for flag, value in choices]
    out = terms[0]
    for term in terms[1:]:
        out = out | term
    return out


def _dtype_range(dt: DType) -> tuple[int, int]:
    return -(1 << (dt.bits - 1)), (1 << (dt.bits - 1)) - 1


def _saturate(m: Module, value, dtype, name: str) -> Signal:
    """``fixedpoint.saturate(value, dtype.bits)`` as a signed 32-bit signal.

    A signed value fits ``bits`` exactly when its bits from ``bits - 1`` up are all equal
    (all 0 or all 1); otherwise its sign says which bound it is clipped to. Written as this
    bit test rather than two comparisons with the bounds, which FPGA synthesis maps to carry
    chains: on an ECP5 they were the longest path of the deep VXM pipeline's ALU stage."""
    value = Value.cast(value)
    out = Signal(signed(32), name=name)
    with m.Switch(dtype):
        for dt in DType:
            lo, hi = _dtype_range(dt)
            top = value[dt.bits - 1:]
            fits = (top == 0) | (top == (1 << len(top)) - 1)
            with m.Case(dt.value):
                m.d.comb += out.eq(Mux(fits, value[:dt.bits].as_signed(),
                                       Mux(value[-1], lo, hi)))
    return out


def _by_dtype(m: Module, dtype, name: str, shape, fn) -> Signal:
    """A signal equal to ``fn(dt)`` for the :class:`DType` ``dt`` that ``dtype`` encodes."""
    out = Signal(shape, name=name)
    with m.Switch(dtype):
        for dt in DType:
            with m.Case(dt.value):
                m.d.comb += out.eq(fn(dt))
    return out


class VxmAluTile(wiring.Component):
    """One VXM ALU (all VXM opcodes) for the ``lanes_per_superlane`` lanes of one superlane.

    Parameters
    ----------
    config : ChipConfig
        Lanes per superlane, streams per direction and the opcode latencies.

    Members
    -------
    issue : In(1)
        An instruction is presented in this cycle (``t``).
    instr : In(instruction_layout())
        The instruction; its opcode has ``OPS[op].unit is Unit.VXM``. Read only while
        ``issue`` is 1.
    s : Out(StreamTileSignature(config))
        The stream registers at the VXM position: ``s.e``/``s.w`` (in) are read in cycle
        ``t``; ``s.e_we``/``s.w_we`` and ``s.e_data``/``s.w_data`` (out) write the result's
        group in cycle ``t + latency - 1``; ``we`` is 0 and data is 0 elsewhere.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`~openlpu.config.ChipConfig`.
    NotImplementedError
        The ISA has a VXM opcode that no datapath of this tile implements.
    ValueError
        An opcode's latency is too short for its datapath.
    """

    def __init__(self, config: ChipConfig, *, special: bool | None = None):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        #: Whether this ALU has the special-function pipelines (the ALUs of the first
        #: ``config.vxm_special_alus`` queues; elsewhere the opcodes are refused by
        #: ``openlpu.isa.check_queue_program``). Default: as ALU 0 of ``config``.
        self.special = config.vxm_alu_has_special(0) if special is None else bool(special)
        #: Whether this ALU has the MUL / REQ multiplier (``config.vxm_multiplier``).
        self.multiplier = config.vxm_multiplier
        vxm_ops = {op for op, spec in OPS.items() if spec.unit is Unit.VXM}
        implemented = {op for ops in _GROUP_OPS.values() for op in ops}
        if vxm_ops != implemented:
            missing = ", ".join(op.name for op in sorted(vxm_ops - implemented,
                                                         key=lambda o: o.value))
            extra = ", ".join(op.name for op in sorted(implemented - vxm_ops,
                                                       key=lambda o: o.value))
            raise NotImplementedError(
                f"VXM opcodes without a datapath: {missing or '-'}; datapaths for opcodes "
                f"that are not VXM opcodes: {extra or '-'}")
        table = latency_table(config)
        self._latency = {op: table[op] for op in vxm_ops}
        depth_of = datapath_depth(config)
        self._depth = {_ALU: depth_of["alu"], _MUL: depth_of["mul"], _REQ: depth_of["req"]}
        for group, depth in self._depth.items():
            for op in _GROUP_OPS[group]:
                if self._latency[op] < depth + 1:
                    raise ValueError(
                        f"{op.name} has latency {self._latency[op]} in config "
                        f"{config.name!r}, but its datapath needs at least {depth + 1}")
        special_latencies(config)  # raises if the special-function pipeline does not fit
        self._config = config
        super().__init__({
            "issue": In(1),
            "instr": In(instruction_layout()),
            "s": Out(StreamTileSignature(config)),
        })

    @property
    def config(self) -> ChipConfig:
        """The chip configuration."""
        return self._config

    @property
    def latencies(self) -> tuple[int, ...]:
        """Distinct latencies of the VXM opcodes, ascending (one result pipeline each)."""
        return tuple(sorted(set(self._latency.values())))

    # --- stage 0 ---------------------------------------------------------------------------

    def _fetch(self, m: Module, field: str, dtype) -> list[Value]:
        """The operand named by stream field ``field``, per lane, sign-extended from
        ``dtype`` to 32 bits (bytes little-endian over the group's streams)."""
        cfg = self._config
        code = getattr(self.instr, field)
        lanes = cfg.lanes_per_superlane
        bank = Signal(self.s.e.shape(), name=f"s0_{field}_bank")
        m.d.comb += bank.eq(Mux(code.west, self.s.w.as_value(), self.s.e.as_value()))
        flat = bank.as_value()
        streams = []
        for k in range(max(dt.nbytes for dt in DType)):
            # A valid group is aligned to its width (isa.validate), so byte k of an element
            # that has one sits on stream index | k: for k > 0 only the streams with those
            # low bits set are candidates, a much smaller multiplexer than index + k.
            st = Signal(lanes * 8, name=f"s0_{field}_stream{k}")
            m.d.comb += st.eq(flat.word_select(code.index | k, lanes * 8))
            streams.append(st)
        values = []
        for lane in range(lanes):
            raw = Cat(*(st[lane * 8:(lane + 1) * 8] for st in streams))
            values.append(_by_dtype(m, dtype, f"s0_{field}_{lane}", signed(32),
                                    lambda dt, raw=raw: raw[:dt.bits].as_signed()))
        return values

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self._config
        lanes = cfg.lanes_per_superlane
        instr = self.instr

        # ---- stage 0: decode and operand fetch --------------------------------------------
        op0 = instr.opcode
        is_req0 = Value.cast(op0).matches(Opcode.REQ)
        stype0 = instr.stype
        ab_dtype0 = Signal(2, name="s0_ab_dtype")  # operand_dtype(a / b): int32 for REQ
        m.d.comb += ab_dtype0.eq(Mux(is_req0, DType.I32.value, stype0))
        a0 = self._fetch(m, "a", ab_dtype0)
        b_stream0 = self._fetch(m, "b", ab_dtype0)
        c0 = self._fetch(m, "c", stype0)
        b_imm0 = _by_dtype(m, ab_dtype0, "s0_b_imm", signed(32),
                           lambda dt: instr.imm[:min(dt.bits, len(instr.imm))].as_signed())
        b0 = [Mux(instr.bimm, b_imm0, b) for b in b_stream0]

        def stage_reg(stage, name, value, shape):
            sig = Signal(shape, name=f"s{stage}_{name}")
            m.d.sync += sig.eq(value)
            return sig

        # Control carried along for the ALU (stage 1) and REQ (shift in stage 2, saturate
        # in stage 3).
        op = [op0, stage_reg(1, "op", op0, Opcode)]
        dtype = [instr.dtype]
        shift = [instr.c.as_value()]  # REQ: c is a number 0..63, not a stream
        req_depth = self._depth[_REQ]
        for k in range(1, req_depth + 1):
            dtype.append(stage_reg(k, "dtype", dtype[-1], 2))
            if k < req_depth:
                shift.append(stage_reg(k, "shift", shift[-1], 6))
        a1 = [stage_reg(1, f"a_{ln}", a0[ln], signed(32)) for ln in range(lanes)]
        b1 = [stage_reg(1, f"b_{ln}", b0[ln], signed(32)) for ln in range(lanes)]
        c1 = [stage_reg(1, f"c_{ln}", c0[ln], signed(32)) for ln in range(lanes)]

        # ---- datapaths: result per lane, in the stage each one is ready -------------------
        ready: dict[int, list[Value]] = {}
        ready[_ALU] = [self._alu(m, op[1], dtype[1], a1[ln], b1[ln], c1[ln], ln)
                       for ln in range(lanes)]
        if self.multiplier:
            mul = self._depth[_MUL]  # the stage that has the product
            if cfg.vxm_deep_pipeline:  # partial products registered, then their sum
                prod = []
                for ln in range(lanes):
                    parts = [(stage_reg(2, f"pp{k}_{ln}", pp, pp.shape()), offset)
                             for k, (pp, offset) in enumerate(partial_products(a1[ln], b1[ln]))]
                    prod.append(stage_reg(3, f"prod_{ln}", sum_shifted(parts), signed(64)))
            else:
                prod = [stage_reg(2, f"prod_{ln}", a1[ln] * b1[ln], signed(64))
                        for ln in range(lanes)]
            ready[_MUL] = [p[:32].as_signed() for p in prod]
            req = [stage_reg(mul + 1, f"req_{ln}", self._round_shift(p, shift[mul]),
                             signed(64)) for ln, p in enumerate(prod)]
            ready[_REQ] = [_saturate(m, r, dtype[mul + 1], f"s{mul + 1}_req_sat_{ln}")
                           for ln, r in enumerate(req)]

        special = []
        for ln in range(lanes if self.special else 0):
            lane = SpecialLane(cfg)
            m.submodules[f"special_{ln}"] = lane
            m.d.comb += [lane.op.eq(op0), lane.x.eq(a0[ln])]
            special.append(lane)

        def result(group: int, stage: int) -> list[Value]:
            """Result of ``group`` delayed to ``stage`` (registers after its ready stage)."""
            if group == _SPECIAL:
                if not self.special:
                    return [Const(0, signed(32)) for _ in range(lanes)]
                index = special[0].latencies.index(stage + 1)
                return [lane.y[index] for lane in special]
            if group not in ready:  # MUL / REQ without the multiplier: refused opcodes
                return [Const(0, signed(32)) for _ in range(lanes)]
            values = ready[group]
            for k in range(self._depth[group] + 1, stage + 1):
                values = [stage_reg(k, f"g{group}_res_{ln}", v, signed(32))
                          for ln, v in enumerate(values)]
            return values

        # ---- result pipelines, one per latency -----------------------------------------
        record = data.StructLayout({"valid": 1, "west": 1, "index": 5, "dtype": 2, "group": 2})
        outputs = []  # (latency, record one stage early, in its last stage, value per lane)
        for lat in sorted(self.latencies, reverse=True):
            groups = {g for g, ops in _GROUP_OPS.items()
                      if any(self._latency[o] == lat for o in ops)
                      and (self.special or g != _SPECIAL)
                      and (self.multiplier or g not in (_MUL, _REQ))}
            rec = Signal(record, name=f"l{lat}_s0_rec")
            group0 = Signal(2, name=f"l{lat}_s0_group")
            for g in groups:
                with m.If(Value.cast(op0).matches(*(o for o in _GROUP_OPS[g]
                                                   if self._latency[o] == lat))):
                    m.d.comb += [rec.valid.eq(self.issue), group0.eq(g)]
            m.d.comb += [rec.west.eq(instr.dst.west), rec.index.eq(instr.dst.index),
                         rec.dtype.eq(instr.dtype), rec.group.eq(group0)]
            early = rec
            for k in range(1, lat):
                early, rec = rec, stage_reg(k, f"l{lat}_rec", rec, record)
            value = [Signal(signed(32), name=f"l{lat}_value_{ln}") for ln in range(lanes)]
            # Made outside the Switch: a delay register made inside a Case would load only
            # when its own result is due.
            due = {g: result(g, lat - 1) for g in sorted(groups)}
            with m.Switch(rec.group):
                for g in sorted(groups):
                    with m.Case(g):
                        m.d.comb += [v.eq(r) for v, r in zip(value, due[g], strict=True)]
            outputs.append((lat, early, rec, value))

        # ---- stream writes: later (shorter-latency) results win ----------------------------
        # Which result writes which stream is decided a cycle early, from each record one
        # stage before its last, and registered as one flag per (latency, stream): the write
        # itself is then an AND-OR of the values (the offset compares and the priority chain
        # over the latencies were the longest path into the stream register on an ECP5).
        if min(lat for lat, *_ in outputs) < 2:
            raise ValueError("the VXM's stream-write choice needs every latency >= 2")
        for west, we, bank in ((0, self.s.e_we, self.s.e_data), (1, self.s.w_we, self.s.w_data)):
            direction = "w" if west else "e"
            taken = [Const(0) for _ in range(cfg.streams_per_direction)]  # by a shorter one
            wins = {}
            for lat, early, _, _ in reversed(outputs):  # shortest latency first
                width = Const(1, 3) << early.dtype  # streams in the dst group
                for j in range(cfg.streams_per_direction):
                    offset = Const(j, 6) - early.index
                    hit = early.valid & (early.west == west) & (offset >= 0) & (offset < width)
                    win = Signal(name=f"l{lat}_{direction}{j}_win")
                    m.d.sync += win.eq(hit & ~taken[j])
                    taken[j] = taken[j] | hit
                    wins[lat, j] = win
            for j in range(cfg.streams_per_direction):
                m.d.comb += we[j].eq(Cat(wins[lat, j] for lat, *_ in outputs).any())
                for ln in range(lanes):
                    # The dst group is aligned to its width (isa.validate), so stream j
                    # carries byte j mod width of the element: a 1..3-way choice per stream.
                    m.d.comb += bank[j][ln].eq(functools.reduce(operator.or_, (
                        value[ln].word_select(Const(j % 4, 2) & ((Const(1, 3) << rec.dtype)
                                                                 - 1)[:2], 8)
                        & wins[lat, j].replicate(8)
                        for lat, _, rec, value in outputs)))
        return m

    @staticmethod
    def _round_shift(product, shift):
        """``rshr(product, shift)`` for an int32 x int32 product (``|product| <= 2**62``) and
        a shift of 0..63, with no value wider than 64 bits (wider ones cost Verilator
        multi-word operations): for ``shift >= 1`` the shifted value fits in 63 bits, so the
        rounding bit is added at 64."""
        shifted = (product >> shift)[:63].as_signed()
        round_bit = product.bit_select((shift - 1)[:len(shift)], 1)
        return Mux(shift == 0, product, shifted + round_bit)

    # --- stage 1 ALU -----------------------------------------------------------------------

    def _alu(self, m: Module, op, dtype, a, b, c, lane: int) -> Signal:
        """Every ALU opcode on one lane's sign-extended 32-bit operands; the low ``dtype``
        bits of the result are the ``vxm_execute`` value."""
        name = f"s1_alu{lane}"
        # shift count: b mod bits; SHRU reads a as unsigned
        n = _by_dtype(m, dtype, f"{name}_n", 5, lambda dt: b[:dt.bits.bit_length() - 1])
        ua = _by_dtype(m, dtype, f"{name}_ua", 32, lambda dt: a[:dt.bits])
        sum_ = Signal(signed(33), name=f"{name}_sum")
        diff = Signal(signed(33), name=f"{name}_diff")
        neg = Signal(signed(33), name=f"{name}_neg")
        m.d.comb += [sum_.eq(a + b), diff.eq(a - b), neg.eq(-a)]
        # Every comparison, MIN and MAX come from one subtractor (a and b are sign-extended
        # 32-bit values, so the 33-bit difference never overflows) and one equality test.
        lt = Signal(name=f"{name}_lt")
        eq = Signal(name=f"{name}_eq")
        m.d.comb += [lt.eq(diff[32]), eq.eq(a == b)]
        # SHL, SHR, SHRU and SHRR share one 34-bit arithmetic right shifter: its input is
        # (x << 1) with x = a (SHR, SHRR), the unsigned a (SHRU) or a bit-reversed (SHL, whose
        # result is the output reversed back), and the fill bit a's sign for SHR / SHRR only.
        # SHR / SHRU / SHL take bits 1..32 of the output, SHRR rounds: (y + 1) >> 1, which is
        # rshr(a, n) (see hdl.vxm_special.rshr).
        is_shl = Value.cast(op).matches(Opcode.SHL)
        arith = Value.cast(op).matches(Opcode.SHR, Opcode.SHRR)
        src = Signal(32, name=f"{name}_shift_src")
        m.d.comb += src.eq(Mux(is_shl, a.as_unsigned()[::-1], Mux(arith, a, ua)))
        shift_in = Signal(signed(34), name=f"{name}_shift_in")
        m.d.comb += shift_in.eq(Cat(Const(0, 1), src, arith & a[31]).as_signed())
        shifted = Signal(signed(34), name=f"{name}_shifted")
        m.d.comb += shifted.eq(shift_in >> n)
        # The result choice is one-hot: a flag per result source, decoded from the opcode here
        # (in the deep pipeline: registered with the adders' outputs), so the choice starts
        # from the flags rather than from an opcode compare (on an ECP5 the compare and a
        # 26-way choice were the ALU stage's longest path).
        opv = Value.cast(op)
        pick = {key: Signal(name=f"{name}_pick_{key}") for key in _ALU_RESULTS}
        m.d.comb += [pick[key].eq(opv.matches(*ops)) for key, ops in _ALU_RESULTS.items()]
        clip = {key: Signal(name=f"{name}_clip_{key}") for key in _SATURATED}
        m.d.comb += [clip[key].eq(opv.matches(*ops)) for key, ops in _SATURATED.items()]
        if self._config.vxm_deep_pipeline:
            # The adders, comparator and shifter above take one stage; rounding, saturation
            # and the result choice below the next (datapath_depth "alu" = 2).
            name = f"s2_alu{lane}"

            def reg(value, part):
                sig = Signal.like(value, name=f"{name}_{part}")
                m.d.sync += sig.eq(value)
                return sig
            sum_, diff, neg, lt, eq, shifted = (reg(sum_, "sum"), reg(diff, "diff"),
                                                reg(neg, "neg"), reg(lt, "lt"), reg(eq, "eq"),
                                                reg(shifted, "shifted"))
            a, b, c, dtype = reg(a, "a"), reg(b, "b"), reg(c, "c"), reg(dtype, "dtype")
            pick = {key: reg(flag, f"pick_{key}") for key, flag in pick.items()}
            clip = {key: reg(flag, f"clip_{key}") for key, flag in clip.items()}
        rounded = Signal(signed(34), name=f"{name}_rounded")
        m.d.comb += rounded.eq(shifted + 1)
        sat_in = Signal(signed(34), name=f"{name}_sat_in")
        m.d.comb += sat_in.eq(_one_hot([
            (clip["sum"], sum_), (clip["diff"], diff), (clip["abs"], Mux(a[31], neg, a)),
            (clip["a"], a)]))
        sat = _saturate(m, sat_in, dtype, f"{name}_sat")
        cmp = {Opcode.CMPEQ: eq, Opcode.CMPNE: ~eq, Opcode.CMPLT: lt, Opcode.CMPLE: lt | eq,
               Opcode.CMPGT: ~(lt | eq), Opcode.CMPGE: ~lt}
        assert set(cmp) == set(_COMPARE)
        holds = Signal(name=f"{name}_holds")  # the comparison's result
        m.d.comb += holds.eq(_one_hot([(pick[f"is_{o.name}"], f) for o, f in cmp.items()]))
        value = {
            "sum": sum_, "diff": diff, "sat": sat, "min": Mux(lt, a, b), "max": Mux(lt, b, a),
            "and": a & b, "or": a | b, "xor": a ^ b, "shl": shifted[1:33][::-1],
            "shr": shifted[1:33], "shrr": rounded[1:33], "sel": Mux(c != 0, a, b), "a": a,
            "neg": neg, "not": ~a, "relu": Mux(a[31], 0, a), "cmp": Mux(holds, -1, 0),
        }
        out = Signal(signed(32), name=f"{name}_out")
        m.d.comb += out.eq(_one_hot([(pick[key], v) for key, v in value.items()]))
        return out
