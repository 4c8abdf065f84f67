"""The ``openlpu`` command line, run in-process: outputs, JSON fields, one-line errors."""

import json
from pathlib import Path

import pytest

from openlpu.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vector_add.s"


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json_has_the_published_groqchip_figures(capsys):
    code, out, _ = run(capsys, "info", "--config", "groqchip", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["lanes"] == 320 and info["superlanes"] == 20
    assert info["streams_per_direction"] == 32 and info["mem_slices"] == 88
    assert info["sram_bytes"] == 230_686_720 and info["mxm_planes"] == 4
    assert info["macs_per_cycle"] == 409_600 and info["vxm_alus"] == 5_120
    assert info["clock_mhz"] == 900 and info["peak_int8_tops"] == pytest.approx(737.28)
    assert info["sram_bytes_per_cycle"] == 56_320
    assert info["sram_read_bytes_per_cycle"] == 28_160


def test_info_text_lists_the_floorplan(capsys):
    code, out, _ = run(capsys, "info", "--config", "small")
    assert code == 0 and "mem_w1 | mem_w0 | vxm | mem_e0" in out


def test_asm_run_disasm_round_trip(capsys, tmp_path):
    binary = tmp_path / "va.bin"
    code, out, _ = run(capsys, "asm", str(EXAMPLE), "--config", "ecp5", "-o", str(binary))
    assert code == 0 and "4 queues" in out
    code, out, _ = run(capsys, "run", str(binary), "--json")
    assert code == 0
    report = json.loads(out)
    # ADDS takes 4 cycles on ecp5 (vxm_deep_pipeline): 19, the example's hand count
    assert report["backend"] == "golden" and report["cycles"] == 19
    assert report["outputs"]["sum"][0][:3] == [11, 22, 33]
    assert report["violations"] == []
    code, text, _ = run(capsys, "disasm", str(binary))
    assert code == 0 and "ADDS.i8 E1, E0, W0" in text
    again = tmp_path / "again.s"
    again.write_text(text)
    code, out, _ = run(capsys, "run", str(again), "--config", "ecp5", "--json")
    assert json.loads(out)["outputs"] == report["outputs"]


def test_errors_are_one_line_and_name_the_problem(capsys, tmp_path):
    code, _, err = run(capsys, "info", "--config", "nope")
    assert code == 1 and "unknown config 'nope'" in err and "Traceback" not in err
    code, _, err = run(capsys, "run", str(tmp_path / "missing.s"), "--config", "ecp5")
    assert code == 1 and "no such file" in err
    bad = tmp_path / "bad.s"
    bad.write_text(".queue mem_w0\n    READ E9, 0\n")
    code, _, err = run(capsys, "run", str(bad), "--config", "ecp5")
    assert code == 1 and "bad.s:2:" in err and "E9" in err
    code, _, err = run(capsys, "run", str(EXAMPLE))
    assert code == 1 and "--config is required" in err
    late = tmp_path / "late.s"
    late.write_text(EXAMPLE.read_text().replace("NOP     9", "NOP     10"))
    code, _, err = run(capsys, "run", str(late), "--config", "ecp5")
    assert code == 1 and "empty stream read" in err and "late.s:34" in err
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"nonsense")
    code, _, err = run(capsys, "disasm", str(junk))
    assert code == 1 and "junk.bin" in err


def test_collect_reports_every_violation(capsys, tmp_path):
    late = tmp_path / "late.s"
    late.write_text(EXAMPLE.read_text().replace("NOP     9", "NOP     10"))
    code, out, _ = run(capsys, "run", str(late), "--config", "ecp5", "--collect", "--json")
    assert code == 1
    assert len(json.loads(out)["violations"]) == 1


def test_program_for_another_config_is_refused(capsys, tmp_path):
    binary = tmp_path / "va.bin"
    run(capsys, "asm", str(EXAMPLE), "--config", "ecp5", "-o", str(binary))
    code, _, err = run(capsys, "run", str(binary), "--config", "sim")
    assert code == 1 and "ecp5" in err and "sim" in err


def test_info_isa_lists_every_opcode_with_this_configs_latency(capsys):
    from openlpu.config import PRESETS
    from openlpu.isa import OPS, Opcode, latency

    code, out, _ = run(capsys, "info", "--isa", "--config", "sim", "--json")
    rows = {r["mnemonic"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == {s.name for s in OPS.values()}
    assert rows["ABC"]["latency"] == latency(Opcode.ABC, PRESETS["sim"])
    assert rows["SEND"]["reserved"] is True


def test_trace_options_are_checked_before_any_simulation(capsys, tmp_path):
    fst = str(tmp_path / "x.fst")
    code, _, err = run(capsys, "run", str(EXAMPLE), "--trace-window", "0:10")
    assert code == 1 and "--trace-window needs --trace" in err
    code, _, err = run(capsys, "run", str(EXAMPLE), "--trace", fst)
    assert code == 1 and "--trace needs the verilator or icarus backend" in err
    code, _, err = run(capsys, "run", str(EXAMPLE), "--backend", "amaranth", "--trace", fst)
    assert code == 1 and "--trace needs the verilator or icarus backend" in err
    for bad, why in (("9:3", "need 0 <= A < B"), ("x:3", "is not A:B"), ("4", "is not A:B")):
        with pytest.raises(SystemExit):
            main(["run", str(EXAMPLE), "--trace", fst, "--trace-window", bad])
        assert why in capsys.readouterr().err


def test_rtl_run_json_is_the_only_thing_on_stdout(capfd, tmp_path):
    """The simulator's build and run chatter goes to stderr: --json output parses as is."""
    from firmware.program import save
    from firmware.random_program import random_program
    from openlpu.config import PRESETS
    from openlpu.toolchain import simulator_available

    ok, why = simulator_available("icarus")
    if not ok:
        pytest.skip(why)
    prog = tmp_path / "p.bin"
    save(random_program(PRESETS["small"], 11, 10), prog)
    fst = tmp_path / "w.fst"
    code = main(["run", str(prog), "--backend", "icarus", "--json", "--trace", str(fst),
                 "--trace-window", "1:6"])
    out, _ = capfd.readouterr()
    report = json.loads(out)
    assert code == 0 and report["matches_golden"] and report["backend"] == "icarus"
    assert fst.stat().st_size > 0
