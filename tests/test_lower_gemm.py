"""The int8 GEMM lowering (:mod:`firmware.lower`) against a NumPy reference on the golden model,
and one small GEMM on the RTL.

Every golden run checks three things: the result equals :func:`gemm_reference` bit for bit,
the golden model takes exactly the cycles the lowering predicted, and its MXM counters agree
with the lowering's figures. Shapes include sizes that are not multiples of the lane count,
edge values that saturate the output, and every output type.
"""

import os
import random
from collections import Counter

import numpy as np
import pytest

from firmware.lower import (
    AccumulatorDepthError,
    LoweringError,
    QueueDepthError,
    SramCapacityError,
    gemm_reference,
    lower_gemm,
)
from firmware.program import from_bytes, to_bytes
from firmware.timing import issue_times
from openlpu.config import PRESETS
from openlpu.isa import Opcode
from openlpu.toolchain import simulator_available
from sim_models.golden import run_program


def data(rng, M, K, N, mult_bits=30):  # noqa: N803 - GEMM sizes
    """Random int8 operands and int32 multipliers (mostly positive, some negative)."""
    x = rng.integers(-128, 128, (M, K)).astype(np.int8)
    w = rng.integers(-128, 128, (K, N)).astype(np.int8)
    mult = rng.integers(-(1 << mult_bits), 1 << mult_bits, N).astype(np.int64)
    return x, w, mult


def check(config, x, w, mult, shift, out_dtype=np.int8, **kwargs):
    """Lower, run on the golden model, compare result, cycles and counters."""
    lg = lower_gemm(config, x, w, mult, shift, out_dtype=out_dtype, **kwargs)
    res = run_program(config, lg.program)
    assert res.cycles == lg.predicted_cycles, (
        f"golden model took {res.cycles} cycles, the lowering predicted {lg.predicted_cycles}")
    y = lg.read_output(res.outputs)
    ref = gemm_reference(x, w, mult, shift, out_dtype)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    bad = np.argwhere(y != ref)
    assert not len(bad), (f"{len(bad)} wrong outputs, first at {tuple(bad[0])}: "
                          f"{y[tuple(bad[0])]} != {ref[tuple(bad[0])]}")
    assert sum(res.counters["mxm_abc"].values()) == lg.stats.abc
    assert res.counters["mxm_utilization"] == pytest.approx(lg.issued_utilisation)
    return lg, res


def queue_ops(lg, prefix):
    """Every unit instruction of the queues whose name starts with ``prefix``."""
    return [i for q, code in lg.program.queues.items() if q.startswith(prefix) for i in code
            if i.op not in (Opcode.NOP, Opcode.REPEAT, Opcode.END)]


# --- the reference itself ------------------------------------------------------------------------


def test_reference_is_the_requantised_int32_matmul():
    """gemm_reference = saturate(round_half_up(wrap32(x @ w) * mult >> shift)), written out
    with Python integers."""
    rng = np.random.default_rng(0)
    x, w, mult = data(rng, 3, 5, 4, mult_bits=31)
    x[0] = -128
    w[:, 0] = -128
    for shift in (0, 1, 17, 40, 63):
        ref = gemm_reference(x, w, mult, shift)
        for m in range(3):
            for n in range(4):
                acc = sum(int(x[m, k]) * int(w[k, n]) for k in range(5))
                acc = (acc + 2**31) % 2**32 - 2**31
                prod = acc * int(mult[n])
                r = prod if shift == 0 else (prod >> shift) + ((prod >> (shift - 1)) & 1)
                assert ref[m, n] == max(-128, min(127, r)), (m, n, shift)


# --- results on the golden model ------------------------------------------------------------------

SHAPES = {
    "small": [(1, 1, 1), (5, 7, 6), (4, 4, 4), (2, 9, 3)],
    "ecp5": [(1, 1, 1), (5, 37, 19), (16, 16, 16), (17, 33, 31), (48, 64, 40)],
    "sim": [(5, 37, 19), (33, 70, 45), (64, 96, 64)],
}


@pytest.mark.parametrize("preset,shape", [(p, s) for p, shapes in SHAPES.items()
                                          for s in shapes])
def test_shapes(preset, shape):
    rng = np.random.default_rng(sum(shape))
    x, w, mult = data(rng, *shape)
    check(PRESETS[preset], x, w, mult, 31)


@pytest.mark.parametrize("preset", ["small", "ecp5", "sim"])
def test_random_shapes(preset):
    seed = int(os.environ.get("OPENLPU_SEED", random.SystemRandom().randrange(2**32)))
    print(f"seed {seed} (replay with OPENLPU_SEED={seed})")
    rng = np.random.default_rng(seed)
    config = PRESETS[preset]
    # small's 64-word queues hold only a few tile steps
    hi = 9 if preset == "small" else 2 * config.lanes + 3
    for _ in range(4):
        shape = tuple(int(v) for v in rng.integers(1, hi, 3))
        x, w, mult = data(rng, *shape, mult_bits=int(rng.integers(1, 32)))
        check(config, x, w, mult, int(rng.integers(0, 64)))


@pytest.mark.parametrize("preset", ["small", "ecp5", "sim"])
def test_edge_values_saturate(preset):
    """Extreme operands and multipliers; the output saturates at both ends."""
    config = PRESETS[preset]
    M, K, N = (3, 6, 5) if preset == "small" else (7, 2 * config.lanes + 1, config.lanes + 3)  # noqa: N806
    x = np.full((M, K), -128, np.int8)
    x[1] = 127
    x[2, ::2] = -128
    x[2, 1::2] = 127
    w = np.full((K, N), -128, np.int8)
    w[:, 1] = 127
    mult = np.array([(1 << 31) - 1, -(1 << 31), 1, -1, 0] * N)[:N]
    for shift in (0, 20, 63):
        lg, res = check(config, x, w, mult, shift)
        y = lg.read_output(res.outputs)
        if shift == 0:
            assert (y == 127).any() and (y == -128).any()


@pytest.mark.parametrize("out_dtype", [np.int16, np.int32])
def test_wide_outputs(out_dtype):
    rng = np.random.default_rng(3)
    x, w, mult = data(rng, 9, 21, 18)
    lg, _ = check(PRESETS["ecp5"], x, w, mult, 26, out_dtype=out_dtype)
    assert all(len(r.slices) == np.dtype(out_dtype).itemsize for r in lg.program.outputs)


def test_explicit_blocks_and_planes():
    """Smaller row blocks than the accumulators hold, and one plane of two."""
    rng = np.random.default_rng(4)
    x, w, mult = data(rng, 40, 20, 35)
    lg, _ = check(PRESETS["ecp5"], x, w, mult, 30, block_rows=16)
    assert len(lg.tiling.row_blocks) == 3
    lg, res = check(PRESETS["sim"], x, w, mult, 30, planes=1)
    assert res.counters["mxm_abc"]["mxm1"] == 0


def test_every_plane_works():
    """sim has a plane in each hemisphere: both compute, with equal shares."""
    rng = np.random.default_rng(5)
    x, w, mult = data(rng, 64, 64, 128)
    lg, res = check(PRESETS["sim"], x, w, mult, 30)
    abc = res.counters["mxm_abc"]
    assert abc["mxm0"] == abc["mxm1"] > 0
    assert len(lg.program.outputs) == 2  # one writer per plane


def test_multiplier_delivery():
    """sim keeps the multiplier circulating (MOV); small turns it round through an SXM; one
    multiplier for all channels is REQ's immediate."""
    rng = np.random.default_rng(6)
    x, w, mult = data(rng, 20, 40, 40)
    lg, _ = check(PRESETS["sim"], x, w, mult, 30)
    assert any(i.op is Opcode.MOV for i in queue_ops(lg, "vxm"))
    x, w, mult = data(rng, 5, 7, 6)
    lg, _ = check(PRESETS["small"], x, w, mult, 30)
    assert any(i.op is Opcode.SHIFT for i in queue_ops(lg, "sxm"))
    lg, _ = check(PRESETS["ecp5"], x, w, np.full(6, 12345), 14)
    reqs = [i for i in queue_ops(lg, "vxm") if i.op is Opcode.REQ]
    assert reqs and all(i.bimm == 1 and i.imm == 12345 for i in reqs)
    assert not any(i.op is Opcode.MOV for i in queue_ops(lg, "vxm"))


def test_single_output_region_and_file_round_trip():
    rng = np.random.default_rng(7)
    x, w, mult = data(rng, 10, 30, 20)
    config = PRESETS["ecp5"]
    lg, res = check(config, x, w, mult, 29, name="proj")
    assert [r.name for r in lg.program.outputs] == ["proj"]
    assert res.outputs["proj"].shape == (10 * lg.tiling.NT, config.lanes)
    again = run_program(config, from_bytes(to_bytes(lg.program)))
    assert again.cycles == res.cycles
    assert np.array_equal(lg.read_output(again.outputs), lg.read_output(res.outputs))


def test_utilisation():
    """With K >= 16 L the matmul phase passes 93 %: the last K step's ABCO emits every output
    row, so the planes spend no cycle on ACC, only on the LW chunks and IW of each tile and
    the odd cycle an ABCO waits for its REQ and writes."""
    rng = np.random.default_rng(8)
    for preset, shape, target in (("ecp5", (64, 256, 64), 0.93),
                                  ("sim", (256, 512, 128), 0.96)):
        config = PRESETS[preset]
        x, w, mult = data(rng, *shape)
        lg, _ = check(config, x, w, mult, 30)
        times = issue_times(config, lg.program.queues)
        ops = Counter(op for p in range(lg.tiling.planes) for _, op in times[f"mxm{p}"])
        assert ops[Opcode.ACC] == 0
        assert ops[Opcode.ABCO] == shape[0] * lg.tiling.NT
        assert ops[Opcode.ABC] + ops[Opcode.ABCO] == lg.stats.abc
        assert lg.matmul_utilisation >= target, lg.report()
        report = lg.report()
        assert report["macs"] == shape[0] * shape[1] * shape[2]
        assert 0 < report["sram_bytes"] <= config.sram_bytes


@pytest.mark.parametrize("preset", ["ecp5", "sim"])
def test_abco_saves_the_acc_cycles(preset):
    """The same GEMM emitted by ACC (``fused=False``) is bit exact too, issues one ACC per
    output row and tile and no ABCO, and takes longer: ABCO is what removes those cycles."""
    config = PRESETS[preset]
    x, w, mult = data(np.random.default_rng(9), 48, 3 * config.lanes, 2 * config.lanes)
    fused, _ = check(config, x, w, mult, 28)
    plain, _ = check(config, x, w, mult, 28, fused=False)
    counts = {}
    for lg in (fused, plain):
        times = issue_times(config, lg.program.queues)
        counts[id(lg)] = Counter(op for p in range(lg.tiling.planes)
                                 for _, op in times[f"mxm{p}"])
    assert counts[id(plain)][Opcode.ACC] == 48 * 2 and counts[id(plain)][Opcode.ABCO] == 0
    assert counts[id(fused)][Opcode.ABCO] == 48 * 2 and counts[id(fused)][Opcode.ACC] == 0
    assert fused.predicted_cycles < plain.predicted_cycles
    assert fused.matmul_utilisation > plain.matmul_utilisation


# --- errors ---------------------------------------------------------------------------------------


def test_without_repeat_the_same_schedule_is_written_out():
    """A config whose queues have no REPEAT (``icu_repeat = False``): the lowering writes the
    repetitions out, so the queues hold more words, but issue times, cycles and result are
    those of the preset."""
    rng = np.random.default_rng(5)
    x, w, mult = data(rng, 20, 24, 16)
    config = PRESETS["ecp5"]
    plain = config.replace(name="plain", icu_repeat=False)
    with_repeat, _ = check(config, x, w, mult, 12)
    without, _ = check(plain, x, w, mult, 12)
    words = [sum(map(len, lg.program.queues.values())) for lg in (with_repeat, without)]
    assert any(i.op is Opcode.REPEAT for code in with_repeat.program.queues.values()
               for i in code)
    assert not any(i.op is Opcode.REPEAT for code in without.program.queues.values()
                   for i in code)
    assert words[1] > words[0]
    assert without.predicted_cycles == with_repeat.predicted_cycles
    assert issue_times(plain, without.program.queues) == \
        issue_times(config, with_repeat.program.queues)


def test_without_sxms_gemm_needs_four_slices_on_a_side():
    """The multiplier relay through an SXM is what small uses; without SXMs small cannot bring
    per-channel multipliers to the VXM, and ecp5 (4 MEM slices a side) does not need it."""
    rng = np.random.default_rng(3)
    x, w, mult = data(rng, 3, 6, 5)
    with pytest.raises(LoweringError, match=r"an SXM \(sxm = false\)"):
        lower_gemm(PRESETS["small"].replace(name="bare", sxm=False), x, w, mult, 30)
    check(PRESETS["ecp5"].replace(name="bare", sxm=False), x, w, mult, 30)


def test_sram_too_small():
    rng = np.random.default_rng(9)
    x, w, mult = data(rng, 64, 64, 64)
    with pytest.raises(SramCapacityError, match="bytes of SRAM") as e:
        lower_gemm(PRESETS["small"], x, w, mult, 30)
    assert e.value.needed > e.value.available == PRESETS["small"].sram_bytes


def test_accumulator_depth():
    rng = np.random.default_rng(10)
    x, w, mult = data(rng, 40, 4, 4)
    with pytest.raises(AccumulatorDepthError, match="mxm_acc_depth 16") as e:
        lower_gemm(PRESETS["small"], x, w, mult, 30, block_rows=17)
    assert (e.value.needed, e.value.available) == (17, 16)


def test_queue_depth():
    rng = np.random.default_rng(11)
    x, w, mult = data(rng, 16, 16, 16)
    with pytest.raises(QueueDepthError, match="queue_depth|hold 64") as e:
        lower_gemm(PRESETS["small"], x, w, mult, 30)
    assert e.value.needed > e.value.available == 64
    assert e.value.queue in e.value.args[0]


@pytest.mark.parametrize("change,match", [
    (dict(shift=64), "shift"),
    (dict(w=np.zeros((5, 3), np.int8)), "w must be"),
    (dict(mult=np.zeros(2, np.int64)), "one multiplier per output channel"),
    (dict(mult=np.zeros(3)), "integers"),
    (dict(x=np.full((2, 4), 300)), "outside -128..127"),
    (dict(mult=np.array([1 << 31, 0, 0])), "outside"),
    (dict(out_dtype=np.uint8), "out_dtype"),
])
def test_bad_arguments(change, match):
    args = dict(x=np.zeros((2, 4), np.int8), w=np.zeros((4, 3), np.int8),
                mult=np.ones(3, np.int64), shift=3)
    args.update(change)
    out_dtype = args.pop("out_dtype", np.int8)
    with pytest.raises(LoweringError, match=match):
        lower_gemm(PRESETS["ecp5"], out_dtype=out_dtype, **args)


# --- groqchip (4 planes, 320 lanes) and the RTL ---------------------------------------------------


@pytest.mark.slow
def test_groqchip():
    rng = np.random.default_rng(12)
    x, w, mult = data(rng, 320, 650, 330)
    lg, res = check(PRESETS["groqchip"], x, w, mult, 30)
    assert all(v > 0 for v in res.counters["mxm_abc"].values())


def rtl_gemm():
    """A small odd-sized GEMM for the small preset with a saturating row and column."""
    rng = np.random.default_rng(13)
    x, w, mult = data(rng, 5, 7, 6, mult_bits=31)
    x[0] = -128
    w[:, 0] = -128
    return x, w, mult, 31


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_rtl_small(simulator):
    ok, why = simulator_available(simulator)
    if not ok:
        pytest.skip(why)
    from tb.verify import verify

    config = PRESETS["small"]
    x, w, mult, shift = rtl_gemm()
    lg = lower_gemm(config, x, w, mult, shift)
    (result,) = verify(config, {"gemm": lg.program}, simulator)
    assert result.matches, str(result.comparison)
    assert result.rtl.cycles == lg.predicted_cycles
    assert np.array_equal(lg.read_output(result.golden.outputs),
                          gemm_reference(x, w, mult, shift))


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_rtl_ecp5(simulator):
    ok, why = simulator_available(simulator)
    if not ok:
        pytest.skip(why)
    from tb.verify import verify

    config = PRESETS["ecp5"]
    rng = np.random.default_rng(14)
    x, w, mult = data(rng, 21, 40, 19)
    lg = lower_gemm(config, x, w, mult, 30)
    (result,) = verify(config, {"gemm": lg.program}, simulator)
    assert result.matches, str(result.comparison)
    assert result.rtl.cycles == lg.predicted_cycles
