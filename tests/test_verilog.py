"""Verilog generation: every unit and the chip top, for the small presets, compile in Icarus
and pass Verilator's lint; the chip's ports are the host bus of the spec."""

import re
import subprocess

import pytest

from hdl.verilog import UNITS, cached_verilog, comb_at_time_zero, compact_memory_init
from openlpu.cli import main
from openlpu.config import PRESETS
from openlpu.toolchain import apply_verilator_env, simulator_available


def icarus_compiles(path, tmp_path):
    ok, why = simulator_available("icarus")
    if not ok:
        pytest.skip(why)
    r = subprocess.run(["iverilog", "-o", str(tmp_path / "a.vvp"), str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def verilator_lints(path, top):
    ok, why = simulator_available("verilator")
    if not ok:
        pytest.skip(why)
    apply_verilator_env()
    r = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                        "--top-module", top, str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("name", ["small", "ecp5"])
@pytest.mark.parametrize("top", [u for u in UNITS if u != "chip"])
def test_every_unit_generates_standalone_verilog(top, name, tmp_path):
    path = cached_verilog(PRESETS[name], top)
    icarus_compiles(path, tmp_path)
    verilator_lints(path, f"openlpu_{top}")


def test_chip_ports_are_the_host_bus(tmp_path):
    path = cached_verilog(PRESETS["small"])
    header = re.search(r"module openlpu_chip\((.*?)\);", path.read_text(), re.S).group(1)
    ports = {p.strip() for p in header.split(",")}
    assert ports == {"clk", "rst", "bus_addr", "bus_wdata", "bus_we", "bus_re", "bus_rdata",
                     "bus_rvalid"}
    icarus_compiles(path, tmp_path)
    verilator_lints(path, "openlpu_chip")


def test_cli_writes_verilog(tmp_path, capsys):
    out = tmp_path / "mem.v"
    assert main(["verilog", "--config", "small", "--top", "mem", "-o", str(out)]) == 0
    assert "module openlpu_mem" in out.read_text()
    assert main(["verilog", "--config", "nope", "-o", str(out)]) == 1


def test_memory_init_compaction_keeps_values_and_leaves_roms():
    zeros = "  initial begin\n" + "".join(f"    m[{i}] = 8'h00;\n" for i in range(4)) + "  end\n"
    rom = "  initial begin\n    r[0] = 8'h01;\n    r[1] = 8'h02;\n  end\n"
    out = compact_memory_init(zeros + rom)
    assert "for (" in out and "m[_openlpu_init_1] = 8'h00" in out and "< 4;" in out
    assert rom in out


def test_time_zero_trigger_is_added_outside_verilator():
    text = "  reg \\$auto$verilog_backend.cc:1:dump_module$3  = 0;\n"
    out = comb_at_time_zero(text)
    assert "`ifndef VERILATOR" in out and "initial #1 \\$auto$verilog_backend.cc:1:dump_module$3"\
        in out


def test_source_hash_covers_what_the_rtl_imports_and_nothing_else():
    """A change to any module the RTL depends on rebuilds the cached Verilog and models; a
    module it does not use (the CLI, a board top) does not."""
    from pathlib import Path

    from hdl.verilog import rtl_sources

    names = {f"{f.parent.name}/{f.name}" for f in rtl_sources()}
    hdl = Path(__file__).resolve().parents[1] / "hdl"
    units = {"chip", "icu", "mem_tile", "vxm_alu", "vxm_special", "mxm_plane", "sxm", "skew",
             "streams", "instruction", "verilog"}
    assert {f"hdl/{u}.py" for u in units} <= names
    assert {"openlpu/config.py", "openlpu/isa.py", "openlpu/hostmap.py",
            "openlpu/fixedpoint.py", "openlpu/__init__.py"} <= names
    assert "openlpu/cli.py" not in names and "openlpu/demo.py" not in names
    assert all((hdl.parent / n).exists() for n in names)
