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


@pytest.mark.parametrize("name", ["ice40", "ecp5"])
@pytest.mark.parametrize("top", [u for u in UNITS if u != "chip"])
def test_every_unit_generates_standalone_verilog(top, name, tmp_path):
    path = cached_verilog(PRESETS[name], top)
    icarus_compiles(path, tmp_path)
    verilator_lints(path, f"openlpu_{top}")


def test_chip_ports_are_the_host_bus(tmp_path):
    path = cached_verilog(PRESETS["ice40"])
    header = re.search(r"module openlpu_chip\((.*?)\);", path.read_text(), re.S).group(1)
    ports = {p.strip() for p in header.split(",")}
    assert ports == {"clk", "rst", "bus_addr", "bus_wdata", "bus_we", "bus_re", "bus_rdata",
                     "bus_rvalid"}
    icarus_compiles(path, tmp_path)
    verilator_lints(path, "openlpu_chip")


def test_cli_writes_verilog(tmp_path, capsys):
    out = tmp_path / "mem.v"
    assert main(["verilog", "--config", "ice40", "--top", "mem", "-o", str(out)]) == 0
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


def test_source_hash_covers_every_shared_module_the_rtl_imports():
    """A change to any module the RTL depends on must rebuild the cached Verilog and models."""
    import ast
    from pathlib import Path

    from hdl.verilog import _SHARED

    root = Path(__file__).resolve().parents[1]
    todo = list((root / "hdl").glob("*.py"))
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        package = path.parent.name
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1:  # relative: from .config import ..., from . import x
                    module = f"{package}.{module}" if module else package
                names = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                parts = n.split(".")
                if parts[0] == "openlpu" and len(parts) > 1:
                    f = root / "openlpu" / f"{parts[1]}.py"
                    if f.exists() and f.name not in seen:
                        seen.add(f.name)
                        todo.append(f)
    assert seen <= set(_SHARED), f"hdl depends on {sorted(seen - set(_SHARED))} unhashed"
