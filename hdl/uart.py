"""8N1 UART transmitter and receiver for the board's host link.

Both run from one clock at a fixed number of clock cycles per bit (no fractional divider: pick
a clock and baud rate whose ratio is close to an integer; 25 MHz / 115200 is 217.01). Bytes
travel as :class:`amaranth.lib.stream` payloads: one start bit (0), eight data bits LSB first,
one stop bit (1); the line idles high.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartTx", "UartRx", "MIN_CLOCKS_PER_BIT", "MAX_CLOCKS_PER_BIT"]

#: The receiver samples in the middle of a bit after a two-flip-flop synchronizer: below 4
#: cycles per bit it would sample next to a bit edge.
MIN_CLOCKS_PER_BIT = 4
MAX_CLOCKS_PER_BIT = 1 << 24


def _check_divisor(clocks_per_bit, owner=None) -> int:
    """``clocks_per_bit`` if valid; else raises, and a half-made ``owner`` (an Elaboratable)
    is marked so that it gives no "created but never used" warning."""
    try:
        return _divisor(clocks_per_bit)
    except (TypeError, ValueError):
        if owner is not None:
            owner._MustUse__silence = True
        raise


def _divisor(clocks_per_bit) -> int:
    if isinstance(clocks_per_bit, bool) or not isinstance(clocks_per_bit, int):
        raise TypeError(f"clocks_per_bit must be an integer, not {clocks_per_bit!r}")
    if not MIN_CLOCKS_PER_BIT <= clocks_per_bit <= MAX_CLOCKS_PER_BIT:
        raise ValueError(f"clocks_per_bit must be {MIN_CLOCKS_PER_BIT}..{MAX_CLOCKS_PER_BIT}, "
                         f"not {clocks_per_bit}")
    return clocks_per_bit


class UartTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per bit, :data:`MIN_CLOCKS_PER_BIT`..:data:`MAX_CLOCKS_PER_BIT`.

    Ports
    -----
    i : In(stream.Signature(8))
        Bytes to send. ``ready`` is high while the transmitter is idle and in the last cycle of
        a stop bit, so that back-to-back bytes leave no gap.
    tx : Out(1)
        The serial line (registered; 1 when idle and after reset).

    Raises
    ------
    TypeError, ValueError
        ``clocks_per_bit`` is not an integer in range.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, *, clocks_per_bit: int):
        self._cpb = _check_divisor(clocks_per_bit, self)
        super().__init__()

    @property
    def clocks_per_bit(self) -> int:
        """Clock cycles per bit."""
        return self._cpb

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        count = Signal(range(self._cpb))
        bits = Signal(range(10))  # bits still to send after the one on the line
        shreg = Signal(9)  # data bits then the stop bit
        last = Signal()
        m.d.comb += [
            last.eq(busy & (count == 0) & (bits == 0)),
            self.i.ready.eq(~busy | last),
        ]
        with m.If(busy):
            with m.If(count == 0):
                m.d.sync += count.eq(self._cpb - 1)
                with m.If(bits == 0):
                    m.d.sync += busy.eq(0)
                with m.Else():
                    m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1),
                                 bits.eq(bits - 1)]
            with m.Else():
                m.d.sync += count.eq(count - 1)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.tx.eq(0), shreg.eq(Cat(self.i.payload, 1)), bits.eq(9),
                         count.eq(self._cpb - 1), busy.eq(1)]
        return m


class UartRx(wiring.Component):
    """8N1 receiver.

    The line goes through a two-flip-flop synchronizer; a start bit is confirmed in its middle
    and every bit is sampled in its middle. After a stop bit of 0 (a framing error: noise,
    another baud rate, a break) the receiver waits for the line to go high before it looks for
    the next start bit.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per bit, :data:`MIN_CLOCKS_PER_BIT`..:data:`MAX_CLOCKS_PER_BIT`.

    Ports
    -----
    rx : In(1)
        The serial line (asynchronous).
    o : Out(stream.Signature(8))
        Received bytes; ``valid`` stays high until ``ready``.
    framing_error : Out(1)
        High for one cycle when a byte ended with a stop bit of 0; that byte is dropped.
    overrun : Out(1)
        High for one cycle when a byte was received while ``o`` still held an unaccepted one;
        the new byte is dropped.

    Raises
    ------
    TypeError, ValueError
        ``clocks_per_bit`` is not an integer in range.
    """

    rx: In(1)
    o: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def __init__(self, *, clocks_per_bit: int):
        self._cpb = _check_divisor(clocks_per_bit, self)
        super().__init__()

    @property
    def clocks_per_bit(self) -> int:
        """Clock cycles per bit."""
        return self._cpb

    def elaborate(self, platform):
        m = Module()
        cpb = self._cpb
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        count = Signal(range(cpb))
        bits = Signal(range(9))
        shreg = Signal(8)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += count.eq(cpb // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(count == 0):
                    with m.If(line):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [count.eq(cpb - 1), bits.eq(8)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += count.eq(count - 1)
            with m.State("DATA"):
                with m.If(count == 0):
                    m.d.sync += count.eq(cpb - 1)
                    with m.If(bits == 0):  # the middle of the stop bit
                        with m.If(line):
                            with m.If(self.o.valid & ~self.o.ready):
                                m.d.sync += self.overrun.eq(1)
                            with m.Else():
                                m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += self.framing_error.eq(1)
                            m.next = "BREAK"
                    with m.Else():
                        m.d.sync += [shreg.eq(Cat(shreg[1:], line)), bits.eq(bits - 1)]
                with m.Else():
                    m.d.sync += count.eq(count - 1)
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
