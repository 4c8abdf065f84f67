"""Tests of hdl/mxm_plane.py: one MXM plane (LW, IW, ABC, ABCO, ACC) across every superlane.

The plane runs in Amaranth's simulator. The test drives every superlane's stream registers with
the physical stagger (superlane ``k`` sees superlane 0's cycle-``c`` values in cycle ``c + k``)
and presents instructions in superlane-0 time. Every stream write of every superlane (which
register, which cycle, which bytes) is compared with :class:`RefMxm`, a NumPy model of the MXM
semantics written from docs/architecture.md (independent of the RTL): a result present in
cycle ``t + latency`` must be driven in superlane ``k`` in cycle ``t + latency - 1 + k``. The
reference model is itself checked against the golden model (``sim_models.golden``) on a
scheduled program, and the RTL is run on exactly the stream values the golden model shows at
the plane's position.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator
from harness import Staging, make_program

from hdl.mxm_plane import MxmPlane, abc_pipeline, tree_registers
from hdl.skew import delay, deskew, reskew, stagger
from openlpu.config import PRESETS, ChipConfig
from openlpu.isa import Direction, DType, Instruction, Opcode, encode, latency, stream_code
from sim_models.datapath import values_to_bytes
from sim_models.golden import GoldenModel

PRESET_NAMES = ["small", "ecp5", "sim"]


# --- reference model ---------------------------------------------------------------------------


@dataclass
class StreamWrite:
    """A value the unit makes present on one stream register in superlane-0 cycle ``present``
    (all lanes); superlane ``k`` drives it in ``present - 1 + k``."""

    present: int
    west: int
    index: int
    data: np.ndarray  # uint8[lanes]


def wrap32(v: np.ndarray) -> np.ndarray:
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


class RefMxm:
    """NumPy model of one MXM plane, from docs/architecture.md sections 4.3 and 6.3.

    ``step(t, instr, e, w)`` issues ``instr`` in superlane-0 cycle ``t`` with the stream
    registers ``e``/``w`` (``uint8[streams][lanes]``, all lanes) at the plane's position.
    ``W[i][j]`` multiplies input lane ``j`` for output lane ``i``; LW row ``addr + r`` comes
    from stream ``a + r``. Accumulator hazards (an ``ACC`` of an entry before its last ``ABC``
    has landed; an ``ACC`` or ``ABC.acc`` of an entry no ``ABC`` wrote since reset) make
    invalid programs: the model refuses them, so that tests stay valid programs.
    """

    def __init__(self, config: ChipConfig):
        L = config.lanes
        self.config = config
        self.shadow = np.zeros((L, L), np.int64)
        self.weights = np.zeros((L, L), np.int64)
        self.acc = np.zeros((config.mxm_acc_depth, L), np.int64)
        self.lands: dict[int, int] = {}
        self.writes: list[StreamWrite] = []
        self.abc = 0

    @staticmethod
    def stream(code: int, e: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (w if code >> 5 else e)[code & 31]

    def step(self, t: int, instr: Instruction | None, e: np.ndarray, w: np.ndarray) -> None:
        if instr is None:
            return
        op = instr.op
        if op is Opcode.LW:
            for r in range(instr.count):
                row = self.stream(instr.a + r, e, w).view(np.int8)
                self.shadow[instr.addr + r] = row
        elif op is Opcode.IW:
            self.weights = self.shadow.copy()
        elif op in (Opcode.ABC, Opcode.ABCO):
            x = self.stream(instr.a, e, w).view(np.int8).astype(np.int64)
            y = self.weights @ x
            assert not instr.accumulate or instr.addr in self.lands, "test bug: unwritten"
            old = self.acc[instr.addr] if instr.accumulate else 0
            self.acc[instr.addr] = wrap32(old + y)
            self.lands[instr.addr] = t + latency(Opcode.ABC, self.config)
            self.abc += 1
            if op is Opcode.ABCO:
                self.emit(t + latency(Opcode.ABCO, self.config), instr)
        elif op is Opcode.ACC:
            assert instr.addr in self.lands, "test bug: ACC of an unwritten entry"
            assert self.lands[instr.addr] <= t, "test bug: accumulator hazard"
            self.emit(t + latency(Opcode.ACC, self.config), instr)

    def emit(self, when: int, instr: Instruction) -> None:
        """``acc[addr]`` as int32 on the 4-stream group ``dst``, present in ``when``."""
        planes = values_to_bytes(self.acc[instr.addr], DType.I32)
        for b, plane in enumerate(planes):
            self.writes.append(StreamWrite(when, instr.dst >> 5, (instr.dst & 31) + b, plane))


# --- simulation helpers ------------------------------------------------------------------------


def pack(arr: np.ndarray) -> int:
    """A uint8 array, element 0 in the lowest byte, as one integer (ArrayLayout order)."""
    return int.from_bytes(np.ascontiguousarray(arr, dtype=np.uint8).tobytes(), "little")


def unpack(value: int, shape) -> np.ndarray:
    n = int(np.prod(shape))
    return np.frombuffer(value.to_bytes(n, "little"), np.uint8).reshape(shape).copy()


class ChipBench:
    """Drives a whole-chip unit: superlane ``k``'s stream registers get the superlane-0
    timeline ``k`` cycles late (junk where the timeline has nothing); records every cycle in
    which a superlane drives a write enable."""

    def __init__(self, config: ChipConfig, dut, ctx, seed: int = 0):
        self.config, self.dut, self.ctx = config, dut, ctx
        self.lps, self.ns = config.lanes_per_superlane, config.streams_per_direction
        self.rng = np.random.default_rng(seed)
        self.got: dict[tuple[int, int], tuple] = {}

    def streams_in(self, c: int, timeline: dict[int, np.ndarray]) -> None:
        for k in range(self.config.superlanes):
            regs = timeline.get(c - k)
            lanes = slice(k * self.lps, (k + 1) * self.lps)
            tile = self.dut.s.tiles[k]
            for d, port in ((0, tile.e), (1, tile.w)):
                v = (self.rng.integers(0, 256, (self.ns, self.lps), dtype=np.uint8)
                     if regs is None else regs[d][:, lanes])
                self.ctx.set(port.as_value(), pack(v))

    def issue(self, instr: Instruction | None) -> None:
        if instr is None:
            self.ctx.set(self.dut.issue, 0)
            # junk on the instruction bus must be ignored
            self.ctx.set(self.dut.instr.as_value(), int(self.rng.integers(0, 1 << 63)))
        else:
            self.ctx.set(self.dut.issue, 1)
            self.ctx.set(self.dut.instr.as_value(), encode(instr))

    def sample(self, c: int) -> None:
        shape = (self.ns, self.lps)
        for k in range(self.config.superlanes):
            tile = self.dut.s.tiles[k]
            e_we, w_we = self.ctx.get(tile.e_we), self.ctx.get(tile.w_we)
            if e_we or w_we:
                self.got[(k, c)] = (e_we, w_we, unpack(self.ctx.get(tile.e_data.as_value()), shape),
                                    unpack(self.ctx.get(tile.w_data.as_value()), shape))

    async def run(self, cycles: int, timeline, program: dict[int, Instruction]) -> None:
        for c in range(cycles):
            self.streams_in(c, timeline)
            self.issue(program.get(c))
            self.sample(c)
            await self.ctx.tick()


def run_sim(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def check_writes(config: ChipConfig, got: dict, expected: list[StreamWrite]) -> None:
    """Every superlane drives exactly the expected writes, in ``present - 1 + k``."""
    lps = config.lanes_per_superlane
    want: dict[tuple[int, int], dict] = {}
    for wr in expected:
        for k in range(config.superlanes):
            slot = want.setdefault((k, wr.present - 1 + k), {})
            assert (wr.west, wr.index) not in slot, "test bug: two writes of one register"
            slot[(wr.west, wr.index)] = wr.data[k * lps:(k + 1) * lps]
    for key in sorted(set(want) | set(got)):
        k, c = key
        writes = want.get(key, {})
        e_we, w_we, e_data, w_data = got.get(key, (0, 0, None, None))
        want_e = sum(1 << i for (d, i) in writes if d == 0)
        want_w = sum(1 << i for (d, i) in writes if d == 1)
        assert (e_we, w_we) == (want_e, want_w), (
            f"superlane {k}, cycle {c}: write enables e={e_we:#x} w={w_we:#x}, expected "
            f"e={want_e:#x} w={want_w:#x}")
        for (d, i), data in writes.items():
            np.testing.assert_array_equal((w_data if d else e_data)[i], data,
                                          err_msg=f"superlane {k}, cycle {c}, stream "
                                                  f"{'WE'[d ^ 1]}{i}")


def simulate(config: ChipConfig, timeline, program: dict[int, Instruction], *,
             tail: int | None = None, seed: int = 0) -> tuple[dict, int]:
    """Run ``program`` on a fresh :class:`MxmPlane`; returns the recorded writes and the final
    ``abc_count``."""
    dut = MxmPlane(config)
    end = max(program, default=0) + (tail if tail is not None else
                                     latency(Opcode.ABC, config) + config.superlanes + 2)
    result = {}

    async def bench(ctx):
        tb = ChipBench(config, dut, ctx, seed)
        await tb.run(end, timeline, program)
        result["got"], result["abc"] = tb.got, ctx.get(dut.abc_count)

    run_sim(dut, bench)
    return result["got"], result["abc"]


def reference(config: ChipConfig, timeline, program: dict[int, Instruction]) -> RefMxm:
    ref = RefMxm(config)
    for t in sorted(program):
        e, w = timeline[t]
        ref.step(t, program[t], e, w)
    return ref


def random_regs(rng, config: ChipConfig) -> np.ndarray:
    """Random stream registers ``[direction][stream][lane]``; sometimes all -128 or all 127."""
    shape = (2, config.streams_per_direction, config.lanes)
    pick = rng.random()
    if pick < 0.1:
        return np.full(shape, 0x80, np.uint8)
    if pick < 0.15:
        return np.full(shape, 0x7F, np.uint8)
    return rng.integers(0, 256, shape, dtype=np.uint8)


# --- directed tests ----------------------------------------------------------------------------


class Script:
    """Builds a superlane-0 timeline and a program one cycle at a time."""

    def __init__(self, config: ChipConfig, rng):
        self.config, self.rng = config, rng
        self.t = 0
        self.timeline: dict[int, np.ndarray] = {}
        self.program: dict[int, Instruction] = {}

    def regs(self) -> np.ndarray:
        return self.timeline.setdefault(self.t, random_regs(self.rng, self.config))

    def put(self, instr: Instruction | None, **streams) -> None:
        """Issue ``instr`` now with the given stream contents (``E3=vec``), then advance."""
        regs = self.regs()
        for name, vec in streams.items():
            d = 1 if name[0] == "W" else 0
            regs[d, int(name[1:])] = np.asarray(vec).astype(np.int8).view(np.uint8)
        if instr is not None:
            self.program[self.t] = instr
        self.t += 1

    def load(self, W: np.ndarray, counts: list[int], west: int = 1, base: int = 0) -> None:
        """LW all rows of ``W`` with the given counts (cycled), streams from ``base``."""
        L, i, n = len(W), 0, 0
        while i < L:
            count = min(counts[n % len(counts)], L - i)
            n += 1
            a = stream_code(west, base % (self.config.streams_per_direction - count + 1))
            self.put(Instruction(Opcode.LW, addr=i, a=a, count=count),
                     **{f"{'EW'[west]}{(a & 31) + r}": W[i + r] for r in range(count)})
            i += count


def rand_i8(rng, *shape):
    return rng.integers(-128, 128, size=shape)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_lw_iw_abc_acc_sequence(preset):
    """LW with several counts, IW, ABCs overwriting and accumulating (back to back into one
    entry, alternating entries), a second weight set loaded into the shadow buffer while the
    first computes, and ACCs of every entry: values and cycles on every superlane."""
    config = PRESETS[preset]
    rng = np.random.default_rng(10)
    L, ns, depth = config.lanes, config.streams_per_direction, config.mxm_acc_depth
    lat = latency(Opcode.ABC, config)
    W1, W2 = rand_i8(rng, L, L), rand_i8(rng, L, L)
    X = rand_i8(rng, 8, L)
    s = Script(config, rng)
    s.load(W1, [ns, 1, 3, 2])
    s.put(Instruction(Opcode.IW))
    a = stream_code(Direction.EAST, ns - 1)
    a_w = stream_code(Direction.WEST, 2)
    last = depth - 1
    s.put(Instruction(Opcode.ABC, addr=0, a=a), **{f"E{ns - 1}": X[0]})
    s.put(Instruction(Opcode.ABC, addr=0, a=a_w, accumulate=1), W2=X[1])
    s.put(Instruction(Opcode.ABC, addr=0, a=a, accumulate=1), **{f"E{ns - 1}": X[2]})
    s.put(Instruction(Opcode.ABC, addr=last, a=a), **{f"E{ns - 1}": X[3]})
    s.put(Instruction(Opcode.ABC, addr=0, a=a, accumulate=1), **{f"E{ns - 1}": X[4]})
    # W2 into the shadow buffer while W1's ABCs are in flight, then more ABCs with W1
    s.load(W2, [2, ns], west=0, base=1)
    s.put(Instruction(Opcode.ABC, addr=last, a=a_w, accumulate=1), W2=X[5])
    s.put(Instruction(Opcode.IW))
    s.put(Instruction(Opcode.ABC, addr=1, a=a_w), W2=X[6])
    s.put(Instruction(Opcode.ABC, addr=last, a=a_w, accumulate=1), W2=X[7])
    t_last = s.t - 1
    while s.t < t_last + lat:
        s.put(None)
    for entry, dst in ((0, stream_code(0, 0)), (last, stream_code(1, ns - 4)),
                       (1, stream_code(1, 0)), (0, stream_code(0, ns - 4))):
        s.put(Instruction(Opcode.ACC, dst=dst, addr=entry))
    ref = reference(config, s.timeline, s.program)
    # the reference model against the formulas
    np.testing.assert_array_equal(ref.acc[0], W1 @ (X[0] + X[1] + X[2] + X[4]))
    np.testing.assert_array_equal(ref.acc[1], W2 @ X[6])
    np.testing.assert_array_equal(ref.acc[last], W1 @ (X[3] + X[5]) + W2 @ X[7])
    got, abc = simulate(config, s.timeline, s.program)
    check_writes(config, got, ref.writes)
    assert abc == ref.abc == 8


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_iw_boundaries(preset):
    """An LW just before an IW is installed, one just after it is not; an ABC just before an
    IW uses the old weights, one just after it the new ones."""
    config = PRESETS[preset]
    rng = np.random.default_rng(11)
    L, ns = config.lanes, config.streams_per_direction
    W1 = rand_i8(rng, L, L)
    row_a, row_b = rand_i8(rng, 2, L)
    x = rand_i8(rng, L)
    s = Script(config, rng)
    s.load(W1, [ns])
    s.put(Instruction(Opcode.IW))
    s.put(Instruction(Opcode.LW, addr=L - 1, a=stream_code(0, 0), count=1), E0=row_a)
    s.put(Instruction(Opcode.ABC, addr=0, a=stream_code(0, 1)), E1=x)  # old weights (W1)
    s.put(Instruction(Opcode.IW))  # installs row_a
    s.put(Instruction(Opcode.LW, addr=L - 1, a=stream_code(1, ns - 1), count=1),
          **{f"W{ns - 1}": row_b})  # only in the shadow buffer
    s.put(Instruction(Opcode.ABC, addr=1, a=stream_code(0, 1)), E1=x)
    t_abc = s.t - 1
    while s.t < t_abc + latency(Opcode.ABC, config):
        s.put(None)
    s.put(Instruction(Opcode.ACC, dst=stream_code(0, 0), addr=0))
    s.put(Instruction(Opcode.ACC, dst=stream_code(0, 0), addr=1))
    ref = reference(config, s.timeline, s.program)
    W_new = W1.copy()
    W_new[L - 1] = row_a
    np.testing.assert_array_equal(ref.acc[0], W1 @ x)
    np.testing.assert_array_equal(ref.acc[1], W_new @ x)
    got, _ = simulate(config, s.timeline, s.program)
    check_writes(config, got, ref.writes)


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("w_val, x_val", [(-128, -128), (-128, 127), (127, 127)])
def test_extreme_values(preset, w_val, x_val):
    """-128 everywhere gives the largest sum (16384 per lane), -128 x 127 the most negative;
    accumulated several times, back to back into one entry."""
    config = PRESETS[preset]
    rng = np.random.default_rng(12)
    L, ns = config.lanes, config.streams_per_direction
    W = np.full((L, L), w_val)
    x = np.full(L, x_val)
    s = Script(config, rng)
    s.load(W, [ns])
    s.put(Instruction(Opcode.IW))
    a = stream_code(1, 0)
    s.put(Instruction(Opcode.ABC, addr=0, a=a), W0=x)
    for _ in range(4):
        s.put(Instruction(Opcode.ABC, addr=0, a=a, accumulate=1), W0=x)
    t_abc = s.t - 1
    while s.t < t_abc + latency(Opcode.ABC, config):
        s.put(None)
    s.put(Instruction(Opcode.ACC, dst=stream_code(1, 0), addr=0))
    ref = reference(config, s.timeline, s.program)
    np.testing.assert_array_equal(ref.acc[0], np.full(L, 5 * L * w_val * x_val))
    got, _ = simulate(config, s.timeline, s.program)
    check_writes(config, got, ref.writes)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_acc_exactly_at_latency(preset):
    """Each ACC issues exactly ``latency(ABC)`` after the last ABC of its entry (the earliest
    legal cycle), also after back-to-back accumulations, with ABCs of other entries issued
    between the ACCs."""
    config = PRESETS[preset]
    rng = np.random.default_rng(13)
    L, ns = config.lanes, config.streams_per_direction
    lat = latency(Opcode.ABC, config)
    s = Script(config, rng)
    s.load(rand_i8(rng, L, L), [ns])
    s.put(Instruction(Opcode.IW))
    t0 = s.t
    a = stream_code(0, 2)
    timed = {}
    for n, (entry, acc) in enumerate([(0, 0), (0, 1), (1, 0), (2, 0)]):
        timed[t0 + n] = Instruction(Opcode.ABC, addr=entry, a=a, accumulate=acc)
    for n, entry in [(1, 0), (2, 1), (3, 2)]:
        timed[t0 + n + lat] = Instruction(Opcode.ACC, dst=stream_code(1, 4 % ns), addr=entry)
    timed[t0 + lat] = Instruction(Opcode.ABC, addr=3, a=a)
    timed[t0 + lat + 4] = Instruction(Opcode.ABC, addr=0, a=a, accumulate=1)
    timed[t0 + 2 * lat] = Instruction(Opcode.ACC, dst=stream_code(0, 0), addr=3)
    timed[t0 + 2 * lat + 4] = Instruction(Opcode.ACC, dst=stream_code(0, ns - 4), addr=0)
    while s.t <= max(timed):
        s.put(timed.get(s.t), E2=rand_i8(rng, L))
    ref = reference(config, s.timeline, s.program)
    assert len(ref.writes) == 5 * DType.I32.nbytes
    got, _ = simulate(config, s.timeline, s.program)
    check_writes(config, got, ref.writes)


@pytest.mark.parametrize("preset", ["small", pytest.param("ecp5", marks=pytest.mark.slow)])
def test_accumulator_wraps_at_int32(preset):
    """Enough back-to-back ABC.acc of the largest product sum (-128 x -128 on every lane) to
    pass 2**31: the accumulator wraps like int32 (about 2**31 / (16384 * lanes) cycles)."""
    config = PRESETS[preset]
    L, ns, lps = config.lanes, config.streams_per_direction, config.lanes_per_superlane
    lat, lat_acc = latency(Opcode.ABC, config), latency(Opcode.ACC, config)
    per_abc = 128 * 128 * L
    n = (1 << 31) // per_abc + 3
    want = wrap32(np.full(L, n * per_abc))
    assert want[0] < 0
    dut = MxmPlane(config)
    got = {}

    async def bench(ctx):
        tb = ChipBench(config, dut, ctx)
        s = Script(config, np.random.default_rng(0))
        s.load(np.full((L, L), -128), [ns])
        s.put(Instruction(Opcode.IW))
        await tb.run(s.t, s.timeline, s.program)
        for k in range(config.superlanes):  # -128 on every stream from now on
            for port in (dut.s.tiles[k].e, dut.s.tiles[k].w):
                ctx.set(port.as_value(), pack(np.full((ns, lps), 0x80, np.uint8)))
        tb.issue(Instruction(Opcode.ABC, addr=3, a=stream_code(0, ns - 1)))
        await ctx.tick()
        tb.issue(Instruction(Opcode.ABC, addr=3, a=stream_code(0, ns - 1), accumulate=1))
        await ctx.tick().repeat(n - 1)
        ctx.set(dut.issue, 0)
        await ctx.tick().repeat(lat)
        tb.issue(Instruction(Opcode.ACC, dst=stream_code(1, 0), addr=3))
        await ctx.tick()
        ctx.set(dut.issue, 0)
        for c in range(lat_acc - 1 + config.superlanes):
            tb.sample(c)
            await ctx.tick()
        got.update(tb.got)

    run_sim(dut, bench)
    planes = values_to_bytes(want, DType.I32)
    check_writes(config, got, [StreamWrite(lat_acc - 1, 1, b, planes[b]) for b in range(4)])


# --- random sequences --------------------------------------------------------------------------


def random_program(config: ChipConfig, rng, cycles: int, idle: float = 0.1):
    """A random valid MXM program over ``cycles`` cycles and its timeline."""
    L, ns, depth = config.lanes, config.streams_per_direction, config.mxm_acc_depth
    lat = latency(Opcode.ABC, config)
    pool = sorted({0, 1 % depth, depth - 1, int(rng.integers(depth))})
    lat_acc = latency(Opcode.ACC, config)
    timeline, program, lands = {}, {}, {}
    taken: set[tuple[int, int]] = set()  # (cycle present, dst) of ACC and ABCO results

    def dst_for(present: int) -> int | None:
        # an ACC and an ABCO landing in one cycle must use different groups
        free = [stream_code(d, g * 4) for d in (0, 1) for g in range(ns // 4)
                if (present, stream_code(d, g * 4)) not in taken]
        if not free:
            return None
        code = int(rng.choice(free))
        taken.add((present, code))
        return code

    prev_entry = 0
    for t in range(cycles):
        timeline[t] = random_regs(rng, config)
        if rng.random() < idle:
            continue
        op = rng.choice([Opcode.LW, Opcode.IW, Opcode.ABC, Opcode.ABCO, Opcode.ACC],
                        p=[.25, .1, .25, .15, .25])
        if op is Opcode.LW:
            count = int(rng.choice([1, ns, int(rng.integers(1, ns + 1))]))
            count = min(count, L)
            addr = int(rng.integers(0, L - count + 1))
            a = stream_code(int(rng.integers(2)), int(rng.integers(0, ns - count + 1)))
            program[t] = Instruction(Opcode.LW, addr=addr, a=a, count=count)
        elif op is Opcode.IW:
            program[t] = Instruction(Opcode.IW)
        elif op in (Opcode.ABC, Opcode.ABCO):
            entry = prev_entry if rng.random() < 0.4 else int(rng.choice(pool))
            a = stream_code(int(rng.integers(2)), int(rng.integers(ns)))
            acc = int(rng.random() < 0.6 and entry in lands)
            if op is Opcode.ABCO:
                dst = dst_for(t + lat)
                if dst is None:
                    continue
                program[t] = Instruction(Opcode.ABCO, dst=dst, addr=entry, a=a, accumulate=acc)
            else:
                program[t] = Instruction(Opcode.ABC, addr=entry, a=a, accumulate=acc)
            lands[entry] = t + lat
            prev_entry = entry
        else:
            ready = [e for e in pool if e in lands and lands[e] <= t]
            dst = dst_for(t + lat_acc) if ready else None
            if dst is not None:
                program[t] = Instruction(Opcode.ACC, dst=dst, addr=int(rng.choice(ready)))
    # drain: read every entry once more after everything has landed
    t = max(lands.values(), default=cycles)
    t = max(t, cycles)
    for e in sorted(lands):
        timeline[t] = random_regs(rng, config)
        program[t] = Instruction(Opcode.ACC, dst=dst_for(t + lat_acc), addr=e)
        t += 1
    return timeline, program


def run_random(config: ChipConfig, seed: int, cycles: int) -> RefMxm:
    rng = np.random.default_rng(seed)
    timeline, program = random_program(config, rng, cycles)
    ref = reference(config, timeline, program)
    got, abc = simulate(config, timeline, program, seed=seed)
    check_writes(config, got, ref.writes)
    assert abc == ref.abc
    return ref


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_random_sequences(preset):
    """Random LW (random counts, rows, streams), IW, ABC (.acc, repeated entries) and ACC in
    consecutive cycles, random data on every stream, sometimes -128 or 127 everywhere."""
    ref = run_random(PRESETS[preset], seed=20, cycles=150)
    assert ref.abc > 30 and len(ref.writes) > 80


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_random_sequences_long(preset, seed):
    run_random(PRESETS[preset], seed=100 + seed, cycles=1500)


# --- reset, counter ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["small", "ecp5"])
def test_reset_clears_weights_and_shadow(preset):
    """After a reset (the chip's START uses a ResetInserter) the installed weights and the
    shadow buffer are zero and ``abc_count`` restarts; the accumulators are memories and keep
    their words, which an ABC overwrites and an ABC.acc then adds to as usual."""
    config = PRESETS[preset]
    rng = np.random.default_rng(14)
    L, ns = config.lanes, config.streams_per_direction
    lat = latency(Opcode.ABC, config)
    rst = Signal()
    plane = MxmPlane(config)
    dut = ResetInserter(rst)(plane)
    W = rand_i8(rng, L, L)
    x, x2 = rand_i8(rng, 2, L)
    first = Script(config, rng)
    first.load(W, [ns])
    first.put(Instruction(Opcode.IW))
    first.put(Instruction(Opcode.ABC, addr=0, a=stream_code(0, 0)), E0=x)
    first.put(Instruction(Opcode.ABC, addr=1, a=stream_code(0, 0)), E0=x)
    end1 = first.t + lat + config.superlanes + 2
    second = Script(config, rng)
    second.put(Instruction(Opcode.ABC, addr=0, a=stream_code(0, 0)), E0=x)  # weights 0
    second.put(Instruction(Opcode.IW))  # the shadow buffer is zero too
    second.put(Instruction(Opcode.ABC, addr=1, a=stream_code(0, 0)), E0=x)
    second.load(W, [ns])
    second.put(Instruction(Opcode.IW))
    second.put(Instruction(Opcode.ABC, addr=1, a=stream_code(1, 0), accumulate=1), W0=x2)
    t_abc = second.t - 1
    while second.t < t_abc + lat:
        second.put(None)
    second.put(Instruction(Opcode.ACC, dst=stream_code(1, 0), addr=0))
    second.put(Instruction(Opcode.ACC, dst=stream_code(1, 4 % ns), addr=1))
    ref = reference(config, second.timeline, second.program)
    assert not ref.acc[0].any()
    np.testing.assert_array_equal(ref.acc[1], W @ x2)
    got = {}

    async def bench(ctx):
        tb = ChipBench(config, plane, ctx, 3)
        await tb.run(end1, first.timeline, first.program)
        assert ctx.get(plane.abc_count) == 2
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        assert ctx.get(plane.abc_count) == 0
        tb.got = {}
        await tb.run(second.t + config.superlanes + 2, second.timeline, second.program)
        got.update(tb.got)
        assert ctx.get(plane.abc_count) == 3

    run_sim(dut, bench)
    check_writes(config, got, ref.writes)


@pytest.mark.parametrize("preset", ["small", "ecp5"])
def test_abc_counter_clears_and_saturates(preset):
    config = PRESETS[preset]
    dut = MxmPlane(config)

    async def bench(ctx):
        def issue(instr):
            ctx.set(dut.issue, int(instr is not None))
            ctx.set(dut.instr.as_value(), 0 if instr is None else encode(instr))

        for instr in [Instruction(Opcode.ABC), Instruction(Opcode.ACC),
                      Instruction(Opcode.ABC, accumulate=1), Instruction(Opcode.IW)]:
            issue(instr)
            await ctx.tick()
        issue(None)
        ctx.set(dut.instr.as_value(), encode(Instruction(Opcode.ABC)))  # not issued
        await ctx.tick()
        assert ctx.get(dut.abc_count) == 2
        ctx.set(dut.clear, 1)
        issue(Instruction(Opcode.ABC))  # cleared in the same cycle: not counted
        await ctx.tick()
        ctx.set(dut.clear, 0)
        assert ctx.get(dut.abc_count) == 0
        top = (1 << 32) - 1
        ctx.set(dut.abc_count, top - 1)
        for _ in range(3):
            issue(Instruction(Opcode.ABC))
            await ctx.tick()
        assert ctx.get(dut.abc_count) == top

    run_sim(dut, bench)


# --- cross-check with the golden model ---------------------------------------------------------


def golden_mxm_program(config: ChipConfig, seed: int):
    """A scheduled program: west MEM slices feed weight rows (LW, several counts) and
    activations (ABC, .acc, back to back) to mxm0, a second weight set is loaded after the
    ABCs, then ACCs of every entry. Returns ``(staging, mxm0 timetable)``."""
    rng = np.random.default_rng(seed)
    L, n, ns = config.lanes, config.mem_slices_per_hemisphere, config.streams_per_direction
    st = Staging(config)
    table: dict[int, Instruction] = {}
    feeders = [f"mem_w{i}" for i in range(n)]
    rows = min(n, ns)
    offset = [0]

    def place(t, instr):
        st.builder.place("mxm0", t, instr)
        table[t] = instr

    def lw_all(W, t):
        for row in range(0, L, rows):
            count = min(rows, L - row)
            for r in range(count):
                st.feed([feeders[r]], W[row + r], DType.I8, "mxm0", t, offset=offset[0],
                        stream=r)
                offset[0] += 1
            place(t, Instruction(Opcode.LW, addr=row, a=stream_code(Direction.WEST, 0),
                                 count=count))
            t += 1
        return t

    def abc(t, entry, x, acc, out=None):
        code = st.feed([feeders[-1]], x, DType.I8, "mxm0", t, bank=1, offset=offset[0],
                       stream=ns - 1)
        offset[0] += 1
        if out is None:
            place(t, Instruction(Opcode.ABC, addr=entry, a=code, accumulate=acc))
        else:
            place(t, Instruction(Opcode.ABCO, dst=out, addr=entry, a=code, accumulate=acc))

    W1, W2 = rand_i8(rng, L, L), rand_i8(rng, L, L)
    t = lw_all(W1, 10)
    place(t, Instruction(Opcode.IW))
    t += 1
    for i, (entry, acc) in enumerate([(0, 0), (0, 1), (1, 0), (0, 1)]):
        abc(t + i, entry, rand_i8(rng, L), acc)
    t = lw_all(W2, t + 4)
    place(t, Instruction(Opcode.IW))
    abc(t + 1, 1, rand_i8(rng, L), 1, out=stream_code(Direction.EAST, 0))
    abc(t + 2, 2, rand_i8(rng, L), 0)
    # an ABCO whose result lands with the first ACC's, on the other direction
    abc(t + 3, 3, rand_i8(rng, L), 0, out=stream_code(Direction.WEST, 0))
    t_acc = t + 3 + latency(Opcode.ABC, config) - latency(Opcode.ACC, config)
    for i, entry in enumerate([0, 1, 2, 0]):
        place(t_acc + i, Instruction(Opcode.ACC, dst=stream_code(i % 2, 0), addr=entry))
    return st, table


def golden_regs(model: GoldenModel, config: ChipConfig, position: int, cycles: int) -> dict:
    """Stream registers ``[direction][stream][lane]`` at ``position`` for every cycle."""
    out = {}
    for t in range(cycles):
        regs = np.zeros((2, config.streams_per_direction, config.lanes), np.uint8)
        for d in (0, 1):
            for i in range(config.streams_per_direction):
                v = model.streams.read(d, i, position, t)
                if v is not None:
                    regs[d, i] = v
        out[t] = regs
    return out


@pytest.mark.parametrize("preset", ["small", "ecp5"])
def test_against_golden_model(preset):
    """A scheduled program on the golden model: the reference model and the RTL, fed the
    golden model's stream values at mxm0's position, make exactly the golden model's ACC
    results present at that position in the same cycles."""
    config = PRESETS[preset]
    st, table = golden_mxm_program(config, seed=30)
    program = make_program(config, st.builder, st.mem_init, st.outputs)
    model = GoldenModel(config, program)
    result = model.run()
    assert not result.violations
    pos = config.slice_by_name["mxm0"].position
    lat_acc = latency(Opcode.ACC, config)
    end = max(table) + lat_acc + 1
    regs = golden_regs(model, config, pos, end)
    ref = reference(config, regs, table)
    assert ref.abc == result.counters["mxm_abc"]["mxm0"]
    assert ref.writes
    for wr in ref.writes:  # the golden model's values at mxm0 when the results are present
        np.testing.assert_array_equal(regs[wr.present][wr.west][wr.index], wr.data)
    got, abc = simulate(config, regs, table)
    check_writes(config, got, ref.writes)
    assert abc == ref.abc


# --- structure ---------------------------------------------------------------------------------


def test_pipeline_budget_per_preset():
    """The ISA latency leaves every tree level a register and one spare cycle at every preset
    (the spare goes before the re-skew); a shorter budget spreads the registers evenly."""
    for name, config in PRESETS.items():
        pipe = abc_pipeline(config)
        assert pipe["tree_registers"] == pipe["levels"], name
        assert pipe["spare"] == 1, name
        assert pipe["latency"] == latency(Opcode.ABC, config)
    assert tree_registers(4, 4) == (True,) * 4
    assert tree_registers(4, 2) == (False, True, False, True)
    assert tree_registers(9, 3) == (False, False, True) * 3
    assert tree_registers(3, 0) == (False,) * 3
    with pytest.raises(ValueError):
        tree_registers(2, -1)


def test_skew_helpers():
    """stagger/deskew/reskew delay by k, n-1-k and k + extra cycles."""
    from amaranth.hdl import Module
    m = Module()
    src = [Signal(8, name=f"v{k}") for k in range(3)]
    chain = stagger(m, src[0], 3, name="c")
    des = deskew(m, src, name="d")
    res = reskew(m, src, extra=1, name="r")
    dl = delay(m, src[1], 2, name="x")
    with pytest.raises(ValueError):
        delay(m, src[0], -1, name="bad")

    async def bench(ctx):
        hist = []
        for c in range(8):
            for k in range(3):
                ctx.set(src[k], 10 * c + k)
            hist.append([ctx.get(v) for v in chain + des + res + [dl]])
            await ctx.tick()
        c = 6
        assert hist[c][:3] == [10 * (c - k) for k in range(3)]
        assert hist[c][3:6] == [10 * (c - 2 + k) + k for k in range(3)]
        assert hist[c][6:9] == [10 * (c - 1 - k) + k for k in range(3)]
        assert hist[c][9] == 10 * (c - 2) + 1

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_constructor_validates():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the half-built component is never elaborated
        with pytest.raises(TypeError, match="ChipConfig") as info:
            MxmPlane("ecp5")
        del info
        gc.collect()


@pytest.mark.parametrize("preset", ["small", "ecp5",
                                    pytest.param("sim", marks=pytest.mark.slow)])
def test_verilog(preset, tmp_path):
    """Verilog generation works; one accumulator memory per superlane; Icarus compiles it."""
    config = PRESETS[preset]
    text = verilog.convert(MxmPlane(config), name="mxm_plane", emit_src=False)
    assert text.count("reg [") > 0
    if preset == "ecp5" and shutil.which("iverilog"):
        path = tmp_path / "mxm_plane.v"
        path.write_text(text)
        subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"), str(path)],
                       check=True, capture_output=True)
