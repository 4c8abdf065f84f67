"""The VXM special functions (EXP, RECIP, RSQRT, SIGMOID, TANH, GELU, SILU) of one lane, as a
pipeline that reproduces :mod:`openlpu.fixedpoint` bit for bit.

Every step of the integer datapaths in the ``fixedpoint`` module docstring and code (which is
normative) is built here as logic: a leading-zero count by binary search, constant and variable
round-half-up shifts (:func:`rshr`), lookups with linear interpolation in the ROM tables that
``fixedpoint`` exports (imported, never recomputed), Newton steps and the exact-rounding
corrections. :class:`SpecialLane` runs all seven functions in one pipeline, so that a new
instruction can start every cycle. Resources that two functions use in the same step are
shared (one ROM, one interpolation multiplier, one multiplier per later step), which is safe
because one instruction enters the pipeline per cycle.

The datapath is written as steps, each placed in a cycle by :data:`_SCHEDULE`; the registers
follow from the placement (:class:`_Pipe`). Two placements exist:

- compact (default; the ASIC view): stage ``k`` computes in cycle ``t + k``, one wide
  multiplier per stage;

  ===== ==============================================================================
  stage work
  ===== ==============================================================================
  0     inputs registered
  1     clz normalisation (RECIP, RSQRT), ``|x|`` and clamp (activations): shared ROM
        address; EXP: ``a * LOG2E_Q30``
  2     shared ROM data: interpolation product ``(T[i+1] - T[i]) * r``; EXP: ``t``, EXP2
        ROM address
  3     ``y = T[i] + rshr(prod)``; SIGMOID / TANH done; multiplier: ``m * y0`` (RECIP,
        RSQRT) or EXP's interpolation product
  4     multiplier: ``y0 * d'`` (RECIP), ``u * y0`` (RSQRT), ``x * s`` (SILU, GELU done);
        EXP done
  5     RECIP: ``y1``, ``q``; RSQRT: multiplier ``y0 * d``
  6     RSQRT: ``y1``, ``q``; multiplier ``(2q + 1) * x`` (RECIP, RSQRT)
  7     RECIP, RSQRT: +-1 correction (RSQRT: multiplier ``(2q + 1)**2 * x``) -- done
  ===== ==============================================================================

- deep (``ChipConfig.vxm_deep_pipeline``, the FPGA presets): the same steps spread so that no
  cycle holds more than about one multiplier block or two carry chains. Every product is
  split into partial products of one FPGA multiplier each (:mod:`hdl.multiplier`), registered,
  and summed in the next cycle; the leading-zero count takes two cycles; operand selection,
  ROM addressing and each adder chain get their own cycle. RSQRT's result is ready in cycle
  27 instead of 7.

A function whose latency leaves more cycles than its datapath needs is delayed by registers
after its last step; one whose latency is too short for it is refused at construction
(:func:`special_latencies`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.instruction import latency_table
from hdl.multiplier import partial_products, sum_shifted
from openlpu import fixedpoint as fx
from openlpu.config import ChipConfig
from openlpu.isa import VXM_SPECIAL, Opcode

__all__ = [
    "SPECIAL_OPS", "natural_depth", "SpecialLane", "special_latencies", "rshr", "normalise_steps",
]

#: The special-function opcodes, in opcode order.
SPECIAL_OPS: tuple[Opcode, ...] = tuple(op for op in Opcode if op in VXM_SPECIAL)

#: The cycle (after issue) in which each step of the datapaths computes, in the compact
#: pipeline (one wide multiplier per stage) and the deep one (``ChipConfig.vxm_deep_pipeline``:
#: a product started in cycle ``t`` is ready in ``t + 1``; adder chains and variable shifts get
#: a cycle of their own). Registers follow from this placement (:class:`_Pipe`).
_SCHEDULE: dict[bool, dict[str, int]] = {
    False: dict(clz_hi=1, norm=1, addr=1, rom=1, exp_log2e=1, exp_t=2, interp_diff=2,
                interp_mul=2, interp_y=3, act_out=3, mirror=3, exp_diff=3, mul3_sel=3, mul3=3,
                exp_y=4, exp_out=4, newton_a=4, mul4=4, silu_out=4, recip_y1=5, recip_q=5,
                rsqrt_d=5, mul5=5, rsqrt_y1=6, rsqrt_q=6, q=6, mul6=6, recip_check=7,
                recip_out=7, rsqrt_mul=7, rsqrt_hi=7, rsqrt_lo=7, rsqrt_out=7),
    True: dict(clz_hi=1, norm=2, addr=3, rom=4, exp_log2e=2, exp_t=4, interp_diff=5,
               interp_mul=6, interp_y=8, act_out=9, mirror=9, exp_diff=5, mul3_sel=9, mul3=10,
               exp_y=12, exp_out=13, newton_a=12, mul4=13, silu_out=15, recip_y1=15, recip_q=16,
               rsqrt_d=15, mul5=16, rsqrt_y1=18, rsqrt_q=19, q=20, mul6=21, recip_check=23,
               recip_out=24, rsqrt_mul=23, rsqrt_hi=25, rsqrt_lo=26, rsqrt_out=27),
}
_RESULT_STEP = {
    Opcode.EXP: "exp_out", Opcode.RECIP: "recip_out", Opcode.RSQRT: "rsqrt_out",
    Opcode.SIGMOID: "act_out", Opcode.TANH: "act_out", Opcode.SILU: "silu_out",
    Opcode.GELU: "silu_out",
}


def natural_depth(config: ChipConfig) -> dict[Opcode, int]:
    """Cycle in which each function's result is ready (combinationally) in the pipeline of
    ``config``; its latency must be at least one more (the stream register loads at the end
    of that cycle)."""
    steps = _SCHEDULE[config.vxm_deep_pipeline]
    return {op: steps[step] for op, step in _RESULT_STEP.items()}


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


def normalise_steps(m: Module, x, steps, name: str) -> tuple[Value, list[Value]]:
    """Steps of the binary-search leading-zero count of ``fixedpoint._clz32`` on 32-bit ``x``:
    for each shift ``s`` of ``steps`` (from 16, 8, 4, 2, 1, in order), shift left by ``s`` if
    the top ``s`` bits are zero. Returns the shifted value and the step flags (for the five
    steps of a nonzero ``x``: ``x << clz32(x)`` and the bits of the count, most significant
    first)."""
    v = Value.cast(x)
    flags = []
    for s in steps:
        empty = Signal(name=f"{name}_z{s}")
        step = Signal(32, name=f"{name}_v{s}")
        m.d.comb += [empty.eq(v[32 - s:] == 0), step.eq(Mux(empty, v << s, v))]
        flags.append(empty)
        v = step
    return v, flags


class _Timed:
    """A value of the pipeline and the cycle (after issue) in which it is valid.

    Calling it with a later cycle gives the value in that cycle: :class:`_Pipe` adds (and
    shares) the registers that carry it there.
    """

    def __init__(self, pipe: _Pipe, sig: Signal, t: int, name: str, shape):
        self.pipe, self.sig, self.t, self.name, self.shape = pipe, sig, t, name, shape
        self.copies: dict[int, Signal] = {}  # the registers carrying it to later cycles

    def __call__(self, t: int):
        return self.pipe.at(self, t)


class _Pipe:
    """Builds a pipeline from steps placed in cycles: registers follow from the placement.

    A step computes combinationally in its cycle from values valid then; a value used in a
    later cycle is carried there by registers named ``s{cycle}_{name}``. The placement of
    every step (:data:`_SCHEDULE`) is then the only thing that differs between the compact and
    the deep pipeline.
    """

    def __init__(self, m: Module, deep: bool):
        self.m, self.deep = m, deep
        # Statements wait here until :meth:`close`: a register made on first use inside a
        # ``with m.Case()`` would otherwise load only in that case.
        self._comb: list = []
        self._sync: list = []

    def close(self):
        """Add the pipeline's wires and registers to the module, outside every condition."""
        self.m.d.comb += self._comb
        self.m.d.sync += self._sync

    def wire(self, t: int, name: str, value, shape=None) -> _Timed:
        """A named combinational value of cycle ``t``."""
        value = Value.cast(value)
        shape = value.shape() if shape is None else shape
        sig = Signal(shape, name=f"s{t}_{name}")
        self._comb.append(sig.eq(value))
        return _Timed(self, sig, t, name, shape)

    def signal(self, t: int, name: str, shape) -> _Timed:
        """A value of cycle ``t`` that the caller drives (``m.d.comb``, e.g. in a Switch)."""
        return _Timed(self, Signal(shape, name=f"s{t}_{name}"), t, name, shape)

    def at(self, v: _Timed, t: int):
        """``v`` in cycle ``t >= v.t``."""
        if t < v.t:
            raise AssertionError(f"special-function schedule: {v.name} is ready in cycle "
                                 f"{v.t}, used in cycle {t}")
        if t == v.t:
            return v.sig
        if t not in v.copies:
            reg = Signal(v.shape, name=f"s{t}_{v.name}")
            self._sync.append(reg.eq(self.at(v, t - 1)))
            v.copies[t] = reg
        return v.copies[t]

    def mul(self, t: int, name: str, a: _Timed, b, *, shape=None, bits=None) -> _Timed:
        """``a * b`` (``b`` a value or an int constant) started in cycle ``t``, or its low
        ``bits`` bits.

        Compact: one multiplier in cycle ``t``. Deep: partial products (one FPGA multiplier
        each, :mod:`hdl.multiplier`) registered at the end of ``t``, their sum in ``t + 1``.
        """
        av = a(t)
        bv = b(t) if isinstance(b, _Timed) else Const(b)
        if shape is None:
            shape = unsigned(bits) if bits is not None else (av * bv).shape()
        if not self.deep:
            product = av * bv
            return self.wire(t, name, product if bits is None else product[:bits], shape)
        terms = []
        for k, (partial, offset) in enumerate(partial_products(av, bv, bits)):
            pp = Signal(partial.shape(), name=f"s{t + 1}_{name}_pp{k}")
            self._sync.append(pp.eq(partial))
            terms.append((pp, offset))
        total = sum_shifted(terms)
        return self.wire(t + 1, name, total if bits is None else total[:bits], shape)


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
    """Latency of each special opcode in ``config``, checked against :func:`natural_depth`.

    Raises
    ------
    ValueError
        A latency is too short for the pipeline of :class:`SpecialLane`.
    """
    table = latency_table(config)
    depth = natural_depth(config)
    out = {op: table[op] for op in SPECIAL_OPS}
    for op, lat in out.items():
        if lat < depth[op] + 1:
            kind = "deep" if config.vxm_deep_pipeline else "compact"
            raise ValueError(
                f"{op.name} has latency {lat} in config {config.name!r}, but the {kind} "
                f"special-function pipeline needs at least {depth[op] + 1}")
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
        The latencies of the special opcodes and ``vxm_deep_pipeline`` (compact or deep
        pipeline, :data:`_SCHEDULE`).

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
        (:func:`natural_depth` + 1).
    """

    def __init__(self, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        self._latency = special_latencies(config)
        self._latencies = tuple(sorted(set(self._latency.values())))
        self._deep = config.vxm_deep_pipeline
        self._depth = natural_depth(config)
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
        T = _SCHEDULE[self._deep]
        p = _Pipe(m, self._deep)
        op = p.wire(0, "op", self.op, Opcode)
        x = p.wire(0, "x", self.x)

        def is_(t, *ops):
            return Value.cast(op(t)).matches(*ops)

        # ROMs: RECIP, RSQRT, SIGMOID and PHI share one (addressed in step "rom"); EXP2 has
        # its own (addressed in "exp_t"). Two read ports each: T[i] and T[i + 1].
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

        # ---- normalisation (RECIP, RSQRT), |x| and clamp (activations), ROM address -------
        # The leading-zero count takes two steps: shifts by 16 and 8, then by 4, 2 and 1.
        t = T["clz_hi"]
        x1 = x(t)
        valid = p.wire(t, "valid", x1 > 0)  # RECIP / RSQRT: x >= 1
        xs = p.wire(t, "xs", Mux(valid(t), x1, 1), unsigned(31))
        v_hi, flags_hi = normalise_steps(m, xs(t), (16, 8), f"s{t}_clz")
        v_hi = p.wire(t, "clz_v", v_hi)
        n_hi = p.wire(t, "clz_n", Cat(*reversed(flags_hi)))
        # Activations: a = |x| (2|x| for TANH).
        abs1 = p.wire(t, "abs", abs(x1), unsigned(32))(t)
        act_a = p.wire(t, "act_a", Mux(is_(t, Opcode.TANH), abs1 << 1, abs1), unsigned(33))
        # EXP: a = -clamp(x, EXP_IN_MIN, 0), to be multiplied by log2(e) in Q30.
        exp_a = p.wire(t, "exp_a",
                       -Mux(x1 > 0, 0, Mux(x1 < fx.EXP_IN_MIN, fx.EXP_IN_MIN, x1)),
                       unsigned((-fx.EXP_IN_MIN).bit_length()))

        t = T["norm"]
        v1, flags_lo = normalise_steps(m, v_hi(t), (4, 2, 1), f"s{t}_clz")
        n1 = Cat(*reversed(flags_lo), n_hi(t))  # v1 = xs << n1, bit 31 set; n1 in 1..31
        n = p.wire(t, "n", n1)
        # RECIP: k = n - 1, m = xs << k in [2**30, 2**31); index 8 bits, fraction 22 bits.
        recip_m = v1[1:]
        recip_low = _Q - fx.RECIP_INDEX_BITS
        recip_f = p.wire(t, "recip_f", recip_m - _ONE, unsigned(_Q))
        # RSQRT: s = n - 1, e = s + (s & 1) = n & ~1, m = xs << e in [2**30, 2**32).
        rsqrt_m = p.wire(t, "rsqrt_m", Mux(n1[0], v1 >> 1, v1), unsigned(32))
        rsqrt_low = _Q - fx.RSQRT_STEP_BITS
        rsqrt_f = p.wire(t, "rsqrt_f", rsqrt_m(t) - _ONE, unsigned(32))
        mant = p.wire(t, "mant", Mux(is_(t, Opcode.RSQRT), rsqrt_m(t), recip_m), unsigned(32))
        # Activations: a clamped below the table's range.
        family = {
            "sig": (fx.SIGMOID_RANGE, fx.SIGMOID_STEP_BITS),
            "phi": (fx.PHI_RANGE, fx.PHI_STEP_BITS),
        }
        act_ac, act_sat, act_low = {}, {}, {}
        for key, (rng, step) in family.items():
            limit = rng << fx.ACT_FRAC_BITS
            act_low[key] = fx.ACT_FRAC_BITS - step
            act_sat[key] = p.wire(t, f"{key}_sat", act_a(t) >= limit)
            act_ac[key] = p.wire(t, f"{key}_a", Mux(act_sat[key](t), limit - 1, act_a(t)),
                                 unsigned((limit - 1).bit_length()))

        t = T["addr"]
        recip_f, rsqrt_f = recip_f(t), rsqrt_f(t)
        addr = p.signal(t, "rom_addr", rom_lo.addr.shape())
        frac = p.signal(t, "frac", max(recip_low, rsqrt_low, *act_low.values()))
        sat = p.signal(t, "sat", 1)
        with m.Switch(op(t)):
            with m.Case(Opcode.RECIP):
                m.d.comb += [addr.sig.eq(base["recip"] + (recip_f >> recip_low)),
                             frac.sig.eq(recip_f[:recip_low])]
            with m.Case(Opcode.RSQRT):
                m.d.comb += [addr.sig.eq(base["rsqrt"] + (rsqrt_f >> rsqrt_low)),
                             frac.sig.eq(rsqrt_f[:rsqrt_low])]
            for fn, key in _ACT_FAMILY.items():
                ac, low = act_ac[key](t), act_low[key]
                with m.Case(fn):
                    m.d.comb += [addr.sig.eq(base[key] + (ac >> low)), frac.sig.eq(ac[:low]),
                                 sat.sig.eq(act_sat[key](t))]
        ta = T["rom"]
        m.d.comb += [rom_lo.addr.eq(addr(ta)), rom_hi.addr.eq(addr(ta) + 1)]
        lo = p.wire(ta + 1, "rom_lo", rom_lo.data)
        hi = p.wire(ta + 1, "rom_hi", rom_hi.data)
        exp_p = p.mul(T["exp_log2e"], "exp_p", exp_a, fx.LOG2E_Q30)

        # ---- interpolation product; EXP: t and the EXP2 ROM address -----------------------
        t = T["interp_diff"]
        diff = p.wire(t, "diff", hi(t) - lo(t), signed(_step_bits(shared.values())))
        prod = p.mul(T["interp_mul"], "interp", diff, frac)

        t = T["exp_t"]
        t_low = fx.EXP_T_FRAC_BITS - fx.EXP2_INDEX_BITS
        t_shift = fx.EXP_IN_FRAC_BITS + _Q - fx.EXP_T_FRAC_BITS
        t_max = int(fx.shift_right_round(-fx.EXP_IN_MIN * fx.LOG2E_Q30, t_shift))
        exp_t = p.wire(t, "exp_t", rshr(exp_p(t), t_shift), unsigned(t_max.bit_length()))(t)
        m.d.comb += [exp_lo.addr.eq(exp_t[t_low:fx.EXP_T_FRAC_BITS]),
                     exp_hi.addr.eq(exp_t[t_low:fx.EXP_T_FRAC_BITS] + 1)]
        exp_lo_d = p.wire(t + 1, "exp_lo", exp_lo.data)
        exp_hi_d = p.wire(t + 1, "exp_hi", exp_hi.data)
        exp_n = p.wire(t, "exp_n", exp_t >> fx.EXP_T_FRAC_BITS,
                       unsigned((t_max >> fx.EXP_T_FRAC_BITS).bit_length()))
        exp_r = p.wire(t, "exp_r", exp_t[:t_low])

        # ---- interpolated ROM value y; SIGMOID / TANH done ----------------------------------
        t = T["interp_y"]
        y = p.signal(t, "y", unsigned(_Q + 1))  # <= 2**30
        with m.Switch(op(t)):
            with m.Case(Opcode.RECIP):
                m.d.comb += y.sig.eq(lo(t) + rshr(prod(t), recip_low))
            with m.Case(Opcode.RSQRT):
                m.d.comb += y.sig.eq(lo(t) + rshr(prod(t), rsqrt_low))
            for fn, key in _ACT_FAMILY.items():
                with m.Case(fn):
                    m.d.comb += y.sig.eq(Mux(sat(t), _ONE, lo(t) + rshr(prod(t), act_low[key])))
        frac_out = _Q - fx.ACT_FRAC_BITS
        t = T["act_out"]
        sig_p = rshr(y(t), frac_out)
        res_sigmoid = p.wire(t, "sigmoid_res",
                             Mux(x(t) >= 0, sig_p, (1 << fx.ACT_FRAC_BITS) - sig_p), signed(32))
        tanh_p = rshr(y(t) - (_ONE >> 1), frac_out - 1)
        res_tanh = p.wire(t, "tanh_res", Mux(x(t) >= 0, tanh_p, -tanh_p), signed(32))
        # SILU / GELU take sigmoid / Phi in Q30, mirrored for x < 0.
        t = T["mirror"]
        ysel = p.wire(t, "y_sel", Mux(is_(t, Opcode.SILU, Opcode.GELU) & (x(t) < 0),
                                      _ONE - y(t), y(t)), unsigned(_Q + 1))

        # ---- multiplier: m * y0 (RECIP, RSQRT) or EXP's interpolation product ---------------
        t = T["exp_diff"]
        exp_diff = p.wire(t, "exp_diff", exp_hi_d(t) - exp_lo_d(t),
                          signed(_step_bits([fx.EXP2_TABLE])))
        t = T["mul3_sel"]
        is_exp = is_(t, Opcode.EXP)
        mul3_a = p.wire(t, "mul3_a", Mux(is_exp, exp_diff(t), mant(t)), signed(33))
        mul3_b = p.wire(t, "mul3_b", Mux(is_exp, exp_r(t), y(t)), unsigned(_Q + 1))
        prod3 = p.mul(T["mul3"], "mul3", mul3_a, mul3_b, shape=signed(64))

        # ---- EXP done; Newton step operand; multiplier: y0 d' (RECIP), u y0 (RSQRT), x s ---
        t = T["exp_y"]
        exp_y = p.wire(t, "exp_y", exp_lo_d(t) + rshr(prod3(t), t_low))
        exp_sh = p.wire(t, "exp_shift", (_Q - fx.EXP_OUT_FRAC_BITS) + exp_n(t), unsigned(6))
        t = T["exp_out"]
        res_exp = p.wire(t, "exp_res", rshr(exp_y(t), exp_sh(t)), signed(32))
        t = T["newton_a"]
        mul4_a = p.signal(t, "mul4_a", signed(34))  # u reaches 2**32 (e.g. x = 2**30 - 2)
        with m.Switch(op(t)):
            with m.Case(Opcode.RECIP):
                m.d.comb += mul4_a.sig.eq(rshr((1 << 2 * _Q) - prod3(t), _RECIP_D_SHIFT))
            with m.Case(Opcode.RSQRT):
                m.d.comb += mul4_a.sig.eq(rshr(prod3(t), _RSQRT_U_SHIFT))
            with m.Default():
                m.d.comb += mul4_a.sig.eq(x(t))
        prod4 = p.mul(T["mul4"], "mul4", mul4_a, ysel, shape=signed(64))
        t = T["silu_out"]
        res_silu_gelu = p.wire(t, "silu_res", rshr(prod4(t), _Q), signed(32))

        # ---- RECIP: y1, q; RSQRT: multiplier y0 d --------------------------------------------
        t = T["recip_y1"]
        recip_y1 = p.wire(t, "recip_y1", ysel(t) + rshr(prod4(t), _RECIP_Y_SHIFT))
        recip_sh = p.wire(t, "recip_shift", (_Q + 1) - n(t), unsigned(5))  # 30 - k, k = n - 1
        t = T["recip_q"]
        recip_q = p.wire(t, "recip_q", rshr(recip_y1(t), recip_sh(t)), unsigned(_Q + 2))
        t = T["rsqrt_d"]
        rsqrt_d = p.wire(t, "rsqrt_d", rshr((1 << (2 * _Q + 1)) - prod4(t), _RSQRT_D_SHIFT),
                         signed(31))  # |d| < 2**29.6
        prod5 = p.mul(T["mul5"], "mul5", ysel, rsqrt_d, shape=signed(64))

        # ---- RSQRT: y1, q; multiplier (2q + 1) x (RECIP, RSQRT) ----------------------------
        t = T["rsqrt_y1"]
        rsqrt_y1 = p.wire(t, "rsqrt_y1", ysel(t) + rshr(prod5(t), _RSQRT_Y_SHIFT))
        rsqrt_sh = p.wire(t, "rsqrt_shift", 15 - (n(t) >> 1), unsigned(4))  # 15 - j, j = e / 2
        t = T["rsqrt_q"]
        rsqrt_q = p.wire(t, "rsqrt_q", rshr(rsqrt_y1(t), rsqrt_sh(t)), unsigned(_Q + 2))
        t = T["q"]
        q = p.wire(t, "q", Mux(is_(t, Opcode.RSQRT), rsqrt_q(t), recip_q(t)), unsigned(_Q + 2))
        c = p.wire(t, "c", Cat(1, q(t)))  # 2q + 1
        # (2q + 1) x: RECIP needs 33 bits, RSQRT the low _CHECK_BITS.
        check = p.mul(T["mul6"], "mul6", c, xs, bits=_CHECK_BITS)

        # ---- RECIP, RSQRT: +-1 correction -- done ------------------------------------------
        # RECIP: (2q + 1) x <= 2**31 -> q + 1; (2q - 1) x = (2q + 1) x - 2x > 2**31 -> q - 1.
        two31 = 1 << 31
        int32_max = (1 << 31) - 1
        t = T["recip_check"]
        up = p.wire(t, "recip_up", check(t) <= two31)
        down = p.wire(t, "recip_down", (check(t) - 2 * xs(t)).as_signed() > two31)
        t = T["recip_out"]
        res_recip = p.wire(t, "recip_res",
                           Mux(valid(t), q(t) + up(t) - down(t), int32_max), signed(32))
        # RSQRT: hi = (2q + 1)**2 x - 2**62 and lo = (2q - 1)**2 x - 2**62 = hi - 4 (2q + 1) x
        # + 4 x. Both are below 2**51 in magnitude, so their low _CHECK_BITS bits, read as
        # signed, are their values (fixedpoint takes the low 64; 2**62 vanishes mod 2**52).
        # The low _CHECK_BITS bits of check (2q + 1), from two products below 64 bits (the
        # full 86-bit product is not needed: its high bits and 2**62 vanish mod 2**_CHECK_BITS).
        half = _CHECK_BITS // 2
        t = T["rsqrt_mul"]
        check_lo = p.wire(t, "check_lo", check(t)[:half])
        check_hi = p.wire(t, "check_hi", check(t)[half:])
        c_lo = p.wire(t, "c_lo", c(t)[:half])
        part_lo = p.mul(t, "rsqrt_lo_part", check_lo, c, bits=_CHECK_BITS)
        part_hi = p.mul(t, "rsqrt_hi_part", check_hi, c_lo, bits=half)
        t = T["rsqrt_hi"]
        hi_err = p.wire(t, "rsqrt_hi", (part_lo(t) + (part_hi(t) << half))[:_CHECK_BITS]
                        .as_signed())
        t = T["rsqrt_lo"]
        lo_err = p.wire(t, "rsqrt_lo", (hi_err(t) - 4 * check(t) + 4 * xs(t))[:_CHECK_BITS]
                        .as_signed())
        t = T["rsqrt_out"]
        res_rsqrt = p.wire(t, "rsqrt_res",
                           Mux(valid(t), q(t) + (hi_err(t) <= 0) - (lo_err(t) > 0), int32_max),
                           signed(32))

        # ---- outputs: each result carried to its latency, then selected by opcode ----------
        results = {Opcode.EXP: res_exp, Opcode.RECIP: res_recip, Opcode.RSQRT: res_rsqrt,
                   Opcode.SIGMOID: res_sigmoid, Opcode.TANH: res_tanh,
                   Opcode.SILU: res_silu_gelu, Opcode.GELU: res_silu_gelu}
        assert {fn: r.t for fn, r in results.items()} == self._depth
        for index, lat in enumerate(self._latencies):
            out = lat - 1
            with m.Switch(op(out)):
                for fn in SPECIAL_OPS:
                    if self._latency[fn] == lat:
                        with m.Case(fn):
                            m.d.comb += self.y[index].eq(results[fn](out))
        p.close()
        return m
