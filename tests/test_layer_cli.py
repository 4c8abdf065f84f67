"""``openlpu layer`` (:mod:`openlpu.layer_cli`, :mod:`firmware.layer_run`) on random BERT and
Llama checkpoints: the report's figures, the saved outputs, the schedule trace, the input
file, the errors a user can make, and whole layers on the RTL (Verilator; Icarus and the
host-bus loading in the slow session) of the ``ecp5`` preset, whose 512-word queues make each
run several programs.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from firmware.model_import import write_random_bert_checkpoint, write_random_llama_checkpoint
from openlpu.cli import main
from openlpu.config import PRESETS
from openlpu.toolchain import simulator_available

PHASES = {"norms", "qkv", "attention", "out_proj", "ffn"}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """A small random Llama checkpoint: GQA (3 heads, 1 KV head), odd sizes."""
    return write_random_llama_checkpoint(tmp_path_factory.mktemp("llama"), seed=5,
                                         hidden_size=24, num_heads=3, num_kv_heads=1,
                                         intermediate_size=40, head_dim=8)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A small random BERT checkpoint with two layers (layer 1 is run)."""
    return write_random_bert_checkpoint(tmp_path_factory.mktemp("bert"), seed=2,
                                        hidden_size=40, num_heads=5, intermediate_size=56,
                                        num_layers=2)


def run_json(capsys, *args) -> tuple[int, dict]:
    code = main(["layer", "--quiet", "--json", *map(str, args)])
    out = capsys.readouterr().out
    return code, json.loads(out)


def check_report(rep: dict, runs: int):
    assert rep["bit_exact"] is True and rep["mismatches"] == []
    assert rep["cycles"] == rep["predicted_cycles"] > 0
    assert rep["cosine_vs_float"] >= 0.99
    assert 0 < rep["mxm_utilization"] < 1
    assert set(rep["phases"]) == PHASES and all(v > 0 for v in rep["phases"].values())
    assert 0 < rep["sram_bytes_used"] <= rep["sram_bytes_available"]
    assert rep["seconds_at_clock"] == pytest.approx(rep["cycles"] / (rep["clock_mhz"] * 1e6))
    assert len(rep["runs"]) == runs
    for r in rep["runs"]:
        assert r["golden_cycles"] == r["predicted_cycles"] == sum(r["program_cycles"])
        assert r["queue_words"] <= r["queue_depth"]
        assert r["programs"] == len(r["program_cycles"])
    assert sum(r["predicted_cycles"] for r in rep["runs"]) == rep["predicted_cycles"]


def test_llama_prefill_and_decode_on_the_ecp5_preset(llama_dir, capsys):
    code, rep = run_json(capsys, "--model", llama_dir, "--config", "ecp5", "--seq", 3,
                         "--decode", 2, "--seed", 7)
    assert code == 0
    check_report(rep, 3)
    assert rep["family"] == "llama" and rep["backend"] == "golden"
    assert [r["start"] for r in rep["runs"]] == [0, 3, 4]
    assert rep["runs"][0]["programs"] > 1  # 512-word queues: the prefill is cut
    assert rep["decode_tokens_per_s"] == pytest.approx(
        100e6 / np.mean([r["predicted_cycles"] for r in rep["runs"][1:]]))
    assert 0 < rep["decode_efficiency"] < 1
    # ecp5's 8 slices read 128 B/cycle, half what its streams carry: the reachable bound is
    # half the stream bound, and no schedule beats it (every weight byte is read once)
    assert rep["decode_sram_bound_tokens_per_s"] == pytest.approx(
        rep["decode_bound_tokens_per_s"] / 2)
    assert rep["decode_efficiency"] < rep["decode_sram_efficiency"] < 1


def test_bert_outputs_and_schedule_trace(bert_dir, tmp_path, capsys):
    npz, trace = tmp_path / "out.npz", tmp_path / "schedule.json"
    code, rep = run_json(capsys, "--model", bert_dir, "--layer", 1, "--config", "sim",
                         "--seq", 5, "--save-output", npz, "--trace-schedule", trace)
    assert code == 0
    check_report(rep, 1)
    assert rep["family"] == "bert" and "decode_tokens_per_s" not in rep
    out = np.load(npz)
    assert out["int8"].dtype == np.int8 and out["int8"].shape == (5, 40)
    assert out["int32"].dtype == np.int32 and out["reference_float"].shape == (5, 40)
    assert np.array_equal(out["int32"], out["reference_int32"])
    scale = out["float"][out["int32"] != 0] / out["int32"][out["int32"] != 0]
    assert np.allclose(scale, scale[0], rtol=1e-5)
    cos = float(np.sum(out["float"] * out["reference_float"])
                / np.linalg.norm(out["float"]) / np.linalg.norm(out["reference_float"]))
    assert cos == pytest.approx(rep["cosine_vs_float"], abs=1e-5)

    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"ops", "phases"} | {q.name for q in PRESETS["sim"].queues} <= names
    spans = [e for e in events if e["ph"] == "X"]
    assert {"q.acc", "attn.softmax.exp", "ln2.out"} <= {e["name"] for e in spans}
    assert {"READ", "WRITE", "ABC", "EXP"} <= {e["name"] for e in spans}
    assert all(0 <= e["ts"] and e["ts"] + e["dur"] <= rep["predicted_cycles"] for e in spans)
    merged = [e for e in spans if "count" in e["args"]]  # instruction slices
    assert all(e["dur"] == e["args"]["count"] for e in merged)


def test_bert_on_the_deep_vxm_pipeline_of_the_ecp5_preset(tmp_path, capsys):
    """Operands held by MOVs wait one MOV latency per MOV (4 cycles on a deep VXM pipeline,
    not 2: the golden model stopped at an empty stream read)."""
    d = write_random_bert_checkpoint(tmp_path, seed=3, hidden_size=36, num_heads=3,
                                     intermediate_size=50)
    code, rep = run_json(capsys, "--model", d, "--config", "ecp5", "--seq", 1)
    assert code == 0
    check_report(rep, 1)


def test_input_file(llama_dir, tmp_path, capsys):
    x = np.random.default_rng(3).standard_normal((4, 24)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    npz = tmp_path / "o"  # written under exactly this name (np.savez would add .npz)
    code, rep = run_json(capsys, "--model", llama_dir, "--config", "sim", "--input",
                         tmp_path / "x.npy", "--decode", 1, "--save-output", npz)
    assert code == 0 and rep["seq"] == 3 and rep["decode"] == 1
    check_report(rep, 2)
    assert np.array_equal(np.load(npz)["input"], x)
    assert rep["saved_output"] == str(npz) and not (tmp_path / "o.npz").exists()
    assert rep["warnings"] == [] and rep["input_range"]["out_of_range"] == 0


def test_all_zero_input_is_a_perfect_match(llama_dir, tmp_path, capsys):
    """A Llama layer maps zeros to zeros on the chip and in float: cosine 1, not 0."""
    np.save(tmp_path / "z.npy", np.zeros((2, 24), np.float32))
    code, rep = run_json(capsys, "--model", llama_dir, "--config", "sim", "--input",
                         tmp_path / "z.npy")
    assert code == 0 and rep["bit_exact"] and rep["cosine_vs_float"] == 1.0


def test_weights_beyond_the_sram_are_refused_before_lowering(tmp_path, capsys):
    """1.2 MB of weights on ecp5's 256 KiB: refused at once with the bytes needed and
    available (the queue-depth and SRAM errors of the lowering came after minutes each)."""
    big = write_random_llama_checkpoint(tmp_path, hidden_size=384, num_heads=6, num_kv_heads=6,
                                        intermediate_size=768)
    assert main(["layer", "--quiet", "--model", str(big), "--config", "ecp5", "--seq", "1"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("openlpu: error: layer 0's int8 weights alone take 1,474,560 bytes "
                           "of SRAM; config 'ecp5' has 262,144")


def test_input_beyond_the_calibrated_range_warns(bert_dir, tmp_path, capsys):
    """Hidden states 30 times the calibrated range saturate most of the int8 input: a warning
    on stderr (also with --quiet) and in the report, with the count and the calibrated
    range; the run itself is unchanged (still bit exact against the integer reference)."""
    from firmware.layer_run import INPUT_RANGE_WARN_FRACTION, prepare_layer

    x = prepare_layer(bert_dir, 1, 2).x_float * 30
    np.save(tmp_path / "x.npy", x)
    code, rep = run_json(capsys, "--model", bert_dir, "--layer", 1, "--config", "sim",
                         "--input", tmp_path / "x.npy")
    assert code == 0 and rep["bit_exact"]
    info = rep["input_range"]
    assert info["values"] == x.size and info["fraction"] > 0.5 > INPUT_RANGE_WARN_FRACTION
    assert info["out_of_range"] == round(info["fraction"] * x.size)
    assert info["input_max_abs"] > 10 * info["calibrated_max_abs"] > 0
    assert rep["warnings"] == [info["warning"]]
    assert f"{info['out_of_range']} of {x.size} input values" in info["warning"]
    assert f"calibrated on random samples with |x| <= {info['calibrated_max_abs']:.4g}" in \
        info["warning"]
    main(["layer", "--quiet", "--model", str(bert_dir), "--layer", "1", "--config", "sim",
          "--input", str(tmp_path / "x.npy")])
    err = capsys.readouterr().err
    assert err.strip() == f"openlpu layer: warning: {info['warning']}"


def test_input_range_counts_what_the_integer_layer_saturates(llama_dir, bert_dir):
    """The out-of-range counts equal what the integer reference does: BERT's int8 input
    saturates (x8 at its bound where the unsaturated value lies beyond), a Llama token's
    RMSNorm sum of squares wraps; no warning for the random input itself."""
    from firmware.layer_run import PreparedLayer, prepare_layer
    from sim_models.transformer import quantize

    def scaled(p: PreparedLayer, k: float) -> PreparedLayer:
        x = p.x_float * k
        return dataclasses.replace(p, x_float=x,
                                   x_int=quantize(x, p.int_layer.scales["x"], 32))

    bert = prepare_layer(bert_dir, 1, 4)
    llama = prepare_layer(llama_dir, 0, 4)
    for p in (bert, llama):
        info = p.input_range()
        assert info["out_of_range"] == 0 and info["warning"] is None
        assert info["input_max_abs"] <= info["limit_abs"][0]
    b = scaled(bert, 3)
    x8 = b.int_layer.forward(b.x_int)[1]["x8"]
    assert 0 < b.input_range()["out_of_range"] <= np.sum((x8 == 127) | (x8 == -128))
    lm = scaled(llama, 12)
    tr = lm.int_layer.forward(lm.x_int)[1]
    wrapped = tr["ln_attn.sq"].astype(np.int64).sum(axis=-1) != tr["ln_attn.sum_sq"].ravel()
    info = lm.input_range()
    assert wrapped.any() and info["out_of_range"] == wrapped.sum() * 24
    assert "RMSNorm" in info["warning"]


def test_queue_depth_refusal_names_the_depth_that_fits(llama_dir, tmp_path, capsys):
    """An op longer than the queues: one line naming the op, the queue, the words it needs
    and the depth held, and the power-of-two depth to ask for, by --queue-depth or a JSON
    config; a JSON config with that depth then runs."""
    assert main(["layer", "--quiet", "--model", str(llama_dir), "--config", "ecp5", "--seq",
                 "2", "--queue-depth", "32"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    m = re.search(r"op \S+ alone needs about (\d+) instruction words on queue (\w+) \(and "
                  r"the END\); config 'ecp5' holds 32 per queue: it needs queue_depth (\d+) "
                  r"or more", err)
    assert m, err
    words, depth = int(m[1]), int(m[3])
    assert depth == 1 << words.bit_length() and depth > 32  # words + END <= depth
    assert (f"for deeper queues pass --queue-depth {depth} instead of 32, or a --config .json "
            f'file with "queue_depth": {depth}') in err
    cfg = tmp_path / "ecp5_deep.json"
    cfg.write_text(json.dumps(dataclasses.asdict(PRESETS["ecp5"].replace(queue_depth=depth))))
    code, rep = run_json(capsys, "--model", llama_dir, "--config", cfg, "--seq", 2)
    assert code == 0 and rep["runs"][0]["queue_depth"] == depth


@pytest.mark.parametrize(("args", "message"), [
    (["--seq", 2, "--decode", 1, "--bert"], "--decode needs a causal"),
    (["--seq", 0], "at least one token"),
    (["--layer", 5, "--seq", 2], "layer"),
    (["--seq", 2, "--queue-depth", 100], "queue_depth"),
    (["--seq", 2, "--input", "{bad_shape}"], "must be float [T, 24]"),
    (["--seq", 2, "--input", "{nan}"], "NaN or inf (first at [1, 3])"),
    (["--seq", 3, "--input", "{good}"], "4 rows, but --seq + --decode = 3"),
    (["--seq", 2, "--model", "{missing}"], "checkpoint directory does not exist"),
    (["--seq", 2, "--model", "{good}"], "a file, not a checkpoint directory"),
    (["--input", "{empty}"], "input has no rows"),
    (["--input", "{npz}"], "an .npz archive (x), not a .npy array"),
    (["--seq", 2, "--seed", -1], "--seed must be >= 0, not -1"),
    (["--seq", 2, "--decode", -3], "--decode must be >= 0, not -3"),
    (["--seq", 129, "--bert"], "129 tokens exceed the model's max_position_embeddings 128"),
    # Refused before the run, not after it.
    (["--seq", 2, "--save-output", "{missing}/o.npz"], "directory {missing} does not exist"),
    (["--seq", 2, "--trace-schedule", "{missing}/t.json"], "directory {missing} does not"),
    (["--seq", 2, "--save-output", "{dir}"], "is a directory"),
])
def test_errors_are_one_line(llama_dir, bert_dir, tmp_path, capsys, args, message):
    np.save(tmp_path / "empty.npy", np.zeros((0, 24), np.float32))
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 24), np.float32))
    np.save(tmp_path / "bad_shape.npy", np.zeros((2, 7), np.float32))
    nan = np.zeros((2, 24), np.float32)
    nan[1, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "good.npy", np.zeros((4, 24), np.float32))
    files = {"bad_shape": tmp_path / "bad_shape.npy", "nan": tmp_path / "nan.npy",
             "good": tmp_path / "good.npy", "missing": tmp_path / "nowhere",
             "empty": tmp_path / "empty.npy", "npz": tmp_path / "x.npz", "dir": tmp_path}
    model = bert_dir if "--bert" in args else llama_dir
    argv = ["layer", "--quiet", "--config", "ecp5"]
    argv += [] if "--model" in args else ["--model", str(model)]
    argv += [str(a).format(**files) for a in args if a != "--bert"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("openlpu: error: ") and message.format(**files) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(("simulator", "access", "reuse"), [
    ("verilator", "backdoor", "never"),
    # Dead tensors' SRAM words reused: the RTL must honour the fences (a write after the old
    # occupant's last read) exactly as the golden model does.
    ("verilator", "backdoor", "always"),
    # The same through the host bus, as a board loads it; and on Icarus, which simulates the
    # ecp5 chip at a few dozen cycles per second (over 10 minutes for this layer's 3 runs):
    # the default suite runs every instruction on Icarus (tests/test_rtl_chip.py), whole
    # layers there only in nox -s slow.
    pytest.param("verilator", "bus", "never", marks=pytest.mark.slow),
    pytest.param("icarus", "backdoor", "always", marks=pytest.mark.slow),
])
def test_llama_layer_on_the_rtl(llama_dir, simulator, access, reuse, capsys):
    """Prefill of 2 tokens and a decode step on the ecp5 preset's RTL: every program equals
    the golden model in every SRAM word and cycle, and the output equals the reference."""
    ok, why = simulator_available(simulator)
    if not ok:
        pytest.skip(why)
    code, rep = run_json(capsys, "--model", llama_dir, "--config", "ecp5", "--seq", 2,
                         "--decode", 1, "--backend", simulator, "--sram-access", access,
                         "--sram-reuse", reuse)
    assert code == 0, rep["mismatches"]
    check_report(rep, 2)
    assert rep["sram_reuse"] is (reuse == "always")
    for r in rep["runs"]:
        assert r["matches_golden"] and r["rtl_cycles"] == r["predicted_cycles"]
        assert r["sram_reuse"] is (reuse == "always")
    assert rep["rtl_run_seconds"] > 0


def test_a_golden_run_is_rerun_on_the_rtl_only_when_asked_right(llama_dir):
    from firmware.layer_run import LayerRunError, prepare_layer, run_layer

    prepared = prepare_layer(llama_dir, 0, 2)
    golden = run_layer(prepared, PRESETS["ecp5"], seq=2)
    with pytest.raises(LayerRunError, match="unknown RTL backend 'golden'"):
        golden.on_rtl("golden")
    with pytest.raises(LayerRunError, match="unknown SRAM access 'jtag'"):
        golden.on_rtl("verilator", sram_access="jtag")
    with pytest.raises(LayerRunError, match="unknown SRAM access 'jtag'"):
        run_layer(prepared, PRESETS["ecp5"], seq=2, backend="icarus", sram_access="jtag")
    with pytest.raises(LayerRunError, match="unknown SRAM reuse 'sometimes'"):
        run_layer(prepared, PRESETS["ecp5"], seq=2, sram_reuse="sometimes")
    golden.backend = "icarus"
    with pytest.raises(LayerRunError, match="this one ran on icarus"):
        golden.on_rtl("verilator")


@pytest.mark.slow
def test_llama_layer_on_the_sim_preset_rtl(llama_dir, capsys):
    """The same on the ``sim`` preset's RTL (32 lanes, 2 MXM planes; the model takes about
    13 minutes to generate and build)."""
    ok, why = simulator_available("verilator")
    if not ok:
        pytest.skip(why)
    code, rep = run_json(capsys, "--model", llama_dir, "--config", "sim", "--seq", 3,
                         "--decode", 1, "--backend", "verilator")
    assert code == 0, rep["mismatches"]
    check_report(rep, 2)
    assert all(r["matches_golden"] for r in rep["runs"])
