"""The VXM ALU tile (hdl/vxm_alu.py) and its special-function lane (hdl/vxm_special.py) in the
Amaranth simulator, against the golden model's own datapath (``vxm_execute``) and
``openlpu.fixedpoint``.

A testbench drives the stream registers the tile sees with random bytes every cycle, writes the
operands of each instruction into the streams its fields name, issues it, and records every
stream write the tile makes. The expectation is computed from exactly the bytes the tile saw:
operands decoded with ``bytes_to_values`` by ``operand_dtype``, the result by ``vxm_execute``
and encoded by ``values_to_bytes``, due in cycle ``t + latency - 1`` on the ``dst`` group. The
recorded writes must equal the expected ones: the same values, in the same cycles, on the same
streams of the same direction, and nothing else.
"""

from __future__ import annotations

import gc
import warnings
import zlib

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment, UnusedElaboratable
from amaranth.sim import Simulator

from hdl.vxm_alu import ALU_OPS, VxmAluTile, datapath_depth
from hdl.vxm_special import SPECIAL_OPS, SpecialLane, natural_depth
from openlpu import fixedpoint as fx
from openlpu.config import PRESETS
from openlpu.isa import (
    OPS,
    VXM_SPECIAL,
    DType,
    Instruction,
    Opcode,
    Unit,
    encode,
    latency,
    operand_dtype,
    stream_code,
    validate,
)
from sim_models.datapath import bytes_to_values, values_to_bytes, vxm_execute

PRESET_NAMES = ("small", "ecp5", "sim")
VXM_OPS = tuple(op for op, spec in OPS.items() if spec.unit is Unit.VXM)
SHIFTS = {Opcode.SHL, Opcode.SHR, Opcode.SHRU, Opcode.SHRR}
SPECIAL_FN = {Opcode.EXP: fx.exp_q, Opcode.RECIP: fx.recip_q, Opcode.RSQRT: fx.rsqrt_q,
              Opcode.SIGMOID: fx.sigmoid_q, Opcode.TANH: fx.tanh_q, Opcode.GELU: fx.gelu_q,
              Opcode.SILU: fx.silu_q}
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def has_b(op: Opcode) -> bool:
    return any(f == "b" for f, _ in OPS[op].operands)


def dtype_range(dt: DType) -> tuple[int, int]:
    return -(1 << (dt.bits - 1)), (1 << (dt.bits - 1)) - 1


# --- operand values ------------------------------------------------------------------------


def edge_values(dt: DType, n: int, rng, shuffle: bool = True) -> np.ndarray:
    """``n`` values of ``dt``: the extremes, 0, +-1 and neighbours, then random values."""
    lo, hi = dtype_range(dt)
    edges = np.array([lo, hi, 0, -1, 1, lo + 1, hi - 1, 2, -2], dtype=np.int64)
    out = rng.integers(lo, hi, size=n, endpoint=True)
    # small values too, so that comparisons and shifts see interesting neighbours
    small = rng.integers(-8, 9, size=n)
    out = np.where(rng.random(n) < 0.25, small, out)
    k = min(len(edges), n)
    out[:k] = rng.permutation(edges)[:k] if shuffle else edges[:k]
    return rng.permutation(out) if shuffle else out


def special_values(op: Opcode, n: int, rng) -> np.ndarray:
    """Inputs for a special function: extremes, function-specific edges, random values."""
    one = 1 << 16
    if op in (Opcode.RECIP, Opcode.RSQRT):
        edges = [1, 2, 3, 4, 5, 0, -1, INT32_MIN, INT32_MAX, 1 << 30, (1 << 30) - 1,
                 (1 << 30) + 1, 1 << 16, 3 << 20, 65535, 46341]
        mags = rng.uniform(0, 31, size=n)
        rand = np.maximum(1, (2.0 ** mags).astype(np.int64))
        rand = np.where(rng.random(n) < 0.1, -rand, rand)  # some non-positive inputs
    else:
        edges = [0, 1, -1, INT32_MIN, INT32_MAX, fx.EXP_IN_MIN, fx.EXP_IN_MIN - 1,
                 fx.EXP_IN_MIN + 1, 16 * one, 16 * one - 1, -16 * one, -16 * one + 1, 8 * one,
                 8 * one - 1, -8 * one, -8 * one - 1, 4 * one, -4 * one]
        rand = rng.integers(-20 * one, 20 * one, size=n, endpoint=True)
        rand = np.where(rng.random(n) < 0.1, rng.integers(INT32_MIN, INT32_MAX, size=n), rand)
    out = np.asarray(rand, dtype=np.int64)
    k = min(len(edges), n)
    out[:k] = rng.permutation(np.array(edges, dtype=np.int64))[:k]
    return rng.permutation(out)


# --- the testbench -------------------------------------------------------------------------


class TileBench:
    """Drives a :class:`VxmAluTile`, records its stream writes, predicts them.

    ``issue(t, instr, values)`` schedules ``instr`` in cycle ``t`` with the given operand
    values (``{"a": ..., "b": ..., "c": ...}``, element values per lane) written into the
    streams its fields name, on top of random bytes. Fields are written in the order given,
    so a later operand that names the same streams overwrites an earlier one; the prediction
    uses the bytes actually driven.
    """

    def __init__(self, preset: str, seed: int = 0):
        self.config = PRESETS[preset]
        self.rng = np.random.default_rng(seed)
        self.streams = self.config.streams_per_direction
        self.lanes = self.config.lanes_per_superlane
        self.schedule: dict[int, tuple[Instruction, np.ndarray]] = {}

    # stream banks are uint8 arrays [direction (0 east, 1 west), stream, lane]
    def random_banks(self) -> np.ndarray:
        return self.rng.integers(0, 256, size=(2, self.streams, self.lanes), dtype=np.uint8)

    def issue(self, t: int, instr: Instruction, values: dict[str, np.ndarray]) -> None:
        validate(instr, self.config)
        assert t not in self.schedule, f"two instructions in cycle {t}"
        banks = self.random_banks()
        for field, vals in values.items():
            code = getattr(instr, field)
            planes = values_to_bytes(np.asarray(vals, dtype=np.int64),
                                     operand_dtype(instr, field))
            for k, plane in enumerate(planes):
                banks[code >> 5, (code & 31) + k] = plane
        self.schedule[t] = (instr, banks)

    def operands(self, instr: Instruction, banks: np.ndarray):
        """Operand values as the golden model reads them (``GoldenModel._exec_vxm``)."""

        def read(field):
            dt = operand_dtype(instr, field)
            code = getattr(instr, field)
            planes = [banks[code >> 5, (code & 31) + k] for k in range(dt.nbytes)]
            return bytes_to_values(planes, dt)

        a = read("a")
        b = c = None
        if has_b(instr.op):
            if instr.bimm:
                bits = operand_dtype(instr, "b").bits
                b = np.full(self.lanes, fx.wrap(np.int64(instr.imm), bits), dtype=np.int64)
            else:
                b = read("b")
        if instr.op is Opcode.SEL:
            c = read("c")
        return a, b, c

    def expected(self) -> dict[tuple[int, int, int], bytes]:
        """``(cycle, direction, stream) -> lane bytes`` of every write; a later-issued
        instruction's write replaces an earlier one's in the same register and cycle."""
        out = {}
        for t in sorted(self.schedule):
            instr, banks = self.schedule[t]
            result = vxm_execute(instr, *self.operands(instr, banks))
            due = t + latency(instr.op, self.config) - 1
            for k, plane in enumerate(values_to_bytes(result, DType(instr.dtype))):
                out[(due, instr.dst >> 5, (instr.dst & 31) + k)] = plane.tobytes()
        return out

    def run(self, tail: int | None = None) -> dict[tuple[int, int, int], bytes]:
        """Simulate every cycle up to the last result; returns the recorded writes."""
        cfg = self.config
        dut = VxmAluTile(cfg)
        end = max(self.schedule) + max(dut.latencies) + (2 if tail is None else tail)
        vxm_words = [encode(Instruction(op, dtype=2, stype=2)) for op in VXM_OPS]
        got = {}
        lane_bytes = self.lanes
        s = self.streams

        def pack(bank):
            return int.from_bytes(np.ascontiguousarray(bank).tobytes(), "little")

        def unpack(value):
            return np.frombuffer(value.to_bytes(s * lane_bytes, "little"),
                                 dtype=np.uint8).reshape(s, lane_bytes)

        async def bench(ctx):
            for cycle in range(end):
                if cycle in self.schedule:
                    instr, banks = self.schedule[cycle]
                    ctx.set(dut.issue, 1)
                    ctx.set(dut.instr.as_value(), encode(instr))
                else:
                    # nothing issues: the tile must ignore whatever is on its inputs
                    banks = self.random_banks()
                    ctx.set(dut.issue, 0)
                    ctx.set(dut.instr.as_value(),
                            vxm_words[self.rng.integers(len(vxm_words))]
                            | int(self.rng.integers(0, 1 << 52)))
                ctx.set(dut.s.e.as_value(), pack(banks[0]))
                ctx.set(dut.s.w.as_value(), pack(banks[1]))
                for d, (we, bank) in enumerate(((dut.s.e_we, dut.s.e_data),
                                                (dut.s.w_we, dut.s.w_data))):
                    mask = ctx.get(we)
                    if mask:
                        planes = unpack(ctx.get(bank.as_value()))
                        for j in range(s):
                            if mask >> j & 1:
                                got[(cycle, d, j)] = planes[j].tobytes()
                await ctx.tick()

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return got

    def check(self) -> None:
        got, want = self.run(), self.expected()
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        report = []
        for key in wrong[:8]:
            cycle = key[0]
            issued = [(t, i) for t, (i, _) in self.schedule.items()
                      if t + latency(i.op, self.config) - 1 == cycle]
            report.append(f"{key}: got {got[key].hex()} want {want[key].hex()} from {issued}")
        assert not (missing or extra or wrong), (
            f"missing writes {missing[:8]}, unexpected writes {extra[:8]}, "
            f"wrong values: {report}")


# --- instruction generators ------------------------------------------------------------------


def group_code(bench: TileBench, dt: DType, avoid=()) -> int:
    """A random aligned stream group of ``dt``, preferring one not in ``avoid``."""
    choices = [stream_code(d, i) for d in (0, 1)
               for i in range(0, bench.streams, dt.nbytes)]
    free = [c for c in choices if c not in avoid]
    return int(bench.rng.choice(free or choices))


def make_instruction(bench: TileBench, op: Opcode, dt: DType, stype: DType | None = None,
                     bimm: bool = False, shift: int = 0):
    """A valid ``op`` with random operand groups and the matching operand values."""
    rng = bench.rng
    n = bench.lanes
    if op is Opcode.REQ:
        stype = DType.I32
    stype = dt if stype is None else stype
    fields = {"dtype": dt.value, "stype": stype.value}
    src = DType.I32 if op is Opcode.REQ else stype
    values = {}
    used = []
    fields["a"] = group_code(bench, src)
    used.append(fields["a"])
    if op in VXM_SPECIAL:
        values["a"] = special_values(op, n, rng)
    else:
        values["a"] = edge_values(src, n, rng)
    if has_b(op):
        if bimm:
            fields["bimm"] = 1
            if op in SHIFTS:
                fields["imm"] = int(rng.integers(0, dt.bits))
            else:
                lo, hi = (-(1 << 23), (1 << 23) - 1) if src is DType.I32 else (
                    dtype_range(src)[0], (1 << src.bits) - 1)
                fields["imm"] = int(rng.choice([lo, hi, 0, -1, 1, rng.integers(lo, hi)]))
        else:
            fields["b"] = group_code(bench, src, used)
            used.append(fields["b"])
            b = edge_values(src, n, rng)
            if op in SHIFTS:  # every count, and some out of range (mod bits)
                b = np.where(rng.random(n) < 0.6, rng.integers(-40, 80, size=n), b)
            # some lanes equal to a, for the comparisons
            b = np.where(rng.random(n) < 0.2, values["a"], b)
            values["b"] = b
    if op is Opcode.SEL:
        fields["c"] = group_code(bench, stype, used)
        values["c"] = np.where(rng.random(n) < 0.5, 0, edge_values(stype, n, rng))
    if op is Opcode.REQ:
        fields["c"] = shift
        if not bimm:  # multipliers: wide and small
            values["b"] = np.where(rng.random(n) < 0.5, values["b"],
                                   rng.integers(-(1 << 20), 1 << 20, size=n))
    fields["dst"] = group_code(bench, dt)
    order = [f for f in ("c", "b", "a") if f in values]  # a written last: never clobbered
    instr = Instruction(op, **fields)
    return instr, {f: values[f] for f in order}


def op_cases():
    """``(op, dtype, stype)`` of every VXM opcode and allowed type (every source for CVT)."""
    for op in VXM_OPS:
        for dt in OPS[op].dtypes:
            for st in (DType if op is Opcode.CVT else [None]):
                yield op, dt, st


def case_id(op: Opcode, dt: DType, st: DType | None) -> str:
    return f"{op.name}.{dt.label}" + (f".{st.label}" if st is not None else "")


class Sweep:
    """Every opcode and type, in blocks of back-to-back instructions, one simulation per
    preset. Destinations are chosen so that no two results share a register and cycle, so
    every recorded write belongs to exactly one instruction."""

    def __init__(self, preset: str):
        self.bench = bench = TileBench(preset, seed=zlib.crc32(preset.encode()))
        count = 4 if bench.lanes >= 16 else 6 if bench.lanes >= 8 else 10
        claimed: set[tuple[int, int, int]] = set()
        self.cases: dict[str, list[int]] = {}
        t = 1
        for op, dt, st in op_cases():
            cid = case_id(op, dt, st)
            # REQ: every shift 0..63 for every result type; others: a few of each
            shifts = list(range(64)) if op is Opcode.REQ else [0] * count
            for i, shift in enumerate(shifts):
                instr, values = make_instruction(bench, op, dt, st, bimm=has_b(op) and i % 3 == 2,
                                                 shift=shift)
                due = t + latency(op, bench.config) - 1
                for _ in range(100):
                    keys = {(due, instr.dst >> 5, (instr.dst & 31) + k) for k in range(dt.nbytes)}
                    if not keys & claimed:
                        break
                    instr = instr.replace(dst=group_code(bench, dt))
                else:
                    raise AssertionError("no free destination")
                claimed |= keys
                bench.issue(t, instr, values)
                self.cases.setdefault(cid, []).append(t)
                t += 1
        self.got = bench.run()
        self.want = bench.expected()


_SWEEPS: dict[str, Sweep] = {}


def sweep(preset: str) -> Sweep:
    """The sweep of ``preset``, simulated once per test session."""
    if preset not in _SWEEPS:
        _SWEEPS[preset] = Sweep(preset)
    return _SWEEPS[preset]


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("case", [case_id(*c) for c in op_cases()])
def test_opcode(preset, case):
    """Every opcode and result type (every source type for CVT; REQ with every shift 0..63),
    issued back to back with edge-case and random operands, stream and immediate ``b``: each
    result is exactly ``vxm_execute``'s, on its dst group and direction, little-endian, in
    cycle ``t + latency - 1``."""
    sw = sweep(preset)
    bench = sw.bench
    bad = []
    for t in sw.cases[case]:
        instr, _ = bench.schedule[t]
        due = t + latency(instr.op, bench.config) - 1
        for k in range(DType(instr.dtype).nbytes):
            key = (due, instr.dst >> 5, (instr.dst & 31) + k)
            if sw.got.get(key) != sw.want[key]:
                got = sw.got.get(key)
                bad.append(f"cycle {t} {instr}: stream {key[1:]} got "
                           f"{got.hex() if got else None}, want {sw.want[key].hex()}")
    assert not bad, "\n".join(bad[:6])


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_opcode_sweep_writes_nothing_else(preset):
    """In the same sweep the tile writes no register in any other cycle or stream."""
    sw = sweep(preset)
    extra = sorted(set(sw.got) - set(sw.want))
    assert not extra, f"unexpected writes (cycle, direction, stream): {extra[:10]}"


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_mixed_latencies_back_to_back(preset):
    """A random stream of every opcode with mixed latencies (2..8), mostly issued every cycle:
    results of different instructions are due in the same cycle on different streams, and
    where two name the same stream in the same cycle the later-issued one wins (as the golden
    model's ``on_error="collect"`` does)."""
    bench = TileBench(preset, seed=11)
    t = 0
    for _ in range(120):
        op = VXM_OPS[bench.rng.integers(len(VXM_OPS))]
        dt = DType(bench.rng.choice([d.value for d in OPS[op].dtypes]))
        stype = DType(bench.rng.integers(3)) if op is Opcode.CVT else None
        instr, values = make_instruction(bench, op, dt, stype,
                                         bimm=has_b(op) and bench.rng.random() < 0.3,
                                         shift=int(bench.rng.integers(0, 64)))
        bench.issue(t, instr, values)
        t += 1 + int(bench.rng.random() < 0.15) * int(bench.rng.integers(1, 4))
    want = bench.expected()
    due = {}
    for s, (i, _) in bench.schedule.items():
        due.setdefault(s + latency(i.op, bench.config) - 1, []).append(i)
    assert any(len(v) > 1 for v in due.values()), "no two results due in one cycle"
    bench.check()
    assert want


def test_same_cycle_results_and_conflict():
    """RECIP (latency 8) then, 2 cycles later, EXP (6), then ADD 6 cycles after the RECIP:
    all three are due in the same cycle. EXP writes other streams; ADD (i8) overwrites one
    byte stream of RECIP's int32 group: the later instruction wins that stream only."""
    bench = TileBench("small", seed=3)
    cfg = bench.config
    lat = {op: latency(op, cfg) for op in (Opcode.RECIP, Opcode.EXP, Opcode.ADD)}
    t_recip = 1
    due = t_recip + lat[Opcode.RECIP] - 1
    t_exp = due - lat[Opcode.EXP] + 1
    t_add = due - lat[Opcode.ADD] + 1
    assert len({t_recip, t_exp, t_add}) == 3
    n = bench.lanes
    recip = Instruction(Opcode.RECIP, dtype=2, stype=2, dst=stream_code(0, 0),
                        a=stream_code(1, 0))
    bench.issue(t_recip, recip, {"a": special_values(Opcode.RECIP, n, bench.rng)})
    exp = Instruction(Opcode.EXP, dtype=2, stype=2, dst=stream_code(1, 0), a=stream_code(0, 0))
    bench.issue(t_exp, exp, {"a": special_values(Opcode.EXP, n, bench.rng)})
    add = Instruction(Opcode.ADD, dtype=0, stype=0, dst=stream_code(0, 2), a=stream_code(0, 1),
                      bimm=1, imm=3)
    bench.issue(t_add, add, {"a": edge_values(DType.I8, n, bench.rng)})
    want = bench.expected()
    assert {(d, s) for c, d, s in want if c == due} == {
        (0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)}
    bench.check()
    # the ADD's byte replaced byte 2 of the RECIP result
    assert want[(due, 0, 2)] != values_to_bytes(
        vxm_execute(recip, *bench.operands(recip, bench.schedule[t_recip][1])),
        DType.I32)[2].tobytes()


# --- tests: special functions through one lane -----------------------------------------------


#: The compact special-function pipeline (sim) and the deep one (ecp5, ``vxm_deep_pipeline``).
PIPELINES = ("sim", "ecp5")


def run_special_lane(values: dict[Opcode, np.ndarray], preset: str = "sim") -> None:
    """Issue every input of every function into one :class:`SpecialLane`, one per cycle,
    functions interleaved, and compare each output in cycle ``t + latency - 1``."""
    dut = SpecialLane(PRESETS[preset])
    jobs = []
    iters = {op: iter(v) for op, v in values.items()}
    while iters:
        for op in list(iters):
            x = next(iters[op], None)
            if x is None:
                del iters[op]
            else:
                jobs.append((op, int(x)))
    got = {}
    latencies = dut.latencies

    async def bench(ctx):
        for cycle in range(len(jobs) + max(latencies)):
            if cycle < len(jobs):
                ctx.set(dut.op, jobs[cycle][0])
                ctx.set(dut.x, jobs[cycle][1])
            for index, lat in enumerate(latencies):
                t = cycle - (lat - 1)
                if 0 <= t < len(jobs) and dut.latency[jobs[t][0]] == lat:
                    got[t] = ctx.get(dut.y[index])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    bad = []
    for t, (op, x) in enumerate(jobs):
        want = int(SPECIAL_FN[op](x))
        if got.get(t) != want:
            bad.append(f"{op.name}({x}) = {got.get(t)}, want {want}")
    assert not bad, f"{len(bad)} of {len(jobs)} wrong: {bad[:10]}"


def sweep_values(op: Opcode, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return special_values(op, n, rng)


@pytest.mark.parametrize("preset", PIPELINES)
def test_special_lane_sweep(preset):
    """400 inputs per special function, all functions interleaved back to back."""
    run_special_lane({op: sweep_values(op, 400, op.value) for op in SPECIAL_OPS}, preset)


@pytest.mark.parametrize("preset", PIPELINES)
def test_special_lane_dense_edges(preset):
    """Dense neighbourhoods of the points where each datapath changes behaviour: ROM
    interval boundaries, saturation limits, clz boundaries (powers of two)."""
    one = 1 << 16
    pts = {}
    pow2 = [p + d for k in range(32) for p in (1 << k,) for d in range(-3, 4)
            if 1 <= p + d <= INT32_MAX]
    pts[Opcode.RECIP] = pts[Opcode.RSQRT] = np.array(pow2 + [INT32_MAX, INT32_MAX - 1, 0, -5])
    act = [s * (v + d) for s in (1, -1) for v in (0, 4 * one, 8 * one, 16 * one, one)
           for d in (-1, 0, 1, 4096, 2048)]
    for op in (Opcode.SIGMOID, Opcode.TANH, Opcode.SILU, Opcode.GELU):
        pts[op] = np.array(act + [INT32_MIN, INT32_MAX])
    pts[Opcode.EXP] = np.array([fx.EXP_IN_MIN + d for d in (-1, 0, 1)]
                               + [-(k * one) + d for k in range(13) for d in (-1, 0, 1)]
                               + [INT32_MIN, INT32_MAX, -726817, -726816, -726818])
    run_special_lane(pts, preset)


@pytest.mark.slow
@pytest.mark.parametrize("preset", PIPELINES)
@pytest.mark.parametrize("op", SPECIAL_OPS, ids=lambda o: o.name)
def test_special_lane_large_sweep(op, preset):
    """10k random inputs of one function (interleaved with nothing else)."""
    run_special_lane({op: sweep_values(op, 10_000, 1000 + op.value)}, preset)


@pytest.mark.slow
def test_special_tile_large_sweep():
    """10k inputs per special function through the whole tile (sim preset: 16 lanes per
    instruction), functions interleaved back to back."""
    bench = TileBench("sim", seed=5)
    n = bench.lanes
    t = 0
    for _ in range(10_000 // n):
        for op in SPECIAL_OPS:
            instr = Instruction(op, dtype=2, stype=2, a=group_code(bench, DType.I32),
                                dst=group_code(bench, DType.I32))
            bench.issue(t, instr, {"a": special_values(op, n, bench.rng)})
            t += 1
    bench.check()


# --- construction and Verilog ------------------------------------------------------------------


def test_constructor_checks():
    """A config that is not a ChipConfig is refused with a clear error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)  # the half-built objects
        with pytest.raises(TypeError, match="ChipConfig"):
            VxmAluTile("sim")
        with pytest.raises(TypeError, match="ChipConfig"):
            SpecialLane(None)
        gc.collect()


@pytest.mark.parametrize("deep", [False, True])
def test_latencies_come_from_the_isa(deep):
    """One result pipeline per distinct VXM latency; the special lane's latencies are the
    ISA's and leave room for its datapath. In the deep pipeline every VXM latency is exactly
    its datapath's depth + 2: the result cycle, then one register before the stream write
    (no cycle is spent waiting)."""
    cfg = PRESETS["sim"].replace(vxm_deep_pipeline=deep)
    tile = VxmAluTile(cfg)
    assert tile.latencies == tuple(sorted({latency(op, cfg) for op in VXM_OPS}))
    lane = SpecialLane(cfg)
    assert lane.latency == {op: latency(op, cfg) for op in SPECIAL_OPS}
    depth = natural_depth(cfg)
    assert all(lane.latency[op] >= depth[op] + 1 for op in SPECIAL_OPS)
    if deep:
        groups = datapath_depth(cfg)
        depth |= {op: groups["alu"] for op in ALU_OPS}
        depth |= {Opcode.MUL: groups["mul"], Opcode.REQ: groups["req"]}
        assert {op: latency(op, cfg) for op in VXM_OPS} == {op: depth[op] + 2 for op in VXM_OPS}
        assert depth[Opcode.RSQRT] > natural_depth(PRESETS["sim"])[Opcode.RSQRT]
    for unit in (tile, lane):
        Fragment.get(unit, None)  # elaborates


def test_latency_too_short_is_refused(monkeypatch):
    """A config whose special-function latency cannot hold the pipeline is refused."""
    import hdl.vxm_special as special

    monkeypatch.setitem(special._SCHEDULE[False], "exp_out", 99)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match="EXP has latency 6 .* compact special-function "
                                             "pipeline needs at least 100"):
            VxmAluTile(PRESETS["sim"])
        gc.collect()


@pytest.mark.parametrize("preset", ["small"])
def test_verilog(preset):
    text = verilog.convert(VxmAluTile(PRESETS[preset]), name="vxm_alu_tile", emit_src=False)
    assert "module vxm_alu_tile" in text


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["ecp5", "sim"])
def test_verilog_large(preset):
    text = verilog.convert(VxmAluTile(PRESETS[preset]), name="vxm_alu_tile", emit_src=False)
    assert "module vxm_alu_tile" in text


def test_req_round_shift_at_the_product_extremes():
    """REQ's 64-bit rounding shift on the products random operands rarely reach
    (``(-2**31)**2 = 2**62``, the most negative product, +-1, 0) at every shift 0..63."""
    from amaranth.hdl import Module, Signal, signed

    product, shift = Signal(signed(64)), Signal(6)
    out = Signal(signed(64))
    m = Module()
    m.d.comb += out.eq(VxmAluTile._round_shift(product, shift))
    lo, hi = -(1 << 31), (1 << 31) - 1
    products = [lo * lo, lo * hi, hi * hi, -hi * hi, 0, 1, -1, (1 << 61) + 1, -(1 << 61) - 1]
    mismatches = []

    async def bench(ctx):
        for p in products:
            for s in range(64):
                ctx.set(product, p)
                ctx.set(shift, s)
                want = int(fx.shift_right_round(np.int64(p), s))
                if ctx.get(out) != want:
                    mismatches.append((p, s, ctx.get(out), want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not mismatches, mismatches[:5]
