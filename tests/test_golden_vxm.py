"""Every VXM instruction, every allowed type, on the golden model against independent NumPy.

Operands come out of SRAM on timed READs and results go back through timed WRITEs, so these
tests also pin down the stream timing of the VXM. Expectations are written independently of
``sim_models.datapath``: NumPy's own fixed-width wrapping, Python integers for rounding, and
``openlpu.fixedpoint`` (whose accuracy is tested against float) for the special functions.
"""

import numpy as np
import pytest
from harness import NP_DTYPE, Staging, east, west

from openlpu import fixedpoint as fx
from openlpu.config import PRESETS
from openlpu.isa import OPS, DType, Instruction, Opcode, Unit, latency

CONFIG = PRESETS["sim"]
VXM_OPS = [s for s in OPS.values() if s.unit is Unit.VXM]
BINARY = {Opcode.ADD, Opcode.SUB, Opcode.ADDS, Opcode.SUBS, Opcode.MUL, Opcode.MIN, Opcode.MAX,
          Opcode.AND, Opcode.OR, Opcode.XOR, Opcode.SHL, Opcode.SHR, Opcode.SHRU, Opcode.SHRR,
          Opcode.CMPEQ, Opcode.CMPNE, Opcode.CMPLT, Opcode.CMPLE, Opcode.CMPGT, Opcode.CMPGE}


def edge_values(dt: DType, lanes: int, rng) -> np.ndarray:
    """Extremes first (most negative, most positive, 0, +-1), then random values."""
    lo, hi = -(1 << (dt.bits - 1)), (1 << (dt.bits - 1)) - 1
    edges = np.array([lo, hi, 0, -1, 1, lo + 1, hi - 1], dtype=np.int64)
    rand = rng.integers(lo, hi, size=lanes, endpoint=True)
    n = min(len(edges), lanes)
    rand[:n] = edges[:n]
    return rand


def expected(op, dt, a, b, c, shift=0, src_dt=None):
    t = NP_DTYPE[dt]
    bits = dt.bits
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    ut = {8: np.uint8, 16: np.uint16, 32: np.uint32}[bits]
    A = a.astype(t)
    B = b.astype(t) if b is not None else None
    sh = (b & (bits - 1)).astype(t) if b is not None else None
    with np.errstate(over="ignore"):
        table = {
            Opcode.ADD: lambda: A + B,
            Opcode.SUB: lambda: A - B,
            Opcode.ADDS: lambda: np.clip(a + b, lo, hi),
            Opcode.SUBS: lambda: np.clip(a - b, lo, hi),
            Opcode.MUL: lambda: A * B,
            Opcode.MIN: lambda: np.minimum(A, B),
            Opcode.MAX: lambda: np.maximum(A, B),
            Opcode.AND: lambda: A & B,
            Opcode.OR: lambda: A | B,
            Opcode.XOR: lambda: A ^ B,
            Opcode.SHL: lambda: A << sh,
            Opcode.SHR: lambda: A >> sh,
            Opcode.SHRU: lambda: (A.view(ut) >> sh.astype(ut)).view(t),
            Opcode.SHRR: lambda: np.array(
                [(int(x) + (1 << (int(s) - 1))) >> int(s) if s else int(x)
                 for x, s in zip(a, sh, strict=True)]),
            Opcode.CMPEQ: lambda: np.where(a == b, -1, 0),
            Opcode.CMPNE: lambda: np.where(a != b, -1, 0),
            Opcode.CMPLT: lambda: np.where(a < b, -1, 0),
            Opcode.CMPLE: lambda: np.where(a <= b, -1, 0),
            Opcode.CMPGT: lambda: np.where(a > b, -1, 0),
            Opcode.CMPGE: lambda: np.where(a >= b, -1, 0),
            Opcode.SEL: lambda: np.where(c != 0, a, b),
            Opcode.MOV: lambda: a,
            Opcode.NEG: lambda: -A,
            Opcode.ABS: lambda: np.clip(np.abs(a), lo, hi),
            Opcode.NOT: lambda: ~A,
            Opcode.RELU: lambda: np.maximum(a, 0),
            Opcode.CVT: lambda: np.clip(a, lo, hi),
            Opcode.REQ: lambda: np.clip(np.array(
                [(int(x) * int(m) + ((1 << (shift - 1)) if shift else 0)) >> shift
                 for x, m in zip(a, b, strict=True)]), lo, hi),
            Opcode.EXP: lambda: fx.exp_q(a),
            Opcode.RECIP: lambda: fx.recip_q(a),
            Opcode.RSQRT: lambda: fx.rsqrt_q(a),
            Opcode.SIGMOID: lambda: fx.sigmoid_q(a),
            Opcode.TANH: lambda: fx.tanh_q(a),
            Opcode.GELU: lambda: fx.gelu_q(a),
            Opcode.SILU: lambda: fx.silu_q(a),
        }
    with np.errstate(over="ignore"):
        return np.asarray(table[op]()).astype(np.int64)


def run_vxm(instr: Instruction, a, b=None, c=None, imm=None, config=CONFIG, alu="vxm0"):
    """Feed a (west), b (east) and c (west, further out) to the VXM, issue ``instr`` at cycle
    30, write the result into east slices; returns (values, result, staging)."""
    st = Staging(config)
    src = DType(instr.stype)
    dst_t = DType(instr.dtype)
    t = 30
    fields = {"a": st.feed(west(config, 0, src.nbytes), a, src, "vxm", t)}
    b_type = DType.I32 if instr.op is Opcode.REQ else src
    if imm is not None:
        fields.update(bimm=1, imm=imm)
    elif b is not None:
        fields["b"] = st.feed(east(config, 0, b_type.nbytes), b, b_type, "vxm", t)
    if c is not None:
        fields["c"] = st.feed(west(config, 4, src.nbytes), c, src, "vxm", t)
    # results go to the east slices after those that fed b (they write bank 1 anyway)
    first = 4 if config.mem_slices_per_hemisphere >= 4 + dst_t.nbytes else b_type.nbytes
    out = st.alloc(st.builder.direction("vxm", f"mem_e{first}"), dst_t)
    instr = instr.replace(dst=out, **fields)
    st.builder.place(alu, t, instr)
    st.collect("vxm", instr.op, t, out, east(config, first, dst_t.nbytes), dst_t)
    result, _ = st.run()
    assert result.cycles == st.builder.predicted_cycles()
    return result.outputs["out"][0].astype(np.int64), result, st


def cases():
    for spec in VXM_OPS:
        for dt in spec.dtypes:
            yield pytest.param(spec.opcode, dt, id=f"{spec.name}.{dt.label}")


@pytest.mark.parametrize("op,dt", list(cases()))
def test_vxm_instruction_matches_numpy(op, dt):
    rng = np.random.default_rng(int(op.value) * 7 + dt.value)
    lanes = CONFIG.lanes
    a = edge_values(dt, lanes, rng)
    b = c = None
    shift = 0
    stype = dt
    if op in BINARY or op is Opcode.SEL:
        b = edge_values(dt, lanes, rng)
        b[7:12] = a[7:12]  # some equal lanes for the comparisons
    if op is Opcode.SEL:
        c = np.where(rng.integers(0, 2, lanes) == 1, edge_values(dt, lanes, rng), 0)
    if op is Opcode.CVT:
        stype = DType(rng.choice([d.value for d in DType if d is not dt]))
        a = edge_values(stype, lanes, rng)
    if op is Opcode.REQ:
        stype = DType.I32
        a = edge_values(DType.I32, lanes, rng)
        b = rng.integers(-(1 << 20), 1 << 20, size=lanes)
        b[0] = 1
        shift = 13
    if op in (Opcode.RECIP, Opcode.RSQRT):
        a[7:] = rng.integers(1, 1 << 31, size=lanes - 7)
    if op in (Opcode.EXP, Opcode.SIGMOID, Opcode.TANH, Opcode.GELU, Opcode.SILU):
        a[7:] = rng.integers(-20 << 16, 20 << 16, size=lanes - 7)
    instr = Instruction(op, dtype=dt.value, stype=stype.value, c=shift)
    got, result, _ = run_vxm(instr, a, b, c)
    want = expected(op, dt, a, b, c, shift)
    np.testing.assert_array_equal(got, want, err_msg=f"{op.name}.{dt.label}")


@pytest.mark.parametrize("op,imm", [(Opcode.ADD, -3), (Opcode.MUL, 100), (Opcode.SHL, 3),
                                    (Opcode.CMPGT, 0), (Opcode.MAX, -128), (Opcode.AND, 255)])
def test_vxm_immediate_operand(op, imm):
    rng = np.random.default_rng(5)
    a = edge_values(DType.I8, CONFIG.lanes, rng)
    got, _, _ = run_vxm(Instruction(op, dtype=0, stype=0), a, imm=imm)
    b = np.full(CONFIG.lanes, np.int64(np.int8(np.uint8(imm & 0xFF))))
    np.testing.assert_array_equal(got, expected(op, DType.I8, a, b, None))


def test_req_with_immediate_multiplier_rounds_half_up():
    a = np.zeros(CONFIG.lanes, dtype=np.int64)
    a[:6] = [5, -5, 3, -3, 1 << 30, -(1 << 30)]
    got, _, _ = run_vxm(Instruction(Opcode.REQ, dtype=0, stype=2, c=1), a, imm=1)
    # x / 2 rounded half toward +inf, then saturated to int8
    assert list(got[:6]) == [3, -2, 2, -1, 127, -128]


@pytest.mark.parametrize("name", ["small", "ecp5"])
def test_vxm_on_small_presets(name):
    """The same instruction works on every preset, with each one's lanes and streams."""
    config = PRESETS[name]
    rng = np.random.default_rng(1)
    a = edge_values(DType.I8, config.lanes, rng)
    b = edge_values(DType.I8, config.lanes, rng)
    got, _, _ = run_vxm(Instruction(Opcode.SUBS, dtype=0, stype=0), a, b, config=config)
    np.testing.assert_array_equal(got, np.clip(a - b, -128, 127))


def test_every_vxm_alu_queue_executes():
    rng = np.random.default_rng(2)
    a = edge_values(DType.I16, CONFIG.lanes, rng)
    for alu in range(CONFIG.vxm_alus_per_lane):
        got, result, _ = run_vxm(Instruction(Opcode.NEG, dtype=1, stype=1), a,
                                 alu=f"vxm{alu}")
        np.testing.assert_array_equal(got, (-a.astype(np.int16)).astype(np.int64))
        assert result.counters["issued"][f"vxm{alu}"] == 1


def test_result_arrives_exactly_latency_plus_hops_later():
    """The WRITE that catches the result one cycle late finds an empty slot."""
    from sim_models.errors import EmptyStreamRead

    rng = np.random.default_rng(3)
    a = edge_values(DType.I8, CONFIG.lanes, rng)
    st = Staging(CONFIG)
    code = st.feed(west(CONFIG, 0, 1), a, DType.I8, "vxm", 10)
    out = st.alloc(st.builder.direction("vxm", "mem_e3"), DType.I8)
    st.builder.place("vxm0", 10, Instruction(Opcode.MOV, dst=out, a=code))
    late = st.builder.arrival("vxm", 10, Opcode.MOV, "mem_e3") + 1
    assert late == 10 + latency(Opcode.MOV, CONFIG) + 4 + 1  # mem_e3 is 4 hops east
    from openlpu.isa import Instruction as I
    st.builder.place("mem_e3", late, I(Opcode.WRITE, addr=0, a=out))
    with pytest.raises(EmptyStreamRead, match="mem_e3"):
        st.run()
