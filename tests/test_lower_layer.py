"""Whole integer transformer layers lowered to programs (:mod:`firmware.lower.layer`).

Every run checks that the golden model takes exactly the predicted cycles and that every
tensor the integer reference records (:class:`sim_models.transformer.Trace`) is reproduced bit
for bit in the final SRAM (:meth:`LoweredLayer.compare` names the first op that differs).
Random BERT and Llama layers with odd sizes (hidden 40, 5 heads, head_dim 8 or 10, GQA), on
the ``sim`` preset, on ``ecp5`` and on a 24-lane mini config (all with deeper queues, so that
a layer is one program), in prefill and decode; with ``ecp5``'s own 512-word queues, where the
layer is cut into several programs run in turn; the real all-MiniLM-L6-v2 layer 0 on ``sim``
(marked slow).
"""

from __future__ import annotations

import numpy as np
import pytest
from minilm import require_minilm

from firmware.lower import LoweringError, QueueDepthError, SramCapacityError
from firmware.lower.layer import PHASES, lower_bert_layer, lower_llama_layer, split_points
from firmware.lower.layout import Layout, head_columns
from firmware.model_import import (
    BertConfig,
    BertLayerWeights,
    load_bert,
    load_llama,
    write_random_llama_checkpoint,
)
from openlpu.config import PRESETS
from openlpu.isa import Opcode
from sim_models import float_layers as fl
from sim_models.transformer import calibrate_bert_layer, calibrate_llama_layer, quantize

#: The presets with queues deep enough for a whole small layer, a mini config with 24 lanes
#: (not a power of two) in 3 superlanes, one MXM plane and 4 MEM slices per side, and ecp5
#: with tiny accumulators.
CONFIGS = {name: PRESETS[name].replace(queue_depth=1 << 14) for name in ("sim", "ecp5")}
CONFIGS["mini24"] = PRESETS["sim"].replace(name="mini24", superlanes=3, lanes_per_superlane=8,
                                           mem_slices_per_hemisphere=4, mxm_planes=1,
                                           queue_depth=1 << 14)
#: Two accumulator entries: every matmul is cut into blocks of at most 2 rows.
CONFIGS["acc2"] = CONFIGS["ecp5"].replace(name="acc2", mxm_acc_depth=2)


def run_and_check(lowered, x, trace, cache=None):
    """Run on the golden model (every program in turn); cycles and every traced tensor must
    match. Returns the last program's result (the layer's final SRAM)."""
    runs = lowered.run_golden(x, cache)
    assert len(runs) == len(lowered.programs)
    assert [r.cycles for r in runs] == lowered.program_cycles
    assert sum(r.cycles for r in runs) == lowered.predicted_cycles
    assert sum(r.counters["macs"] for r in runs) == lowered.issued_macs
    diff = lowered.compare(trace, runs[-1].sram, runs)
    assert diff is None, str(diff)
    return runs[-1]


@pytest.fixture(scope="module", params=[
    dict(hidden_size=40, num_heads=5, num_kv_heads=1, intermediate_size=50, head_dim=8),
    dict(hidden_size=40, num_heads=4, num_kv_heads=2, intermediate_size=36, head_dim=10),
], ids=["h40_h5_kv1_d8", "h40_h4_kv2_d10"])
def llama(request, tmp_path_factory):
    """A random Llama layer (KV cache of 16 positions) and quantised inputs."""
    return random_llama(tmp_path_factory.mktemp("llama"), request.param, 8)


def random_llama(path, dims: dict, tokens: int):
    """A random Llama layer with sizes ``dims`` (KV cache of 16 positions) and ``tokens``
    quantised input rows."""
    m = load_llama(write_random_llama_checkpoint(path, seed=3, **dims))
    rng = np.random.default_rng(11)

    def sample(t):
        return m.embed_tokens[rng.integers(0, m.config.vocab_size, t)]

    layer = calibrate_llama_layer(m.layers[0], m.config, [sample(t) for t in (8, 12)],
                                  max_positions=16)
    return layer, quantize(sample(tokens), layer.scales["x"], 32)


@pytest.fixture(scope="module")
def bert():
    """A random BERT layer (hidden 40, 5 heads, FFN 50) and a quantised input."""
    h, f = 40, 50
    rng = np.random.default_rng(5)

    def lin(o, i):
        return (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float32)

    def vec(n):
        return (0.1 * rng.standard_normal(n)).astype(np.float32)

    w = BertLayerWeights(lin(h, h), vec(h), lin(h, h), vec(h), lin(h, h), vec(h), lin(h, h),
                         vec(h), 1 + vec(h), vec(h), lin(f, h), vec(f), lin(h, f), vec(h),
                         1 + vec(h), vec(h))
    c = BertConfig(h, 5, f, 1, 1e-12, 100, 64, 2)
    samples = [rng.standard_normal((t, h)).astype(np.float32) for t in (8, 12)]
    layer = calibrate_bert_layer(w, c, samples, max_keys=64)
    return layer, quantize(rng.standard_normal((6, h)), layer.scales["x"], 32)


def check_prefill(lower, layer, x, config):
    """Prefill on ``config`` (5 tokens on sim, 3 elsewhere): bit exact, cycles as
    predicted."""
    t = min(len(x), 5 if config == "sim" else 3)
    out, trace = layer.forward(x[:t])
    lowered = lower(CONFIGS[config], layer, t)
    res = run_and_check(lowered, x[:t], trace)
    assert np.array_equal(lowered.read_output(res.sram), out)
    assert lowered.macs > 0 and 0 < lowered.mxm_utilization < 1


@pytest.mark.parametrize("config", list(CONFIGS))
def test_llama_prefill_is_bit_exact(llama, config):
    check_prefill(lower_llama_layer, *llama, config)


@pytest.mark.parametrize("alus", [1, 2])
def test_reductions_mirror_partial_results_through_both_sxms(llama, alus):
    """With two ALUs for the reduction's op, every butterfly step but the last is issued twice
    and the second copy comes back through the opposite SXM (``SHIFT`` by 0), so partial
    results never pass through SRAM; with one ALU the chain writes and reads them back.
    Both are bit exact and take the predicted cycles."""
    layer, x = llama
    cfg = CONFIGS["ecp5"].replace(name=f"ecp5_alu{alus}", vxm_alus_per_lane=alus)
    _, trace = layer.forward(x[:3])
    lowered = lower_llama_layer(cfg, layer, 3)
    run_and_check(lowered, x[:3], trace)
    mirrors = [c for q, c, i, op in lowered.instructions()
               if i.op is Opcode.SHIFT and i.imm == 0 and op.endswith(("max", "sum", "sum_sq"))]
    assert bool(mirrors) == (alus == 2)


def test_llama_prefill_then_decode_steps(llama):
    layer, x = llama
    cfg = CONFIGS["sim"]
    cache = layer.new_cache()
    _, trace = layer.forward(x[:4], cache)
    lowered = lower_llama_layer(cfg, layer, 4)
    res = run_and_check(lowered, x[:4], trace)
    kv = lowered.read_cache(res.sram)
    for i in (4, 5):
        out, trace = layer.forward(x[i:i + 1], cache)
        step = lower_llama_layer(cfg, layer, 1, start=i)
        res = run_and_check(step, x[i:i + 1], trace, kv)
        assert np.array_equal(step.read_output(res.sram), out)
        kv = step.read_cache(res.sram)
        assert np.array_equal(kv[0], cache.k) and np.array_equal(kv[1], cache.v)


def test_llama_chunked_prefill(llama):
    """Several tokens at a time into a non-empty cache (positions 0-2, then 3-6, then 7)."""
    layer, x = llama
    cfg = CONFIGS["ecp5"]
    cache, kv, pos = layer.new_cache(), None, 0
    for t in (3, 4, 1):
        out, trace = layer.forward(x[pos:pos + t], cache)
        lowered = lower_llama_layer(cfg, layer, t, start=pos)
        res = run_and_check(lowered, x[pos:pos + t], trace, kv)
        assert np.array_equal(lowered.read_output(res.sram), out)
        kv = lowered.read_cache(res.sram)
        pos += t
    assert np.array_equal(kv[0], cache.k) and np.array_equal(kv[1], cache.v)


@pytest.mark.parametrize("config", ["sim", "ecp5"])
def test_bert_prefill_is_bit_exact(bert, config):
    check_prefill(lower_bert_layer, *bert, config)


def test_phases_ops_and_figures(bert):
    layer, x = bert
    _, trace = layer.forward(x[:2])
    lowered = lower_bert_layer(CONFIGS["sim"], layer, 2)
    assert set(lowered.phases) == set(PHASES)
    assert set(trace.names()) <= set(lowered.op_cycles)
    ops = {o["name"]: o for o in lowered.ops()}
    assert ops["q.acc"]["kind"] == "ABC" and ops["q.acc"]["phase"] == "qkv"
    assert ops["attn.softmax.exp"]["kind"] == trace.op("attn.softmax.exp")
    assert sum(o["macs"] for o in ops.values()) == lowered.macs
    owners = {op for *_, op in lowered.instructions()}
    assert owners <= set(ops)
    for lo, hi in lowered.op_cycles.values():
        assert 0 <= lo < hi <= lowered.predicted_cycles
    c = layer.config
    hid, f, t = c.hidden_size, c.intermediate_size, 2
    assert lowered.macs == t * (4 * hid * hid + 2 * hid * f) + 2 * t * t * hid
    assert lowered.phase_macs["ffn"] == 2 * t * hid * f
    rep = lowered.report()
    assert rep["predicted_cycles"] == lowered.predicted_cycles
    assert 0 < lowered.sram_bytes_used <= CONFIGS["sim"].sram_bytes


def test_compare_names_the_first_differing_op(bert):
    layer, x = bert
    lowered = lower_bert_layer(CONFIGS["ecp5"], layer, 2)
    (res,) = lowered.run_golden(x[:2])
    _, other = layer.forward(x[2:4])  # another input: every op differs from the first on
    diff = lowered.compare(other, res.sram)
    assert diff is not None and diff.name == other.names()[0] == "x8"
    assert diff.op == "REQ.i8" and diff.max_error > 0 and diff.count > 0
    assert diff.got == lowered.read("x8", res.sram)[diff.index] != diff.expected
    assert "x8 (REQ.i8)" in str(diff)


def test_sram_overflow_and_queue_depth_errors(llama):
    layer, _ = llama
    small = PRESETS["ecp5"].replace(mem_words_per_bank=64, queue_depth=1 << 14)
    with pytest.raises(SramCapacityError) as e:
        lower_llama_layer(small, layer, 4)
    assert e.value.needed > 0 and e.value.available == small.sram_bytes
    assert "bytes" in str(e.value)
    tiny = PRESETS["ecp5"].replace(queue_depth=16)
    with pytest.raises(QueueDepthError) as e:
        lower_llama_layer(tiny, layer, 2)
    assert "alone needs" in str(e.value) and e.value.available == 16


def test_sram_reuse_prefill_then_decode_is_bit_exact(llama):
    """``sram_reuse=True``: dead tensors' words go to later tensors, behind fences in the
    timetable. Every traced tensor still equals the reference (the released ones read from the
    golden model's write log as they stood when complete), cycles are exact, the footprint
    shrinks, and the KV cache survives for the decode step, which reuses SRAM too."""
    layer, x = llama
    cfg = CONFIGS["ecp5"]
    cache = layer.new_cache()
    out, trace = layer.forward(x[:3], cache)
    plain = lower_llama_layer(cfg, layer, 3, sram_reuse=False)
    lowered = lower_llama_layer(cfg, layer, 3, sram_reuse=True)
    assert lowered.reuses_sram and not plain.reuses_sram
    res = run_and_check(lowered, x[:3], trace)
    assert np.array_equal(lowered.read_output(res.sram), out)
    released = [n for n in trace.names() if lowered.released(n)]
    assert "q.acc" in released and "attn.scores" in released
    with pytest.raises(LoweringError, match="q.acc is not in the final SRAM"):
        lowered.read("q.acc", res.sram)
    assert lowered.sram_bytes_used < 0.7 * plain.sram_bytes_used
    kv = lowered.read_cache(res.sram)
    assert np.array_equal(kv[0], cache.k) and np.array_equal(kv[1], cache.v)
    out, trace = layer.forward(x[3:4], cache)
    step = lower_llama_layer(cfg, layer, 1, start=3, sram_reuse=True)
    res = run_and_check(step, x[3:4], trace, kv)
    assert np.array_equal(step.read_output(res.sram), out)


def test_sram_reuse_compares_what_the_tensor_held(bert):
    """A released tensor is compared as it stood when complete: a wrong value written into it
    (a corrupted write log entry) is reported, and without the log it is skipped."""
    layer, x = bert
    _, trace = layer.forward(x[:2])
    lowered = lower_bert_layer(CONFIGS["sim"], layer, 2, sram_reuse=True)
    runs = lowered.run_golden(x[:2])
    assert lowered.compare(trace, runs[-1].sram, runs) is None
    assert lowered.released("attn.softmax.exp")
    t = lowered.graph.records["attn.softmax.exp"].tensor
    slice_index = {s.name: s.index for s in lowered.config.mem_slice_list}
    where = (slice_index[lowered.graph.plan.groups[int(t.gid[0, 0])][0]], int(t.addr[0, 0]))
    (k,) = [i for i, (c, si, a, _) in enumerate(runs[0].write_log)
            if (si, a) == where and c < t.ready[0, 0]][-1:]
    runs[0].write_log[k][3][0] ^= 1
    diff = lowered.compare(trace, runs[-1].sram, runs)
    assert diff is not None and diff.name == "attn.softmax.exp" and diff.index[-1] == 0
    assert lowered.compare(trace, runs[-1].sram) is None  # released tensors: not compared


def test_sram_reuse_only_when_the_layer_does_not_fit(llama):
    """By default a layer is lowered with SRAM reuse only when its tensors do not fit side
    by side: a quarter of ecp5's banks hold 8 tokens of this layer only that way (about
    130 KB without reuse, 45 KB with it)."""
    layer, x = llama
    small = CONFIGS["ecp5"].replace(name="ecp5-quarter", mem_words_per_bank=256)
    _, trace = layer.forward(x[:8])
    assert not lower_llama_layer(CONFIGS["ecp5"], layer, 8).reuses_sram
    with pytest.raises(SramCapacityError):
        lower_llama_layer(small, layer, 8, sram_reuse=False)
    lowered = lower_llama_layer(small, layer, 8)
    assert lowered.reuses_sram and lowered.sram_bytes_used <= small.sram_bytes
    run_and_check(lowered, x[:8], trace)


def test_layer_split_into_programs_that_fit_the_queues(llama):
    """ecp5's own 512-word queues: the prefill and a decode step are cut into several
    programs, run in turn with the SRAM kept; still bit exact and cycle exact, and only the
    overlap at the cuts is lost."""
    layer, x = llama
    cfg = PRESETS["ecp5"]
    cache = layer.new_cache()
    out, trace = layer.forward(x[:3], cache)
    lowered = lower_llama_layer(cfg, layer, 3)
    assert len(lowered.programs) > 1 and len(lowered.program_cycles) == len(lowered.programs)
    assert all(len(code) <= cfg.queue_depth for p in lowered.programs
               for code in p.queues.values())
    assert lowered.programs[0].mem_init and not any(p.mem_init for p in lowered.programs[1:])
    res = run_and_check(lowered, x[:3], trace)
    assert np.array_equal(lowered.read_output(res.sram), out)
    whole = lower_llama_layer(CONFIGS["ecp5"], layer, 3)
    assert len(whole.programs) == 1
    assert whole.predicted_cycles <= lowered.predicted_cycles < 1.5 * whole.predicted_cycles
    kv = lowered.read_cache(res.sram)
    out, trace = layer.forward(x[3:4], cache)
    step = lower_llama_layer(cfg, layer, 1, start=3)
    res = run_and_check(step, x[3:4], trace, kv)
    assert np.array_equal(step.read_output(res.sram), out)


def test_matmul_utilization_at_seq_equal_lanes(tmp_path):
    """A Llama layer whose matmuls span several tiles (hidden 32, FFN 64, head_dim 16), 16
    tokens = ecp5's lanes: bit exact, cycle exact, and once a matmul's inputs arrive its
    plane does useful MACs in over a third of the cycles (0.29-0.34 measured with ACC, 0.42
    with ABCO; o.acc 0.50: a floor against a placement that leaves the planes idle, not a
    timing target)."""
    layer, x = random_llama(tmp_path, dict(hidden_size=32, num_heads=2, num_kv_heads=1,
                                           intermediate_size=64, head_dim=16), 16)
    _, trace = layer.forward(x, layer.new_cache())
    lowered = lower_llama_layer(CONFIGS["ecp5"], layer, 16)
    run_and_check(lowered, x, trace)
    util = lowered.matmul_utilization()
    assert set(util) == {"q.acc", "k.acc", "v.acc", "attn.scores", "attn.ctx.acc", "o.acc",
                         "gate.acc", "up.acc", "down.acc", "all"}
    assert all(0 < u <= 1 for u in util.values())
    assert util["all"] >= 0.35 and util["o.acc"] >= 0.45
    assert util["all"] > lowered.mxm_utilization


def test_split_points_greedy():
    """Cuts as late as possible; an op bigger than the budget gets a program of its own, one
    bigger than a queue is refused by name."""
    cfg = PRESETS["ecp5"]
    words = {"a": {"q0": 5}, "b": {"q0": 4, "q1": 9}, "c": {"q1": 2}, "d": {"q1": 9}}
    assert split_points(list(words), words, 10, cfg) == ["c", "d"]
    assert split_points(list(words), words, 100, cfg) == []
    assert split_points(list(words), words, 8, cfg) == ["b", "c", "d"]
    words["b"]["q1"] = 16  # a 16-word queue holds 15 and the END
    with pytest.raises(QueueDepthError, match="op b alone needs about 16") as e:
        split_points(list(words), words, 8, cfg.replace(queue_depth=16))
    assert (e.value.queue, e.value.needed, e.value.available, e.value.required) == \
        ("q1", 17, 16, 32)
    assert "it needs queue_depth 32 or more" in str(e.value)
    words["d"]["q1"] = 40  # the op that needs the most is named, with a depth for every op
    with pytest.raises(QueueDepthError, match="op d alone needs about 40 .* queue_depth 64"):
        split_points(list(words), words, 8, cfg.replace(queue_depth=16))


def test_skipping_blocked_cycles_changes_nothing(llama, monkeypatch):
    """``Placer.place`` passes over the cycles an attempt's ``blocked`` test rules out (the
    lowering's speed-up): the same programs, words and cycles as trying every cycle, here
    with matmuls, reductions, RoPE permutes and a cut into several programs."""
    import firmware.lower.placer as placer

    layer, _ = llama
    cfg = PRESETS["ecp5"].replace(queue_depth=256)
    fast = lower_llama_layer(cfg, layer, 3)
    every_cycle = placer.Placer.place
    monkeypatch.setattr(placer.Placer, "place",
                        lambda self, earliest, attempt, what, max_wait=placer.MAX_WAIT,
                        blocked=None: every_cycle(self, earliest, attempt, what, max_wait))
    slow = lower_llama_layer(cfg, layer, 3)
    assert len(fast.programs) > 1
    assert fast.programs == slow.programs and fast.program_cycles == slow.program_cycles
    assert fast.op_cycles == slow.op_cycles


def test_queue_depth_error_after_every_split_names_the_depth(llama, monkeypatch):
    """A program still over the queues once every split budget is tried: the error names the
    queue, its words with the END and the power-of-two depth that holds them."""
    import firmware.lower.layer as lower_layer

    layer, _ = llama
    monkeypatch.setattr(lower_layer, "_SPLIT_BUDGETS", ())  # no split: the first try stands
    cfg = PRESETS["ecp5"].replace(queue_depth=64)
    with pytest.raises(QueueDepthError, match="program 0 of 1 still needs") as e:
        lower_llama_layer(cfg, layer, 2)
    err = e.value
    assert err.available == 64 and err.needed > 64 and err.queue in str(err)
    assert err.required // 2 < err.needed <= err.required
    assert f"it needs queue_depth {err.required} or more" in str(err)


def test_rope_across_words(tmp_path):
    """head_dim 20 on 16 lanes: each head spans 2 words and RoPE's half rotation (by 10)
    crosses them (two PERMUTEs and an ADD per word)."""
    d = write_random_llama_checkpoint(tmp_path, seed=4, hidden_size=40, num_heads=2,
                                      num_kv_heads=1, intermediate_size=24, head_dim=20)
    m = load_llama(d)
    rng = np.random.default_rng(2)
    xs = [m.embed_tokens[rng.integers(0, m.config.vocab_size, t)] for t in (6, 8, 2)]
    layer = calibrate_llama_layer(m.layers[0], m.config, xs[:2], max_positions=8)
    check_prefill(lower_llama_layer, layer, quantize(xs[2], layer.scales["x"], 32), "ecp5")


def test_missing_vxm_features_are_refused(llama):
    layer, _ = llama
    lean = CONFIGS["sim"].replace(name="lean", vxm_special_alus=0)
    with pytest.raises(LoweringError, match="special"):
        lower_llama_layer(lean, layer, 1)
    without_sxms = CONFIGS["sim"].replace(name="bare", sxm=False)
    with pytest.raises(LoweringError, match=r"no SXMs \(sxm = false\)"):
        lower_llama_layer(without_sxms, layer, 1)


@pytest.mark.slow
def test_minilm_layer_on_sim_is_bit_exact():
    """Layer 0 of the real all-MiniLM-L6-v2 (hidden 384, 12 heads, FFN 1536), 8 tokens, on
    ``sim`` (about a minute)."""
    c_dir = require_minilm()
    m = load_bert(c_dir, layers=[0])
    rng = np.random.default_rng(12)

    def sample(t):
        return fl.bert_embed(m.embeddings, m.config, rng.integers(1000, m.config.vocab_size, t))

    layer = calibrate_bert_layer(m.layers[0], m.config, [sample(t) for t in (16, 24)])
    x = quantize(sample(8), layer.scales["x"], 32)
    out, trace = layer.forward(x)
    lowered = lower_bert_layer(CONFIGS["sim"], layer, 8)
    res = run_and_check(lowered, x, trace)
    assert np.array_equal(lowered.read_output(res.sram), out)
    assert lowered.mxm_utilization > 0.2


def test_layout_store_load_round_trip():
    lanes = 8
    cols = head_columns(3, 5, lanes)
    assert list(cols[:6]) == [0, 1, 2, 3, 4, 8]
    lay = Layout.plain((4, 15), lanes, cols)
    x = np.arange(60).reshape(4, 15)
    mat = lay.store(x)
    assert mat.shape == (4, 24) and np.array_equal(lay.load(mat), x)
    assert mat[0, 5] == 0  # padding
    red = lay.reduced()
    assert red.replicated and red.shape == (4, 1)
    assert np.array_equal(red.store(np.arange(4)[:, None])[:, :lanes],
                          np.repeat(np.arange(4)[:, None], lanes, 1))


def test_heads_of_a_quarter_word_are_packed_for_the_output_projection(tmp_path, monkeypatch):
    """8-dimensional heads on sim's 32 lanes: four per word of the context the output
    projection reads, so its weights take two K steps instead of five; bit exact either way
    (the packing off: ``heads_per_word`` 1)."""
    import firmware.lower.blocks as blocks

    layer, x = random_llama(tmp_path, dict(hidden_size=40, num_heads=5, num_kv_heads=1,
                                           intermediate_size=50, head_dim=8), 3)
    _, trace = layer.forward(x[:3])

    def o_loads(lowered):
        return sum(i.count for _, _, i, op in lowered.instructions()
                   if op == "o.acc" and i.op is Opcode.LW)
    packed = lower_llama_layer(CONFIGS["sim"], layer, 3)
    run_and_check(packed, x[:3], trace)
    assert "attn.ctx.packed" in packed.graph.records
    monkeypatch.setattr(blocks, "heads_per_word", lambda dh, lanes: 1)
    unpacked = lower_llama_layer(CONFIGS["sim"], layer, 3)
    run_and_check(unpacked, x[:3], trace)
    assert "attn.ctx.packed" not in unpacked.graph.records
    assert o_loads(packed) * 5 == o_loads(unpacked) * 2


@pytest.mark.parametrize("tokens, one_side", [(1, True), (32, False)])
def test_weight_rows_of_a_decode_step_sit_on_their_planes_side(tokens, one_side, monkeypatch):
    """With few rows per weight tile (a decode step), each N tile's weight rows sit in the
    MEM slices on the side of the MXM plane that loads them, so the planes' loads do not
    collide across the VXM; with many rows they spread over both sides."""
    from firmware.lower.blocks import linear
    from firmware.lower.graph import LayerGraph

    cfg = CONFIGS["sim"]
    g = LayerGraph(cfg)
    captured = []
    monkeypatch.setattr(LayerGraph, "mxm", lambda self, name, layout, blocks, outs, macs:
                        captured.extend(blocks))
    x = g.input("x", 8, Layout.plain((tokens, 64), g.L))
    weight = np.random.default_rng(0).integers(-128, 128, (96, 64))
    linear(g, "f", x, weight)
    sides = []
    for b, blk in enumerate(captured):
        plane = b % cfg.mxm_planes
        mine = "w" if g.pl.pos[f"mxm{plane}"] < g.pl.v else "e"
        rows = [w for kt in blk.weights for w in kt if w is not None]
        sides.append({g.plan.groups[w.gid][0][4] for w in rows} == {mine})
    assert len(captured) == 3 and all(sides) == one_side
