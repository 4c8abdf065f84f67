"""The OpenLPU chip top: the floorplan of a ChipConfig behind a 32-bit host bus.

:class:`Chip` instantiates one ICU per queue, a MEM tile per MEM slice and superlane, the VXM
ALU tiles, the SXMs and MXM planes, and the stream registers between them, and exposes only the
host bus of docs/architecture.md section 9 (addresses from :mod:`openlpu.hostmap`).

Superlane stagger: tile ``k`` of a MEM slice or of a VXM ALU receives its queue's instruction
through ``k`` registers, and the stream registers of superlane ``k`` are separate registers, so
superlane ``k`` repeats superlane 0's work ``k`` cycles later on its own lanes. MXM planes and
SXMs see every superlane and handle the stagger themselves.

Run control: ``CTRL.START`` in bus cycle ``c`` makes ``c + 3`` chip cycle 0
(:data:`openlpu.hostmap.START_TO_CYCLE0`): the command is registered, and the ICUs run one clock
ahead of the slices, so that everything they drive starts from a flip-flop. The run ends after
chip cycle ``D + superlanes - 2``, where ``D`` is the first cycle by which every queue has ended
(``END`` in cycle ``e`` counts ``e + 1``) and every issued instruction's latency has elapsed;
``CYCLES`` then equals the golden model's cycle count.
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Module,
    Mux,
    ResetInserter,
    ResetSignal,
    Signal,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from openlpu.config import ChipConfig, SliceKind
from openlpu.hostmap import (
    COUNTER_BASE,
    CTRL_CLEAR,
    CTRL_START,
    QUEUE_BASE,
    QUEUE_SHIFT,
    READ_LATENCY,
    REG,
    SRAM_BASE,
    START_TO_CYCLE0,
    HostMap,
)
from openlpu.isa import MEM_READ_OPS, MEM_WRITE_OPS, MXM_PRODUCT_OPS

from .icu import Icu
from .instruction import instruction_layout, latency_table, opcode_in
from .mem_tile import MemTile
from .mxm_plane import MxmPlane
from .streams import stream_bank
from .sxm import Sxm
from .vxm_alu import VxmAluTile

__all__ = ["CORE", "Chip"]

#: Instance name of the floorplan inside the chip top (the clock-domain wrapper, see
#: :meth:`Chip.elaborate`); tools that report per unit look one level below it.
CORE = "core"


def _at_least(value: int, floor: int, width: int) -> int:
    """``max(value, floor)`` as a thermometer code of ``width`` bits: bit ``i`` is set when the
    value is at least ``floor + 1 + i`` (so ``floor`` is 0, and the maximum of codes is their
    OR)."""
    return sum(1 << i for i in range(width) if value >= floor + 1 + i)


class Chip(wiring.Component):
    """The whole chip for one config.

    Ports
    -----
    bus_addr : In(32)
        Byte address (bits 1..0 ignored).
    bus_wdata : In(32)
        Write data.
    bus_we : In(1)
        Write strobe.
    bus_re : In(1)
        Read strobe.
    bus_rdata : Out(32)
        Read data, ``READ_LATENCY`` (2) cycles after ``bus_re``.
    bus_rvalid : Out(1)
        High in the cycle the data of a ``bus_re`` is on ``bus_rdata``.
    """

    def __init__(self, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        self.config = config
        self.hostmap = HostMap(config)
        super().__init__({
            "bus_addr": In(32), "bus_wdata": In(32), "bus_we": In(1), "bus_re": In(1),
            "bus_rdata": Out(32), "bus_rvalid": Out(1),
        })

    def elaborate(self, platform):
        # The floorplan runs in a local domain whose reset is ``rst`` delayed by one register.
        # Every register's next-state logic depends on its reset; with ``rst`` straight from
        # the input port, all of it sits on a combinational path from an input, which
        # Verilator re-evaluates at every input change (both clock edges), about half of its
        # run time. A registered reset is also what an FPGA wants (no fan-out of a pin to
        # every flip-flop). The core leaves reset one cycle after ``rst`` falls; at power-up
        # every register already holds its initial value, so the delay register starts at 0.
        m = Module()
        m.domains.core = core = ClockDomain("core", local=True)
        rst_q = Signal(reset_less=True)
        # a board's sync domain may be reset-less (ECP5: the GSR resets every register at
        # configuration); the core then only leaves its power-up state through START
        m.d.sync += rst_q.eq(ResetSignal("sync", allow_reset_less=True))
        m.d.comb += [core.clk.eq(ClockSignal("sync")), core.rst.eq(rst_q)]
        m.submodules[CORE] = DomainRenamer("core")(self._floorplan())
        return m

    def _floorplan(self) -> Module:  # noqa: C901 - one floorplan, read top to bottom
        m = Module()
        cfg = self.config
        hm = self.hostmap
        sl, lps, ns = cfg.superlanes, cfg.lanes_per_superlane, cfg.streams_per_direction
        queues = cfg.queues

        # --- run control ----------------------------------------------------------------------
        busy = Signal()
        done = Signal()
        deadlock = Signal()
        cycles = Signal(64)
        # D - cycles, D over the events of earlier cycles: see "end of run" below
        lat = latency_table(cfg)
        floor = 1 - sl
        rel_width = max(max(lat.values()) - 1, 1) - floor  # thermometer codes, see below
        d_rel = Signal(rel_width)
        # START and CLEAR are registered: the bus write in cycle c raises ``icu_start`` and
        # ``clear`` in cycle c + 1. Decoded combinationally they would put every unit's reset,
        # and so all of its next-state logic, on a path from the chip's input ports, which
        # Verilator then re-evaluates at every input change (both clock edges): 5x slower.
        #
        # The ICUs run one clock ahead of the slices, and everything they tell the chip is
        # registered once (``_ahead`` below): no unit's logic, counter or the end-of-run test
        # then starts from the issue decision of a queue's sequencer, which is the decode of
        # its current word. So the ICUs' cycle -1 is ``icu_start`` (bus cycle c + 1) and the
        # slices' cycle -1 is ``start`` (c + 2).
        assert START_TO_CYCLE0 == 3, "START is registered once, the ICUs are one clock ahead"
        icu_start = Signal()
        start = Signal()  # chip cycle -1
        clear = Signal()
        locked = Signal()  # the host may not write queues, SRAM or CTRL
        ctrl_write = self.bus_we & (self.bus_addr == REG["CTRL"]) & ~locked
        m.d.comb += locked.eq(busy | icu_start | start)
        m.d.sync += [
            icu_start.eq(ctrl_write & self.bus_wdata[CTRL_START.bit_length() - 1]),
            start.eq(icu_start),
            clear.eq(ctrl_write & self.bus_wdata[CTRL_CLEAR.bit_length() - 1]),
        ]
        with m.If(ctrl_write & self.bus_wdata[CTRL_START.bit_length() - 1]):
            m.d.sync += done.eq(0)  # so that no STATUS read after the write sees the old DONE

        # --- ICUs and superlane instruction chains --------------------------------------------
        icus = []
        for q in queues:
            icu = Icu(cfg)
            m.submodules[f"icu_{q.name}"] = icu
            icus.append(icu)
        notify_any = Signal()
        m.d.comb += notify_any.eq(Cat(icu.notify for icu in icus).any())
        for icu in icus:
            m.d.comb += [icu.start.eq(icu_start), icu.notify_in.eq(notify_any)]

        def _ahead(value, name: str):
            """``value`` of an ICU's cycle c, in the slices' cycle c (one register)."""
            reg = Signal.like(value, name=name)
            m.d.sync += reg.eq(value)
            return reg

        issue_at = [_ahead(icu.issue, f"{q.name}_issue")
                    for q, icu in zip(queues, icus, strict=True)]
        instr_at = [_ahead(icu.instr, f"{q.name}_instr")
                    for q, icu in zip(queues, icus, strict=True)]

        chains: dict[int, list] = {}

        def tile_instr(qi: int, k: int):
            if qi not in chains:
                chains[qi] = [(issue_at[qi], instr_at[qi])]
            while len(chains[qi]) <= k:
                prev_issue, prev_instr = chains[qi][-1]
                j = len(chains[qi])
                di = Signal(name=f"q{qi}_issue_sl{j}")
                dw = Signal(instruction_layout(), name=f"q{qi}_instr_sl{j}")
                m.d.sync += [di.eq(prev_issue), dw.eq(prev_instr)]
                chains[qi].append((di, dw))
            return chains[qi][k]

        # --- stream registers -------------------------------------------------------------------
        bank = stream_bank(cfg)
        east = [[Signal(bank, name=f"e_sl{k}_p{p}") for p in range(cfg.positions)]
                for k in range(sl)]
        west = [[Signal(bank, name=f"w_sl{k}_p{p}") for p in range(cfg.positions)]
                for k in range(sl)]
        writers: dict[tuple[int, int], list] = {}  # (superlane, position) -> stream ports

        def attach(port, k: int, p: int):
            m.d.comb += [port.e.eq(east[k][p]), port.w.eq(west[k][p])]
            writers.setdefault((k, p), []).append(port)

        # --- slices ---------------------------------------------------------------------------
        queue_of = {q.name: q.index for q in queues}
        mem_tiles: dict[int, list[MemTile]] = {}
        mxm_units, sxm_units = {}, {}
        for s in cfg.slices:
            p = s.position
            if s.kind is SliceKind.MEM:
                qi = queue_of[s.name]
                tiles = []
                for k in range(sl):
                    tile = ResetInserter(start)(MemTile(cfg))
                    m.submodules[f"{s.name}_sl{k}"] = tile
                    issue, instr = tile_instr(qi, k)
                    m.d.comb += [tile.issue.eq(issue), tile.instr.eq(instr)]
                    attach(tile.s, k, p)
                    tiles.append(tile)
                mem_tiles[s.index] = tiles
            elif s.kind is SliceKind.VXM:
                for alu in range(cfg.vxm_alus_per_lane):
                    qi = queue_of[f"vxm{alu}"]
                    for k in range(sl):
                        tile = ResetInserter(start)(VxmAluTile(
                            cfg, special=cfg.vxm_alu_has_special(alu)))
                        m.submodules[f"vxm{alu}_sl{k}"] = tile
                        issue, instr = tile_instr(qi, k)
                        m.d.comb += [tile.issue.eq(issue), tile.instr.eq(instr)]
                        attach(tile.s, k, p)
            else:
                unit = ResetInserter(start)(MxmPlane(cfg) if s.kind is SliceKind.MXM
                                            else Sxm(cfg))
                m.submodules[s.name] = unit
                qi = queue_of[s.name]
                m.d.comb += [unit.issue.eq(issue_at[qi]), unit.instr.eq(instr_at[qi])]
                for k in range(sl):
                    attach(unit.s.tiles[k], k, p)
                (mxm_units if s.kind is SliceKind.MXM else sxm_units)[s.index] = unit

        # register update: the slice at a position overwrites, else the value moves on
        for k in range(sl):
            for p in range(cfg.positions):
                ports = writers.get((k, p), [])
                for i in range(ns):
                    for regs, we_name, data_name, upstream in (
                            (east, "e_we", "e_data", p - 1), (west, "w_we", "w_data", p + 1)):
                        nxt = (regs[k][upstream][i] if 0 <= upstream < cfg.positions
                               else Const(0, 8 * lps))
                        for port in ports:  # later ports win; two writers = invalid program
                            nxt = Mux(getattr(port, we_name)[i], getattr(port, data_name)[i],
                                      nxt)
                        m.d.sync += regs[k][p][i].eq(nxt)

        # --- end of run -----------------------------------------------------------------------
        # D is the first cycle by which every issued instruction's latency has elapsed (an
        # issue in cycle c counts c + latency, a NOTIFY c + 1, the last END c + 1). It is kept
        # relative to the next cycle, D - (cycles + 1), and clipped below at 1 - superlanes:
        # both tests only ask whether it is <= 1 - superlanes or <= 0. Absolute 64-bit event
        # times put a 64-bit adder per queue and a 64-bit maximum tree on the critical path (a
        # one-lane chip: 20 MHz on an ECP5, 31 MHz relative). The relative values are kept as
        # thermometer codes (_at_least): the maximum over the queues is then an OR, aging by a
        # cycle a shift, and both tests look at one bit or at all of them; a tree of binary
        # comparisons was the longest path of a one-lane chip on an ECP5 again at 60 MHz.
        #
        # Each queue's event is computed from its ICU's outputs a clock ahead and registered,
        # so the issue logic and the opcode's latency lookup end at a flip-flop and the
        # maximum starts from one (as do the ended and parked flags).
        notify_ev = _at_least(0, floor, rel_width)  # a NOTIFY (and the last END): c + 1
        events = []
        for q, icu in zip(queues, icus, strict=True):
            # Bit by bit, as a test of the opcode against the opcodes that set it: a Switch of
            # constants would be a ROM, and yosys would put it with the register into a block
            # RAM, whose clock-to-output time then starts the path into BUSY.
            unknown = ~opcode_in(icu.instr.opcode, lat)  # not an ISA opcode: latency 0
            op_ev = Signal(rel_width, name=f"{q.name}_op_event")
            for i in range(rel_width):
                threshold = floor + 1 + i
                ops = {op for op, value in lat.items() if value - 1 >= threshold}
                m.d.comb += op_ev[i].eq((opcode_in(icu.instr.opcode, ops) if ops else 0)
                                        | (unknown if -1 >= threshold else 0))
            events.append(_ahead(Mux(icu.issue, op_ev, Mux(icu.notify, notify_ev, 0)),
                                 f"{q.name}_event"))
        ended_now = _ahead(Cat(icu.ended for icu in icus).all(), "ended_now")
        parked_or_ended = _ahead(Cat(icu.ended | icu.parked for icu in icus).all(),
                                 "parked_or_ended")
        any_parked = _ahead(Cat(icu.parked for icu in icus).any(), "any_parked")
        notify_now = _ahead(notify_any, "notify_now")
        end_event = Signal(rel_width)
        ended_prev = Signal()
        m.d.sync += ended_prev.eq(ended_now)
        m.d.comb += end_event.eq(Mux(ended_now & ~ended_prev, notify_ev, 0))
        aged = d_rel >> 1  # one cycle later: every threshold one lower
        d_now = Signal(rel_width)  # D - (cycles + 1), clipped
        m.d.comb += d_now.eq(functools.reduce(operator.or_, [aged, end_event] + events))
        positive = d_now[-floor]  # D - (cycles + 1) >= 1: the bit of threshold 1
        with m.If(start):
            m.d.sync += [busy.eq(1), done.eq(0), cycles.eq(0),
                         d_rel.eq(_at_least(0, floor, rel_width)), ended_prev.eq(0)]
        with m.Elif(busy):
            m.d.sync += [cycles.eq(cycles + 1), d_rel.eq(d_now)]
            with m.If(ended_now & (d_now == 0)):
                m.d.sync += [busy.eq(0), done.eq(1)]
            with m.Elif(parked_or_ended & any_parked & ~notify_now & ~positive):
                m.d.sync += [busy.eq(0), deadlock.eq(1)]

        # --- performance counters (cleared by CLEAR and rst only) -------------------------------
        counters = []

        def counter(name: str, inc):
            c = Signal(32, name=name)
            with m.If(clear):
                m.d.sync += c.eq(0)
            with m.Elif(inc & busy & (c != 0xFFFF_FFFF)):
                m.d.sync += c.eq(c + 1)
            counters.append(c)

        if cfg.perf_counters:
            for q in queues:
                counter(f"issued_{q.name}", issue_at[q.index])
            mem_queues = [queue_of[s.name] for s in cfg.mem_slice_list]
            for qi in mem_queues:
                op = instr_at[qi].opcode
                counter(f"reads_{queues[qi].name}", issue_at[qi] & opcode_in(op, MEM_READ_OPS))
            for qi in mem_queues:
                op = instr_at[qi].opcode
                counter(f"writes_{queues[qi].name}",
                        issue_at[qi] & opcode_in(op, MEM_WRITE_OPS))
            for plane in range(cfg.mxm_planes):
                qi = queue_of[f"mxm{plane}"]
                counter(f"abc_mxm{plane}",
                        issue_at[qi] & opcode_in(instr_at[qi].opcode, MXM_PRODUCT_OPS))
        assert len(counters) == len(hm.counter_names)

        # --- host bus: writes -------------------------------------------------------------------
        addr = self.bus_addr
        in_queue = (addr >= QUEUE_BASE) & (addr < SRAM_BASE)
        in_sram = addr >= SRAM_BASE
        q_index = (addr - QUEUE_BASE) >> QUEUE_SHIFT
        q_word = (addr & ((1 << QUEUE_SHIFT) - 1)) >> 3
        staging = Signal(32)
        with m.If(self.bus_we & in_queue & ~locked & ~addr[2]):
            m.d.sync += staging.eq(self.bus_wdata)
        for qi, icu in enumerate(icus):
            selected = in_queue & ~locked & (q_index == qi) & (q_word < cfg.queue_depth)
            m.d.comb += [
                icu.wr_en.eq(self.bus_we & addr[2] & selected),
                icu.wr_addr.eq(q_word),
                icu.wr_data.eq(Cat(staging, self.bus_wdata)),
                icu.rd_en.eq(self.bus_re & selected),
                icu.rd_addr.eq(q_word),
            ]

        lp_bits = hm.lanes_padded.bit_length() - 1
        as_bits = cfg.address_space.bit_length() - 1
        rel = addr - SRAM_BASE
        word_index = rel >> lp_bits
        s_mem = word_index >> as_bits
        s_addr = word_index & (cfg.address_space - 1)
        s_group = (rel & (hm.lanes_padded - 1)) >> 2
        for mi, tiles in mem_tiles.items():
            for k, tile in enumerate(tiles):
                m.d.comb += tile.h_addr.eq(s_addr)
                for lane in range(lps):
                    g = k * lps + lane
                    m.d.comb += [
                        tile.h_wmask[lane].eq(self.bus_we & in_sram & ~locked & (s_mem == mi)
                                              & (s_group == g // 4)),
                        tile.h_wdata[lane].eq(self.bus_wdata.word_select(g % 4, 8)),
                    ]
                m.d.comb += tile.h_we.eq(self.bus_we & in_sram & ~locked & (s_mem == mi))

        # --- host bus: reads --------------------------------------------------------------------
        reg_value = Signal(32)
        words = hm.config_words
        with m.Switch(addr):
            for name in ("ID", "VERSION", "CONFIG_HASH", "CONFIG0", "CONFIG1", "CONFIG2",
                         "NCOUNTERS"):
                with m.Case(REG[name]):
                    m.d.comb += reg_value.eq(words[name])
            with m.Case(REG["STATUS"]):
                m.d.comb += reg_value.eq(Cat(busy, done, deadlock))
            with m.Case(REG["CYCLES_LO"]):
                m.d.comb += reg_value.eq(cycles[:32])
            with m.Case(REG["CYCLES_HI"]):
                m.d.comb += reg_value.eq(cycles[32:])
            for i, c in enumerate(counters):
                with m.Case(COUNTER_BASE + 4 * i):
                    m.d.comb += reg_value.eq(c)
        r_reg = Signal(32)
        r_kind = Signal(2)  # 0 register, 1 queue, 2 SRAM
        r_mem = Signal(range(max(cfg.mem_slices, 2)))
        r_group = Signal(range(max(hm.lanes_padded // 4, 2)))
        r_idle = Signal()
        r_queue = Signal(range(max(len(icus), 2)))
        r_high = Signal()
        r_valid = Signal()
        m.d.sync += [
            r_queue.eq(q_index),
            r_high.eq(addr[2]),
            r_valid.eq(self.bus_re),
            r_reg.eq(reg_value),
            r_kind.eq(Mux(in_sram, 2, Mux(in_queue, 1, 0))),
            r_mem.eq(s_mem),
            r_group.eq(s_group),
            r_idle.eq(~locked),
        ]
        sram_word = Signal(32)
        with m.Switch(r_mem):
            for mi, tiles in mem_tiles.items():
                with m.Case(mi):
                    with m.Switch(r_group):
                        for grp in range(hm.lanes_padded // 4):
                            with m.Case(grp):
                                parts = []
                                for b in range(4):
                                    g = 4 * grp + b
                                    parts.append(tiles[g // lps].h_rdata[g % lps]
                                                 if g < cfg.lanes else Const(0, 8))
                                m.d.comb += sram_word.eq(Cat(*parts))
        # The choice is registered once more (READ_LATENCY = 2): a queue word comes straight
        # from its block RAM, whose clock-to-output time with this choice after it was the
        # longest path of a one-lane chip on an ECP5.
        assert READ_LATENCY == 2, "the read data is registered twice"
        rdata = Signal(32)
        m.d.sync += [self.bus_rdata.eq(rdata), self.bus_rvalid.eq(r_valid)]
        queue_word = Signal(64)
        with m.Switch(r_queue):
            for qi, icu in enumerate(icus):
                with m.Case(qi):
                    m.d.comb += queue_word.eq(icu.rd_data)
        with m.Switch(r_kind):
            with m.Case(0):
                m.d.comb += rdata.eq(r_reg)
            with m.Case(1):
                m.d.comb += rdata.eq(Mux(r_idle, Mux(r_high, queue_word[32:], queue_word[:32]),
                                         0))
            with m.Case(2):
                m.d.comb += rdata.eq(Mux(r_idle, sram_word, 0))
        return m
