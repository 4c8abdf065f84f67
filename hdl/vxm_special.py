"""The VXM special functions (EXP, RECIP, RSQRT, SIGMOID, TANH, GELU, SILU) of one lane, as a
pipeline that reproduces :mod:`openlpu.fixedpoint` bit for bit.

Every step of the integer datapaths in the ``fixedpoint`` module docstring and code (which is
normative) is built here as logic: a leading-zero count by binary search, constant and variable
round-half-up shifts (:func:`rshr`), lookups with linear interpolation in the ROM tables that
``fixedpoint`` exports (imported, never recomputed), Newton steps and the exact-rounding
corrections. :class:`SpecialLane` runs all seven functions in one pipeline, with a register
between stages, so that a new instruction can start every cycle. Resources that two functions
use in the same stage are shared (one ROM, one interpolation multiplier, one multiplier per
later stage), which is safe because one instruction enters the pipeline per cycle.

Stage ``k`` computes in cycle ``t + k`` for the instruction presented in cycle ``t``:

===== ==================================================================================
stage work
===== ==================================================================================
0     inputs registered
1     clz normalisation (RECIP, RSQRT), ``|x|`` and clamp (activations): shared ROM
      address; EXP: ``a * LOG2E_Q30``
2     shared ROM data: interpolation product ``(T[i+1] - T[i]) * r``; EXP: ``t``, EXP2 ROM
      address
3     ``y = T[i] + rshr(prod)``; SIGMOID / TANH done; multiplier: ``m * y0`` (RECIP,
      RSQRT) or EXP's interpolation product
4     multiplier: ``y0 * d'`` (RECIP), ``u * y0`` (RSQRT), ``x * s`` (SILU, GELU done);
      EXP done
5     RECIP: ``y1``, ``q``; RSQRT: multiplier ``y0 * d``
6     RSQRT: ``y1``, ``q``; multiplier ``(2q + 1) * x`` (RECIP, RSQRT)
7     RECIP, RSQRT: +-1 correction (RSQRT: multiplier ``(2q + 1)**2 * x``) -- done
===== ==================================================================================

A function whose latency leaves more cycles than its datapath needs is delayed by registers
after its last stage; one whose latency is too short for it is refused at construction.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.instruction import latency_table
from openlpu import fixedpoint as fx
from openlpu.config import ChipConfig
from openlpu.isa import VXM_SPECIAL, Opcode

__all__ = [
    "SPECIAL_OPS", "NATURAL_DEPTH", "SpecialLane", "special_latencies", "rshr", "normalise32",
]

#: The special-function opcodes, in opcode order.
SPECIAL_OPS: tuple[Opcode, ...] = tuple(op for op in Opcode if op in VXM_SPECIAL)

#: Stage in which each function's result is ready (combinationally) in :class:`SpecialLane`;
#: its latency must be at least one more (the stream register loads at the end of that cycle).
NATURAL_DEPTH: dict[Opcode, int] = {
    Opcode.EXP: 4, Opcode.RECIP: 7, Opcode.RSQRT: 7, Opcode.SIGMOID: 3, Opcode.TANH: 3,
    Opcode.SILU: 4, Opcode.GELU: 4,
}

_Q = fx.TABLE_FRAC_BITS  # every ROM entry and LOG2E_Q30 are Q30
_ONE = 1 << _Q
_ACT_FAMILY = {Opcode.SIGMOID: "sig", Opcode.TANH: "sig", Opcode.SILU: "sig", Opcode.GELU: "phi"}
# Newton-step scalings of fixedpoint.recip_q / rsqrt_q (see their comments).
_RECIP_D_SHIFT, _RECIP_Y_SHIFT = 12, 48  # d' = rshr(2**60 - m y0, 12); y1 = y0 + rshr(y0 d', 48)
_RSQRT_U_SHIFT, _RSQRT_D_SHIFT, _RSQRT_Y_SHIFT = 29, 17, 45
# RSQRT's correction terms (2q +- 1)**2 x - 2**62 are below 2**51 in magnitude (fixedpoint
# docstring; below 2**49 over all int32 x >= 1): 52 bits hold them.
_CHECK_BITS = 52


def rshr(value, shift):
    """Round-half-up arithmetic shift right (``fixedpoint.shift_right_round``) as logic.

    Parameters
    ----------
    value : ValueLike
        Signed or unsigned; the result has its signedness.
    shift : int or ValueLike
        A constant ``>= 0``, or an unsigned value. A variable shift is computed as
        ``(((value << 1) >> shift) + 1) >> 1``, which equals ``rshr`` for every shift including
        0, with one shifter.
    """
    value = Value.cast(value)
    if isinstance(shift, int):
        if shift < 0:
            raise ValueError(f"shift must be >= 0, not {shift}")
        if shift == 0:
            return value
        # shift_right drops the shifted-out bits (``>>`` would keep the width): every
        # value above 64 bits costs Verilator a multi-word operation.
        return value.shift_right(shift) + value[shift - 1]
    return (((value << 1) >> shift) + 1).shift_right(1)


def normalise32(m: Module, x, name: str) -> tuple[Signal, Value]:
    """``(x << clz32(x), clz32(x))`` for a nonzero 32-bit ``x``: the 5-step binary search of
    ``fixedpoint._clz32``, whose step flags are the bits of the count."""
    v = Value.cast(x)
    flags = []
    for s in (16, 8, 4, 2, 1):
        empty = Signal(name=f"{name}_z{s}")
        step = Signal(32, name=f"{name}_v{s}")
        m.d.comb += [empty.eq(v[32 - s:] == 0), step.eq(Mux(empty, v << s, v))]
        flags.append(empty)
        v = step
    return v, Cat(*reversed(flags))


class _Stages:
    """Registers between pipeline stages, named ``s{stage}_{name}``."""

    def __init__(self, m: Module):
        self.m = m

    def reg(self, stage: int, name: str, value, shape=None) -> Signal:
        """A register loaded with ``value`` at the end of stage ``stage - 1``."""
        value = Value.cast(value)
        sig = Signal(value.shape() if shape is None else shape, name=f"s{stage}_{name}")
        self.m.d.sync += sig.eq(value)
        return sig

    def wire(self, stage: int, name: str, value, shape=None) -> Signal:
        """A named combinational value of stage ``stage``."""
        value = Value.cast(value)
        sig = Signal(value.shape() if shape is None else shape, name=f"s{stage}_{name}")
        self.m.d.comb += sig.eq(value)
        return sig


def _rom_shape(tables) -> unsigned:
    top = max(int(t.max()) for t in tables)
    if min(int(t.min()) for t in tables) < 0:
        raise ValueError("fixedpoint ROM tables are expected to be non-negative")
    return unsigned(top.bit_length())


def _step_bits(tables) -> int:
    """Signed width of the largest difference between neighbouring entries."""
    top = max(int(abs(t[1:] - t[:-1]).max()) for t in tables)
    return top.bit_length() + 1


def special_latencies(config: ChipConfig) -> dict[Opcode, int]:
    """Latency of each special opcode in ``config``, checked against :data:`NATURAL_DEPTH`.

    Raises
    ------
    ValueError
        A latency is too short for the pipeline of :class:`SpecialLane`.
    """
    table = latency_table(config)
    out = {op: table[op] for op in SPECIAL_OPS}
    for op, lat in out.items():
        if lat < NATURAL_DEPTH[op] + 1:
            raise ValueError(
                f"{op.name} has latency {lat} in config {config.name!r}, but the special "
                f"function pipeline needs at least {NATURAL_DEPTH[op] + 1}")
    return out


class SpecialLane(wiring.Component):
    """All seven special functions of one VXM lane, fully pipelined.

    An instruction presented in cycle ``t`` (``op`` and ``x`` valid that cycle) has its result
    on ``y[latencies.index(L)]`` during cycle ``t + L - 1``, ``L = latency(op, config)``, the
    cycle in which the tile drives the stream register. Results of two functions with different
    latencies can be due in the same cycle; each latency has its own output. Outputs carry no
    valid bit: the tile knows what it issued. A non-special ``op`` computes nothing useful.

    Parameters
    ----------
    config : ChipConfig
        Only the latencies of the special opcodes are used.

    Members
    -------
    op : In(Opcode)
        The function (``EXP`` .. ``SILU``).
    x : In(signed(32))
        The operand (int32; Q16.16 for EXP and the activations).
    y : Out(ArrayLayout(signed(32), len(latencies)))
        ``y[i]``: result of the function of latency ``latencies[i]`` issued
        ``latencies[i] - 1`` cycles ago.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`~openlpu.config.ChipConfig`.
    ValueError
        A special opcode's latency is shorter than this pipeline needs
        (:data:`NATURAL_DEPTH` + 1).
    """

    def __init__(self, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        self._latency = special_latencies(config)
        self._latencies = tuple(sorted(set(self._latency.values())))
        super().__init__({
            "op": In(Opcode),
            "x": In(signed(32)),
            "y": Out(data.ArrayLayout(signed(32), len(self._latencies))),
        })

    @property
    def latencies(self) -> tuple[int, ...]:
        """Distinct latencies of the special opcodes, ascending: the index of ``y``."""
        return self._latencies

    @property
    def latency(self) -> dict[Opcode, int]:
        """Latency of each special opcode."""
        return dict(self._latency)

    def elaborate(self, platform) -> Module:
        m = Module()
        st = _Stages(m)
        last = max(self._latencies) - 1  # the last stage with an output

        # Opcode of the instruction in each stage.
        op = [self.op]
        for k in range(1, last + 1):
            op.append(st.reg(k, "op", op[-1], Opcode))

        def is_(k, *ops):
            return Value.cast(op[k]).matches(*ops)

        # ROMs: RECIP, RSQRT, SIGMOID and PHI share one (all addressed in stage 1); EXP2 has
        # its own (addressed in stage 2). Two read ports each: T[i] and T[i + 1].
        shared = {"recip": fx.RECIP_TABLE, "rsqrt": fx.RSQRT_TABLE, "sig": fx.SIGMOID_TABLE,
                  "phi": fx.PHI_TABLE}
        base, init = {}, []
        for key, tab in shared.items():
            base[key] = len(init)
            init.extend(int(v) for v in tab)
        m.submodules.rom = rom = Memory(shape=_rom_shape(shared.values()), depth=len(init),
                                        init=init)
        rom_lo, rom_hi = rom.read_port(), rom.read_port()
        m.submodules.exp2_rom = exp_rom = Memory(
            shape=_rom_shape([fx.EXP2_TABLE]), depth=len(fx.EXP2_TABLE),
            init=[int(v) for v in fx.EXP2_TABLE])
        exp_lo, exp_hi = exp_rom.read_port(), exp_rom.read_port()

        # ---- stage 1 -------------------------------------------------------------------
        x1 = st.reg(1, "x", self.x)
        valid1 = st.wire(1, "valid", x1 > 0)  # RECIP / RSQRT: x >= 1
        xs1 = st.wire(1, "xs", Mux(valid1, x1, 1), unsigned(31))
        v1, n1 = normalise32(m, xs1, "s1_clz")  # v1 = xs << n1, bit 31 set; n1 in 1..31
        # RECIP: k = n - 1, m = xs << k in [2**30, 2**31); index 8 bits, fraction 22 bits.
        recip_m = v1[1:]
        recip_low = _Q - fx.RECIP_INDEX_BITS
        recip_f = st.wire(1, "recip_f", recip_m - _ONE, unsigned(_Q))
        # RSQRT: s = n - 1, e = s + (s & 1) = n & ~1, m = xs << e in [2**30, 2**32).
        rsqrt_m = st.wire(1, "rsqrt_m", Mux(n1[0], v1 >> 1, v1), unsigned(32))
        rsqrt_low = _Q - fx.RSQRT_STEP_BITS
        rsqrt_f = st.wire(1, "rsqrt_f", rsqrt_m - _ONE, unsigned(32))
        # Activations: a = |x| (2|x| for TANH), clamped below the table's range.
        abs1 = st.wire(1, "abs", abs(x1), unsigned(32))
        act_a = st.wire(1, "act_a", Mux(is_(1, Opcode.TANH), abs1 << 1, abs1), unsigned(33))
        family = {
            "sig": (fx.SIGMOID_RANGE, fx.SIGMOID_STEP_BITS),
            "phi": (fx.PHI_RANGE, fx.PHI_STEP_BITS),
        }
        act_idx, act_frac, act_sat, act_low = {}, {}, {}, {}
        for key, (rng, step) in family.items():
            limit = rng << fx.ACT_FRAC_BITS
            low = fx.ACT_FRAC_BITS - step
            sat = st.wire(1, f"{key}_sat", act_a >= limit)
            ac = st.wire(1, f"{key}_a", Mux(sat, limit - 1, act_a),
                         unsigned((limit - 1).bit_length()))
            act_idx[key], act_frac[key], act_sat[key], act_low[key] = ac >> low, ac[:low], sat, low

        addr1 = Signal(rom_lo.addr.shape(), name="s1_rom_addr")
        frac_bits = max(recip_low, rsqrt_low, *act_low.values())
        frac1 = Signal(frac_bits, name="s1_frac")
        sat1 = Signal(name="s1_sat")
        with m.Switch(op[1]):
            with m.Case(Opcode.RECIP):
                m.d.comb += [addr1.eq(base["recip"] + (recip_f >> recip_low)),
                             frac1.eq(recip_f[:recip_low])]
            with m.Case(Opcode.RSQRT):
                m.d.comb += [addr1.eq(base["rsqrt"] + (rsqrt_f >> rsqrt_low)),
                             frac1.eq(rsqrt_f[:rsqrt_low])]
            for fn, key in _ACT_FAMILY.items():
                with m.Case(fn):
                    m.d.comb += [addr1.eq(base[key] + act_idx[key]), frac1.eq(act_frac[key]),
                                 sat1.eq(act_sat[key])]
        m.d.comb += [rom_lo.addr.eq(addr1), rom_hi.addr.eq(addr1 + 1)]
        mant1 = st.wire(1, "mant", Mux(is_(1, Opcode.RSQRT), rsqrt_m, recip_m), unsigned(32))

        # EXP: a = -clamp(x, EXP_IN_MIN, 0), product with log2(e) in Q30.
        exp_a = st.wire(1, "exp_a", -Mux(x1 > 0, 0, Mux(x1 < fx.EXP_IN_MIN, fx.EXP_IN_MIN, x1)),
                        unsigned((-fx.EXP_IN_MIN).bit_length()))
        exp_p1 = exp_a * fx.LOG2E_Q30

        # ---- stage 2 -------------------------------------------------------------------
        x2 = st.reg(2, "x", x1)
        xs2, valid2, n2 = st.reg(2, "xs", xs1), st.reg(2, "valid", valid1), st.reg(2, "n", n1)
        frac2, sat2, mant2 = st.reg(2, "frac", frac1), st.reg(2, "sat", sat1), \
            st.reg(2, "mant", mant1)
        step_w = _step_bits(shared.values())
        diff2 = st.wire(2, "diff", rom_hi.data - rom_lo.data, signed(step_w))
        prod2 = diff2 * frac2  # the interpolation multiplier

        exp_p2 = st.reg(2, "exp_p", exp_p1)
        t_low = fx.EXP_T_FRAC_BITS - fx.EXP2_INDEX_BITS
        t_shift = fx.EXP_IN_FRAC_BITS + _Q - fx.EXP_T_FRAC_BITS
        t_max = int(fx.shift_right_round(-fx.EXP_IN_MIN * fx.LOG2E_Q30, t_shift))
        exp_t = st.wire(2, "exp_t", rshr(exp_p2, t_shift), unsigned(t_max.bit_length()))
        exp_n_bits = (t_max >> fx.EXP_T_FRAC_BITS).bit_length()
        m.d.comb += [exp_lo.addr.eq(exp_t[t_low:fx.EXP_T_FRAC_BITS]),
                     exp_hi.addr.eq(exp_t[t_low:fx.EXP_T_FRAC_BITS] + 1)]

        # ---- stage 3 -------------------------------------------------------------------
        x3, xs3, valid3, n3 = (st.reg(3, "x", x2), st.reg(3, "xs", xs2),
                               st.reg(3, "valid", valid2), st.reg(3, "n", n2))
        sat3, mant3, lo3 = st.reg(3, "sat", sat2), st.reg(3, "mant", mant2), \
            st.reg(3, "lo", rom_lo.data)
        prod3 = st.reg(3, "prod", prod2)
        exp_n3 = st.reg(3, "exp_n", exp_t >> fx.EXP_T_FRAC_BITS, unsigned(exp_n_bits))
        exp_r3 = st.reg(3, "exp_r", exp_t[:t_low])
        y3 = Signal(unsigned(_Q + 1), name="s3_y")  # interpolated ROM value, <= 2**30
        with m.Switch(op[3]):
            with m.Case(Opcode.RECIP):
                m.d.comb += y3.eq(lo3 + rshr(prod3, recip_low))
            with m.Case(Opcode.RSQRT):
                m.d.comb += y3.eq(lo3 + rshr(prod3, rsqrt_low))
            for fn, key in _ACT_FAMILY.items():
                with m.Case(fn):
                    m.d.comb += y3.eq(Mux(sat3, _ONE, lo3 + rshr(prod3, act_low[key])))
        # SIGMOID / TANH results; SILU / GELU take sigmoid / Phi in Q30, mirrored for x < 0.
        frac_out = _Q - fx.ACT_FRAC_BITS
        sig_p = rshr(y3, frac_out)
        res_sigmoid = Mux(x3 >= 0, sig_p, (1 << fx.ACT_FRAC_BITS) - sig_p)
        tanh_p = rshr(y3 - (_ONE >> 1), frac_out - 1)
        res_tanh = Mux(x3 >= 0, tanh_p, -tanh_p)
        mirror3 = st.wire(3, "mirror", Mux(x3 >= 0, y3, _ONE - y3), unsigned(_Q + 1))
        exp_diff3 = st.wire(3, "exp_diff", exp_hi.data - exp_lo.data,
                            signed(_step_bits([fx.EXP2_TABLE])))
        is_exp3 = is_(3, Opcode.EXP)
        mul3_a = st.wire(3, "mul_a", Mux(is_exp3, exp_diff3, mant3), signed(33))
        mul3_b = st.wire(3, "mul_b", Mux(is_exp3, exp_r3, y3), unsigned(_Q + 1))
        mul3 = mul3_a * mul3_b

        # ---- stage 4 -------------------------------------------------------------------
        x4, xs4, valid4, n4 = (st.reg(4, "x", x3), st.reg(4, "xs", xs3),
                               st.reg(4, "valid", valid3), st.reg(4, "n", n3))
        y4 = st.reg(4, "y", Mux(is_(3, Opcode.SILU, Opcode.GELU), mirror3, y3))
        p4 = st.reg(4, "p", mul3, signed(64))
        exp_lo4, exp_n4 = st.reg(4, "exp_lo", exp_lo.data), st.reg(4, "exp_n", exp_n3)
        exp_y = exp_lo4 + rshr(p4, t_low)
        exp_sh = st.wire(4, "exp_shift", (_Q - fx.EXP_OUT_FRAC_BITS) + exp_n4, unsigned(6))
        res_exp = rshr(exp_y, exp_sh)
        recip_d = rshr((1 << 2 * _Q) - p4, _RECIP_D_SHIFT)
        rsqrt_u = rshr(p4, _RSQRT_U_SHIFT)
        mul4_a = Signal(signed(34), name="s4_mul_a")  # u reaches 2**32 (e.g. x = 2**30 - 2)
        with m.Switch(op[4]):
            with m.Case(Opcode.RECIP):
                m.d.comb += mul4_a.eq(recip_d)
            with m.Case(Opcode.RSQRT):
                m.d.comb += mul4_a.eq(rsqrt_u)
            with m.Default():
                m.d.comb += mul4_a.eq(x4)
        mul4 = mul4_a * y4
        res_silu_gelu = rshr(mul4, _Q)

        # ---- stage 5 -------------------------------------------------------------------
        xs5, valid5, n5 = st.reg(5, "xs", xs4), st.reg(5, "valid", valid4), st.reg(5, "n", n4)
        y5 = st.reg(5, "y", y4)
        p5 = st.reg(5, "p", mul4, signed(64))
        recip_y1 = y5 + rshr(p5, _RECIP_Y_SHIFT)
        recip_sh = st.wire(5, "recip_shift", (_Q + 1) - n5, unsigned(5))  # 30 - k, k = n - 1
        recip_q5 = rshr(recip_y1, recip_sh)
        rsqrt_d = st.wire(5, "rsqrt_d", rshr((1 << (2 * _Q + 1)) - p5, _RSQRT_D_SHIFT),
                          signed(31))  # |d| < 2**29.6
        mul5 = y5 * rsqrt_d

        # ---- stage 6 -------------------------------------------------------------------
        xs6, valid6, n6 = st.reg(6, "xs", xs5), st.reg(6, "valid", valid5), st.reg(6, "n", n5)
        y6 = st.reg(6, "y", y5)
        p6 = st.reg(6, "p", mul5, signed(64))
        q6_recip = st.reg(6, "recip_q", recip_q5, unsigned(_Q + 2))
        rsqrt_y1 = y6 + rshr(p6, _RSQRT_Y_SHIFT)
        rsqrt_sh = st.wire(6, "rsqrt_shift", 15 - (n6 >> 1), unsigned(4))  # 15 - j, j = e / 2
        rsqrt_q6 = rshr(rsqrt_y1, rsqrt_sh)
        q6 = st.wire(6, "q", Mux(is_(6, Opcode.RSQRT), rsqrt_q6, q6_recip), unsigned(_Q + 2))
        mul6 = (Cat(1, q6) * xs6)[:_CHECK_BITS]  # (2q + 1) x: RECIP needs 33 bits, RSQRT the low

        # ---- stage 7 -------------------------------------------------------------------
        xs7, valid7 = st.reg(7, "xs", xs6), st.reg(7, "valid", valid6)
        q7 = st.reg(7, "q", q6)
        p7 = st.reg(7, "p", mul6, unsigned(_CHECK_BITS))
        # RECIP: (2q + 1) x <= 2**31 -> q + 1; (2q - 1) x = (2q + 1) x - 2x > 2**31 -> q - 1.
        two31 = 1 << 31
        recip_q7 = q7 + (p7 <= two31) - ((p7 - 2 * xs7).as_signed() > two31)
        # RSQRT: hi = (2q + 1)**2 x - 2**62 and lo = (2q - 1)**2 x - 2**62 = hi - 4 (2q + 1) x
        # + 4 x. Both are below 2**51 in magnitude, so their low _CHECK_BITS bits, read as
        # signed, are their values (fixedpoint takes the low 64; 2**62 vanishes mod 2**52).
        # The low _CHECK_BITS bits of p7 (2q + 1), from two products below 64 bits (the full
        # 86-bit product is not needed: its high bits and 2**62 vanish mod 2**_CHECK_BITS).
        c7 = Cat(1, q7)
        half = _CHECK_BITS // 2
        p7c7 = p7[:half] * c7 + ((p7[half:] * c7[:half])[:half] << half)
        hi7 = st.wire(7, "rsqrt_hi", p7c7[:_CHECK_BITS].as_signed())
        lo7 = st.wire(7, "rsqrt_lo", (hi7 - 4 * p7 + 4 * xs7)[:_CHECK_BITS].as_signed())
        rsqrt_q7 = q7 + (hi7 <= 0) - (lo7 > 0)
        int32_max = (1 << 31) - 1
        res_recip = Mux(valid7, recip_q7, int32_max)
        res_rsqrt = Mux(valid7, rsqrt_q7, int32_max)

        # ---- outputs: delay each result to its latency, then select by opcode --------------
        results = {Opcode.EXP: res_exp, Opcode.RECIP: res_recip, Opcode.RSQRT: res_rsqrt,
                   Opcode.SIGMOID: res_sigmoid, Opcode.TANH: res_tanh,
                   Opcode.SILU: res_silu_gelu, Opcode.GELU: res_silu_gelu}
        assert set(results) == set(SPECIAL_OPS) == set(NATURAL_DEPTH)
        for index, lat in enumerate(self._latencies):
            out = lat - 1
            padded = {}
            for fn in SPECIAL_OPS:
                if self._latency[fn] != lat:
                    continue
                value = st.wire(NATURAL_DEPTH[fn], f"{fn.name.lower()}_res", results[fn],
                                signed(32))
                for k in range(NATURAL_DEPTH[fn] + 1, out + 1):
                    value = st.reg(k, f"{fn.name.lower()}_res", value)
                padded[fn] = value
            with m.Switch(op[out]):
                for fn, value in padded.items():
                    with m.Case(fn):
                        m.d.comb += self.y[index].eq(value)
        return m

