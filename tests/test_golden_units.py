"""MEM, MXM and SXM instructions on the golden model against independent NumPy expectations."""

import numpy as np
import pytest
from harness import Staging, west

from firmware.program import MemInit
from openlpu.config import PRESETS
from openlpu.isa import Direction, DType, Instruction, Opcode, latency, stream_code

SIM = PRESETS["sim"]


def rand_i8(rng, *shape):
    return rng.integers(-128, 128, size=shape)


# --- MEM -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["small", "ecp5", "sim"])
def test_read_write_moves_vectors_between_slices_in_both_directions(name):
    config = PRESETS[name]
    rng = np.random.default_rng(0)
    st = Staging(config)
    n = config.mem_slices_per_hemisphere
    bank1 = 1 << config.offset_bits
    sent = {}
    # each west slice sends a word east to its mirror slice, each east slice one west
    for i in range(n):
        for src, dst in ((f"mem_w{i}", f"mem_e{i}"), (f"mem_e{i}", f"mem_w{i}")):
            data = rand_i8(rng, config.lanes)
            t = 20 + 2 * i + (src < dst)
            code = st.feed([src], data, DType.I8, dst, t, offset=i, stream=0)
            st.builder.place(dst, t, Instruction(Opcode.WRITE, addr=bank1 + i, a=code))
            st.expect_output(f"{src}_to_{dst}", [dst], bank1 + i, 1, "int8")
            sent[f"{src}_to_{dst}"] = data
    result, _ = st.run()
    for key, data in sent.items():
        np.testing.assert_array_equal(result.outputs[key][0], data, err_msg=key)
    assert result.cycles == st.builder.predicted_cycles()
    assert sum(result.counters["mem_reads"].values()) == 2 * n
    assert sum(result.counters["mem_writes"].values()) == 2 * n


@pytest.mark.parametrize("name", ["ecp5", "sim"])
def test_rdwr_reads_one_word_and_writes_another_in_one_issue(name):
    """A READ and a WRITE placed on one MEM queue in one cycle issue as one RDWR. The read
    sees the word before the write lands (t + 1), even when both name the same word, and both
    halves count."""
    config = PRESETS[name]
    rng = np.random.default_rng(5)
    st = Staging(config)
    b = st.builder
    bank1 = 1 << config.offset_bits
    old, new, other = (rand_i8(rng, config.lanes) for _ in range(3))
    st.mem_init.append(MemInit("mem_w0", bank1 + 3, np.asarray(old, np.int8).view(np.uint8)
                               .reshape(1, -1)))
    t = 30
    # mem_w1 sends `new` to mem_w0, which in the same cycle READs word 3 (to mem_e0) and
    # WRITEs `new` over it; a second RDWR copies `other` into word 5 while reading word 3 again
    code = st.feed(["mem_w1"], new, DType.I8, "mem_w0", t, offset=0, stream=1)
    out = stream_code(Direction.EAST, 6)
    b.place("mem_w0", t, Instruction(Opcode.READ, dst=out, addr=bank1 + 3))
    b.place("mem_w0", t, Instruction(Opcode.WRITE, addr=bank1 + 3, a=code))
    b.place("mem_e0", b.arrival("mem_w0", t, Opcode.READ, "mem_e0"),
            Instruction(Opcode.WRITE, addr=0, a=out))
    code2 = st.feed(["mem_w1"], other, DType.I8, "mem_w0", t + 2, offset=1, stream=1)
    b.place("mem_w0", t + 2, Instruction(Opcode.WRITE, addr=5, a=code2))
    b.place("mem_w0", t + 2, Instruction(Opcode.READ, dst=out, addr=bank1 + 3))
    b.place("mem_e0", b.arrival("mem_w0", t + 2, Opcode.READ, "mem_e0"),
            Instruction(Opcode.WRITE, addr=1, a=out))
    assert [i.op for i in b.queues()["mem_w0"] if i.op is not Opcode.NOP] == [
        Opcode.RDWR, Opcode.RDWR, Opcode.END]
    st.expect_output("seen", ["mem_e0"], 0, 2, "int8")
    st.expect_output("word3", ["mem_w0"], bank1 + 3, 1, "int8")
    st.expect_output("word5", ["mem_w0"], 5, 1, "int8")
    result, _ = st.run()
    np.testing.assert_array_equal(result.outputs["seen"], [old, new])
    np.testing.assert_array_equal(result.outputs["word3"][0], new)
    np.testing.assert_array_equal(result.outputs["word5"][0], other)
    assert result.counters["mem_reads"]["mem_w0"] == 2
    assert result.counters["mem_writes"]["mem_w0"] == 2
    assert result.cycles == b.predicted_cycles()


def test_gather_and_scatter_use_per_lane_offsets():
    config = SIM
    rng = np.random.default_rng(1)
    words = 8
    table = rand_i8(rng, words, config.lanes)
    st = Staging(config)
    st.mem_init.append(MemInit("mem_w0", 0, table.astype(np.uint8)))
    offsets = rng.integers(0, words, size=config.lanes)
    t = 40
    # the int16 map comes from the east (westbound W0, W1) and meets the GATHER at mem_w0
    mp = st.feed(["mem_e0", "mem_e1"], offsets, DType.I16, "mem_w0", t, bank=1)
    out = stream_code(Direction.EAST, 0)
    st.builder.place("mem_w0", t, Instruction(Opcode.GATHER, dst=out, addr=0, b=mp))
    st.collect("mem_w0", Opcode.GATHER, t, out, ["mem_e2"], DType.I8, "gathered")
    # SCATTER row 0 into a zeroed region of mem_e3 (bank 1, base offset 16) with the same map
    scatter_base = (1 << config.offset_bits) + 16
    t2 = 60
    mp2 = st.feed(["mem_w2", "mem_w3"], offsets, DType.I16, "mem_e3", t2, stream=2)
    vec = st.feed(["mem_w4"], table[0], DType.I8, "mem_e3", t2, stream=4)
    st.builder.place("mem_e3", t2, Instruction(Opcode.SCATTER, addr=scatter_base, b=mp2, a=vec))
    st.expect_output("scattered", ["mem_e3"], scatter_base, words, "int8")
    result, _ = st.run()
    lanes = np.arange(config.lanes)
    np.testing.assert_array_equal(result.outputs["gathered"][0], table[offsets, lanes])
    want = np.zeros((words, config.lanes), dtype=np.int64)
    want[offsets, lanes] = table[0]
    np.testing.assert_array_equal(result.outputs["scattered"], want)


def test_gather_offsets_wrap_modulo_the_bank():
    config = PRESETS["ecp5"]
    words = config.mem_words_per_bank
    rng = np.random.default_rng(7)
    st = Staging(config)
    table = rand_i8(rng, 2, config.lanes)
    st.mem_init.append(MemInit("mem_w0", words - 1, table[:1].astype(np.uint8)))
    st.mem_init.append(MemInit("mem_w0", 0, table[1:].astype(np.uint8)))
    offsets = np.where(np.arange(config.lanes) % 2 == 0, 0, 1)  # words-1 + 1 wraps to 0
    mp = st.feed(["mem_e0", "mem_e1"], offsets, DType.I16, "mem_w0", 30, bank=1)
    out = stream_code(Direction.EAST, 0)
    st.builder.place("mem_w0", 30, Instruction(Opcode.GATHER, dst=out, addr=words - 1, b=mp))
    st.collect("mem_w0", Opcode.GATHER, 30, out, ["mem_e2"], DType.I8, "g")
    result, _ = st.run()
    lanes = np.arange(config.lanes)
    np.testing.assert_array_equal(result.outputs["g"][0], table[offsets, lanes])


# --- MXM -----------------------------------------------------------------------------------


def load_weights(st: Staging, W: np.ndarray, base_offset: int, t: int) -> int:
    """LW all rows of ``W`` into mxm0's shadow buffer, one row per west MEM slice per cycle
    (``count`` = 4 rows per LW); returns the cycle after the last LW."""
    rows_per_lw = 4
    for row in range(0, W.shape[0], rows_per_lw):
        for k in range(rows_per_lw):
            st.feed([f"mem_w{k}"], W[row + k], DType.I8, "mxm0", t,
                    offset=base_offset + row + k, stream=k)
        st.builder.place("mxm0", t, Instruction(
            Opcode.LW, addr=row, a=stream_code(Direction.WEST, 0), count=rows_per_lw))
        t += 1
    return t


def stream_activations(st: Staging, X: np.ndarray, offset: int, t: int, accumulate: int):
    """ABC each row of ``X`` into accumulator entry i, one per cycle, from the outermost west
    MEM slice on stream W4."""
    outer = f"mem_w{st.config.mem_slices_per_hemisphere - 1}"
    for i, x in enumerate(X):
        code = st.feed([outer], x, DType.I8, "mxm0", t + i, bank=1, offset=offset + i,
                       stream=4)
        st.builder.place("mxm0", t + i, Instruction(Opcode.ABC, addr=i, a=code,
                                                    accumulate=accumulate))
    return t + len(X)


def test_mxm_matmul_with_accumulation_and_double_buffering():
    config = SIM
    L = config.lanes
    rng = np.random.default_rng(2)
    W1, W2 = rand_i8(rng, L, L), rand_i8(rng, L, L)
    W1[0, :] = -128  # most negative weights and activations: the largest sums
    X1, X2 = rand_i8(rng, 3, L), rand_i8(rng, 3, L)
    X1[0, :] = -128
    st = Staging(config)
    t = load_weights(st, W1, 0, 20)
    st.builder.place("mxm0", t, Instruction(Opcode.IW))
    t_abc = t + 1
    # W2 goes into the shadow buffer while W1 computes: rows 0..3 load in the ABC cycles
    # would collide with the ABCs on the same queue, so LW starts after them
    t = stream_activations(st, X1, 0, t_abc, accumulate=0)
    t = load_weights(st, W2, 64, t)
    st.builder.place("mxm0", t, Instruction(Opcode.IW))
    t = stream_activations(st, X2, 8, t + 1, accumulate=1)
    t_acc = st.builder.predicted_cycles()  # every ABC has landed by then
    dst = stream_code(Direction.EAST, 0)
    slices = ["mem_w7", "mem_w6", "mem_w5", "mem_w4"]
    out_addr = (1 << config.offset_bits) + 32
    for i in range(3):
        st.builder.place("mxm0", t_acc + i, Instruction(Opcode.ACC, dst=dst, addr=i))
        for k, s in enumerate(slices):
            st.builder.place(s, st.builder.arrival("mxm0", t_acc + i, Opcode.ACC, s),
                             Instruction(Opcode.WRITE, addr=out_addr + i, a=dst + k))
    st.expect_output("y", slices, out_addr, 3, "int32")
    result, _ = st.run()
    np.testing.assert_array_equal(result.outputs["y"], X1 @ W1.T + X2 @ W2.T)
    assert result.counters["macs"] == 6 * L * L
    assert result.counters["mxm_lw_rows"]["mxm0"] == 2 * L
    assert result.cycles == st.builder.predicted_cycles()


@pytest.mark.parametrize("name", ["ecp5", "sim"])
def test_abco_emits_the_sum_it_writes(name):
    """ABCO.acc adds like ABC.acc and puts the new sum on its group ``latency(ABC)`` after
    issue; an ACC of the entry afterwards reads the same sum."""
    config = PRESETS[name]
    L = config.lanes
    rng = np.random.default_rng(6)
    W = rand_i8(rng, L, L)
    X = rand_i8(rng, 2, L)
    st = Staging(config)
    b = st.builder
    t = load_weights(st, W, 0, 20)
    b.place("mxm0", t, Instruction(Opcode.IW))
    outer = f"mem_w{config.mem_slices_per_hemisphere - 1}"
    slices = ["mem_e0", "mem_e1", "mem_e2", "mem_e3"]
    out_addr = 1 << config.offset_bits
    dst = stream_code(Direction.EAST, 4)
    for i, x in enumerate(X):
        code = st.feed([outer], x, DType.I8, "mxm0", t + 1 + i, bank=1, offset=i, stream=4)
        op = Opcode.ABC if i == 0 else Opcode.ABCO
        fields = {"dst": dst} if op is Opcode.ABCO else {}
        b.place("mxm0", t + 1 + i, Instruction(op, addr=0, a=code, accumulate=i, **fields))
    t_o = t + 2
    for k, s in enumerate(slices):
        b.place(s, b.arrival("mxm0", t_o, Opcode.ABCO, s),
                Instruction(Opcode.WRITE, addr=out_addr, a=dst + k))
    t_acc = t_o + latency(Opcode.ABC, config)
    b.place("mxm0", t_acc, Instruction(Opcode.ACC, dst=dst, addr=0))
    for k, s in enumerate(slices):
        b.place(s, b.arrival("mxm0", t_acc, Opcode.ACC, s),
                Instruction(Opcode.WRITE, addr=out_addr + 1, a=dst + k))
    st.expect_output("y", slices, out_addr, 2, "int32")
    result, _ = st.run()
    want = X.sum(axis=0) @ W.T
    np.testing.assert_array_equal(result.outputs["y"], [want, want])
    assert result.counters["mxm_abc"]["mxm0"] == 2
    assert result.cycles == b.predicted_cycles()


def test_lw_into_the_shadow_buffer_does_not_change_the_installed_weights():
    config = PRESETS["ecp5"]
    L = config.lanes
    rng = np.random.default_rng(8)
    W1, W2 = rand_i8(rng, L, L), rand_i8(rng, L, L)
    x = rand_i8(rng, 1, L)
    st = Staging(config)
    t = load_weights(st, W1, 0, 20)
    st.builder.place("mxm0", t, Instruction(Opcode.IW))
    t = load_weights(st, W2, 64, t + 1)  # shadow now holds W2, array still W1
    stream_activations(st, x, 0, t, accumulate=0)
    t_acc = st.builder.predicted_cycles()
    dst = stream_code(Direction.EAST, 0)
    slices = ["mem_w3", "mem_w2", "mem_w1", "mem_w0"]
    st.builder.place("mxm0", t_acc, Instruction(Opcode.ACC, dst=dst, addr=0))
    for k, s in enumerate(slices):
        st.builder.place(s, st.builder.arrival("mxm0", t_acc, Opcode.ACC, s),
                         Instruction(Opcode.WRITE, addr=(1 << config.offset_bits) + 100,
                                     a=dst + k))
    st.expect_output("y", slices, (1 << config.offset_bits) + 100, 1, "int32")
    result, _ = st.run()
    np.testing.assert_array_equal(result.outputs["y"], x @ W1.T)


# --- SXM -----------------------------------------------------------------------------------


def run_sxm(instr: Instruction, src: np.ndarray, dtype: DType, map_values=None,
            map_dtype=DType.I16, config=SIM):
    """Feed ``src`` (and a map) to sxm_w, issue ``instr``, write the result back east."""
    st = Staging(config)
    t = 40
    if instr.op is Opcode.TRANSPOSE:
        lps = config.lanes_per_superlane
        # every MEM slice lies east of sxm_w: west and east slices all feed westbound streams
        n = config.mem_slices_per_hemisphere
        feeders = west(config, 0, n) + [f"mem_e{i}" for i in range(n)]
        codes = [st.feed([feeders[k]], src[k], DType.I8, "sxm_w", t, stream=k)
                 for k in range(lps)]
        fields = {"a": codes[0]}
        width = lps
    else:
        fields = {"a": st.feed(west(config, 0, dtype.nbytes), src, dtype, "sxm_w", t)}
        width = dtype.nbytes
    if map_values is not None:
        fields["b"] = st.feed(west(config, 4, map_dtype.nbytes), map_values, map_dtype,
                              "sxm_w", t)
    out = stream_code(Direction.EAST, 0)
    instr = instr.replace(dst=out, dtype=dtype.value, stype=dtype.value, **fields) \
        if instr.op is not Opcode.TRANSPOSE else instr.replace(dst=out, **fields)
    st.builder.place("sxm_w", t, instr)
    n = config.mem_slices_per_hemisphere
    writers = [f"mem_e{i}" for i in range(n)] + west(config, 0, n)
    outs = []
    for k in range(width):
        s = writers[k]
        st.builder.place(s, st.builder.arrival("sxm_w", t, instr.op, s),
                         Instruction(Opcode.WRITE, addr=1 << config.offset_bits, a=out + k))
        outs.append(s)
    if instr.op is Opcode.TRANSPOSE:
        for k, s in enumerate(outs):
            st.expect_output(f"o{k}", [s], 1 << config.offset_bits, 1, "uint8")
    else:
        name = {DType.I8: "int8", DType.I16: "int16", DType.I32: "int32"}[dtype]
        st.expect_output("o", outs, 1 << config.offset_bits, 1, name)
    result, _ = st.run()
    assert result.cycles == st.builder.predicted_cycles()
    return result


@pytest.mark.parametrize("n", [0, 1, 5, -3, 31, -32, 32])
@pytest.mark.parametrize("dtype", list(DType))
def test_shift_moves_lanes_with_zero_fill(n, dtype):
    rng = np.random.default_rng(3)
    L = SIM.lanes
    src = rng.integers(-(1 << (dtype.bits - 1)), 1 << (dtype.bits - 1), size=L)
    result = run_sxm(Instruction(Opcode.SHIFT, imm=n), src, dtype)
    want = np.zeros(L, dtype=np.int64)
    for lane in range(L):
        if 0 <= lane - n < L:
            want[lane] = src[lane - n]
    np.testing.assert_array_equal(result.outputs["o"][0], want)


@pytest.mark.parametrize("dtype", [DType.I8, DType.I32])
def test_permute_reorders_replicates_and_zero_fills(dtype):
    rng = np.random.default_rng(4)
    L = SIM.lanes
    src = rng.integers(-(1 << (dtype.bits - 1)), 1 << (dtype.bits - 1), size=L)
    perm = rng.permutation(L)
    perm[:3] = [L - 1, L - 1, L]  # replicate the last lane; index L is out of range -> 0
    perm[3] = 0xFFFF
    result = run_sxm(Instruction(Opcode.PERMUTE), src, dtype, perm)
    want = np.where(perm < L, src[np.minimum(perm, L - 1)], 0)
    np.testing.assert_array_equal(result.outputs["o"][0], want)


def test_distribute_stays_within_each_superlane():
    rng = np.random.default_rng(5)
    L, lps = SIM.lanes, SIM.lanes_per_superlane
    src = rand_i8(rng, L)
    mp = rng.integers(0, lps, size=L)
    mp[:2] = [lps, 255]  # out of the superlane -> 0
    result = run_sxm(Instruction(Opcode.DISTRIBUTE), src, DType.I8, mp, DType.I8)
    base = (np.arange(L) // lps) * lps
    want = np.where(mp < lps, src[base + np.minimum(mp, lps - 1)], 0)
    np.testing.assert_array_equal(result.outputs["o"][0], want)


@pytest.mark.parametrize("name", ["sim", "ecp5"])
def test_transpose_transposes_each_superlane_tile(name):
    config = PRESETS[name]
    rng = np.random.default_rng(6)
    lps, L = config.lanes_per_superlane, config.lanes
    src = rng.integers(0, 256, size=(lps, L))
    result = run_sxm(Instruction(Opcode.TRANSPOSE), src, DType.I8, config=config)
    got = np.stack([result.outputs[f"o{k}"][0] for k in range(lps)])
    for sl in range(config.superlanes):
        tile = src[:, sl * lps:(sl + 1) * lps]
        np.testing.assert_array_equal(got[:, sl * lps:(sl + 1) * lps], tile.T)
