"""Tests of the float32 reference layers (sim_models.float_layers).

The BERT layer against a naive per-head, per-token loop; Llama: GQA equals multi-head
attention with repeated K/V weights, RoPE scores depend only on the relative position, and
decoding token by token through the KV cache equals one prefill.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from firmware.model_import import (
    BertConfig,
    BertLayerWeights,
    load_llama,
    write_random_llama_checkpoint,
)
from sim_models import float_layers as fl


def _naive_bert(w, c, x):
    """Post-LN BERT layer with explicit loops and math.exp / math.erf (float64)."""
    x = x.astype(np.float64)
    t, h, nh = x.shape[0], c.hidden_size, c.num_heads
    dh = h // nh
    q, k, v = x @ w.wq.T + w.bq, x @ w.wk.T + w.bk, x @ w.wv.T + w.bv
    ctx = np.zeros((t, h))
    for head in range(nh):
        sl = slice(head * dh, (head + 1) * dh)
        for i in range(t):
            logits = [float(q[i, sl] @ k[j, sl]) / math.sqrt(dh) for j in range(t)]
            e = [math.exp(z - max(logits)) for z in logits]
            for j in range(t):
                ctx[i, sl] += e[j] / sum(e) * v[j, sl]

    def ln(a, g, b):
        mu = a.mean(-1, keepdims=True)
        return (a - mu) / np.sqrt(((a - mu) ** 2).mean(-1, keepdims=True) + 1e-12) * g + b

    y1 = ln(ctx @ w.wo.T + w.bo + x, w.ln1_weight, w.ln1_bias)
    f = y1 @ w.w_in.T + w.b_in
    f = np.vectorize(lambda z: 0.5 * z * (1 + math.erf(z / math.sqrt(2))))(f)
    return ln(f @ w.w_out.T + w.b_out + y1, w.ln2_weight, w.ln2_bias)


def test_bert_layer_matches_naive_loops():
    rng = np.random.default_rng(0)
    c = BertConfig(hidden_size=12, num_heads=3, intermediate_size=20, num_layers=1,
                   layer_norm_eps=1e-12, vocab_size=5, max_position_embeddings=8,
                   type_vocab_size=2)
    shapes = {"wq": (12, 12), "wk": (12, 12), "wv": (12, 12), "wo": (12, 12),
              "w_in": (20, 12), "w_out": (12, 20), "b_in": (20,)}
    w = BertLayerWeights(**{f.name: (rng.standard_normal(shapes.get(f.name, (12,))) * 0.5)
                            .astype(np.float32) for f in dataclasses.fields(BertLayerWeights)})
    x = rng.standard_normal((5, 12)).astype(np.float32)
    out, acts = fl.bert_layer(w, c, x)
    np.testing.assert_allclose(out, _naive_bert(w, c, x), atol=2e-4)
    assert acts["probs"].shape == (3, 5, 5)
    np.testing.assert_allclose(acts["probs"].sum(-1), 1, atol=1e-6)


def test_llama_gqa_equals_mha_with_repeated_kv(tmp_path):
    m = load_llama(write_random_llama_checkpoint(tmp_path, seed=2))
    c, w = m.config, m.layers[0]
    dh, g = c.head_dim, c.kv_groups

    def rep(a):  # [kv * dh, H] -> [heads * dh, H]: KV head h // g for query head h
        return np.repeat(a.reshape(c.num_kv_heads, dh, -1), g, axis=0).reshape(-1, a.shape[1])

    mha_c = dataclasses.replace(c, num_kv_heads=c.num_heads)
    mha_w = dataclasses.replace(w, wk=rep(w.wk), wv=rep(w.wv))
    x = m.embed_tokens[:9]
    np.testing.assert_allclose(fl.llama_layer(w, c, x)[0], fl.llama_layer(mha_w, mha_c, x)[0],
                               atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 1, 16)).astype(np.float32)
    k = rng.standard_normal((1, 1, 16)).astype(np.float32)

    def score(m, n):
        qm = fl._rope(q, np.array([m]), 10000.0)
        kn = fl._rope(k, np.array([n]), 10000.0)
        return float((qm * kn).sum())

    assert abs(score(5, 2) - score(13, 10)) < 1e-4
    assert abs(score(0, 0) - float((q * k).sum())) < 1e-5  # position 0 is the identity
    assert abs(score(5, 2) - score(5, 3)) > 1e-3  # and it does rotate


def test_llama_decode_equals_prefill(tmp_path):
    m = load_llama(write_random_llama_checkpoint(tmp_path, hidden_size=50, num_heads=5,
                                                 num_kv_heads=1, intermediate_size=131,
                                                 head_dim=10, seed=4))
    c, w = m.config, m.layers[0]
    x = m.embed_tokens[np.arange(12) % c.vocab_size]
    full, acts = fl.llama_layer(w, c, x)
    cache = fl.FloatKVCache(c.num_kv_heads, c.head_dim)
    steps = [fl.llama_layer(w, c, x[:5], cache)[0]]
    steps += [fl.llama_layer(w, c, x[i:i + 1], cache)[0] for i in range(5, 12)]
    np.testing.assert_allclose(np.concatenate(steps), full, atol=2e-5)
    assert cache.length == 12
    assert np.all(acts["probs"][:, np.triu_indices(12, 1)[0], np.triu_indices(12, 1)[1]] == 0)
