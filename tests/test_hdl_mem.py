# amaranth: UnusedElaboratable=no
"""Tests of hdl/mem_tile.py: the MEM tile (one MEM slice's SRAM in one superlane tile), with
READ, WRITE, RDWR, GATHER and SCATTER.

The tile runs in Amaranth's simulator with stream inputs driven by the test. Every stream write
(which register, which cycle, which bytes) and the final SRAM contents (read back through the
host port) are compared with :class:`RefMemTile`, a NumPy model of the MEM semantics written
from docs/architecture.md sections 4 and 7 (independent of the RTL). The reference model is
itself checked against the golden model (``sim_models.golden``) by a program built with
``firmware.schedule.ScheduleBuilder``, and the RTL is run on exactly the stream values that the
golden model shows at the slice's position in that program.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from firmware.program import MemInit, Program
from firmware.schedule import ScheduleBuilder
from hdl.mem_tile import MemTile
from openlpu.config import PRESETS, ChipConfig
from openlpu.isa import Direction, Instruction, Opcode, encode, latency, stream_code
from sim_models.golden import GoldenModel

PRESET_NAMES = ["small", "ecp5", "sim"]
READS = (Opcode.READ, Opcode.GATHER, Opcode.RDWR)
WRITES = (Opcode.WRITE, Opcode.SCATTER, Opcode.RDWR)


# --- reference model ---------------------------------------------------------------------------


@dataclass
class StreamWrite:
    """A stream register write the tile must drive: enables and data in ``cycle``."""

    cycle: int
    west: int
    index: int
    data: np.ndarray  # uint8[lanes_per_superlane]


class RefMemTile:
    """NumPy model of one MEM tile, from the spec (not the RTL).

    ``mem[addr, lane]`` with ``addr`` the full address (bank bit above the offset bits). An
    instruction issued in cycle ``t`` reads its streams and (READ/GATHER) the SRAM in ``t``;
    a WRITE/SCATTER writes the SRAM at the end of ``t + 1`` (visible to reads from ``t + 2``);
    a READ/GATHER's value is present in ``t + latency``, so the tile drives it in
    ``t + latency - 1``.
    """

    def __init__(self, config: ChipConfig, mem: np.ndarray | None = None):
        self.config = config
        self.lanes = config.lanes_per_superlane
        self.words = config.mem_words_per_bank
        self.mem = (np.zeros((config.address_space, self.lanes), np.uint8) if mem is None
                    else mem.copy())
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (addrs, data) of t - 1
        self.writes: list[StreamWrite] = []
        self.reads = 0
        self.write_count = 0

    @staticmethod
    def _stream(code: int, e: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (w if code >> 5 else e)[code & 31]

    def _addrs(self, instr: Instruction, e, w, field: str = "addr") -> np.ndarray:
        bank, off = divmod(getattr(instr, field), self.words)
        if instr.op in (Opcode.GATHER, Opcode.SCATTER):
            lo = self._stream(instr.b, e, w).astype(np.int64)
            hi = self._stream(instr.b + 1, e, w).astype(np.int64)
            offs = (off + ((hi << 8 | lo) & 0xFFFF)) % self.words
        else:
            offs = np.full(self.lanes, off, np.int64)
        return bank * self.words + offs

    def step(self, t: int, instr: Instruction | None, e: np.ndarray, w: np.ndarray) -> None:
        """Cycle ``t``: issue ``instr`` (or nothing) with stream registers ``e``/``w``
        (``uint8[streams][lanes]``), then end the cycle (commit the write issued in t - 1)."""
        lane = np.arange(self.lanes)
        new_pending = []
        if instr is not None and instr.op in READS:
            value = self.mem[self._addrs(instr, e, w), lane].copy()
            lat = latency(instr.op, self.config)
            self.writes.append(StreamWrite(t + lat - 1, instr.dst >> 5, instr.dst & 31, value))
            self.reads += 1
        if instr is not None and instr.op in WRITES:
            field = "waddr" if instr.op is Opcode.RDWR else "addr"
            new_pending.append((self._addrs(instr, e, w, field),
                                self._stream(instr.a, e, w).copy()))
            self.write_count += 1
        for addrs, data in self._pending:
            self.mem[addrs, lane] = data
        self._pending = new_pending

    def flush(self) -> None:
        """Commit any write still in flight."""
        lane = np.arange(self.lanes)
        for addrs, data in self._pending:
            self.mem[addrs, lane] = data
        self._pending = []


# --- simulation helpers --------------------------------------------------------------------------


def pack(arr: np.ndarray) -> int:
    """A uint8 array, element 0 in the lowest byte, as one integer (ArrayLayout order)."""
    return int.from_bytes(np.ascontiguousarray(arr, dtype=np.uint8).tobytes(), "little")


def unpack(value: int, shape) -> np.ndarray:
    n = int(np.prod(shape))
    return np.frombuffer(value.to_bytes(n, "little"), np.uint8).reshape(shape).copy()


class TileBench:
    """Drives a :class:`MemTile` cycle by cycle from an async testbench."""

    def __init__(self, config: ChipConfig, dut: MemTile, ctx):
        self.config, self.dut, self.ctx = config, dut, ctx
        self.lanes = config.lanes_per_superlane
        self.streams = config.streams_per_direction

    def idle(self, junk: int = 0) -> None:
        """No issue this cycle (``junk`` on the instruction bus must be ignored)."""
        self.ctx.set(self.dut.issue, 0)
        self.ctx.set(self.dut.instr.as_value(), junk)

    def issue(self, instr: Instruction) -> None:
        self.ctx.set(self.dut.issue, 1)
        self.ctx.set(self.dut.instr.as_value(), encode(instr))

    def streams_in(self, e: np.ndarray, w: np.ndarray) -> None:
        self.ctx.set(self.dut.s.e.as_value(), pack(e))
        self.ctx.set(self.dut.s.w.as_value(), pack(w))

    def stream_out(self) -> tuple[int, int, np.ndarray, np.ndarray]:
        """``(e_we, w_we, e_data, w_data)`` driven this cycle."""
        s, shape = self.dut.s, (self.streams, self.lanes)
        return (self.ctx.get(s.e_we), self.ctx.get(s.w_we),
                unpack(self.ctx.get(s.e_data.as_value()), shape),
                unpack(self.ctx.get(s.w_data.as_value()), shape))

    async def host_write(self, addr: int, data: np.ndarray, mask: int | None = None) -> None:
        dut = self.dut
        self.ctx.set(dut.h_addr, addr)
        self.ctx.set(dut.h_we, 1)
        self.ctx.set(dut.h_wmask, (1 << self.lanes) - 1 if mask is None else mask)
        self.ctx.set(dut.h_wdata.as_value(), pack(data))
        await self.ctx.tick()
        self.ctx.set(dut.h_we, 0)

    async def host_fill(self, mem: np.ndarray, addrs=None) -> None:
        for addr in range(len(mem)) if addrs is None else addrs:
            await self.host_write(addr, mem[addr])

    async def host_dump(self, addrs) -> dict[int, np.ndarray]:
        """Read ``addrs`` back through the host port (one per cycle, pipelined)."""
        dut, ctx, out = self.dut, self.ctx, {}
        ctx.set(dut.h_we, 0)
        ctx.set(dut.issue, 0)
        for addr in addrs:
            ctx.set(dut.h_addr, addr)
            await ctx.tick()  # the read port registers h_addr at this edge
            out[addr] = unpack(ctx.get(dut.h_rdata.as_value()), (self.lanes,))
        return out


def run_sim(dut: MemTile, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def check_writes(config: ChipConfig, got: list, expected: list[StreamWrite]) -> None:
    """``got[t] = (e_we, w_we, e_data, w_data)``: exactly the expected writes, nothing else."""
    by_cycle = {}
    for wr in expected:
        assert wr.cycle not in by_cycle, "reference made two writes in one cycle"
        by_cycle[wr.cycle] = wr
    assert max(by_cycle, default=-1) < len(got), "simulation too short for the last write"
    for t, (e_we, w_we, e_data, w_data) in enumerate(got):
        wr = by_cycle.get(t)
        if wr is None:
            assert (e_we, w_we) == (0, 0), f"cycle {t}: unexpected write e={e_we:#x} w={w_we:#x}"
            continue
        want_e = 0 if wr.west else 1 << wr.index
        want_w = 1 << wr.index if wr.west else 0
        assert (e_we, w_we) == (want_e, want_w), (
            f"cycle {t}: write enables e={e_we:#x} w={w_we:#x}, expected e={want_e:#x} "
            f"w={want_w:#x}")
        data = (w_data if wr.west else e_data)[wr.index]
        np.testing.assert_array_equal(data, wr.data, err_msg=f"cycle {t}: stream data")


# --- random programs -----------------------------------------------------------------------------


def random_instr(rng, config: ChipConfig, prev_write_bank: int | None, pool: list[int]):
    """A random MEM instruction; never a bank conflict with a write issued the cycle before."""
    streams, words = config.streams_per_direction, config.mem_words_per_bank
    op = [Opcode.READ, Opcode.WRITE, Opcode.GATHER, Opcode.SCATTER, Opcode.RDWR][rng.integers(5)]
    addr = int(pool[rng.integers(len(pool))])
    if op in READS and prev_write_bank is not None and addr // words == prev_write_bank:
        addr ^= words  # same offset, other bank

    def code(group=1):
        return stream_code(int(rng.integers(2)), int(rng.integers(streams // group)) * group)

    fields = {"addr": addr}
    if op is Opcode.RDWR:  # sometimes the word it reads, else another from the pool
        fields["waddr"] = addr if rng.random() < 0.3 else int(pool[rng.integers(len(pool))])
    if op in READS:
        fields["dst"] = code()
    if op in WRITES:
        fields["a"] = code()
    if op in (Opcode.GATHER, Opcode.SCATTER):
        fields["b"] = code(2)
    return Instruction(op, **fields)


def random_maps(rng, config: ChipConfig, e: np.ndarray, w: np.ndarray) -> None:
    """Make the int16 values of some stream pairs small (so gathers hit written words),
    leave others fully random (wrap-around); modifies ``e``/``w`` in place."""
    lanes = config.lanes_per_superlane
    for bank in (e, w):
        for base in range(0, config.streams_per_direction, 2):
            kind = rng.integers(3)
            if kind == 0:
                m = rng.integers(0, 8, lanes)
            elif kind == 1:
                m = config.mem_words_per_bank - rng.integers(1, 8, lanes)  # wraps past W-1
            else:
                continue
            m = m.astype(np.uint16)
            bank[base] = (m & 0xFF).astype(np.uint8)
            bank[base + 1] = (m >> 8).astype(np.uint8)


def edge_pool(config: ChipConfig, rng, extra: int = 6) -> list[int]:
    """Addresses: first and last word of each bank plus a few random ones."""
    words = config.mem_words_per_bank
    pool = [0, words - 1, words, 2 * words - 1, 1, words + 1]
    pool += [int(x) for x in rng.integers(0, 2 * words, extra)]
    return pool


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_host_write_read_with_masks(preset):
    """The host writes words with per-lane masks and reads them back one cycle later."""
    config = PRESETS[preset]
    lanes, words = config.lanes_per_superlane, config.mem_words_per_bank
    rng = np.random.default_rng(1)
    dut = MemTile(config)
    addrs = [0, words - 1, words, 2 * words - 1, 5, words + 5]

    async def bench(ctx):
        tb = TileBench(config, dut, ctx)
        tb.idle()
        ref = {}
        for a in addrs:
            ref[a] = rng.integers(0, 256, lanes, dtype=np.uint8)
            await tb.host_write(a, ref[a])
        # Masked overwrite: lanes with a 0 mask bit keep the old byte.
        for a in addrs:
            mask = int(rng.integers(0, 1 << lanes))
            new = rng.integers(0, 256, lanes, dtype=np.uint8)
            await tb.host_write(a, new, mask)
            for lane in range(lanes):
                if mask >> lane & 1:
                    ref[a][lane] = new[lane]
        got = await tb.host_dump(addrs + [2, words + 2])
        for a in addrs:
            np.testing.assert_array_equal(got[a], ref[a], err_msg=f"address {a}")
        # never written: zero from reset of the simulation model
        assert not got[2].any() and not got[words + 2].any()
        # a write followed at once by a read of the same address sees the new word
        word = rng.integers(0, 256, lanes, dtype=np.uint8)
        await tb.host_write(7, word)
        got = await tb.host_dump([7])
        np.testing.assert_array_equal(got[7], word)

    run_sim(dut, bench)


def run_random(config: ChipConfig, seed: int, cycles: int, *, full_dump: bool,
               idle_prob: float = 0.15, host_noise: bool = True):
    """Random back-to-back MEM instructions against :class:`RefMemTile`.

    With ``host_noise`` the host port is busy too: a random ``h_addr`` every cycle, and a
    full-mask host write in every cycle in which the datapath writes (which must be ignored).
    """
    rng = np.random.default_rng(seed)
    lanes, streams, words = (config.lanes_per_superlane, config.streams_per_direction,
                             config.mem_words_per_bank)
    pool = edge_pool(config, rng)
    # Initial SRAM: random words around every pool address (enough for small map offsets).
    init = np.zeros((config.address_space, lanes), np.uint8)
    init_addrs = sorted({(a // words) * words + (a + d) % words for a in pool
                         for d in range(-8, 16)})
    for a in init_addrs:
        init[a] = rng.integers(0, 256, lanes, dtype=np.uint8)
    ref = RefMemTile(config, init)

    plan = []  # (instr or None, junk word, e, w)
    prev_bank = None
    for _ in range(cycles):
        e = rng.integers(0, 256, (streams, lanes), dtype=np.uint8)
        w = rng.integers(0, 256, (streams, lanes), dtype=np.uint8)
        random_maps(rng, config, e, w)
        instr = None
        if rng.random() >= idle_prob:
            instr = random_instr(rng, config, prev_bank, pool)
        written = None if instr is None else (
            instr.waddr if instr.op is Opcode.RDWR else instr.addr)
        prev_bank = written // words if instr is not None and instr.op in WRITES else None
        plan.append((instr, int(rng.integers(0, 1 << 63)), e, w))
    lat = max(latency(op, config) for op in READS)
    tail = lat + 2
    noise = np.stack([rng.integers(0, config.address_space, cycles + tail),
                      rng.integers(0, 1 << min(8 * lanes, 63), cycles + tail)], axis=1)

    dut = MemTile(config)
    got = []
    dumped = {}

    async def bench(ctx):
        tb = TileBench(config, dut, ctx)
        tb.idle()
        await tb.host_fill(init, init_addrs)
        zero = np.zeros((streams, lanes), np.uint8)
        for t in range(cycles + tail):
            if t < cycles:
                instr, junk, e, w = plan[t]
                tb.streams_in(e, w)
                if instr is None:
                    tb.idle(junk)
                else:
                    tb.issue(instr)
            else:
                tb.streams_in(zero, zero)
                tb.idle()
            if host_noise:
                prev = plan[t - 1][0] if 0 < t <= cycles else None
                ctx.set(dut.h_addr, int(noise[t, 0]))
                ctx.set(dut.h_we, int(prev is not None and prev.op in WRITES))
                ctx.set(dut.h_wmask, (1 << lanes) - 1)
                ctx.set(dut.h_wdata.as_value(), int(noise[t, 1]))
            got.append(tb.stream_out())
            await ctx.tick()
        ctx.set(dut.h_we, 0)
        assert ctx.get(dut.reads) == ref.reads
        assert ctx.get(dut.writes) == ref.write_count
        addrs = range(config.address_space) if full_dump else dump_addrs
        dumped.update(await tb.host_dump(addrs))

    for t, (instr, _, e, w) in enumerate(plan):
        ref.step(t, instr, e, w)
    ref.flush()
    dump_addrs = sorted(set(init_addrs) | set(np.flatnonzero(ref.mem.any(axis=1)).tolist())
                        | {int(a) for a in rng.integers(0, config.address_space, 32)})
    run_sim(dut, bench)
    check_writes(config, got, ref.writes)
    for a, word in dumped.items():
        np.testing.assert_array_equal(word, ref.mem[a], err_msg=f"final SRAM word {a}")
    return ref


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_random_sequences(preset):
    """Random READ/WRITE/GATHER/SCATTER in consecutive cycles, random streams both ways."""
    config = PRESETS[preset]
    ref = run_random(config, seed=42, cycles=300, full_dump=preset != "sim")
    assert ref.reads > 50 and ref.write_count > 50


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_random_sequences_long(preset, seed):
    run_random(PRESETS[preset], seed=1000 + seed, cycles=2000, full_dump=True)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_write_then_read_at_t_plus_2(preset):
    """WRITE in t, READ of the same word in t + 2 sees the new data (in t + 2 + latency);
    a READ of the other bank in t + 1 is legal and sees the old word of that bank."""
    config = PRESETS[preset]
    lanes, streams, words = (config.lanes_per_superlane, config.streams_per_direction,
                             config.mem_words_per_bank)
    rng = np.random.default_rng(7)
    old = rng.integers(0, 256, (2, lanes), dtype=np.uint8)
    new = rng.integers(0, 256, lanes, dtype=np.uint8)
    addr = words - 1  # last word of bank 0
    other = 2 * words - 1  # last word of bank 1
    lat = latency(Opcode.READ, config)
    w_idx = streams - 1
    program = {
        0: Instruction(Opcode.WRITE, addr=addr, a=stream_code(Direction.WEST, w_idx)),
        1: Instruction(Opcode.READ, dst=stream_code(Direction.EAST, 0), addr=other),
        2: Instruction(Opcode.READ, dst=stream_code(Direction.WEST, 1), addr=addr),
    }
    dut = MemTile(config)
    seen = {}

    async def bench(ctx):
        tb = TileBench(config, dut, ctx)
        tb.idle()
        await tb.host_write(addr, old[0])
        await tb.host_write(other, old[1])
        w = np.zeros((streams, lanes), np.uint8)
        w[w_idx] = new
        for t in range(3 + lat):
            tb.streams_in(np.zeros_like(w), w if t == 0 else np.zeros_like(w))
            if t in program:
                tb.issue(program[t])
            else:
                tb.idle()
            seen[t] = tb.stream_out()
            await ctx.tick()

    run_sim(dut, bench)
    e_we, w_we, e_data, _ = seen[1 + lat - 1]
    assert (e_we, w_we) == (1, 0)
    np.testing.assert_array_equal(e_data[0], old[1])
    e_we, w_we, _, w_data = seen[2 + lat - 1]
    assert (e_we, w_we) == (0, 1 << 1)
    np.testing.assert_array_equal(w_data[1], new)
    for t in set(seen) - {lat, lat + 1}:
        assert seen[t][:2] == (0, 0), f"cycle {t}: unexpected stream write"


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_gather_scatter_edges(preset):
    """Every lane a different offset, offsets that wrap past the last word of the bank, and
    map values with the high byte set (0xFFFF = -1, 0x8000): the bank never changes."""
    config = PRESETS[preset]
    lanes, streams, words = (config.lanes_per_superlane, config.streams_per_direction,
                             config.mem_words_per_bank)
    rng = np.random.default_rng(3)
    # The whole of both banks' last 8 and first 8 words hold distinct random data.
    init = np.zeros((config.address_space, lanes), np.uint8)
    edge = [*range(8), *range(words - 8, words)]
    init_addrs = [bank * words + o for bank in (0, 1) for o in edge]
    init[init_addrs] = rng.integers(0, 256, (len(init_addrs), lanes), dtype=np.uint8)
    # distinct modulo W for every preset: offsets 0, 1, W-1, 3, W-4, 5, 2, W-12, 9, W-16, 7,
    # 4, 6, W-7, 10, 11
    specials = np.array([0, 1, 0xFFFF, 0x8003, words - 4, words + 5, 2, 0x7FF4, 9, 0xFFF0,
                         2 * words + 7, 4, 6, 0xFFF9, 10, 11], np.uint16)
    maps = specials[np.arange(lanes) % len(specials)]
    plan = []
    for bank in (0, 1):
        for off in (0, words - 1, words - 3):
            e = rng.integers(0, 256, (streams, lanes), dtype=np.uint8)
            w = rng.integers(0, 256, (streams, lanes), dtype=np.uint8)
            e[2] = (maps & 0xFF).astype(np.uint8)
            e[3] = (maps >> 8).astype(np.uint8)
            w[0] = (maps[::-1] & 0xFF).astype(np.uint8)
            w[1] = (maps[::-1] >> 8).astype(np.uint8)
            addr = bank * words + off
            plan.append((Instruction(Opcode.GATHER, dst=stream_code(Direction.WEST, streams - 1),
                                     addr=addr, b=stream_code(Direction.EAST, 2)), e, w))
            plan.append((Instruction(Opcode.SCATTER, addr=addr ^ words,
                                     b=stream_code(Direction.WEST, 0),
                                     a=stream_code(Direction.EAST, 1)), e, w))
            plan.append((None, e, w))  # so the next GATHER (other bank) sees the scatter
            plan.append((Instruction(Opcode.GATHER, dst=stream_code(Direction.EAST, 0),
                                     addr=addr ^ words, b=stream_code(Direction.WEST, 0)), e, w))
    ref = RefMemTile(config, init)
    for t, (instr, e, w) in enumerate(plan):
        ref.step(t, instr, e, w)
    ref.flush()
    # the reference's gathers touched every lane at a different word where the map differs
    assert len({int(m) % words for m in maps}) == min(lanes, len(specials))
    dut = MemTile(config)
    got, dumped = [], {}
    tail = latency(Opcode.GATHER, config) + 1
    dump = sorted(init_addrs)

    async def bench(ctx):
        tb = TileBench(config, dut, ctx)
        tb.idle()
        await tb.host_fill(init, init_addrs)
        zero = np.zeros((streams, lanes), np.uint8)
        for t in range(len(plan) + tail):
            instr, e, w = plan[t] if t < len(plan) else (None, zero, zero)
            tb.streams_in(e, w)
            if instr is None:
                tb.idle()
            else:
                tb.issue(instr)
            got.append(tb.stream_out())
            await ctx.tick()
        dumped.update(await tb.host_dump(dump))

    run_sim(dut, bench)
    check_writes(config, got, ref.writes)
    for a in dump:
        np.testing.assert_array_equal(dumped[a], ref.mem[a], err_msg=f"word {a}")


def test_reference_model_gather_wrap_by_hand():
    """The reference model's GATHER arithmetic on a hand-checked case (small: W = 256)."""
    config = PRESETS["small"]
    words, lanes = config.mem_words_per_bank, config.lanes_per_superlane
    mem = np.arange(config.address_space * lanes, dtype=np.uint32).reshape(-1, lanes)
    ref = RefMemTile(config, (mem % 251).astype(np.uint8))
    e = np.zeros((config.streams_per_direction, lanes), np.uint8)
    maps = np.array([0, 1, 0xFFFF, 0x0102], np.uint16)
    e[0], e[1] = maps & 0xFF, maps >> 8
    ref.step(0, Instruction(Opcode.GATHER, dst=stream_code(0, 3), addr=words + words - 1,
                            b=stream_code(0, 0)), e, e)
    # offsets: 255, 255 + 1 = 0, 255 + 65535 = 254 (mod 256), 255 + 258 = 1; bank 1
    rows = words + np.array([255, 0, 254, 1])
    expect = (mem[rows, np.arange(lanes)] % 251).astype(np.uint8)
    np.testing.assert_array_equal(ref.writes[0].data, expect)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_counters_saturate_and_clear(preset):
    """``reads``/``writes`` count issues, ignore idle cycles and non-MEM opcodes, clear on
    ``clear`` and saturate at 2**32 - 1."""
    config = PRESETS[preset]
    dut = MemTile(config)

    async def bench(ctx):
        tb = TileBench(config, dut, ctx)
        seq = [Instruction(Opcode.READ, addr=1), Instruction(Opcode.WRITE, addr=2),
               Instruction(Opcode.GATHER, addr=3), Instruction(Opcode.SCATTER, addr=4),
               Instruction(Opcode.READ, addr=5), Instruction(Opcode.ADD)]
        for instr in seq:
            tb.issue(instr)
            await ctx.tick()
        tb.idle(encode(Instruction(Opcode.READ, addr=1)))  # not issued: not counted
        await ctx.tick()
        assert (ctx.get(dut.reads), ctx.get(dut.writes)) == (3, 2)
        ctx.set(dut.clear, 1)
        tb.issue(Instruction(Opcode.READ))  # cleared in the same cycle: not counted
        await ctx.tick()
        ctx.set(dut.clear, 0)
        assert (ctx.get(dut.reads), ctx.get(dut.writes)) == (0, 0)
        # saturation: force the counters near the top
        top = (1 << 32) - 1
        ctx.set(dut.reads, top - 1)
        ctx.set(dut.writes, top)
        tb.issue(Instruction(Opcode.READ))
        await ctx.tick()
        tb.issue(Instruction(Opcode.READ))
        await ctx.tick()
        tb.issue(Instruction(Opcode.WRITE))
        await ctx.tick()
        assert (ctx.get(dut.reads), ctx.get(dut.writes)) == (top, top)

    run_sim(dut, bench)


# --- cross-check with the golden model ----------------------------------------------------------


def golden_program(config: ChipConfig, seed: int, cycles: int):
    """A program on the full chip: ``mem_w1`` sends one eastward stream and ``mem_e0`` /
    ``mem_e1`` one westward int16 map group per cycle to ``mem_w0``, which runs a random MEM
    instruction in (most) cycles. Returns ``(program, mem_w0's timetable, start cycle)``."""
    rng = np.random.default_rng(seed)
    lanes_all, streams, words = config.lanes, config.streams_per_direction, \
        config.mem_words_per_bank
    b = ScheduleBuilder(config)
    target = "mem_w0"
    # first cycle in which every feeder can have issued its READ (in cycle >= 0)
    start = -min(b.issue_for(p, Opcode.READ, target, 0) for p in ("mem_w1", "mem_e0", "mem_e1"))
    mem_init = []
    feeds = {"mem_w1": [], "mem_e0": [], "mem_e1": []}
    for p in feeds:
        feeds[p] = rng.integers(0, 256, (cycles, lanes_all), dtype=np.uint8)
    # mem_e0 / mem_e1 feed map groups: low bytes small or wrapping, high bytes random
    lo = rng.integers(0, 256, (cycles, lanes_all))
    small = rng.random((cycles, 1)) < 0.6
    feeds["mem_e0"] = np.where(small, lo % 12, lo).astype(np.uint8)
    feeds["mem_e1"] = np.where(small, np.where(lo % 2, 0, 0xFF), lo).astype(np.uint8)
    for p, data in feeds.items():
        mem_init.append(MemInit(p, 0, data))
    target_init = rng.integers(0, 256, (config.address_space, lanes_all), dtype=np.uint8)
    for bank in (0, 1):  # a memory init may not cross the end of a bank
        mem_init.append(MemInit(target, bank * words, target_init[bank * words:][:words]))
    pool = edge_pool(config, rng, extra=4)
    timetable = {}
    prev_bank = None
    for i in range(cycles):
        t = start + i
        e_idx = int(rng.integers(streams))
        w_grp = int(rng.integers(streams // 2)) * 2
        east, west = Direction.EAST, Direction.WEST
        b.place("mem_w1", b.issue_for("mem_w1", Opcode.READ, target, t),
                Instruction(Opcode.READ, dst=stream_code(east, e_idx), addr=i))
        b.place("mem_e0", b.issue_for("mem_e0", Opcode.READ, target, t),
                Instruction(Opcode.READ, dst=stream_code(west, w_grp), addr=i))
        b.place("mem_e1", b.issue_for("mem_e1", Opcode.READ, target, t),
                Instruction(Opcode.READ, dst=stream_code(west, w_grp + 1), addr=i))
        if rng.random() < 0.1:
            prev_bank = None
            continue
        instr = random_instr(rng, config, prev_bank, pool)
        present = [stream_code(east, e_idx), stream_code(west, w_grp),
                   stream_code(west, w_grp + 1)]
        if instr.op in WRITES:
            instr = instr.replace(a=present[rng.integers(3)])
        if instr.op in (Opcode.GATHER, Opcode.SCATTER):
            instr = instr.replace(b=stream_code(west, w_grp))
        written = instr.waddr if instr.op is Opcode.RDWR else instr.addr
        prev_bank = written // words if instr.op in WRITES else None
        b.place(target, t, instr)
        timetable[t] = instr
    program = Program(config_name=config.name, config_hash=config.config_hash,
                      lanes=config.lanes, queues=b.queues(), mem_init=mem_init, outputs=[],
                      source={})
    return program, timetable, target_init


@pytest.mark.parametrize("preset", ["small", "ecp5"])
def test_against_golden_model(preset):
    """A scheduled program run by the golden model: the reference model and the RTL tile of
    every superlane (fed the golden model's stream values at ``mem_w0``) match its stream
    writes at ``mem_w0`` and its final SRAM of ``mem_w0``."""
    config = PRESETS[preset]
    lanes, streams = config.lanes_per_superlane, config.streams_per_direction
    # every queue must fit queue_depth: at most a READ or a NOP + an instruction per cycle
    cycles = min(120, (config.queue_depth - 1) // 2 - 2)
    program, timetable, target_init = golden_program(config, seed=5, cycles=cycles)
    model = GoldenModel(config, program)
    result = model.run()
    assert not result.violations
    si = config.slice_by_name["mem_w0"].index
    pos = config.slice_by_name["mem_w0"].position
    assert result.counters["mem_reads"]["mem_w0"] == sum(
        i.op in READS for i in timetable.values())
    end = max(timetable) + max(latency(op, config) for op in READS) + 1
    lat = latency(Opcode.READ, config)

    def regs(t):
        """Stream registers at mem_w0 in cycle t, all lanes: (e, w) uint8[streams][L]."""
        out = np.zeros((2, streams, config.lanes), np.uint8)
        for d in (0, 1):
            for i in range(streams):
                v = model.streams.read(d, i, pos, t)
                if v is not None:
                    out[d, i] = v
        return out

    all_regs = [regs(t) for t in range(end + lat)]
    golden_sram = result.sram[si].reshape(config.address_space, config.lanes)

    for k in range(config.superlanes):
        lanes_k = slice(k * lanes, (k + 1) * lanes)
        init = target_init[:, lanes_k]
        ref = RefMemTile(config, init)
        for t in range(end):
            e, w = all_regs[t][0][:, lanes_k], all_regs[t][1][:, lanes_k]
            ref.step(t, timetable.get(t), e, w)
        ref.flush()
        np.testing.assert_array_equal(ref.mem, golden_sram[:, lanes_k])
        for wr in ref.writes:  # what the tile drives in c is present in c + 1
            present = all_regs[wr.cycle + 1][wr.west][wr.index][lanes_k]
            np.testing.assert_array_equal(wr.data, present, err_msg=f"cycle {wr.cycle}")

        dut = MemTile(config)
        got, dumped = [], {}

        async def bench(ctx, init=init, lanes_k=lanes_k, dut=dut, got=got, dumped=dumped):
            tb = TileBench(config, dut, ctx)
            tb.idle()
            await tb.host_fill(init)
            for t in range(end):
                tb.streams_in(all_regs[t][0][:, lanes_k], all_regs[t][1][:, lanes_k])
                instr = timetable.get(t)
                if instr is None:
                    tb.idle()
                else:
                    tb.issue(instr)
                got.append(tb.stream_out())
                await ctx.tick()
            dumped.update(await tb.host_dump(range(config.address_space)))

        run_sim(dut, bench)
        check_writes(config, got, ref.writes)
        rtl_mem = np.stack([dumped[a] for a in range(config.address_space)])
        np.testing.assert_array_equal(rtl_mem, golden_sram[:, lanes_k])


# --- Verilog ------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_verilog_infers_memories(preset):
    """Verilog generation works and each lane is one inferred memory of 2W bytes."""
    config = PRESETS[preset]
    text = verilog.convert(MemTile(config), name="mem_tile", emit_src=False)
    depth = config.address_space
    decls = re.findall(r"reg \[7:0\] (\w+) \[(\d+):(\d+)\];", text)
    assert len(decls) == config.lanes_per_superlane
    for _, hi, lo in decls:
        assert sorted((int(hi), int(lo))) == [0, depth - 1]


def test_verilog_compiles_with_icarus(tmp_path):
    """The ecp5 tile's Verilog is accepted by Icarus Verilog (-g2012)."""
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.skip("iverilog not installed")
    src = tmp_path / "mem_tile.v"
    src.write_text(verilog.convert(MemTile(PRESETS["ecp5"]), name="mem_tile", emit_src=False))
    result = subprocess.run([iverilog, "-g2012", "-o", str(tmp_path / "a.out"), str(src)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_constructor_validates(monkeypatch):
    with pytest.raises(TypeError, match="ChipConfig"):
        MemTile("ecp5")
    import hdl.mem_tile as mt

    real = mt.latency
    monkeypatch.setattr(mt, "latency", lambda op, cfg: 1)
    with pytest.raises(ValueError, match=">= 2"):
        MemTile(PRESETS["small"])
    monkeypatch.setattr(mt, "latency",
                        lambda op, cfg: real(op, cfg) + (op is Opcode.GATHER))
    with pytest.raises(ValueError, match="latency\\(READ\\) == latency\\(GATHER\\)"):
        MemTile(PRESETS["small"])


def test_longer_read_latency(monkeypatch):
    """If the ISA gave READ/GATHER a longer latency, the tile delays its result to match."""
    import hdl.mem_tile as mt

    real = mt.latency

    def longer(op, cfg):
        return real(op, cfg) + 2

    monkeypatch.setattr(mt, "latency", longer)
    monkeypatch.setattr(sys.modules[__name__], "latency", longer)  # the reference model's
    run_random(PRESETS["small"], seed=9, cycles=100, full_dump=False)
