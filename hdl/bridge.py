"""Bridge from the framed UART link protocol (:mod:`openlpu.link`) to the chip's host bus.

The bridge is byte-level: it takes received bytes from a UART receiver and gives reply bytes to
a UART transmitter (:mod:`hdl.uart`), and is the master of the chip top's ``bus_*`` ports
(docs/architecture.md section 9). docs/board.md describes the protocol byte by byte.

Received bytes go through a FIFO, so that a command that follows another back to back is not
lost while the bridge is still sending the first one's reply. It is 513 bytes deep by default: a
block RAM of 512 bytes behind a one-byte output register (Amaranth's ``SyncFIFOBuffered``, whose
synchronous read maps onto a block RAM). The 16-byte FIFO in flip-flops it replaced took about
180 of the UP5K's 5,280 logic cells, more than the one block RAM now costs.

Write data is written to the bus as it arrives (one word per bus cycle, so a burst never waits),
except that the last word of every ``WRITE`` is held back until the data checksum has been
checked: a one-word write, such as one to ``CTRL``, never happens with corrupt data. ``FILL``
writes nothing before its checksum has been checked.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from openlpu.link import HEADER_BYTES, PING_WORDS, SYNC_CMD, SYNC_REPLY, Cmd, Status, bridge_info

__all__ = ["Bridge", "crc8_next"]


def _crc8_matrix() -> list[list[int]]:
    """For each bit of the next CRC, the bits of ``crc ^ byte`` whose XOR it is."""
    bits = [{i} for i in range(8)]  # bit i of the register, as a set of input bits
    for _ in range(8):
        top = bits[7]
        shifted = [set()] + bits[:7]
        bits = [shifted[i] ^ top if (0x07 >> i) & 1 else shifted[i] for i in range(8)]
    return [sorted(b) for b in bits]


_CRC8_MATRIX = _crc8_matrix()


def crc8_next(crc, byte):
    """CRC-8 (polynomial 0x07, MSB first) of ``crc`` after one more ``byte``, as an
    expression (:func:`openlpu.link.crc8` in hardware). Each output bit is written out as the
    XOR of the input bits it depends on: eight unrolled shift-and-XOR steps that each reuse
    the previous step would emit an exponentially large expression."""
    x = (crc ^ byte)[:8]
    out = []
    for inputs in _CRC8_MATRIX:
        bit = Const(0, 1)
        for i in inputs:
            bit = bit ^ x[i]
        out.append(bit)
    return Cat(*out)


class Bridge(wiring.Component):
    """Link protocol engine and host-bus master.

    Parameters
    ----------
    timeout : int
        Idle-line timeout in clock cycles (at least 16): a command frame that receives no byte
        for this long is abandoned with a ``TIMEOUT`` reply, and after an error in a frame the
        bridge drops bytes until the line has been idle this long. Make it several byte times,
        and longer than any gap the host's serial port leaves inside a frame.
    clocks_per_bit : int
        Reported in the ``PING`` reply (:func:`openlpu.link.bridge_info`); 0 if unknown.
    fifo_depth : int
        Received bytes buffered while a reply is being sent (at least 2; default 513, one
        block RAM of 512 bytes and the output register).

    Ports
    -----
    rx : In(stream.Signature(8))
        Received bytes. ``ready`` is low only when the FIFO is full (the byte is then lost and
        the receiver should report ``overrun``).
    rx_framing_error : In(1)
        A one-cycle pulse: the receiver dropped a byte with a bad stop bit.
    rx_overrun : In(1)
        A one-cycle pulse: the receiver dropped a byte because ``rx`` was not ready.
    tx : Out(stream.Signature(8))
        Reply bytes.
    bus_addr, bus_wdata : Out(32)
        Bus master outputs (registered).
    bus_we, bus_re : Out(1)
        Bus strobes (registered; never both high).
    bus_rdata : In(32)
        Read data, valid with ``bus_rvalid``.
    bus_rvalid : In(1)
        High once per ``bus_re``, with its data (the chip answers ``READ_LATENCY`` cycles
        after the strobe; the bridge waits for this flag, whatever the latency).

    Raises
    ------
    TypeError, ValueError
        A parameter of the wrong type or out of range.
    """

    rx: In(stream.Signature(8))
    rx_framing_error: In(1)
    rx_overrun: In(1)
    tx: Out(stream.Signature(8))
    bus_addr: Out(32)
    bus_wdata: Out(32)
    bus_we: Out(1)
    bus_re: Out(1)
    bus_rdata: In(32)
    bus_rvalid: In(1)

    def __init__(self, *, timeout: int, clocks_per_bit: int = 0, fifo_depth: int = 513):
        for name, value, low in (("timeout", timeout, 16), ("clocks_per_bit", clocks_per_bit, 0),
                                 ("fifo_depth", fifo_depth, 2)):
            error = None
            if isinstance(value, bool) or not isinstance(value, int):
                error = TypeError(f"{name} must be an integer, not {value!r}")
            elif value < low:
                error = ValueError(f"{name} must be at least {low}, not {value}")
            if error is not None:
                self._MustUse__silence = True  # never built: no "never used" warning
                raise error
        self._timeout = timeout
        self._cpb = clocks_per_bit
        self._fifo_depth = fifo_depth
        super().__init__()

    @property
    def timeout(self) -> int:
        """Idle-line timeout in clock cycles."""
        return self._timeout

    @property
    def clocks_per_bit(self) -> int:
        """Clock cycles per bit reported by ``PING``."""
        return self._cpb

    @property
    def fifo_depth(self) -> int:
        """Received bytes the bridge buffers."""
        return self._fifo_depth

    def elaborate(self, platform):  # noqa: C901 - one protocol state machine
        m = Module()

        # --- receive FIFO and line activity ---------------------------------------------------
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=self._fifo_depth)
        m.d.comb += [fifo.w_data.eq(self.rx.payload), fifo.w_en.eq(self.rx.valid),
                     self.rx.ready.eq(fifo.w_rdy)]
        byte = fifo.r_data
        have = fifo.r_rdy
        pop = Signal()
        m.d.comb += fifo.r_en.eq(pop)

        # cycles since the last byte arrived (or was lost), saturating at the timeout
        idle = Signal(range(self._timeout + 1))
        idle_done = Signal()
        arrived = (self.rx.valid | self.rx_framing_error | self.rx_overrun)
        with m.If(arrived):
            m.d.sync += idle.eq(0)
        with m.Elif(~idle_done):
            m.d.sync += idle.eq(idle + 1)
        m.d.comb += idle_done.eq(idle == self._timeout)

        # a byte lost on the way in (sticky until the state machine acts on it); the first
        # reason wins
        lost = Signal(8)
        lost_now = Signal(8)
        m.d.comb += lost_now.eq(Mux(self.rx_framing_error, Status.FRAMING,
                                    Mux(self.rx_overrun | (self.rx.valid & ~fifo.w_rdy),
                                        Status.OVERRUN, 0)))
        clear_lost = Signal()
        with m.If(clear_lost):
            m.d.sync += lost.eq(0)
        with m.Elif((lost == 0) & (lost_now != 0)):
            m.d.sync += lost.eq(lost_now)

        # --- command state ----------------------------------------------------------------------
        hdr = Signal(8 * HEADER_BYTES)  # CMD, TAG, ADDR, COUNT as received
        idx = Signal(range(HEADER_BYTES + 1))
        crc = Signal(8)  # of the bytes received so far in this part of the frame
        cmd = Signal(8)
        tag = Signal(8)
        addr = Signal(32)
        count = Signal(16)  # words still to read, fill or write to the bus
        rcount = Signal(16)  # words still to receive
        status = Signal(8)
        word = Signal(32)  # word being received or sent
        wbyte = Signal(2)
        pending = Signal()  # pword is a received word not yet written to the bus
        pword = Signal(32)
        paddr = Signal(32)
        tcrc = Signal(8)  # of the reply bytes sent so far

        m.d.sync += [self.bus_we.eq(0), self.bus_re.eq(0)]

        def bus_write(a, d):
            m.d.sync += [self.bus_addr.eq(a), self.bus_wdata.eq(d), self.bus_we.eq(1)]

        def fail(code, next_state="DISCARD"):
            m.d.sync += status.eq(code)
            m.next = next_state

        def receiving(body):
            """A state that waits for a byte of the frame: lost bytes and an idle line end it."""
            with m.If(lost != 0):
                m.d.comb += clear_lost.eq(1)
                fail(lost)
            with m.Elif(have):
                m.d.comb += pop.eq(1)
                body()
            with m.Elif(idle_done):
                fail(Status.TIMEOUT, "REPLY")

        with m.FSM():
            with m.State("IDLE"):
                with m.If(lost != 0):
                    m.d.comb += clear_lost.eq(1)
                    m.d.sync += tag.eq(0)
                    fail(lost)
                with m.Elif(have):
                    m.d.comb += pop.eq(1)
                    m.d.sync += [tag.eq(0), idx.eq(0), crc.eq(0)]
                    with m.If(byte == SYNC_CMD):
                        m.next = "HEADER"
                    with m.Else():
                        fail(Status.BAD_SYNC)

            with m.State("HEADER"):
                def header_byte():
                    with m.If(idx == HEADER_BYTES):  # HCRC
                        f_cmd, f_tag = hdr[0:8], hdr[8:16]
                        f_addr, f_count = hdr[16:48], hdr[48:64]
                        m.d.sync += [cmd.eq(f_cmd), tag.eq(f_tag), addr.eq(f_addr),
                                     count.eq(f_count), rcount.eq(f_count), crc.eq(0),
                                     pending.eq(0), wbyte.eq(0)]
                        with m.If(byte != crc):
                            fail(Status.BAD_HEADER_CRC)
                        with m.Elif(f_cmd == Cmd.PING):
                            m.d.sync += [status.eq(Status.OK), addr.eq(0),
                                         count.eq(PING_WORDS - 1)]
                            m.next = "REPLY"
                        with m.Elif((f_cmd != Cmd.READ) & (f_cmd != Cmd.WRITE)
                                    & (f_cmd != Cmd.FILL)):
                            fail(Status.BAD_COMMAND)
                        with m.Elif(f_count == 0):
                            fail(Status.BAD_LENGTH)
                        with m.Elif(f_cmd == Cmd.READ):
                            m.d.sync += status.eq(Status.OK)
                            m.next = "REPLY"
                        with m.Else():
                            with m.If(f_cmd == Cmd.FILL):
                                m.d.sync += rcount.eq(1)
                            m.next = "DATA"
                    with m.Else():
                        m.d.sync += [hdr.eq(Cat(hdr[8:], byte)), crc.eq(crc8_next(crc, byte)),
                                     idx.eq(idx + 1)]
                        with m.If(idx == 1):
                            m.d.sync += tag.eq(byte)
                receiving(header_byte)

            with m.State("DATA"):
                def data_byte():
                    full = Cat(word[8:], byte)
                    m.d.sync += [word.eq(full), wbyte.eq(wbyte + 1),
                                 crc.eq(crc8_next(crc, byte))]
                    with m.If(wbyte == 3):
                        with m.If(pending):
                            bus_write(paddr, pword)
                        m.d.sync += [pending.eq(1), pword.eq(full), paddr.eq(addr),
                                     rcount.eq(rcount - 1)]
                        with m.If(cmd == Cmd.WRITE):
                            m.d.sync += addr.eq(addr + 4)
                        with m.If(rcount == 1):
                            m.next = "DCRC"
                receiving(data_byte)

            with m.State("DCRC"):
                def dcrc_byte():
                    with m.If(byte != crc):
                        fail(Status.BAD_DATA_CRC, "REPLY")
                    with m.Elif(cmd == Cmd.FILL):
                        m.d.sync += status.eq(Status.OK)
                        m.next = "FILL"
                    with m.Else():
                        bus_write(paddr, pword)
                        m.d.sync += status.eq(Status.OK)
                        m.next = "REPLY"
                receiving(dcrc_byte)

            with m.State("FILL"):
                bus_write(addr, pword)
                m.d.sync += [addr.eq(addr + 4), count.eq(count - 1)]
                with m.If(count == 1):
                    m.next = "REPLY"

            with m.State("DISCARD"):
                # drop the rest of a frame that went wrong until the line is idle, then reply
                m.d.comb += clear_lost.eq(1)
                with m.If(have):
                    m.d.comb += pop.eq(1)
                with m.Elif(idle_done):
                    m.next = "REPLY"

            # --- reply ----------------------------------------------------------------------
            with m.State("REPLY"):
                m.d.comb += [self.tx.payload.eq(SYNC_REPLY), self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.d.sync += tcrc.eq(0)
                    m.next = "R_STATUS"
            with m.State("R_STATUS"):
                m.d.comb += [self.tx.payload.eq(status), self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.d.sync += tcrc.eq(crc8_next(tcrc, status))
                    m.next = "R_TAG"
            with m.State("R_TAG"):
                m.d.comb += [self.tx.payload.eq(tag), self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.d.sync += [tcrc.eq(crc8_next(tcrc, tag)), wbyte.eq(0)]
                    with m.If(status != Status.OK):
                        m.next = "R_CRC"
                    with m.Elif(cmd == Cmd.PING):
                        m.d.sync += word.eq(Const(bridge_info(self._cpb), 32))
                        m.next = "R_DATA"
                    with m.Elif(cmd == Cmd.READ):
                        m.next = "R_FETCH"
                    with m.Else():
                        m.next = "R_CRC"
            with m.State("R_FETCH"):
                m.d.sync += [self.bus_addr.eq(addr), self.bus_re.eq(1)]
                m.next = "R_WAIT"
            with m.State("R_WAIT"):
                with m.If(self.bus_rvalid):
                    m.d.sync += [word.eq(self.bus_rdata), addr.eq(addr + 4),
                                 count.eq(count - 1)]
                    m.next = "R_DATA"
            with m.State("R_DATA"):
                m.d.comb += [self.tx.payload.eq(word[:8]), self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.d.sync += [tcrc.eq(crc8_next(tcrc, word[:8])), word.eq(word >> 8),
                                 wbyte.eq(wbyte + 1)]
                    with m.If((wbyte == 3) & (count != 0)):
                        m.next = "R_FETCH"
                    with m.Elif(wbyte == 3):
                        m.next = "R_CRC"
            with m.State("R_CRC"):
                m.d.comb += [self.tx.payload.eq(tcrc), self.tx.valid.eq(1)]
                with m.If(self.tx.ready):
                    m.next = "IDLE"
        return m
