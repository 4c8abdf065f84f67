"""Board tops: the chip behind a UART host link.

:class:`BoardTop` is what a board runs and what the board testbench simulates: a UART
receiver and transmitter (:mod:`hdl.uart`), the link bridge (:mod:`hdl.bridge`) and the chip
(:class:`hdl.chip.Chip`), with the serial lines as its only ports besides ``clk`` and ``rst``.
:class:`PlatformTop` puts it on an Amaranth board platform (``amaranth-boards``): the board's
clock and power-on reset, its USB-serial UART pins and a heartbeat LED. ``openlpu build``
(:mod:`openlpu.boards`) builds its bitstream.

The host identifies the board with the link's ``PING`` and the chip's own ``ID``,
``VERSION``, ``CONFIG_HASH`` and ``CONFIG0..2`` registers (docs/architecture.md section 9.1), so
a program assembled for another config is refused before anything is loaded.
"""

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from openlpu.config import ChipConfig

from .bridge import Bridge
from .chip import Chip
from .uart import UartRx, UartTx, _check_divisor

__all__ = ["BoardTop", "PlatformTop", "default_timeout"]

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
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        self._config = config
        self._cpb = _check_divisor(clocks_per_bit)
        self._timeout = default_timeout(clocks_per_bit) if timeout is None else timeout
        if isinstance(self._timeout, bool) or not isinstance(self._timeout, int):
            raise TypeError(f"timeout must be an integer, not {timeout!r}")
        if self._timeout < 20 * clocks_per_bit:
            raise ValueError(f"timeout must be at least two byte times ({20 * clocks_per_bit} "
                             f"cycles), not {self._timeout}")
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


class PlatformTop(Elaboratable):
    """:class:`BoardTop` on an Amaranth board platform.

    Uses the platform's default clock (no PLL: the chip runs at the board oscillator's
    frequency) and power-on reset, ``uart`` resource 0 (the USB-serial adapter) and, if the
    board has one, ``led`` 0 as a heartbeat (about 1 Hz) that shows the bitstream is running.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    baud : int
        UART baud rate; the clock frequency divided by it must be within 2 % of an integer.

    Raises
    ------
    ValueError
        The baud rate does not divide the board clock closely enough (raised at elaboration,
        when the clock frequency is known).
    """

    def __init__(self, config: ChipConfig, *, baud: int):
        if not isinstance(config, ChipConfig):
            raise TypeError(f"config must be a ChipConfig, not {config!r}")
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise ValueError(f"baud must be a positive integer, not {baud!r}")
        self.config = config
        self.baud = baud

    def clocks_per_bit(self, clock_hz: float) -> int:
        """Cycles per bit at ``clock_hz``; raises ``ValueError`` if the error exceeds 2 %."""
        exact = clock_hz / self.baud
        cpb = round(exact)
        if cpb < 4 or abs(cpb - exact) / exact > 0.02:
            raise ValueError(f"{self.baud} baud does not fit a {clock_hz / 1e6:g} MHz clock: "
                             f"{exact:.2f} cycles per bit (need an integer >= 4 within 2 %)")
        return cpb

    def elaborate(self, platform):
        m = Module()
        clock_hz = platform.default_clk_frequency
        cpb = self.clocks_per_bit(clock_hz)
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
            beat = Signal(range(max(int(clock_hz) // 2, 2)))
            on = Signal()
            with m.If(beat == 0):
                m.d.sync += [beat.eq(int(clock_hz) // 2 - 1), on.eq(~on)]
            with m.Else():
                m.d.sync += beat.eq(beat - 1)
            m.submodules.led_buffer = led_buffer = io.Buffer("o", led)
            m.d.comb += led_buffer.o.eq(on)
        return m
