"""Tests of firmware.model_import: Hugging Face checkpoints (config.json + safetensors).

Random Llama checkpoints (GQA, odd sizes) and a small random BERT round-trip; every error
(unsupported architecture or option, missing tensor, wrong shape, missing files) is a
ModelImportError naming the file and what is wrong; BF16 and sharded checkpoints; the real
all-MiniLM-L6-v2 checkpoint when it is available.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from minilm import require_minilm
from safetensors.numpy import load_file, save_file

from firmware.model_import import (
    BertModelWeights,
    LlamaModelWeights,
    ModelImportError,
    load_bert,
    load_checkpoint,
    load_llama,
    write_random_llama_checkpoint,
)


@pytest.fixture
def llama_dir(tmp_path):
    """A fresh two-layer random Llama checkpoint (72 hidden, 6 heads, 2 KV heads, FFN 200)."""
    return write_random_llama_checkpoint(tmp_path / "llama", num_layers=2, seed=1)


def _rewrite(d: Path, change) -> None:
    """Apply ``change(tensors)`` to the checkpoint's model.safetensors."""
    path = d / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def _edit_config(d: Path, **changes) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def test_random_llama_roundtrip(llama_dir):
    m = load_checkpoint(llama_dir)
    assert isinstance(m, LlamaModelWeights)
    c = m.config
    assert (c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size,
            c.num_layers, c.kv_groups) == (72, 6, 2, 12, 200, 2, 3)
    assert c.rope_theta == 10000.0 and c.rms_norm_eps == 1e-5
    w = m.layers[1]
    assert w.wq.shape == (72, 72) and w.wk.shape == (24, 72) and w.wv.shape == (24, 72)
    assert w.wo.shape == (72, 72) and w.w_gate.shape == (200, 72)
    assert w.w_down.shape == (72, 200) and w.attn_norm.shape == (72,)
    assert w.wq.dtype == np.float32 and m.lm_head.shape == (97, 72)
    raw = load_file(str(llama_dir / "model.safetensors"))
    np.testing.assert_array_equal(w.w_up, raw["model.layers.1.mlp.up_proj.weight"])
    assert sorted(load_llama(llama_dir, layers=[1]).layers) == [1]


def test_llama_gqa_odd_sizes_and_tied_embeddings(tmp_path):
    d = write_random_llama_checkpoint(tmp_path, hidden_size=50, num_heads=5, num_kv_heads=1,
                                      intermediate_size=131, head_dim=14,
                                      tie_word_embeddings=True)
    m = load_llama(d)
    assert m.lm_head is None and m.config.tie_word_embeddings
    assert m.layers[0].wq.shape == (70, 50) and m.layers[0].wk.shape == (14, 50)
    assert m.layers[0].wo.shape == (50, 70)


def test_missing_tensor_names_it_and_its_shape(llama_dir):
    _rewrite(llama_dir, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
    with pytest.raises(ModelImportError) as e:
        load_llama(llama_dir)
    msg = str(e.value)
    assert "model.safetensors" in msg and "LlamaForCausalLM" in msg
    assert "'model.layers.1.self_attn.k_proj.weight'" in msg and "[24, 72]" in msg
    assert e.value.tensor == "model.layers.1.self_attn.k_proj.weight"
    # layer 0 alone is still complete
    assert sorted(load_llama(llama_dir, layers=[0]).layers) == [0]


def test_wrong_shape_names_both_shapes(llama_dir):
    def change(t):
        t["model.layers.0.mlp.down_proj.weight"] = np.zeros((72, 199), dtype=np.float32)

    _rewrite(llama_dir, change)
    with pytest.raises(ModelImportError, match=r"down_proj\.weight' has shape \[72, 199\], "
                                               r"expected \[72, 200\]"):
        load_llama(llama_dir)


def test_unsupported_architecture(llama_dir):
    _edit_config(llama_dir, architectures=["GPT2LMHeadModel"])
    with pytest.raises(ModelImportError, match=r"config\.json: unsupported architecture "
                                               r"'GPT2LMHeadModel'"):
        load_checkpoint(llama_dir)
    with pytest.raises(ModelImportError, match="for a BERT encoder"):
        load_bert(llama_dir)


@pytest.mark.parametrize("changes, match", [
    (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0}), "RoPE scaling"),
    (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4}), "RoPE scaling"),
    (dict(hidden_act="gelu"), "hidden_act 'gelu'"),
    (dict(attention_bias=True), "attention_bias"),
    (dict(num_key_value_heads=4), "not a multiple of num_key_value_heads 4"),
    (dict(head_dim=11), "odd"),
    (dict(hidden_size="big"), "'hidden_size' = 'big' is not a valid int"),
])
def test_unsupported_llama_options(llama_dir, changes, match):
    _edit_config(llama_dir, **changes)
    with pytest.raises(ModelImportError, match=match):
        load_llama(llama_dir)


def test_rope_parameters_form_of_the_config(llama_dir):
    cfg = json.loads((llama_dir / "config.json").read_text())
    del cfg["rope_theta"], cfg["rope_scaling"]
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": 500000.0}
    (llama_dir / "config.json").write_text(json.dumps(cfg))
    assert load_llama(llama_dir, layers=[0]).config.rope_theta == 500000.0


def test_missing_files_and_bad_json(tmp_path, llama_dir):
    with pytest.raises(ModelImportError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelImportError, match="config.json not found"):
        load_checkpoint(empty)
    (llama_dir / "model.safetensors").unlink()
    with pytest.raises(ModelImportError, match="no model.safetensors"):
        load_checkpoint(llama_dir)
    (llama_dir / "config.json").write_text("{not json")
    with pytest.raises(ModelImportError, match="not valid JSON"):
        load_checkpoint(llama_dir)


def test_layer_selection_out_of_range(llama_dir):
    with pytest.raises(ModelImportError, match=r"layer\(s\) \[5\] requested, the model has 2"):
        load_llama(llama_dir, layers=[0, 5])


def _write_safetensors_raw(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]):
    """A safetensors file written by hand (safetensors.numpy cannot write BF16)."""
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_bf16_and_sharded_checkpoints(llama_dir):
    tensors = load_file(str(llama_dir / "model.safetensors"))
    (llama_dir / "model.safetensors").unlink()
    names = sorted(tensors)
    bf16_name = "model.layers.0.self_attn.q_proj.weight"
    first = set(names[: len(names) // 2]) | {bf16_name}
    raw = {}
    for n in sorted(first):
        a = tensors[n]
        if n == bf16_name:
            bits = (a.view(np.uint32) >> 16).astype("<u2")  # truncate to bfloat16
            raw[n] = ("BF16", list(a.shape), bits.tobytes())
        else:
            raw[n] = ("F32", list(a.shape), a.astype("<f4").tobytes())
    _write_safetensors_raw(llama_dir / "part-1.safetensors", raw)
    save_file({n: tensors[n].astype(np.float16) for n in names if n not in raw},
              str(llama_dir / "part-2.safetensors"))
    weight_map = {n: "part-1.safetensors" if n in raw else "part-2.safetensors" for n in names}
    (llama_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))
    m = load_llama(llama_dir)
    truncated = (tensors[bf16_name].view(np.uint32) & 0xFFFF0000).view(np.float32)
    np.testing.assert_array_equal(m.layers[0].wq, truncated)
    assert not np.array_equal(truncated, tensors[bf16_name])  # BF16 really lost bits
    half = "model.layers.1.mlp.up_proj.weight"
    assert half not in raw
    np.testing.assert_array_equal(m.layers[1].w_up, tensors[half].astype(np.float16))
    (llama_dir / "part-2.safetensors").unlink()
    with pytest.raises(ModelImportError, match="part-2.safetensors: safetensors file listed"):
        load_llama(llama_dir)


def test_unsupported_weight_dtype(llama_dir):
    _rewrite(llama_dir, lambda t: t.update(
        {"model.norm.weight": np.ones(72, dtype=np.int8)}))
    with pytest.raises(ModelImportError, match="'model.norm.weight' has dtype I8"):
        load_llama(llama_dir)


def _write_random_bert(d: Path, prefix: str, hidden=30, heads=3, ffn=50, layers=1) -> Path:
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({
        "architectures": ["BertForMaskedLM" if prefix else "BertModel"], "model_type": "bert",
        "hidden_size": hidden, "num_attention_heads": heads, "intermediate_size": ffn,
        "num_hidden_layers": layers, "layer_norm_eps": 1e-12, "vocab_size": 40,
        "max_position_embeddings": 16, "type_vocab_size": 2, "hidden_act": "gelu"}))

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    t = {"embeddings.word_embeddings.weight": r(40, hidden),
         "embeddings.position_embeddings.weight": r(16, hidden),
         "embeddings.token_type_embeddings.weight": r(2, hidden),
         "embeddings.LayerNorm.weight": r(hidden), "embeddings.LayerNorm.bias": r(hidden)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            t[p + f"attention.self.{n}.weight"] = r(hidden, hidden)
            t[p + f"attention.self.{n}.bias"] = r(hidden)
        t[p + "attention.output.dense.weight"] = r(hidden, hidden)
        t[p + "attention.output.dense.bias"] = r(hidden)
        t[p + "intermediate.dense.weight"] = r(ffn, hidden)
        t[p + "intermediate.dense.bias"] = r(ffn)
        t[p + "output.dense.weight"] = r(hidden, ffn)
        t[p + "output.dense.bias"] = r(hidden)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"] = r(hidden)
            t[p + ln + ".bias"] = r(hidden)
    save_file({prefix + k: v for k, v in t.items()}, str(d / "model.safetensors"))
    return d


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_bert_roundtrip_with_and_without_prefix(tmp_path, prefix):
    d = _write_random_bert(tmp_path / "bert", prefix)
    m = load_checkpoint(d)
    assert isinstance(m, BertModelWeights)
    assert m.config.head_dim == 10 and m.layers[0].w_in.shape == (50, 30)
    raw = load_file(str(d / "model.safetensors"))
    np.testing.assert_array_equal(m.layers[0].wk,
                                  raw[prefix + "encoder.layer.0.attention.self.key.weight"])
    _edit_config(d, hidden_act="gelu_new")
    with pytest.raises(ModelImportError, match="hidden_act 'gelu_new'"):
        load_bert(d)


def test_bert_missing_tensor_keeps_the_prefix_in_the_message(tmp_path):
    d = _write_random_bert(tmp_path / "bert", "bert.")
    _rewrite(d, lambda t: t.pop("bert.encoder.layer.0.output.LayerNorm.bias"))
    with pytest.raises(ModelImportError, match=r"missing tensor "
                                               r"'bert\.encoder\.layer\.0\.output\.LayerNorm"
                                               r"\.bias' \(expected shape \[30\]\) for "
                                               r"BertForMaskedLM"):
        load_bert(d)


def test_real_minilm_checkpoint():
    m = load_bert(require_minilm())
    c = m.config
    assert (c.hidden_size, c.num_heads, c.intermediate_size, c.num_layers) == (384, 12, 1536, 6)
    assert c.layer_norm_eps == 1e-12 and sorted(m.layers) == list(range(6))
    assert m.embeddings.word.shape == (30522, 384)
    assert m.layers[5].w_out.shape == (384, 1536)
    assert np.all(np.isfinite(m.layers[3].wq))
