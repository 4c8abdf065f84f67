"""Tests of hdl/sxm.py: one SXM (SHIFT, PERMUTE, DISTRIBUTE, TRANSPOSE) across every superlane.

The SXM runs in Amaranth's simulator with every superlane's stream registers driven with the
physical stagger (superlane ``k`` sees superlane 0's cycle-``c`` values in cycle ``c + k``) and
instructions presented in superlane-0 time. Every stream write of every superlane is compared
with what the golden model's own functions produce (:func:`expected_writes` is
``GoldenModel._exec_sxm``: the operand planes of ``isa.group_width``, the map values of
``isa.operand_dtype``, then ``sim_models.datapath.sxm_execute``), present in cycle
``t + latency`` (driven by superlane ``k`` in ``t + latency - 1 + k``). A scheduled program on
the golden model checks the same at the SXM's position, fed by MEM slices.

The whole-chip bench and the write checker are shared with tests/test_hdl_mxm.py.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from amaranth.back import verilog
from harness import Staging, make_program, to_planes
from test_hdl_mxm import ChipBench as _ChipBench
from test_hdl_mxm import StreamWrite, check_writes, golden_regs, run_sim

from hdl.sxm import Sxm
from openlpu.config import PRESETS, ChipConfig
from openlpu.isa import (
    Direction,
    DType,
    Instruction,
    Opcode,
    group_width,
    latency,
    operand_dtype,
    stream_code,
    validate,
)
from sim_models.datapath import bytes_to_values, sxm_execute
from sim_models.golden import GoldenModel

PRESET_NAMES = ["small", "ecp5", "sim"]
CROSS = (Opcode.SHIFT, Opcode.PERMUTE)
LOCAL = (Opcode.DISTRIBUTE, Opcode.TRANSPOSE)


# --- expectations from the golden model's functions --------------------------------------------


def expected_writes(config: ChipConfig, t: int, instr: Instruction, e: np.ndarray,
                    w: np.ndarray) -> list[StreamWrite]:
    """The stream values ``instr`` issued in ``t`` makes present (as ``_exec_sxm`` does)."""

    def planes(code: int, n: int) -> list[np.ndarray]:
        regs = w if code >> 5 else e
        return [regs[(code & 31) + g] for g in range(n)]

    src = planes(instr.a, group_width(instr, "a", config))
    map_values = None
    if instr.op in (Opcode.PERMUTE, Opcode.DISTRIBUTE):
        dt = operand_dtype(instr, "b")
        map_values = bytes_to_values(planes(instr.b, dt.nbytes), dt)
    out = sxm_execute(instr, src, map_values, config.lanes_per_superlane)
    when = t + latency(instr.op, config)
    return [StreamWrite(when, instr.dst >> 5, (instr.dst & 31) + g, p)
            for g, p in enumerate(out)]


def reference(config: ChipConfig, timeline, program) -> list[StreamWrite]:
    writes = []
    for t in sorted(program):
        e, w = timeline[t]
        writes += expected_writes(config, t, program[t], e, w)
    return writes


def simulate(config: ChipConfig, timeline, program: dict[int, Instruction],
             seed: int = 0) -> dict:
    dut = Sxm(config)
    end = max(program, default=0) + max(latency(op, config) for op in CROSS + LOCAL) \
        + config.superlanes + 1
    got = {}

    async def bench(ctx):
        tb = _ChipBench(config, dut, ctx, seed)
        await tb.run(end, timeline, program)
        got.update(tb.got)

    run_sim(dut, bench)
    return got


def run_and_check(config: ChipConfig, timeline, program, seed: int = 0) -> list[StreamWrite]:
    for instr in program.values():
        validate(instr, config)
    writes = reference(config, timeline, program)
    check_writes(config, simulate(config, timeline, program, seed), writes)
    return writes


# --- operands ---------------------------------------------------------------------------------


def rand_regs(rng, config: ChipConfig) -> np.ndarray:
    return rng.integers(0, 256, (2, config.streams_per_direction, config.lanes), dtype=np.uint8)


def put(regs: np.ndarray, code: int, values: np.ndarray, dtype: DType) -> None:
    """Write ``values`` as a ``dtype`` group at stream ``code`` of ``regs``."""
    for g, plane in enumerate(to_planes(values, dtype)):
        regs[code >> 5, (code & 31) + g] = plane


def rand_values(rng, dtype: DType, n: int) -> np.ndarray:
    lo, hi = -(1 << (dtype.bits - 1)), 1 << (dtype.bits - 1)
    v = rng.integers(lo, hi, n)
    v[rng.random(n) < 0.1] = lo  # most negative
    return v


def permute_map(rng, config: ChipConfig) -> np.ndarray:
    """Lane indices: in range (with replication), exactly ``lanes``, and far out of range
    (0x8000, 0xFFFF = -1 as int16)."""
    L = config.lanes
    m = rng.integers(0, L, L)
    kind = rng.random(L)
    m[kind < 0.2] = m[0]  # replicate one lane
    m[(kind >= 0.2) & (kind < 0.3)] = L
    m[(kind >= 0.3) & (kind < 0.35)] = 0xFFFF
    m[(kind >= 0.35) & (kind < 0.4)] = 0x8000 + int(rng.integers(0, 4))
    m[(kind >= 0.4) & (kind < 0.45)] = rng.integers(L, 0x10000, int(((kind >= 0.4)
                                                                     & (kind < 0.45)).sum()))
    return m.astype(np.int64)


def distribute_map(rng, config: ChipConfig) -> np.ndarray:
    """Per-lane byte indices within the superlane, some ``>= lps`` (255, 128, lps)."""
    lps, L = config.lanes_per_superlane, config.lanes
    m = rng.integers(0, lps, L)
    kind = rng.random(L)
    m[kind < 0.1] = lps
    m[(kind >= 0.1) & (kind < 0.15)] = 255
    m[(kind >= 0.15) & (kind < 0.2)] = 128
    return m


def group_code(rng, config: ChipConfig, width: int, direction: int | None = None) -> int:
    d = int(rng.integers(2)) if direction is None else direction
    return stream_code(d, int(rng.integers(config.streams_per_direction // width)) * width)


def shift_amounts(config: ChipConfig) -> list[int]:
    L = config.lanes
    return list(range(-L, L + 1))


# --- directed tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_shift_every_amount(preset):
    """SHIFT of every dtype by every n in -lanes..lanes, one per cycle, random data (most
    negative values included): zero fill, lanes cross superlanes, whole elements move."""
    config = PRESETS[preset]
    rng = np.random.default_rng(1)
    timeline, program = {}, {}
    cases = [(n, dtype) for n in shift_amounts(config) for dtype in DType]
    for t, (n, dtype) in enumerate(cases):
        regs = rand_regs(rng, config)
        a = group_code(rng, config, dtype.nbytes)
        put(regs, a, rand_values(rng, dtype, config.lanes), dtype)
        timeline[t] = regs
        program[t] = Instruction(Opcode.SHIFT, dtype=dtype.value, stype=dtype.value,
                                 dst=group_code(rng, config, dtype.nbytes), a=a, imm=n)
    run_and_check(config, timeline, program)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_permute_maps(preset):
    """PERMUTE of every dtype with the identity, the reversal, a rotation across superlanes,
    replication of one lane, and maps with out-of-range entries (lanes, 0x8000.., 0xFFFF)."""
    config = PRESETS[preset]
    L = config.lanes
    rng = np.random.default_rng(10)
    lanes = np.arange(L)
    maps = [lanes, lanes[::-1], (lanes + config.lanes_per_superlane + 1) % L,
            np.full(L, L - 1), np.full(L, L), np.full(L, 0xFFFF)]
    maps += [permute_map(rng, config) for _ in range(6)]
    timeline, program = {}, {}
    cases = [(mp, dtype) for dtype in DType for mp in maps]
    for t, (mp, dtype) in enumerate(cases):
        regs = rand_regs(rng, config)
        a = group_code(rng, config, dtype.nbytes)
        b = group_code(rng, config, 2)
        put(regs, a, rand_values(rng, dtype, L), dtype)
        put(regs, b, mp, DType.I16)
        timeline[t] = regs
        program[t] = Instruction(Opcode.PERMUTE, dtype=dtype.value, stype=dtype.value,
                                 dst=group_code(rng, config, dtype.nbytes), a=a, b=b)
    writes = run_and_check(config, timeline, program)
    # the golden functions agree with the plain definition for the i8 identity and reversal
    for t, mp in enumerate(maps[:2]):
        e, w = timeline[t]
        src = (w if program[t].a >> 5 else e)[program[t].a & 31]
        np.testing.assert_array_equal(writes[t].data, src[mp])


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_distribute(preset):
    """DISTRIBUTE of every dtype within each superlane: broadcast, reversal, random maps with
    out-of-range entries (lps, 128, 255), back to back."""
    config = PRESETS[preset]
    L, lps = config.lanes, config.lanes_per_superlane
    rng = np.random.default_rng(20)
    maps = [np.zeros(L, np.int64), (lps - 1 - np.arange(L) % lps)]
    maps += [distribute_map(rng, config) for _ in range(6)]
    timeline, program = {}, {}
    cases = [(mp, dtype) for dtype in DType for mp in maps]
    for t, (mp, dtype) in enumerate(cases):
        regs = rand_regs(rng, config)
        a = group_code(rng, config, dtype.nbytes)
        b = group_code(rng, config, 1)
        put(regs, a, rand_values(rng, dtype, L), dtype)
        put(regs, b, mp, DType.I8)
        timeline[t] = regs
        program[t] = Instruction(Opcode.DISTRIBUTE, dtype=dtype.value, stype=dtype.value,
                                 dst=group_code(rng, config, dtype.nbytes), a=a, b=b)
    run_and_check(config, timeline, program)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_transpose(preset):
    """TRANSPOSE of each superlane's lps x lps tile, every aligned source and destination
    group in both directions, back to back; transposing twice gives the input back."""
    config = PRESETS[preset]
    lps, ns = config.lanes_per_superlane, config.streams_per_direction
    rng = np.random.default_rng(30)
    timeline, program = {}, {}
    t = 0
    for d_src in (0, 1):
        for base in range(0, ns - lps + 1, lps):
            regs = rand_regs(rng, config)
            timeline[t] = regs
            dst = stream_code(1 - d_src, (base // lps + 1) % (ns // lps) * lps)
            program[t] = Instruction(Opcode.TRANSPOSE, dst=dst, a=stream_code(d_src, base))
            t += 1
    writes = run_and_check(config, timeline, program)
    first = writes[:lps]
    e, w = timeline[0]
    tile = np.stack([wr.data for wr in first])
    back = sxm_execute(program[0], list(tile), None, lps)
    np.testing.assert_array_equal(np.stack(back), e[:lps])


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_both_pipelines_write_in_the_same_cycle(preset):
    """A SHIFT and a DISTRIBUTE (issued latency(SHIFT) - latency(DISTRIBUTE) later) land in
    the same cycle: on different streams of one direction, and on the same stream index of
    both directions; a TRANSPOSE and a PERMUTE likewise."""
    config = PRESETS[preset]
    ns, L = config.streams_per_direction, config.lanes
    rng = np.random.default_rng(40)
    gap = latency(Opcode.SHIFT, config) - latency(Opcode.DISTRIBUTE, config)
    timeline = {t: rand_regs(rng, config) for t in range(4 * gap + 8)}
    i32, i8 = DType.I32.value, DType.I8.value
    program = {
        # same stream indices, both directions
        0: Instruction(Opcode.SHIFT, dtype=i32, stype=i32, dst=stream_code(0, 0),
                       a=stream_code(1, 0), imm=1),
        gap: Instruction(Opcode.DISTRIBUTE, dtype=i32, stype=i32, dst=stream_code(1, 0),
                         a=stream_code(0, 0), b=stream_code(1, 1)),
        # different streams of one direction
        gap + 1: Instruction(Opcode.SHIFT, dtype=i8, stype=i8, dst=stream_code(0, 0),
                             a=stream_code(1, 0), imm=-L),
        2 * gap + 1: Instruction(Opcode.DISTRIBUTE, dtype=i8, stype=i8, dst=stream_code(0, 1),
                                 a=stream_code(1, 3), b=stream_code(0, 2)),
        # a whole transposed tile next to a permutation
        2 * gap + 3: Instruction(Opcode.PERMUTE, dtype=i8, stype=i8, dst=stream_code(1, ns - 1),
                                 a=stream_code(0, 1), b=stream_code(0, 2)),
        3 * gap + 3: Instruction(Opcode.TRANSPOSE, dst=stream_code(0, 0), a=stream_code(1, 0)),
    }
    put(timeline[gap], stream_code(1, 1), distribute_map(rng, config), DType.I8)
    put(timeline[2 * gap + 1], stream_code(0, 2), distribute_map(rng, config), DType.I8)
    put(timeline[2 * gap + 3], stream_code(0, 2), permute_map(rng, config), DType.I16)
    writes = run_and_check(config, timeline, program)
    cycles = [wr.present for wr in writes]
    assert len(set(cycles)) == 3, "three pairs of instructions land together"


# --- random sequences --------------------------------------------------------------------------


def random_program(config: ChipConfig, rng, cycles: int, idle: float = 0.1):
    """Random SXM instructions in consecutive cycles (no two writes of one register in one
    cycle: that would be a stream conflict), random operands and maps."""
    L, lps, ns = config.lanes, config.lanes_per_superlane, config.streams_per_direction
    timeline, program, busy = {}, {}, set()
    amounts = [0, 1, -1, L, -L, L - 1, 1 - L, lps, -lps]
    for t in range(cycles):
        regs = rand_regs(rng, config)
        timeline[t] = regs
        if rng.random() < idle:
            continue
        op = [Opcode.SHIFT, Opcode.PERMUTE, Opcode.DISTRIBUTE, Opcode.TRANSPOSE][
            rng.integers(4)]
        dt = DType(int(rng.integers(3)))
        width = lps if op is Opcode.TRANSPOSE else dt.nbytes
        when = t + latency(op, config)
        for _ in range(8):
            dst = group_code(rng, config, width)
            regs_hit = {(when, dst >> 5, (dst & 31) + g) for g in range(width)}
            if not regs_hit & busy:
                break
        else:
            continue
        busy |= regs_hit
        a = group_code(rng, config, width)
        fields = {"dst": dst, "a": a}
        if op is not Opcode.TRANSPOSE:
            fields.update(dtype=dt.value, stype=dt.value)
            put(regs, a, rand_values(rng, dt, L), dt)
        if op is Opcode.SHIFT:
            fields["imm"] = int(rng.choice(amounts)) if rng.random() < 0.5 else \
                int(rng.integers(-L, L + 1))
        elif op is Opcode.PERMUTE:
            fields["b"] = group_code(rng, config, 2)
            if rng.random() < 0.9:
                put(regs, fields["b"], permute_map(rng, config), DType.I16)
        elif op is Opcode.DISTRIBUTE:
            fields["b"] = group_code(rng, config, 1)
            if rng.random() < 0.9:
                put(regs, fields["b"], distribute_map(rng, config), DType.I8)
        program[t] = Instruction(op, **fields)
        assert ns >= width
    return timeline, program


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_random_sequences(preset):
    """Random SHIFT/PERMUTE/DISTRIBUTE/TRANSPOSE of every dtype back to back, both pipelines
    writing in the same cycles."""
    config = PRESETS[preset]
    timeline, program = random_program(config, np.random.default_rng(50), 120)
    writes = run_and_check(config, timeline, program, seed=50)
    assert len({wr.present for wr in writes}) > 60


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_random_sequences_long(preset, seed):
    config = PRESETS[preset]
    timeline, program = random_program(config, np.random.default_rng(500 + seed), 1500)
    run_and_check(config, timeline, program, seed=seed)


# --- cross-check with the golden model ---------------------------------------------------------


def golden_sxm_program(config: ChipConfig, seed: int):
    """sxm_w runs SHIFT, PERMUTE and DISTRIBUTE of every dtype and a TRANSPOSE, as close
    together as their results allow, fed by MEM slices on westward streams (every MEM slice
    lies east of sxm_w). Where the operand and its map do not fit side by side (small: 4
    streams), the map is the low bytes of the operand itself."""
    rng = np.random.default_rng(seed)
    L, lps, ns = config.lanes, config.lanes_per_superlane, config.streams_per_direction
    n = config.mem_slices_per_hemisphere
    st = Staging(config)
    feeders = [f"mem_w{i}" for i in range(n)] + [f"mem_e{i}" for i in range(n)]
    offset = [0]
    table: dict[int, Instruction] = {}
    busy: set[tuple[int, int]] = set()

    def feed(values, dtype, t, stream):
        code = st.feed(feeders[stream:stream + dtype.nbytes], values, dtype, "sxm_w", t,
                       offset=offset[0], stream=stream)
        offset[0] += 1
        return code

    def slot(t, op, width):
        """The first cycle from ``t`` whose result lands on free eastward streams."""
        while True:
            for base in range(0, ns - width + 1, width):
                regs = {(t + latency(op, config), base + g) for g in range(width)}
                if not regs & busy:
                    busy.update(regs)
                    return t, stream_code(Direction.EAST, base)
            t += 1

    t = 20
    for dt in DType:
        w = dt.nbytes
        for op in (Opcode.SHIFT, Opcode.PERMUTE, Opcode.DISTRIBUTE):
            t, dst = slot(t, op, w)
            values = rand_values(rng, dt, L)
            fields = {"dst": dst, "dtype": dt.value, "stype": dt.value}
            if op is Opcode.SHIFT:
                fields["imm"] = int(rng.choice([L, -L, 1, 1 - L, 0]))
            else:
                mdt = operand_dtype(Instruction(op), "b")
                mp = permute_map(rng, config) if op is Opcode.PERMUTE \
                    else distribute_map(rng, config)
                b_base = -(-w // mdt.nbytes) * mdt.nbytes  # aligned, after the operand
                if b_base + mdt.nbytes <= ns:
                    fields["b"] = feed(mp, mdt, t, b_base)
                else:  # the map is the operand's low bytes
                    keep = (1 << (8 * mdt.nbytes)) - 1
                    values = (values & ~keep) | (mp & keep)
                    fields["b"] = stream_code(Direction.WEST, 0)
            fields["a"] = feed(values, dt, t, 0)
            table[t] = Instruction(op, **fields)
            st.builder.place("sxm_w", t, table[t])
            t += 1
    t, dst = slot(t, Opcode.TRANSPOSE, lps)
    codes = [feed(rand_values(rng, DType.I8, L), DType.I8, t, k) for k in range(lps)]
    table[t] = Instruction(Opcode.TRANSPOSE, dst=dst, a=codes[0])
    st.builder.place("sxm_w", t, table[t])
    return st, table


@pytest.mark.parametrize("preset", ["small", "ecp5"])
def test_against_golden_model(preset):
    """A scheduled program on the golden model: the RTL, fed the golden model's stream values
    at sxm_w's position, makes exactly the golden model's results present there, in the
    same cycles."""
    config = PRESETS[preset]
    st, table = golden_sxm_program(config, seed=60)
    program = make_program(config, st.builder, st.mem_init, st.outputs)
    model = GoldenModel(config, program)
    result = model.run()
    assert not result.violations
    pos = config.slice_by_name["sxm_w"].position
    end = max(t + latency(i.op, config) for t, i in table.items()) + 1
    regs = golden_regs(model, config, pos, end)
    writes = reference(config, regs, table)
    for wr in writes:
        np.testing.assert_array_equal(regs[wr.present][wr.west][wr.index], wr.data)
    check_writes(config, simulate(config, regs, table), writes)


# --- structure -----------------------------------------------------------------------------------


def test_constructor_validates():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the half-built component is never elaborated
        with pytest.raises(TypeError, match="ChipConfig") as info:
            Sxm("sim")
        del info
        gc.collect()


@pytest.mark.parametrize("preset", ["small", "ecp5",
                                    pytest.param("sim", marks=pytest.mark.slow)])
def test_verilog(preset, tmp_path):
    """Verilog generation works; Icarus compiles the ecp5 netlist."""
    config = PRESETS[preset]
    text = verilog.convert(Sxm(config), name="sxm", emit_src=False)
    assert "module sxm" in text
    if preset == "ecp5" and shutil.which("iverilog"):
        path = tmp_path / "sxm.v"
        path.write_text(text)
        subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"), str(path)],
                       check=True, capture_output=True)
