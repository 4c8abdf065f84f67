"""Tests of the integer transformer layers (sim_models.transformer).

Each primitive against an independent float / Python-int definition on random and edge data
(saturation, most negative values, zeros, wrap-around), the trace, and the accuracy of whole
integer layers against the float32 reference: cosine similarity >= 0.99 for a real
all-MiniLM-L6-v2 layer and for random Llama-style layers with GQA and odd sizes, in prefill
and decode.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from minilm import require_minilm

from firmware.model_import import load_bert, load_llama, write_random_llama_checkpoint
from sim_models import float_layers as fl
from sim_models.transformer import (
    MASK_VALUE,
    AttentionParams,
    IntKVCache,
    IntOps,
    NormParams,
    QuantRangeError,
    Requant,
    RopeTables,
    SoftmaxParams,
    Trace,
    calibrate_bert_layer,
    calibrate_llama_layer,
    choose_alpha,
    dequantize,
    int_attention,
    int_layernorm,
    int_rmsnorm,
    int_rope,
    int_softmax,
    quantize,
    quantize_multiplier,
    quantize_multipliers,
    quantize_weight_per_channel,
    res_bits,
    smooth_scales,
)

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
COS_MIN = 0.99


def wrap32(v: int) -> int:
    """Python-int two's-complement wrap, independent of the code under test."""
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


def rshr(v: int, s: int) -> int:
    """Python-int round-half-up shift: floor(v / 2**s + 1/2)."""
    return math.floor(v / (1 << s) + 0.5) if s else v


def sat8(x, scale):
    """Clip reals to what an int8 tensor of ``scale`` can represent."""
    return np.clip(x, -128 * scale, 127 * scale)


def cosine(a, b) -> float:
    """Cosine similarity of two tensors, flattened, in float64."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------------------------
# one-instruction primitives
# --------------------------------------------------------------------------------------------


def test_abc_matches_python_dot_products():
    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, (7, 13))
    x = rng.integers(-128, 128, (5, 13))
    got = IntOps().abc("mm", w, x)
    want = [[sum(int(a) * int(b) for a, b in zip(xr, wr, strict=True)) for wr in w] for xr in x]
    assert got.tolist() == want
    # most negative int8 everywhere: the largest positive product
    assert IntOps().abc("mm", np.full((1, 3), -128), np.full((1, 3), -128))[0, 0] == 3 << 14


def test_abc_wraps_at_32_bits_like_the_accumulator():
    k = 140_000  # 140000 * 127 * 127 > 2**31: an ABC + ABC.acc chain wraps
    w = np.full((2, k), 127)
    w[1] = -127
    x = np.full((1, k), 127)
    got = IntOps().abc("mm", w, x)
    assert got[0].tolist() == [wrap32(k * 127 * 127), wrap32(-k * 127 * 127)]
    assert got[0, 0] < 0  # really wrapped


def test_abc_refuses_operands_outside_int8():
    with pytest.raises(QuantRangeError, match=r"mm \(ABC\).*int8"):
        IntOps().abc("mm", np.array([[128]]), np.array([[1]]))


def test_vxm_wrap_and_saturate_at_int32_edges():
    ops = IntOps()
    a = np.array([I32_MAX, I32_MIN, -1, 0])
    b = np.array([1, -1, I32_MIN, 0])
    want = [wrap32(int(x) + int(y)) for x, y in zip(a, b, strict=True)]
    assert ops.add("add", a, b).tolist() == want
    assert ops.adds("adds", a, b).tolist() == [I32_MAX, I32_MIN, I32_MIN, 0]
    assert ops.mul("mul", a, np.int64(2)).tolist() == [wrap32(2 * int(x)) for x in a]
    assert ops.sub("sub", np.int64(I32_MIN), np.int64(1)).tolist() == I32_MAX
    assert ops.max("max", a, b).tolist() == [I32_MAX, -1, -1, 0]
    assert ops.sel("sel", np.array([0, -1, 5, 0]), a, b).tolist() == [1, I32_MIN, -1, 0]
    assert ops.cvt("cvt", np.array([200, -200, 5]), 8, 32).tolist() == [127, -128, 5]
    assert ops.shrr("shrr", np.array([5, -5, 6]), np.int64(1)).tolist() == [3, -2, 3]
    with pytest.raises(QuantRangeError, match="int32"):
        ops.add("bad", np.int64(I32_MAX + 1), np.int64(0))


def test_req_rounds_half_up_and_saturates():
    ops = IntOps()
    # x * 1 >> 1: 5/2 = 2.5 -> 3, -5/2 = -2.5 -> -2 (ties toward +inf)
    assert ops.req("r", np.array([5, -5, 3, -3]), np.int64(1), 1, 8).tolist() == [3, -2, 2, -1]
    big = np.array([I32_MAX, I32_MIN, 0])
    assert ops.req("s8", big, np.int64(I32_MAX), 0, 8).tolist() == [127, -128, 0]
    assert ops.req("s16", big, np.int64(1), 8, 16).tolist() == [32767, -32768, 0]
    # the 64-bit product of two int32 values is exact
    want = [rshr(I32_MIN * I32_MIN, 62), rshr(I32_MIN * I32_MAX, 62)]
    got = ops.req("p", np.array([I32_MIN, I32_MIN]), np.array([I32_MIN, I32_MAX]), 62, 32)
    assert got.tolist() == want
    with pytest.raises(QuantRangeError, match="shift 64"):
        ops.req("bad", np.int64(1), np.int64(1), 64, 8)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 301])
def test_reductions_are_wrapping_int32(n):
    rng = np.random.default_rng(n)
    a = rng.integers(I32_MIN, I32_MAX, (3, n), endpoint=True)
    ops = IntOps()
    s = ops.reduce_sum("sum", a)
    m = ops.reduce_max("max", a)
    assert s.shape == (3, 1) and m.shape == (3, 1)
    assert s[:, 0].tolist() == [wrap32(sum(int(v) for v in row)) for row in a]
    assert m[:, 0].tolist() == [max(int(v) for v in row) for row in a]
    assert IntOps().reduce_max("m", np.full(n, I32_MIN)).tolist() == [I32_MIN]
    assert ops.trace.op("sum") == "ADD.i32 (reduce)"


def test_special_functions_against_float():
    x16 = np.arange(-8 << 16, 8 << 16, 977)
    v = x16 / 65536.0
    ops = IntOps()
    erf = np.frompyfunc(math.erf, 1, 1)
    gelu = v * 0.5 * (1 + erf(v / math.sqrt(2)).astype(np.float64))
    assert np.max(np.abs(ops.gelu("g", x16) / 65536.0 - gelu)) < 1e-4
    assert np.max(np.abs(ops.silu("s", x16) / 65536.0 - v / (1 + np.exp(-v)))) < 1e-4
    assert np.max(np.abs(ops.exp("e", np.minimum(x16, 0)) / 32768.0 - np.exp(np.minimum(v, 0)))
                  ) < 1e-4
    xi = np.array([1, 3, 1000, 12345678, I32_MAX])
    assert ops.recip("r", xi).tolist() == [round(2**30 / int(x)) for x in xi]
    assert ops.rsqrt("q", xi).tolist() == [round(2**30 / math.sqrt(int(x))) for x in xi]


# --------------------------------------------------------------------------------------------
# trace
# --------------------------------------------------------------------------------------------


def test_trace_records_in_order_and_finds_the_first_difference():
    ops = IntOps(prefix="L0.")
    a = ops.add("a", np.array([1, 2, 3]), np.int64(1))
    sub = ops.scope("blk")
    sub.mul("m", a, np.int64(3))
    ops.req("out", a, np.int64(1), 0, 8)
    tr = ops.trace
    assert tr.names() == ["L0.a", "L0.blk.m", "L0.out"]
    assert tr.op("L0.blk.m") == "MUL.i32" and tr.op("L0.out") == "REQ.i8"
    assert tr.first_difference(tr) is None
    chip = tr.as_dict()
    chip["L0.blk.m"] = chip["L0.blk.m"].copy()
    chip["L0.blk.m"][2] += 1
    chip["L0.out"] = chip["L0.out"] + 1  # a later difference must not be reported first
    d = tr.first_difference(chip)
    assert (d.name, d.op, d.index, d.expected, d.got) == ("L0.blk.m", "MUL.i32", (2,), 12, 13)
    assert "L0.blk.m (MUL.i32) at index [2]: got 13, expected 12" == str(d)
    del chip["L0.a"]
    assert "missing" in str(tr.first_difference(chip))
    assert tr.first_difference({"L0.a": np.zeros(2)}).got == (2,)
    with pytest.raises(ValueError, match="already"):
        ops.add("a", np.int64(1), np.int64(1))
    with pytest.raises(ValueError):
        tr["L0.a"][0] = 5  # recorded tensors are read-only


# --------------------------------------------------------------------------------------------
# quantisation helpers
# --------------------------------------------------------------------------------------------


def test_quantize_multiplier_accuracy_and_ranges():
    rng = np.random.default_rng(2)
    for real in np.concatenate([10.0 ** rng.uniform(-9, 9, 200), [1.0, 0.5, -3.7]]):
        m, s = quantize_multiplier(real)
        assert 0 <= s <= 63 and abs(m) <= I32_MAX
        if s < 63:  # full precision: 31 magnitude bits
            assert abs(m) >= 1 << 30
            assert abs(m * 2.0**-s - real) <= 2.0 ** -(s + 1) * 1.0000001
    assert quantize_multiplier(0.0) == (0, 0)
    with pytest.raises(ValueError):
        quantize_multiplier(2.0**31)
    m, s = quantize_multiplier(0.3, mult_bits=23)  # fits a REQ immediate
    assert abs(m) < 1 << 23


def test_quantize_multipliers_share_one_shift():
    reals = np.array([0.9, 0.001, -0.45, 0.0])
    m, s = quantize_multipliers(reals)
    assert np.max(np.abs(m)) >= 1 << 30 and np.max(np.abs(m)) <= I32_MAX
    np.testing.assert_allclose(m * 2.0**-s, reals, atol=2.0**-s)


def test_requant_against_float_rounding():
    rng = np.random.default_rng(3)
    x = rng.integers(-(1 << 20), 1 << 20, 1000)
    real = 0.000123
    rq = Requant.from_real(real, 8)
    got = rq.apply(IntOps(), "r", x)
    want = np.clip(np.floor(x * real + 0.5), -128, 127)
    assert np.max(np.abs(got - want)) <= 1
    assert np.mean(got == want) > 0.99


def test_weight_quantisation_per_channel():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((5, 9)) * np.array([1e-3, 1, 10, 0, 3])[:, None]
    q, s = quantize_weight_per_channel(w)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert s[3] == 1.0 and not q[3].any()  # zero row
    assert np.all(np.abs(q * s[:, None] - w) <= s[:, None] / 2 + 1e-12)
    assert np.all(np.abs(q[[0, 1, 2, 4]]).max(axis=1) == 127)


def test_smooth_scales_and_alpha_choice():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((16, 8))
    r = np.array([0.1, 1, 1, 1, 1, 1, 1, 50.0])
    per_tensor = smooth_scales(r, [w], None)
    assert per_tensor.ndim == 0 and per_tensor == pytest.approx(50 / 127)
    s = smooth_scales(r, [w], 0.7)
    assert s.shape == (8,) and np.max(r / s) == pytest.approx(127)
    # an outlier channel present in every sample: smoothing wins
    xs = [rng.standard_normal((20, 8)) * np.array([1] * 7 + [60.0]) for _ in range(3)]
    assert choose_alpha(xs, [w]) is not None
    # Gaussian activations without outliers: per-channel ranges overfit, per-tensor wins
    xs = [rng.standard_normal((20, 8)) for _ in range(3)]
    assert choose_alpha(xs, [w]) is None


# --------------------------------------------------------------------------------------------
# softmax
# --------------------------------------------------------------------------------------------


def _softmax_case(seed, rows=6, keys=19, score_scale=1e-3):
    rng = np.random.default_rng(seed)
    scores = rng.integers(-3000, 3000, (rows, keys))
    params = SoftmaxParams.build(score_scale, 512, 1 << 20)
    return scores, params


def test_softmax_matches_float():
    scores, params = _softmax_case(6)
    p = int_softmax(IntOps(), scores, params)
    ref = fl.softmax((scores * 1e-3).astype(np.float32))
    assert p.min() >= 0 and p.max() <= 127
    assert np.max(np.abs(p / 127 - ref)) <= 1 / 127
    tr = IntOps()
    int_softmax(tr, scores, params)
    assert tr.trace.names() == ["max", "sub_max", "logits", "exp", "sum", "sum_shr", "recip",
                                "recip127", "probs"]


def test_softmax_edge_rows():
    params = SoftmaxParams.build(1e-3, 512, 1 << 20)
    ops = IntOps()
    equal = int_softmax(ops.scope("eq"), np.zeros((1, 8), dtype=np.int64), params)
    assert equal.tolist() == [[16] * 8]  # round(127 / 8)
    # extreme int8 . int8 scores of head_dim 64 (|s| = 2**20): no overflow, one-hot result
    s = np.array([[-(1 << 20), 1 << 20, -(1 << 20)]])
    assert int_softmax(ops.scope("x"), s, params).tolist() == [[0, 127, 0]]


def test_softmax_masked_keys_get_exactly_zero():
    scores, params = _softmax_case(7, rows=5, keys=5)
    mask = np.tril(np.ones((5, 5), dtype=bool))
    ops = IntOps()
    p = int_softmax(ops, scores, params, mask)
    assert np.all(p[~mask] == 0)
    assert p[0, 0] == 127  # a single visible key
    assert "masked" in ops.trace and ops.trace["masked"][0, 1] == MASK_VALUE
    ref = fl.softmax(np.where(mask, scores * 1e-3, -np.inf).astype(np.float32))
    assert np.max(np.abs(p / 127 - ref)) <= 1 / 127


def test_softmax_refuses_a_scale_where_masking_fails():
    with pytest.raises(ValueError, match="masked"):
        SoftmaxParams.build(1e-12, 512, 1 << 20)


# --------------------------------------------------------------------------------------------
# LayerNorm / RMSNorm
# --------------------------------------------------------------------------------------------


def _norm_case(size, layer, seed=8):
    rng = np.random.default_rng(seed)
    in_bits = res_bits(size) + 1
    in_scale = 2.0**-16
    gamma = 1 + 0.3 * rng.standard_normal(size)
    beta = 0.1 * rng.standard_normal(size) if layer else None
    out_scale = 4.0 / 127
    p = NormParams.build(size, in_scale, in_bits, 1e-6, gamma, beta, out_scale)
    return rng, in_scale, gamma, beta, out_scale, p


@pytest.mark.parametrize("size", [72, 384, 1000])
def test_layernorm_matches_float(size):
    rng, in_scale, gamma, beta, out_scale, p = _norm_case(size, True)
    top = res_bits(size)  # the calibrated maximum of a residual stream
    h = np.round(rng.standard_normal((4, size)) * (1 << (top - 3))).astype(np.int64)
    h[:, 3] = 1 << top  # an outlier channel
    out, wide = int_layernorm(IntOps(), h, p)
    ref = fl.layer_norm((h * in_scale).astype(np.float32), gamma, beta, 1e-6)
    assert np.max(np.abs(out * out_scale - sat8(ref, out_scale))) <= 0.51 * out_scale + 1e-3
    assert np.max(np.abs(wide * (out_scale / 256) - ref)) < 2e-3


def test_layernorm_constant_row_and_extremes_do_not_overflow():
    size = 300
    rng, in_scale, gamma, beta, out_scale, p = _norm_case(size, True)
    lim = (1 << (res_bits(size) + 1)) - 1  # the bound the constants were built for
    h = np.stack([np.full(size, 12345), np.tile([lim, -lim], size // 2),
                  np.full(size, -lim)]).astype(np.int64)
    out, _ = int_layernorm(IntOps(), h, p)
    want_beta = np.clip(np.floor(beta / out_scale + 0.5), -128, 127)
    assert np.all(np.abs(out[0] - want_beta) <= 1)  # variance 0: just beta
    ref = fl.layer_norm((h[1] * in_scale).astype(np.float32), gamma, beta, 1e-6)
    assert np.max(np.abs(out[1] * out_scale - sat8(ref, out_scale))) <= 0.51 * out_scale + 1e-3
    with pytest.raises(ValueError, match="wrap"):
        NormParams.build(size, in_scale, res_bits(size) + 2, 1e-6, gamma, beta, out_scale)


@pytest.mark.parametrize("size", [50, 384])
def test_rmsnorm_matches_float(size):
    rng, in_scale, gamma, _, out_scale, p = _norm_case(size, False)
    h = np.round(rng.standard_normal((3, size)) * (1 << 18)).astype(np.int64)
    h[0] = 0  # all-zero row: eps keeps RSQRT finite
    out = int_rmsnorm(IntOps(), h, p)
    ref = fl.rms_norm((h * in_scale).astype(np.float32), gamma, 1e-6)
    assert not out[0].any()
    assert np.max(np.abs(out * out_scale - sat8(ref, out_scale))) <= 0.51 * out_scale + 1e-3
    tr = IntOps()
    int_rmsnorm(tr, h, p)
    assert tr.trace.names() == ["sq", "sum_sq", "var", "var_eps", "var_min1", "rsqrt", "norm",
                                "out"]
    assert tr.trace.op("rsqrt") == "RSQRT.i32"


# --------------------------------------------------------------------------------------------
# RoPE, attention, KV cache
# --------------------------------------------------------------------------------------------


def test_rope_matches_float_and_cannot_overflow():
    tables = RopeTables.build(12, 10000.0, 64)
    rng = np.random.default_rng(9)
    x = rng.integers(-(1 << 15), 1 << 15, (3, 5, 12))
    pos = np.array([0, 1, 7, 30, 63])
    got = int_rope(IntOps(), x, pos, tables) / 2.0**15
    ang = fl.rope_angles(pos, 12, 10000.0)
    cos, sin = np.cos(np.concatenate([ang, ang], 1)), np.sin(np.concatenate([ang, ang], 1))
    rot = np.concatenate([-x[..., 6:], x[..., :6]], -1)
    assert np.max(np.abs(got - (x * cos + rot * sin))) < 2.0
    # worst case: every input at the int16 extreme: the exact integer result, no wrap
    x = np.full((1, 64, 12), -(1 << 15))
    got = int_rope(IntOps(), x, np.arange(64), tables)
    exact = x * tables.cos[:64] + np.roll(x, -6, axis=-1) * tables.sin_signed[:64]
    assert np.array_equal(got, exact)
    with pytest.raises(ValueError, match="even"):
        RopeTables.build(7, 10000.0, 8)
    with pytest.raises(ValueError, match="outside the RoPE tables"):
        int_rope(IntOps(), x[:, :1], np.array([64]), tables)


def test_kv_cache_append_and_limits():
    cache = IntKVCache(2, 4, capacity=3)
    cache.append(np.ones((2, 2, 4)), -np.ones((2, 2, 4)))
    cache.append(np.zeros((2, 1, 4)), np.zeros((2, 1, 4)))
    assert cache.length == 3 and cache.k.dtype == np.int8 and cache.v[0, 1, 0] == -1
    with pytest.raises(ValueError, match="full"):
        cache.append(np.zeros((2, 1, 4)), np.zeros((2, 1, 4)))
    with pytest.raises(ValueError, match="do not fit"):
        IntKVCache(2, 4, 3).append(np.zeros((1, 1, 4)), np.zeros((1, 1, 4)))
    with pytest.raises(ValueError, match="int8"):
        IntKVCache(2, 4, 3).append(np.full((2, 1, 4), 128), np.zeros((2, 1, 4)))


def test_gqa_heads_read_their_kv_group():
    heads, kv, dh, t = 6, 2, 4, 3
    rng = np.random.default_rng(10)
    cache = IntKVCache(kv, dh, 8)
    v = np.zeros((kv, t, dh), dtype=np.int64)
    v[1] = 100  # KV head 1 has constant values, KV head 0 zeros
    cache.append(rng.integers(-50, 50, (kv, t, dh)), v)
    p = AttentionParams(heads, heads // kv, SoftmaxParams.build(1e-3, 64, 1 << 16),
                        Requant.from_real(1 / 127, 8))
    ops = IntOps()
    ctx = int_attention(ops, rng.integers(-50, 50, (heads, t, dh)), cache, np.arange(t), p,
                        causal=True).reshape(t, heads, dh)
    assert not ctx[:, :3].any()  # heads 0..2 read KV head 0
    # heads 3..5 read KV head 1: probabilities sum to ~127 (scale 1/127), times 100
    assert np.all(np.abs(ctx[:, 3:] - 100) <= 2)
    assert ops.trace["scores"].shape == (heads, t, t)
    assert np.all(ops.trace["softmax.probs"][:, 0, 1:] == 0)  # causal


# --------------------------------------------------------------------------------------------
# whole layers
# --------------------------------------------------------------------------------------------

LLAMA_SHAPES = {
    "h72_h6_kv2_f200": dict(hidden_size=72, num_heads=6, num_kv_heads=2, intermediate_size=200),
    "h50_h5_kv1_f131_d10": dict(hidden_size=50, num_heads=5, num_kv_heads=1,
                                intermediate_size=131, head_dim=10, rope_theta=500000.0),
}


@pytest.fixture(scope="module", params=list(LLAMA_SHAPES))
def llama(request, tmp_path_factory):
    """A random Llama checkpoint, its calibrated integer layer 0 and an input sampler."""
    d = write_random_llama_checkpoint(tmp_path_factory.mktemp(request.param), seed=3,
                                      **LLAMA_SHAPES[request.param])
    m = load_llama(d)
    rng = np.random.default_rng(11)

    def sample(t):
        return m.embed_tokens[rng.integers(0, m.config.vocab_size, t)]

    layer = calibrate_llama_layer(m.layers[0], m.config, [sample(t) for t in (16, 24, 32)],
                                  max_positions=64)
    return m, layer, sample


@pytest.mark.parametrize("t", [8, 32])
def test_llama_prefill_cosine(llama, t):
    m, layer, sample = llama
    x = sample(t)
    ref, _ = fl.llama_layer(m.layers[0], m.config, x)
    out, trace = layer.forward(quantize(x, layer.scales["x"], 32))
    got = dequantize(out, layer.scales["out"])
    assert cosine(got, ref) >= COS_MIN
    assert cosine(got - x, ref - x) >= COS_MIN  # the layer's own contribution, not the input
    assert trace["attn.softmax.probs"].shape == (m.config.num_heads, t, t)


def test_llama_decode_cosine_and_bit_exact_with_prefill(llama):
    m, layer, sample = llama
    c = m.config
    x = sample(20)
    xq = quantize(x, layer.scales["x"], 32)
    fcache, icache = fl.FloatKVCache(c.num_kv_heads, c.head_dim), layer.new_cache()
    fl.llama_layer(m.layers[0], c, x[:12], fcache)
    layer.forward(xq[:12], icache)
    outs = []
    for i in range(12, 20):
        ref, _ = fl.llama_layer(m.layers[0], c, x[i:i + 1], fcache)
        out, trace = layer.forward(xq[i:i + 1], icache)
        got = dequantize(out, layer.scales["out"])
        assert cosine(got, ref) >= COS_MIN
        assert cosine(got - x[i], ref - x[i]) >= COS_MIN
        assert trace["attn.scores"].shape == (c.num_heads, 1, i + 1)
        outs.append(out[0])
    assert icache.length == 20
    # masked keys get exactly zero probability, so decode == the rows of one long prefill
    full, _ = layer.forward(xq)
    assert np.array_equal(full[12:], np.stack(outs))


def test_llama_trace_names_and_ops(llama):
    _, layer, sample = llama
    _, trace = layer.forward(quantize(sample(4), layer.scales["x"], 32))
    names = trace.names()
    want = ["ln_attn.sq", "ln_attn.out", "q.acc", "q", "rope_q.x32", "rope_q.rot",
            "rope_q.cos", "rope_q.sin", "rope_q.sum", "q_rope", "k_rope", "attn.scores",
            "attn.softmax.masked", "attn.softmax.exp", "attn.softmax.probs", "attn.ctx.acc",
            "attn.ctx", "o.acc", "h.attn", "h.x", "h", "ln_ffn.rsqrt", "gate.q16", "ffn.silu",
            "up.scaled", "ffn.act", "down.acc", "out.ffn", "out.h", "out"]
    positions = [names.index(n) for n in want]
    assert positions == sorted(positions)
    ops = {"q.acc": "ABC", "q": "REQ.i16", "ffn.silu": "SILU.i32", "ffn.act": "REQ.i8",
           "attn.softmax.exp": "EXP.i32", "h": "ADDS.i32", "rope_q.rot": "PERMUTE"}
    assert {n: trace.op(n) for n in ops} == ops


def test_layer_forward_with_prefix_and_shape_errors(llama):
    _, layer, sample = llama
    xq = quantize(sample(3), layer.scales["x"], 32)
    tr = Trace()
    layer.forward(xq, ops=IntOps(tr, "layer0."))
    assert tr.names()[0] == "layer0.ln_attn.sq"
    with pytest.raises(ValueError, match="must be"):
        layer.forward(xq[:, :-1])
    with pytest.raises(QuantRangeError):
        layer.forward(xq.astype(np.int64) << 20)  # beyond int32: refused, not wrapped


@pytest.fixture(scope="module")
def minilm():
    """Layers 0 and 1 of the real all-MiniLM-L6-v2 checkpoint (or skip)."""
    return load_bert(require_minilm(), layers=[0, 1])


@pytest.mark.parametrize("layer_index", [0, 1])
def test_minilm_layer_prefill_cosine(minilm, layer_index):
    c = minilm.config
    rng = np.random.default_rng(12)

    def sample(t):
        x = fl.bert_embed(minilm.embeddings, c, rng.integers(1000, c.vocab_size, t))
        for i in range(layer_index):
            x, _ = fl.bert_layer(minilm.layers[i], c, x)
        return x

    w = minilm.layers[layer_index]
    layer = calibrate_bert_layer(w, c, [sample(t) for t in (16, 24, 32)])
    for t in (8, 32):
        x = sample(t)
        ref, acts = fl.bert_layer(w, c, x)
        out, trace = layer.forward(quantize(x, layer.scales["x"], 32))
        assert cosine(dequantize(out, layer.scales["out"]), ref) >= COS_MIN
        y1 = dequantize(trace["ln1.out"], layer.scales["y1"])
        assert cosine(y1, acts["y1"]) >= COS_MIN
        assert trace.op("ffn.gelu") == "GELU.i32" and trace.op("ln2.rsqrt") == "RSQRT.i32"
