"""One MEM slice's SRAM in one superlane tile: READ, WRITE, RDWR, GATHER, SCATTER, a host port.

The chip top instantiates one :class:`MemTile` per MEM slice per superlane and gives the tile of
superlane ``k`` its slice's instruction ``k`` cycles late, so a tile only ever works in its own
tile time on its own ``lanes_per_superlane`` lanes (docs/architecture.md, sections 4 and 7).

Storage is one memory per lane of ``2 * mem_words_per_bank`` bytes, addressed by the full MEM
address (bank bit on top of the offset), with one synchronous read port and one write port: one
true-dual-port block RAM per lane on an FPGA. One memory per lane because ``GATHER`` and
``SCATTER`` give every lane its own word offset. The architecture guarantees at most one bank
read (in the issue cycle) and one bank write (in the cycle after issue) per slice per cycle, in
different banks, so the two ports never collide in a valid program. ``RDWR`` uses both: the
read port for ``addr`` in ``t``, the write port for ``waddr`` in ``t + 1``.

Pipeline (``t`` = issue cycle, ``L`` = ``latency(READ)`` = ``latency(GATHER)``)::

    t      decode; read the stream operands a / b at this position; per-lane offset
           (offset(addr) + map_l) mod W; READ/GATHER: address to the read ports;
           WRITE/SCATTER: register write enable, per-lane addresses and stream a's bytes
    t+1    WRITE/SCATTER: write ports enabled (visible to reads issued from t+2);
           READ/GATHER: read data out of the ports, then L-2 more registers
    t+L-1  READ/GATHER: drive *_we[dst] and the data, so the value is present in t+L
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from openlpu.config import ChipConfig
from openlpu.isa import MEM_READ_OPS, MEM_WRITE_OPS, Opcode, latency

from .instruction import instruction_layout, opcode_in, stream_code_layout
from .streams import StreamTileSignature, lane_vector

__all__ = ["MemTile"]

#: Width of the performance counters (saturating).
COUNTER_BITS = 32


class MemTile(wiring.Component):
    """The SRAM of one MEM slice in one superlane tile.

    Parameters
    ----------
    config : ChipConfig
        The chip; the tile has ``config.lanes_per_superlane`` lanes of
        ``config.address_space`` bytes each.

    Members
    -------
    issue : In(1)
        An instruction is presented this cycle.
    instr : In(instruction_layout())
        The instruction (a MEM opcode: ``READ``, ``WRITE``, ``RDWR``, ``GATHER``, ``SCATTER``;
        anything else is ignored), valid when ``issue`` is 1.
    s : Out(StreamTileSignature(config))
        The stream registers at this slice's position: ``s.e``/``s.w`` in (read in the issue
        cycle), ``s.e_we``/``s.w_we``/``s.e_data``/``s.w_data`` out (one stream is written in
        cycle ``t + latency - 1`` by a ``READ``/``GATHER``; every ``*_data`` stream carries the
        same value, only the write enables select the stream).
    h_addr : In(range(config.address_space))
        Host port address (full address: bank bit at ``config.offset_bits``).
    h_we : In(1)
        Host write strobe: the word is written at the clock edge that ends the cycle.
    h_wmask : In(config.lanes_per_superlane)
        Per-lane host write enables.
    h_wdata : In(lane_vector(config))
        Host write data.
    h_rdata : Out(lane_vector(config))
        The word at the ``h_addr`` presented in the previous cycle (synchronous read). Undefined
        in the cycle after a ``READ``/``GATHER`` issue (the datapath owns the read port); a host
        write in the cycle a ``WRITE``/``SCATTER`` writes is ignored (the datapath owns the
        write port). The host port is meant for use while the chip is idle.
    reads : Out(32)
        ``READ`` + ``GATHER`` + ``RDWR`` issues since the last ``clear``, saturating at
        ``2**32 - 1``.
    writes : Out(32)
        ``WRITE`` + ``SCATTER`` + ``RDWR`` issues since the last ``clear``, saturating.
    clear : In(1)
        Clear both counters (an issue in the same cycle is not counted).

    Raises
    ------
    TypeError
        ``config`` is not a :class:`~openlpu.config.ChipConfig`.
    ValueError
        ``latency(READ)`` and ``latency(GATHER)`` differ, or are below 2 (the synchronous read
        port needs one cycle and the stream register one more).
    """

    def __init__(self, config: ChipConfig):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        read_lat = latency(Opcode.READ, config)
        gather_lat = latency(Opcode.GATHER, config)
        if read_lat != gather_lat:
            raise ValueError(f"MemTile needs latency(READ) == latency(GATHER), not "
                             f"{read_lat} and {gather_lat}")
        if read_lat < 2:
            raise ValueError(f"MemTile needs latency(READ) >= 2 (synchronous read, then the "
                             f"stream register), not {read_lat}")
        self._config = config
        self._read_latency = read_lat
        lanes = config.lanes_per_superlane
        super().__init__({
            "issue": In(1),
            "instr": In(instruction_layout()),
            "s": Out(StreamTileSignature(config)),
            "h_addr": In(range(config.address_space)),
            "h_we": In(1),
            "h_wmask": In(lanes),
            "h_wdata": In(lane_vector(config)),
            "h_rdata": Out(lane_vector(config)),
            "reads": Out(COUNTER_BITS),
            "writes": Out(COUNTER_BITS),
            "clear": In(1),
        })

    @property
    def config(self) -> ChipConfig:
        """The chip configuration."""
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        lanes = cfg.lanes_per_superlane
        streams = cfg.streams_per_direction
        obits = cfg.offset_bits
        abits = obits + 1  # bank bit on top
        m = Module()

        # --- t: decode ----------------------------------------------------------------------
        instr = self.instr
        op = instr.opcode
        d_read = Signal()  # READ or GATHER: read port used now, stream written at t + L
        d_write = Signal()  # WRITE or SCATTER: write port used in t + 1
        d_mapped = Signal()  # GATHER or SCATTER: per-lane offsets from the map group b
        d_rdwr = op == Opcode.RDWR  # a READ of addr and a WRITE of waddr
        m.d.comb += [
            d_read.eq(self.issue & opcode_in(op, MEM_READ_OPS)),
            d_write.eq(self.issue & opcode_in(op, MEM_WRITE_OPS)),
            d_mapped.eq((op == Opcode.GATHER) | (op == Opcode.SCATTER)),
        ]
        d_bank = instr.addr[obits]
        d_offset = instr.addr[:obits]

        def stream(code):
            """The lane vector of the stream ``code`` names at this position (mux on west)."""
            v = Signal(lane_vector(cfg))
            with m.If(code.west):
                m.d.comb += v.eq(self.s.w[code.index])
            with m.Else():
                m.d.comb += v.eq(self.s.e[code.index])
            return v

        d_a = stream(instr.a)
        # The int16 map group b: stream b holds the low bytes, b + 1 the high bytes. b is
        # aligned to 2 in a valid program, so b + 1 == b | 1 (which never leaves the bank).
        d_map_lo = stream(instr.b)
        hi_code = Signal(stream_code_layout())
        m.d.comb += [
            hi_code.west.eq(instr.b.west),
            hi_code.index.eq(instr.b.index | 1),
        ]
        d_map_hi = stream(hi_code)

        # Per-lane word address: (offset + (map_l & 0xFFFF)) mod W in the bank of addr; only
        # the low offset_bits bits of the map matter since W is a power of two <= 2**15.
        d_addr = []
        for lane in range(lanes):
            map16 = Cat(d_map_lo[lane], d_map_hi[lane])
            off = Signal(obits, name=f"d_off{lane}")
            with m.If(d_mapped):
                m.d.comb += off.eq(d_offset + map16[:obits])
            with m.Else():
                m.d.comb += off.eq(d_offset)
            a = Signal(abits, name=f"d_addr{lane}")
            m.d.comb += a.eq(Cat(off, d_bank))
            d_addr.append(a)

        # --- t -> t+1: write stage registers --------------------------------------------------
        w_en = Signal()
        w_addr = [Signal(abits, name=f"w_addr{lane}") for lane in range(lanes)]
        w_data = Signal(lane_vector(cfg))
        m.d.sync += [w_en.eq(d_write), w_data.eq(d_a)]
        for lane in range(lanes):
            with m.If(d_rdwr):
                m.d.sync += w_addr[lane].eq(instr.waddr[:abits])
            with m.Else():
                m.d.sync += w_addr[lane].eq(d_addr[lane])

        # --- memories: one per lane -------------------------------------------------------------
        r_data = Signal(lane_vector(cfg))  # read port outputs (cycle t + 1)
        for lane in range(lanes):
            mem = Memory(shape=unsigned(8), depth=cfg.address_space, init=[])
            m.submodules[f"lane{lane}"] = mem
            rp = mem.read_port()
            wp = mem.write_port()
            with m.If(d_read):
                m.d.comb += rp.addr.eq(d_addr[lane])
            with m.Else():
                m.d.comb += rp.addr.eq(self.h_addr)
            m.d.comb += [
                rp.en.eq(1),
                r_data[lane].eq(rp.data),
                self.h_rdata[lane].eq(rp.data),
            ]
            with m.If(w_en):
                m.d.comb += [
                    wp.en.eq(1),
                    wp.addr.eq(w_addr[lane]),
                    wp.data.eq(w_data[lane]),
                ]
            with m.Else():
                m.d.comb += [
                    wp.en.eq(self.h_we & self.h_wmask[lane]),
                    wp.addr.eq(self.h_addr),
                    wp.data.eq(self.h_wdata[lane]),
                ]

        # --- t+1 .. t+L-1: read result pipeline -----------------------------------------------
        # r_valid[k] / r_dst[k]: a READ/GATHER issued in cycle t is in stage k during t + k.
        stages = self._read_latency - 1
        r_valid = [Signal(name=f"r_valid{k}") for k in range(1, stages + 1)]
        r_dst = [Signal(stream_code_layout(), name=f"r_dst{k}") for k in range(1, stages + 1)]
        m.d.sync += [r_valid[0].eq(d_read), r_dst[0].eq(instr.dst)]
        for k in range(1, stages):
            m.d.sync += [r_valid[k].eq(r_valid[k - 1]), r_dst[k].eq(r_dst[k - 1])]
        out_data = r_data
        for k in range(2, stages + 1):
            delayed = Signal(lane_vector(cfg), name=f"r_data{k}")
            m.d.sync += delayed.eq(out_data)
            out_data = delayed
        out_valid, out_dst = r_valid[-1], r_dst[-1]
        for i in range(streams):
            hit = out_valid & (out_dst.index == i)
            m.d.comb += [
                self.s.e_we[i].eq(hit & ~out_dst.west),
                self.s.w_we[i].eq(hit & out_dst.west),
                self.s.e_data[i].eq(out_data),
                self.s.w_data[i].eq(out_data),
            ]

        # --- counters ---------------------------------------------------------------------------
        for counter, event in ((self.reads, d_read), (self.writes, d_write)):
            with m.If(self.clear):
                m.d.sync += counter.eq(0)
            with m.Elif(event & (counter != (1 << COUNTER_BITS) - 1)):
                m.d.sync += counter.eq(counter + 1)

        return m
