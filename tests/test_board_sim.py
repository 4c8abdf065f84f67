"""The host runtime end to end on the simulated board: host API -> UART bytes -> RTL UART ->
bridge -> chip -> results compared with the golden model.

The runtime is the code that drives a real board; only the transport differs: under Verilator
and Icarus (cocotb, :mod:`tb.board_test`) and under Amaranth's simulator it bit-bangs the UART
lines of :class:`hdl.board.BoardTop` at 4 clock cycles per bit. A random program runs on the
small preset; the RTL bridge answers damaged frames with the right error statuses; a board of
another config is refused. The seed is printed (fix it with ``OPENLPU_SEED``).
"""

import os
import random

import pytest
from amaranth.sim import Simulator

from firmware.random_program import random_program
from firmware.runtime import Board, ConfigMismatch
from firmware.runtime.sim import AmaranthTransport
from hdl.board import BoardTop
from openlpu.config import PRESETS
from openlpu.hostmap import SRAM_BASE
from openlpu.toolchain import simulator_available
from tb.board_runner import run_board

SMALL, ECP5 = PRESETS["small"], PRESETS["ecp5"]


def seed_for(test: str) -> int:
    seed = int(os.environ.get("OPENLPU_SEED", random.SystemRandom().randrange(2**32)))
    print(f"{test}: seed {seed} (replay with OPENLPU_SEED={seed})")
    return seed


def need(simulator: str):
    ok, why = simulator_available(simulator)
    if not ok:
        pytest.skip(why)


def check_report(report, programs):
    ident = report["identity"]
    assert ident["preset"] == "small" and ident["clocks_per_bit"] == 4
    assert [p["name"] for p in report["programs"]] == list(programs)
    for p in report["programs"]:
        assert p["matches_golden"], f"{p['name']}: {p['mismatch']}"
        assert p["cycles"] == p["golden_cycles"] > 0
    assert report["retried"] == 0  # a clean simulated line never needs a retry


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_random_program_through_the_uart_link(simulator):
    need(simulator)
    seed = seed_for(f"board/{simulator}")
    programs = {"random": random_program(SMALL, seed, 10)}
    # only the written words and outputs are read back: a full SRAM read-back over the
    # simulated UART is the slow test's job
    report = run_board(SMALL, simulator, programs, error_checks_against=ECP5,
                       readback="written")
    print(f"{simulator}: build {report['build_seconds']:.1f} s, run {report['run_seconds']:.1f} s")
    check_report(report, programs)
    errors = report["errors"]
    assert errors["bad_header_crc"] == "BAD_HEADER_CRC"
    assert errors["bad_data_crc"] == "BAD_DATA_CRC"
    assert errors["cut_short"] == "TIMEOUT"
    assert errors["not_a_frame"] == "BAD_SYNC"
    # the burst with a bad data checksum wrote its first word and held back its last one
    assert errors["then_read"] == [0x11, 0]
    assert "board runs config hash 9dbdeec9 (preset 'small'), not config 'ecp5'" in \
        errors["other_config"]


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_random_programs_with_full_readback(simulator):
    """All of SRAM read back (8 KiB, about 340,000 cycles of UART per program): three programs
    on an optimised Verilator model, one on the much slower Icarus."""
    need(simulator)
    rng = random.Random(seed_for(f"board-full/{simulator}"))
    count = 3 if simulator == "verilator" else 1
    programs = {f"random{i}": random_program(SMALL, rng.randrange(2**32), 20)
                for i in range(count)}
    report = run_board(SMALL, simulator, programs, readback="auto",
                       optimize=simulator == "verilator")
    check_report(report, programs)


def test_runtime_on_amaranth_simulator():
    """The same runtime stepping Amaranth's simulator: identify, refuse another config, write
    and read SRAM words."""
    top = BoardTop(SMALL, clocks_per_bit=4, timeout=400)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    port = AmaranthTransport(sim, top.uart_rx, top.uart_tx, clocks_per_bit=4, clock_hz=1e8,
                             timeout_cycles=400)
    assert Board(port, SMALL).identify().preset == "small"
    with pytest.raises(ConfigMismatch, match="preset 'small'"):
        Board(port, ECP5).identify()
    board = Board(port, SMALL)
    board.write(SRAM_BASE + 8, [0x0403_0201, 0xFFFF_FFFF])
    assert board.read(SRAM_BASE, 4) == [0, 0, 0x0403_0201, 0xFFFF_FFFF]
    assert port.framing_errors == 0


def test_runtime_runs_a_program_on_the_ice40_board():
    """The iCEBreaker's chip (the ice40 preset: no performance counters, REPEAT, ICU prefetch
    register or SXMs, docs/fpga.md): the runtime loads, runs and reads back a random program
    through the UART on Amaranth's simulator, it matches the golden model, and there are no
    counters to read."""
    bare = PRESETS["ice40"]
    program = random_program(bare, seed_for("amaranth/bare"), 6)
    top = BoardTop(bare, clocks_per_bit=4, timeout=400)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    port = AmaranthTransport(sim, top.uart_rx, top.uart_tx, clocks_per_bit=4, clock_hz=1e8,
                             timeout_cycles=400)
    board = Board(port, bare)
    assert board.identify().config_hash == bare.config_hash
    result = board.run_program(program, readback="written")
    assert result.matches, result.mismatch
    assert result.cycles == result.golden_cycles > 0
    assert result.counters == {} and board.read_counters() == {}
