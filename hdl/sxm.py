"""One SXM (switch execution module): SHIFT, PERMUTE, DISTRIBUTE and TRANSPOSE of vectors.

An SXM (``sxm_w``, ``sxm_e``) moves lanes (docs/architecture.md, sections 4.2 and 6.3;
``sim_models.datapath.sxm_execute``, ``GoldenModel._exec_sxm``). It is a whole-chip unit: it
sees the stream registers at its position in every superlane and gets its instruction in
superlane-0 time; superlane ``k`` works ``k`` cycles later on its own lanes.

Two pipelines share the stream outputs of every superlane (one queue issues at most one
instruction per cycle, but an earlier ``SHIFT`` and a later ``DISTRIBUTE`` may write in the same
cycle; writing the same register twice is a stream conflict, an invalid program):

**SHIFT, PERMUTE** (cross superlanes; ``L = latency(SHIFT) = latency(PERMUTE)``,
``S = superlanes``, cycles of superlane 0)::

    t + k         superlane k: read the a group (up to 4 byte streams) and the int16 map
                  group b from its tile (instruction staggered by k)
    t + S - 1     deskewed (superlane k's capture delayed S - 1 - k): the whole vector
    t + S         input register: every lane's element (group bytes together) and map
    t + S + 1     result register: barrel shift by imm lanes (zero fill) or the permutation
                  crossbar (lane l <- lane map_l, 0 if map_l >= lanes)
    t + L - 1 + m superlane m's lanes, re-skewed by m (+ L - S - 2 spare registers): drive
                  dst.. so that the result is present in t + L + m

**DISTRIBUTE, TRANSPOSE** (inside each superlane, in tile time; ``latency`` = 2)::

    t + k         read a (the dtype group, or lps streams for TRANSPOSE) and b (DISTRIBUTE's
                  int8 map); DISTRIBUTE: lane j <- lane map_j of this superlane (0 if
                  map_j >= lps); TRANSPOSE: lane j of dst + i <- lane i of a + j; register
    t + k + 1     drive dst.. (present in t + 2 + k)

Every byte stream of a dtype group moves the same way, so whole elements move. Operand groups
are aligned (``isa.validate``): byte ``g`` of a group sits on stream ``base + g``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from openlpu.config import ChipConfig
from openlpu.isa import DType, Opcode, latency

from .instruction import instruction_layout, stream_code_layout
from .skew import delay, deskew, reskew, stagger
from .streams import StreamChipSignature, lane_vector

__all__ = ["Sxm"]

#: Byte streams of the widest element (the largest dtype group).
GROUP = max(d.nbytes for d in DType)
#: Stream operand index width (5 bits) plus one, for group arithmetic.
_IDX_BITS = 6
#: Map group of PERMUTE (int16, read unsigned); DISTRIBUTE's map is one byte stream.
_PERMUTE_MAP = DType.I16


class Sxm(wiring.Component):
    """One SXM for all superlanes.

    Parameters
    ----------
    config : ChipConfig
        The chip (``lanes``, ``lanes_per_superlane``, ``streams_per_direction``).

    Members
    -------
    issue : In(1)
        An instruction is presented this cycle (superlane-0 time).
    instr : In(instruction_layout())
        The instruction, valid when ``issue`` is 1: ``SHIFT``, ``PERMUTE``, ``DISTRIBUTE`` or
        ``TRANSPOSE`` (any other opcode is ignored). Superlane ``k`` executes it ``k``
        cycles later.
    s : Out(StreamChipSignature(config))
        The stream registers at the SXM's position, ``s.tiles[k]`` for superlane ``k``:
        ``e``/``w`` (in) read in tile time; ``e_we``/``w_we`` (out, one bit per stream) and
        ``e_data``/``w_data`` (out) make results present in ``t + latency(op) + k`` (driven
        one cycle earlier); ``*_we`` is 0 when nothing is written.

    Raises
    ------
    TypeError
        ``config`` is not a :class:`ChipConfig`.
    ValueError
        The ISA latencies do not fit this pipeline (``SHIFT`` and ``PERMUTE`` equal and at
        least ``superlanes + 2``; ``DISTRIBUTE`` and ``TRANSPOSE`` equal and at least 2).
    """

    def __init__(self, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        lat_x = {latency(op, config) for op in (Opcode.SHIFT, Opcode.PERMUTE)}
        lat_l = {latency(op, config) for op in (Opcode.DISTRIBUTE, Opcode.TRANSPOSE)}
        if len(lat_x) != 1 or min(lat_x) < config.superlanes + 2:
            raise ValueError(f"SHIFT/PERMUTE latencies {sorted(lat_x)} must be equal and at "
                             f"least superlanes + 2 = {config.superlanes + 2}")
        if len(lat_l) != 1 or min(lat_l) < 2:
            raise ValueError(f"DISTRIBUTE/TRANSPOSE latencies {sorted(lat_l)} must be equal "
                             "and at least 2")
        self._config = config
        self._lat_x, self._lat_l = lat_x.pop(), lat_l.pop()
        super().__init__({
            "issue": In(1),
            "instr": In(instruction_layout()),
            "s": Out(StreamChipSignature(config)),
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
        elem_bits = 8 * GROUP
        local_group = max(GROUP, lps)  # output streams of the local pipeline
        lps_bits = (lps - 1).bit_length()
        lane_bits = max(1, (lanes - 1).bit_length())
        mask_shape = unsigned(_IDX_BITS - 1)
        out_ctl = data.StructLayout({"go": 1, "dst": stream_code_layout(), "mask": mask_shape})

        issue_k = stagger(m, self.issue, sl, name="issue")
        instr_k = stagger(m, self.instr, sl, name="instr")

        def stream(tile, code, offset=0, *, name):
            """The byte stream ``code + offset`` of ``tile``, selected once into a signal."""
            idx = code.index + offset if offset else code.index
            sig = Signal(lane_vector(cfg), name=name)
            m.d.comb += sig.eq(Mux(code.west, tile.w[idx], tile.e[idx]))
            return sig

        def dtype_mask(instr, name):
            """``nbytes - 1`` of the instruction's dtype (the group index mask)."""
            mask = Signal(mask_shape, name=name)
            with m.Switch(instr.dtype):
                for dt in DType:
                    with m.Case(dt.value):
                        m.d.comb += mask.eq(dt.nbytes - 1)
            return mask

        # --- SHIFT / PERMUTE: capture in tile time, deskew ----------------------------------
        cap_a, cap_map = [], []
        for k in range(sl):
            tile, ik = self.s.tiles[k], instr_k[k]
            a = Signal(data.ArrayLayout(lane_vector(cfg), GROUP), name=f"xa_sl{k}")
            m.d.comb += [a[g].eq(stream(tile, ik.a, g, name=f"xa{g}_sl{k}"))
                         for g in range(GROUP)]
            mp = Signal(data.ArrayLayout(unsigned(_PERMUTE_MAP.bits), lps), name=f"xm_sl{k}")
            b = [stream(tile, ik.b, g, name=f"xb{g}_sl{k}") for g in range(_PERMUTE_MAP.nbytes)]
            m.d.comb += [mp[j].eq(Cat(bg[j] for bg in b)) for j in range(lps)]
            cap_a.append(a)
            cap_map.append(mp)
        al_a = deskew(m, cap_a, name="xa")
        al_map = deskew(m, cap_map, name="xm")
        al_go, al_instr = issue_k[sl - 1], instr_k[sl - 1]

        # input register (t + S): one element (all group bytes) and one map entry per lane
        x1 = Signal(data.ArrayLayout(unsigned(elem_bits), lanes), name="x1_elem")
        m1 = Signal(data.ArrayLayout(unsigned(_PERMUTE_MAP.bits), lanes), name="x1_map")
        c1 = Signal(data.StructLayout({"shift": 1, "permute": 1, "imm": al_instr.imm.shape(),
                                       "dst": stream_code_layout(), "mask": mask_shape}),
                    name="x1_ctl")
        for k in range(sl):
            for j in range(lps):
                m.d.sync += [x1[k * lps + j].eq(Cat(al_a[k][g][j] for g in range(GROUP))),
                             m1[k * lps + j].eq(al_map[k][j])]
        al_mask = dtype_mask(al_instr, "x_mask")
        m.d.sync += [c1.shift.eq(al_go & (al_instr.opcode == Opcode.SHIFT)),
                     c1.permute.eq(al_go & (al_instr.opcode == Opcode.PERMUTE)),
                     c1.imm.eq(al_instr.imm), c1.dst.eq(al_instr.dst), c1.mask.eq(al_mask)]

        # SHIFT: barrel shifter over lanes, |imm| <= lanes (isa.validate)
        flat_bits = lanes * elem_bits
        mag_bits = lanes.bit_length()
        left = ~c1.imm[-1]
        mag = Signal(mag_bits, name="x_shift_mag")
        m.d.comb += mag.eq(Mux(left, c1.imm, -c1.imm))
        cur = x1.as_value()
        for bit in range(mag_bits):
            amount = (1 << bit) * elem_bits
            nxt = Signal(flat_bits, name=f"x_shift_s{bit}")
            up = Signal(flat_bits, name=f"x_shift_up{bit}")
            down = Signal(flat_bits, name=f"x_shift_down{bit}")
            m.d.comb += [up.eq(cur.shift_left(amount)), down.eq(cur.shift_right(amount)),
                         nxt.eq(Mux(mag[bit], Mux(left, up, down), cur))]
            cur = nxt
        shifted = cur
        # PERMUTE: crossbar, lane l <- lane map_l (0 if map_l >= lanes)
        permuted = Signal(data.ArrayLayout(unsigned(elem_bits), lanes), name="x_permuted")
        for lane in range(lanes):
            idx = m1[lane]
            m.d.comb += permuted[lane].eq(Mux(idx < lanes, x1.as_value().word_select(
                idx[:lane_bits], elem_bits), 0))
        # result register (t + S + 1), then re-skew to each superlane
        r2 = Signal(data.ArrayLayout(unsigned(elem_bits), lanes), name="x2_result")
        c2 = Signal(out_ctl, name="x2_ctl")
        m.d.sync += [r2.eq(Mux(c1.shift, shifted, permuted)),
                     c2.go.eq(c1.shift | c1.permute), c2.dst.eq(c1.dst), c2.mask.eq(c1.mask)]
        parts = [data.View(data.ArrayLayout(unsigned(elem_bits), lps),
                           Cat(r2[k * lps + j] for j in range(lps))) for k in range(sl)]
        extra = self._lat_x - sl - 2
        x_out = reskew(m, parts, extra=extra, name="x_out")
        x_ctl = reskew(m, [c2] * sl, extra=extra, name="x_ctl")

        # --- DISTRIBUTE / TRANSPOSE: per superlane, in tile time ----------------------------
        l_out, l_ctl = [], []
        for k in range(sl):
            tile, ik, go = self.s.tiles[k], instr_k[k], issue_k[k]
            is_dist = ik.opcode == Opcode.DISTRIBUTE
            is_tr = ik.opcode == Opcode.TRANSPOSE
            a_view = [stream(tile, ik.a, g, name=f"la{g}_sl{k}") for g in range(local_group)]
            mp = stream(tile, ik.b, name=f"lb_sl{k}")
            elems = Cat(Cat(a_view[g][j] for g in range(GROUP)) for j in range(lps))
            res = Signal(data.ArrayLayout(lane_vector(cfg), local_group), name=f"l_res_sl{k}")
            for j in range(lps):
                sel = mp[j][:lps_bits] if lps_bits else Const(0, 1)
                ok = mp[j] < lps
                el = elems.word_select(sel, elem_bits)
                for g in range(local_group):
                    tr = a_view[j][g] if g < lps else 0
                    dist = Mux(ok, el[8 * g:8 * g + 8], 0) if g < GROUP else 0
                    m.d.comb += res[g][j].eq(Mux(is_tr, tr, dist))
            mask = dtype_mask(ik, f"l_mask_sl{k}")
            lo = Signal(data.ArrayLayout(lane_vector(cfg), local_group), name=f"l1_res_sl{k}")
            lc = Signal(out_ctl, name=f"l1_ctl_sl{k}")
            m.d.sync += [lo.eq(res), lc.go.eq(go & (is_dist | is_tr)), lc.dst.eq(ik.dst),
                         lc.mask.eq(Mux(is_tr, lps - 1, mask))]
            l_out.append(delay(m, lo, self._lat_l - 2, name=f"l_out_sl{k}"))
            l_ctl.append(delay(m, lc, self._lat_l - 2, name=f"l_ctl_sl{k}"))

        # --- stream outputs: both pipelines, per stream ---------------------------------------
        x_off_bits = (GROUP - 1).bit_length()
        l_off_bits = max(1, (local_group - 1).bit_length())
        for k in range(sl):
            tile, xo, xc, lo, lc = self.s.tiles[k], x_out[k], x_ctl[k], l_out[k], l_ctl[k]
            x_sel = [Signal(lane_vector(cfg), name=f"x_byte{g}_sl{k}") for g in range(GROUP)]
            m.d.comb += [x_sel[g][j].eq(xo[j][8 * g:8 * g + 8])
                         for g in range(GROUP) for j in range(lps)]
            x_bytes = Cat(x_sel)
            for i in range(ns):
                x_hit = xc.go & (xc.dst.index <= i) & (i <= xc.dst.index + xc.mask)
                l_hit = lc.go & (lc.dst.index <= i) & (i <= lc.dst.index + lc.mask)
                x_off = (Const(i, _IDX_BITS) - xc.dst.index)[:x_off_bits]
                l_off = (Const(i, _IDX_BITS) - lc.dst.index)[:l_off_bits]
                x_byte = x_bytes.word_select(x_off, lps * 8)
                l_byte = lo.as_value().word_select(l_off, lps * 8)
                x_e, x_w = x_hit & ~xc.dst.west, x_hit & xc.dst.west
                l_e, l_w = l_hit & ~lc.dst.west, l_hit & lc.dst.west
                m.d.comb += [tile.e_we[i].eq(x_e | l_e), tile.w_we[i].eq(x_w | l_w),
                             tile.e_data[i].eq(Mux(x_e, x_byte, l_byte)),
                             tile.w_data[i].eq(Mux(x_w, x_byte, l_byte))]
        return m
