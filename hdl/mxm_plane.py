"""One MXM plane: the ``lanes x lanes`` int8 matrix unit with its weights and accumulators.

A plane executes its queue's ``LW``, ``IW``, ``ABC``, ``ABCO`` and ``ACC`` (docs/architecture.md,
sections 4.2, 4.3 and 6.3; ``sim_models.golden.GoldenModel._exec_mxm``). It is a whole-chip
unit: it sees the stream registers at its position in every superlane and gets its instruction
in superlane-0 time.

Organisation (the structure section 4.2 suggests). Everything of superlane ``k`` works in tile
time, ``k`` cycles after superlane 0, on the instruction delayed by ``k`` (:func:`.skew.stagger`):

- **Weights.** The shadow buffer and the installed weights are registers, split by *input*
  superlane: superlane ``k`` holds columns ``k*lps .. k*lps+lps-1`` of every row (the lanes
  its streams carry). ``LW`` writes its rows' columns from the streams, and ``IW`` copies
  shadow to weights, at the end of tile cycle ``t + k``. An ``ABC`` issued in ``t - 1``
  multiplies in ``t + k`` (after its input register), so it still uses the old weights, and
  one issued in ``t + 1`` the new ones.
- **Products.** Superlane ``k`` registers its ``lps`` input lanes, multiplies them by its
  ``lps`` weight columns for every one of the ``lanes`` output rows (registered products) and
  reduces each row with a ``log2(lps)``-level adder tree: a partial sum per output row.
- **Reduction across the wavefront.** A chain of one adder and register per superlane adds
  superlane ``k``'s partial sums to the running sum of superlanes ``0..k-1`` when they arrive
  (one cycle per superlane), so the full ``y = W @ x`` is complete after the last superlane.
- **Accumulators.** Superlane ``m`` owns output lanes ``m*lps ..`` of every accumulator entry:
  one memory per superlane (``mxm_acc_depth`` words of ``lps`` int32), with a read port for
  ``ABC.acc`` (transparent to the write port, so back-to-back accumulations into one entry
  chain through it), a read port for ``ACC`` and one write port. ``y`` is re-skewed so that
  superlane ``m``'s lanes are added and written in cycle ``t + latency(ABC) - 1 + m``: an
  ``ACC`` issued from ``t + latency(ABC)`` (read in ``t + latency(ABC) + m``) sees them.
- **State at reset.** Shadow buffer and weights are registers and reset to zero (the chip
  top resets the plane at ``START``). The accumulators are memories and keep their contents:
  a valid program never reads an entry that no ``ABC`` wrote in its run (architecture
  section 9.2, the golden model's accumulator hazard).

ABC pipeline (cycles of superlane 0; superlane ``k`` is ``k`` later for its own part;
``G = ceil(log2(lps))``, ``S = superlanes``, ``L = latency(ABC) = 4 + G + S``,
``B = L - 3 - S`` cycles for the tree registers ``R = min(G, B)`` and ``E = B - R`` spare)::

    t                 read stream a (superlane k: t + k)
    t+1               x register (multiplier input; the weights are registers)
    t+2               product registers
    t+2 .. t+2+R      adder tree, R of its G levels registered (evenly spread if R < G)
    t+3+R+k           running sum of superlanes 0..k registered (chain)
    t+2+R+S           y complete (all input superlanes)
    t+2+R+S+E+m       superlane m's lanes of y after the re-skew (E + m registers) = L-1+m:
                      add to the accumulator word read in the cycle before, write the memory
    t+L+m             an ACC issued in t+L reads the new word (superlane m)

ACC: the entry's word is read in ``t + m`` (synchronous read port), driven on the four
streams in ``t + latency(ACC) - 1 + m`` so that it is present in ``t + latency(ACC) + m``.
ABCO: an ABC that also drives the word it writes (``t + L - 1 + m``) on its four streams, so
that it is present in ``t + L + m``: a block's last K step needs no ACC.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from openlpu.config import ChipConfig
from openlpu.isa import MXM_PRODUCT_OPS, DType, Opcode, latency

from .instruction import instruction_layout, opcode_in
from .skew import delay, reskew, stagger
from .streams import StreamChipSignature, lane_vector

__all__ = ["MxmPlane", "tree_registers", "abc_pipeline", "sum_shape"]

#: Width of the ABC counter (saturating).
COUNTER_BITS = 32
#: Accumulator element type and the ACC destination group.
ACC_TYPE = DType.I32

_INT8_MIN, _INT8_MAX = -(1 << 7), (1 << 7) - 1


def sum_shape(products: int) -> Shape:
    """Exact signed shape of a sum of ``products`` int8 x int8 products."""
    lo = products * _INT8_MAX * _INT8_MIN
    hi = products * _INT8_MIN * _INT8_MIN
    return Shape.cast(range(lo, hi + 1))


def tree_registers(levels: int, budget: int) -> tuple[bool, ...]:
    """Which levels of a ``levels``-level adder tree get an output register, given ``budget``
    cycles: every level if they fit, else ``budget`` levels spread evenly (always the last).

    Raises
    ------
    ValueError
        ``levels`` or ``budget`` is negative.
    """
    if levels < 0 or budget < 0:
        raise ValueError(f"levels and budget must be >= 0, not {levels!r} and {budget!r}")
    if budget >= levels:
        return (True,) * levels
    return tuple((lvl + 1) * budget // levels > lvl * budget // levels for lvl in range(levels))


def abc_pipeline(config: ChipConfig) -> dict[str, int]:
    """Register budget of the ABC pipeline of ``config``: ``levels`` (adder tree levels per
    superlane), ``tree_registers`` (how many of them are registered), ``spare`` (extra
    registers before the re-skew), ``latency`` (``latency(ABC)``).

    Raises
    ------
    ValueError
        ``latency(ABC)`` is too short for the input, multiplier, chain and accumulator stages.
    """
    lat = latency(Opcode.ABC, config)
    levels = math.ceil(math.log2(config.lanes_per_superlane))
    budget = lat - 3 - config.superlanes
    if budget < 0:
        raise ValueError(f"latency(ABC) = {lat} is too short for config {config.name!r}: the "
                         f"MXM needs at least {3 + config.superlanes} cycles (input, "
                         f"multiplier, one chain stage per superlane, accumulator write)")
    regs = min(levels, budget)
    return {"levels": levels, "tree_registers": regs, "spare": budget - regs, "latency": lat}


class MxmPlane(wiring.Component):
    """One MXM plane (``LW``, ``IW``, ``ABC``, ``ABCO``, ``ACC``) for all superlanes.

    Parameters
    ----------
    config : ChipConfig
        The chip: ``lanes x lanes`` weights, ``mxm_acc_depth`` accumulator vectors.

    Members
    -------
    issue : In(1)
        An instruction is presented this cycle (superlane-0 time).
    instr : In(instruction_layout())
        The instruction, valid when ``issue`` is 1: ``LW``, ``IW``, ``ABC``, ``ABCO`` or
        ``ACC`` (any other opcode is ignored). Superlane ``k`` executes it ``k`` cycles later.
    s : Out(StreamChipSignature(config))
        The stream registers at the plane's position, ``s.tiles[k]`` for superlane ``k``:
        ``e``/``w`` (in) are read by ``LW``/``ABC`` in tile time; ``e_we``/``w_we`` (out,
        one bit per stream) and ``e_data``/``w_data`` (out) carry ``ACC`` results, driven in
        cycle ``t + latency(ACC) - 1 + k``, and ``ABCO`` results, driven in
        ``t + latency(ABC) - 1 + k``; ``*_we`` is 0 otherwise.
    clear : In(1)
        Clear ``abc_count`` (wins over a count in the same cycle).
    abc_count : Out(32)
        ``ABC`` and ``ABCO`` instructions issued since reset or ``clear``, saturating at
        ``2**32 - 1``.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`ChipConfig`.
    ValueError
        The ISA latencies do not leave room for this pipeline (see :func:`abc_pipeline`).
    """

    def __init__(self, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        self._pipe = abc_pipeline(config)
        if latency(Opcode.ACC, config) < 2:
            raise ValueError(f"latency(ACC) = {latency(Opcode.ACC, config)}: the synchronous "
                             "accumulator read needs at least 2")
        self._config = config
        super().__init__({
            "issue": In(1),
            "instr": In(instruction_layout()),
            "s": Out(StreamChipSignature(config)),
            "clear": In(1),
            "abc_count": Out(COUNTER_BITS),
        })

    @property
    def config(self) -> ChipConfig:
        """The chip configuration."""
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        sl, lps, lanes, ns = (cfg.superlanes, cfg.lanes_per_superlane, cfg.lanes,
                              cfg.streams_per_direction)
        depth = cfg.mxm_acc_depth
        pipe = self._pipe
        lat_abc, lat_acc = pipe["latency"], latency(Opcode.ACC, cfg)
        entry_bits = max(1, (depth - 1).bit_length())
        acc_bits = ACC_TYPE.bits
        group = ACC_TYPE.nbytes

        # --- ABC counter (superlane-0 issue) -------------------------------------------------
        is_abc0 = self.issue & opcode_in(self.instr.opcode, MXM_PRODUCT_OPS)
        with m.If(self.clear):
            m.d.sync += self.abc_count.eq(0)
        with m.Elif(is_abc0 & (self.abc_count != (1 << COUNTER_BITS) - 1)):
            m.d.sync += self.abc_count.eq(self.abc_count + 1)

        # --- instruction into every superlane ------------------------------------------------
        issue_k = stagger(m, self.issue, sl, name="issue")
        instr_k = stagger(m, self.instr, sl, name="instr")

        def stream(tile, code, index=None):
            idx = code.index if index is None else index
            return Mux(code.west, tile.w[idx], tile.e[idx])

        # --- ABC control, superlane-0 time: accumulator read one cycle before the write -----
        ctl = data.StructLayout({"go": 1, "entry": unsigned(entry_bits), "acc": 1, "out": 1,
                                 "dst": self.instr.dst.shape()})
        pre = Signal(ctl, name="abc_issue")
        m.d.comb += [pre.go.eq(is_abc0), pre.entry.eq(self.instr.addr),
                     pre.acc.eq(self.instr.accumulate),
                     pre.out.eq(self.instr.opcode == Opcode.ABCO), pre.dst.eq(self.instr.dst)]
        rd0 = delay(m, pre, lat_abc - 2, name="abc_ctl")
        abc_ctl = stagger(m, rd0, sl + 1, name="abc_rd")  # [m]: read stage, [m+1]: write

        # --- per input superlane: weights, products, adder tree -------------------------------
        rows = 1 << max(0, (ns - 1).bit_length())  # LW row rotation modulus, >= streams
        row_bits = (rows - 1).bit_length()
        reg_levels = tree_registers(pipe["levels"], pipe["tree_registers"])
        partials = []
        for k in range(sl):
            tile, ik, go = self.s.tiles[k], instr_k[k], issue_k[k]
            lw = go & (ik.opcode == Opcode.LW)
            iw = go & (ik.opcode == Opcode.IW)
            shadow = [Signal(lane_vector(cfg), name=f"shadow_sl{k}_r{i}") for i in range(lanes)]
            weight = [Signal(lane_vector(cfg), name=f"w_sl{k}_r{i}") for i in range(lanes)]
            # LW: row addr + r <- stream a + r; row i takes rotation slot i mod rows
            slot = []
            for q in range(rows):
                r = (Const(q, row_bits + 1) - ik.addr)[:row_bits] if row_bits else Const(0, 1)
                v = Signal(lane_vector(cfg), name=f"lw_sl{k}_q{q}")
                m.d.comb += v.eq(stream(tile, ik.a, ik.a.index + r))
                slot.append(v)
            for i in range(lanes):
                with m.If(lw & (ik.addr <= i) & (ik.addr + ik.count > i)):
                    m.d.sync += shadow[i].eq(slot[i % rows])
                with m.If(iw):
                    m.d.sync += weight[i].eq(shadow[i])
            # ABC: input register, products, tree
            x = Signal(lane_vector(cfg), name=f"x_sl{k}")
            m.d.sync += x.eq(stream(tile, ik.a))
            part = []
            for i in range(lanes):
                p = Signal(data.ArrayLayout(sum_shape(1), lps), name=f"p_sl{k}_r{i}")
                m.d.sync += [p[j].eq(weight[i][j].as_signed() * x[j].as_signed())
                             for j in range(lps)]
                level, n = p, lps
                for lvl, registered in enumerate(reg_levels):
                    n //= 2
                    nxt = Signal(data.ArrayLayout(sum_shape(lps // n), n),
                                 name=f"t{lvl + 1}_sl{k}_r{i}")
                    dom = m.d.sync if registered else m.d.comb
                    dom += [nxt[j].eq(level[2 * j] + level[2 * j + 1]) for j in range(n)]
                    level = nxt
                part.append(level[0])
            partials.append(part)

        # --- reduction across the wavefront: one adder and register per superlane -----------
        running = None
        for k in range(sl):
            c = Signal(data.ArrayLayout(sum_shape(lps * (k + 1)), lanes), name=f"chain_sl{k}")
            m.d.sync += [c[i].eq(partials[k][i] if running is None
                                 else running[i] + partials[k][i]) for i in range(lanes)]
            running = c
        y_shape = sum_shape(lanes)
        y_parts = [data.View(data.ArrayLayout(y_shape, lps),
                             Cat(running[mm * lps + j] for j in range(lps))) for mm in range(sl)]
        y_late = reskew(m, y_parts, extra=pipe["spare"], name="y")

        # --- per output superlane: accumulators and ACC ---------------------------------------
        word = data.ArrayLayout(unsigned(acc_bits), lps)
        for mm in range(sl):
            tile, ik, go = self.s.tiles[mm], instr_k[mm], issue_k[mm]
            mem = Memory(shape=word, depth=depth, init=[])
            m.submodules[f"acc_sl{mm}"] = mem
            wp = mem.write_port()
            rp_abc = mem.read_port(transparent_for=(wp,))
            rp_acc = mem.read_port()
            rd, wr = abc_ctl[mm], abc_ctl[mm + 1]
            m.d.comb += [rp_abc.addr.eq(rd.entry), wp.en.eq(wr.go), wp.addr.eq(wr.entry)]
            m.d.comb += [wp.data[j].eq(Mux(wr.acc, rp_abc.data[j], 0).as_signed()
                                       + y_late[mm][j]) for j in range(lps)]
            # ABCO: the word being written goes onto its streams in the same cycle (present
            # in t + latency(ABC) + m, when an ACC issued in t + latency(ABC) - 2 would be)
            # ACC: read in t + m, drive in t + lat_acc - 1 + m
            m.d.comb += rp_acc.addr.eq(ik.addr)
            out_ctl = data.StructLayout({"go": 1, "dst": ik.dst.shape()})
            acc1 = Signal(out_ctl, name=f"acc1_sl{mm}")
            m.d.sync += [acc1.go.eq(go & (ik.opcode == Opcode.ACC)), acc1.dst.eq(ik.dst)]
            out = delay(m, acc1, lat_acc - 2, name=f"acc_ctl_sl{mm}")
            value = delay(m, rp_acc.data, lat_acc - 2, name=f"acc_val_sl{mm}")
            hit = [out.go & ((out.dst.index // group) == i // group) for i in range(ns)]
            hit_o = [wr.go & wr.out & ((wr.dst.index // group) == i // group)
                     for i in range(ns)]
            for i in range(ns):
                b = i % group
                byte = Cat(value[j][8 * b:8 * b + 8] for j in range(lps))
                byte_o = Cat(wp.data[j][8 * b:8 * b + 8] for j in range(lps))
                # an ACC and an ABCO may land in one cycle on different groups (the golden
                # model reports a stream conflict if they share one)
                for west, we, dat in ((0, tile.e_we[i], tile.e_data[i]),
                                      (1, tile.w_we[i], tile.w_data[i])):
                    acc_hit = hit[i] & (out.dst.west == west)
                    out_hit = hit_o[i] & (wr.dst.west == west)
                    m.d.comb += [we.eq(acc_hit | out_hit), dat.eq(Mux(out_hit, byte_o, byte))]
        return m

