"""Board tops: the chip behind a UART host link.

:class:`BoardTop` is what a board runs and what the board testbench simulates: a UART
receiver and transmitter (:mod:`hdl.uart`), the link bridge (:mod:`hdl.bridge`) and the chip
(:class:`hdl.chip.Chip`), with the serial lines as its only ports besides ``clk`` and ``rst``.
:class:`PlatformTop` puts it on an Amaranth board platform (``amaranth-boards``): the board's
clock (or, on ECP5, a PLL below it) and reset, its USB-serial UART pins and a heartbeat LED.
``openlpu build`` (:mod:`openlpu.boards`) builds its bitstream.

The host identifies the board with the link's ``PING`` and the chip's own ``ID``,
``VERSION``, ``CONFIG_HASH`` and ``CONFIG0..2`` registers (docs/architecture.md section 9.1), so
a program assembled for another config is refused before anything is loaded.
"""

from amaranth.build import ResourceError
from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from openlpu.config import ChipConfig

from .bridge import Bridge
from .chip import Chip
from .uart import UartRx, UartTx, _check_divisor

__all__ = ["BoardTop", "PlatformTop", "default_timeout", "ecp5_pll_settings", "chip_clock",
           "uart_divisor"]

#: Minimum idle-line timeout of the bridge, in byte times.
TIMEOUT_BYTES = 64


def default_timeout(clocks_per_bit: int, clock_hz: float | None = None) -> int:
    """The bridge's idle timeout in cycles: :data:`TIMEOUT_BYTES` byte times, and at least
    20 ms when the clock frequency is known (a USB-serial adapter may pause inside a frame
    for a few milliseconds)."""
    cycles = TIMEOUT_BYTES * 10 * clocks_per_bit
    if clock_hz is not None:
        cycles = max(cycles, int(clock_hz * 0.02))
    return cycles


class BoardTop(wiring.Component):
    """UART link bridge and chip.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    clocks_per_bit : int
        UART clock cycles per bit (clock frequency / baud rate), at least 4.
    timeout : int, optional
        The bridge's idle-line timeout in cycles (default :func:`default_timeout`).

    Ports
    -----
    uart_rx : In(1)
        Serial data from the host (asynchronous; idles high).
    uart_tx : Out(1)
        Serial data to the host (registered; idles high).

    Raises
    ------
    TypeError, ValueError
        A parameter of the wrong type or out of range.
    """

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)

    def __init__(self, config: ChipConfig, *, clocks_per_bit: int, timeout: int | None = None):
        self._config = config
        self._cpb = _check_divisor(clocks_per_bit, self)
        self._timeout = default_timeout(clocks_per_bit) if timeout is None else timeout
        error = None
        if not isinstance(config, ChipConfig):
            error = TypeError(f"config must be a ChipConfig, not {config!r}")
        elif isinstance(self._timeout, bool) or not isinstance(self._timeout, int):
            error = TypeError(f"timeout must be an integer, not {timeout!r}")
        elif self._timeout < 20 * clocks_per_bit:
            error = ValueError(f"timeout must be at least two byte times ({20 * clocks_per_bit} "
                               f"cycles), not {self._timeout}")
        if error is not None:
            self._MustUse__silence = True  # never built: no "never used" warning
            raise error
        super().__init__()

    @property
    def config(self) -> ChipConfig:
        """The chip config."""
        return self._config

    @property
    def clocks_per_bit(self) -> int:
        """UART clock cycles per bit."""
        return self._cpb

    @property
    def timeout(self) -> int:
        """The bridge's idle-line timeout in cycles."""
        return self._timeout

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = UartRx(clocks_per_bit=self._cpb)
        m.submodules.uart_tx = tx = UartTx(clocks_per_bit=self._cpb)
        m.submodules.bridge = bridge = Bridge(timeout=self._timeout, clocks_per_bit=self._cpb)
        m.submodules.chip = chip = Chip(self._config)
        m.d.comb += [
            rx.rx.eq(self.uart_rx),
            self.uart_tx.eq(tx.tx),
            bridge.rx_framing_error.eq(rx.framing_error),
            bridge.rx_overrun.eq(rx.overrun),
        ]
        wiring.connect(m, rx.o, bridge.rx)
        wiring.connect(m, bridge.tx, tx.i)
        for name in ("bus_addr", "bus_wdata", "bus_we", "bus_re"):
            m.d.comb += getattr(chip, name).eq(getattr(bridge, name))
        m.d.comb += [bridge.bus_rdata.eq(chip.bus_rdata), bridge.bus_rvalid.eq(chip.bus_rvalid)]
        return m


def ecp5_pll_settings(fin_hz: float, fout_hz: float) -> tuple[int, int, int, float]:
    """``(CLKI_DIV, CLKFB_DIV, CLKOP_DIV, achieved Hz)`` of an ECP5 ``EHXPLLL`` that makes the
    frequency closest to ``fout_hz`` from ``fin_hz``, within the device's limits (phase detector
    3.125..400 MHz, VCO 400..800 MHz, output 3.125..400 MHz).

    Raises
    ------
    ValueError
        No setting reaches the frequency within 1 %.
    """
    best = None
    for clki in range(1, 129):
        if not 3.125e6 <= fin_hz / clki <= 400e6:
            continue
        for fb in range(1, 81):
            fout = fin_hz * fb / clki
            if not 3.125e6 <= fout <= 400e6:
                continue
            op = next((d for d in range(1, 129) if 400e6 <= fout * d <= 800e6), None)
            if op is None:
                continue
            if best is None or abs(fout - fout_hz) < abs(best[3] - fout_hz):
                best = (clki, fb, op, fout)
    if best is None or abs(best[3] - fout_hz) > 0.01 * fout_hz:
        near = f" (nearest {best[3] / 1e6:.4g} MHz)" if best else ""
        raise ValueError(f"an ECP5 PLL cannot make {fout_hz / 1e6:g} MHz from "
                         f"{fin_hz / 1e6:g} MHz within 1 %{near}")
    return best


def chip_clock(platform, clock_hz: float | None = None) -> float:
    """The chip clock of a :class:`PlatformTop` on ``platform``, in Hz: the board oscillator,
    or the ECP5 PLL's frequency nearest to ``clock_hz``.

    Raises
    ------
    ValueError
        A PLL clock on a board that is not ECP5, or one the PLL cannot make.
    """
    fin = platform.default_clk_frequency
    if clock_hz is None:
        return fin
    if getattr(platform, "family", None) != "ecp5":
        raise ValueError("a PLL clock is only supported on ECP5 boards; this board runs at "
                         f"its {fin / 1e6:g} MHz oscillator")
    return ecp5_pll_settings(fin, clock_hz)[3]


def uart_divisor(clock_hz: float, baud: int) -> int:
    """UART clock cycles per bit for ``baud`` at ``clock_hz``.

    Raises
    ------
    ValueError
        Below 4 cycles per bit, or more than 2 % off an integer.
    """
    exact = clock_hz / baud
    cpb = round(exact)
    if cpb < 4 or abs(cpb - exact) / exact > 0.02:
        raise ValueError(f"{baud} baud does not fit a {clock_hz / 1e6:g} MHz clock: "
                         f"{exact:.2f} cycles per bit (need an integer >= 4 within 2 %)")
    return cpb


class PlatformTop(Elaboratable):
    """:class:`BoardTop` on an Amaranth board platform.

    Clock: the board oscillator, or with ``clock_hz`` on an ECP5 board an ``EHXPLLL`` output
    (the chip's Fmax on an FPGA can be below the oscillator's frequency), reset until the PLL
    has locked. Uses ``uart`` resource 0 (the USB-serial adapter) and, if the board has one,
    ``led`` 0 as a heartbeat (about 1 Hz) that shows the bitstream is running.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    baud : int
        UART baud rate; the clock frequency divided by it must be within 2 % of an integer.
    clock_hz : float, optional
        Chip clock made by a PLL (ECP5 boards only); default: the board oscillator.

    Raises
    ------
    ValueError
        The baud rate does not divide the clock closely enough, or the clock cannot be made
        (raised at elaboration, when the platform is known; check first with
        :func:`chip_clock` and :func:`uart_divisor`).
    """

    def __init__(self, config: ChipConfig, *, baud: int, clock_hz: float | None = None):
        error = None
        if not isinstance(config, ChipConfig):
            error = TypeError(f"config must be a ChipConfig, not {config!r}")
        elif isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            error = ValueError(f"baud must be a positive integer, not {baud!r}")
        elif clock_hz is not None and not clock_hz > 0:
            error = ValueError(f"clock_hz must be positive, not {clock_hz!r}")
        if error is not None:
            self._MustUse__silence = True  # never built: no "created but never used" warning
            raise error
        self.config = config
        self.baud = baud
        self.clock_hz = clock_hz

    def _pll_domain(self, m, platform) -> None:
        fin = platform.default_clk_frequency
        clki, fb, op, fout = ecp5_pll_settings(fin, self.clock_hz)
        osc = platform.request(platform.default_clk, dir="-")
        m.submodules.osc_buffer = osc_buffer = io.Buffer("i", osc)
        clk, locked = Signal(), Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{fin / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{fout / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD", p_CLKI_DIV=clki,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=op, p_CLKOP_CPHASE=op - 1, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=fb,
            i_RST=0, i_STDBY=0, i_CLKI=osc_buffer.i, o_CLKOP=clk, i_CLKFB=clk, i_PHASESEL0=0,
            i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
            i_ENCLKOP=0, o_LOCK=locked)
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(clk)
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        platform.add_clock_constraint(clk, fout)

    def elaborate(self, platform):
        m = Module()
        clock_hz = chip_clock(platform, self.clock_hz)
        cpb = uart_divisor(clock_hz, self.baud)
        if self.clock_hz is not None:
            self._pll_domain(m, platform)
        m.submodules.board = board = BoardTop(self.config, clocks_per_bit=cpb,
                                              timeout=default_timeout(cpb, clock_hz))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [board.uart_rx.eq(rx.i), tx.o.eq(board.uart_tx)]
        try:
            led = platform.request("led", 0, dir="-")
        except ResourceError:  # a board without LEDs just has no heartbeat
            led = None
        if led is not None:
            half = max(int(clock_hz) // 2, 2)
            beat = Signal(range(half))
            on = Signal()
            with m.If(beat == 0):
                m.d.sync += [beat.eq(half - 1), on.eq(~on)]
            with m.Else():
                m.d.sync += beat.eq(beat - 1)
            m.submodules.led_buffer = led_buffer = io.Buffer("o", led)
            m.d.comb += led_buffer.o.eq(on)
        return m
