"""Simulation transports: the host runtime talking to a simulated board's UART lines.

Both transports bit-bang each byte the runtime sends onto the board's ``uart_rx`` line (start
bit, eight data bits LSB first, stop bit, ``clocks_per_bit`` cycles each) and decode the
``uart_tx`` line back into bytes, sampling each bit in its middle: the simulated board sees
exactly what a USB-serial adapter would send. Their clock (:meth:`Transport.now`) is simulated
time, so timeouts are in board seconds.

* :class:`CocotbTransport` runs under cocotb (Verilator, Icarus). The runtime is synchronous,
  so it runs in a :func:`cocotb.task.bridge` thread; each read hands control back to the
  simulator until the bytes are there (see ``tb/board_test.py``).
* :class:`AmaranthTransport` steps Amaranth's simulator from the caller's thread while the
  runtime waits for bytes.
"""

from __future__ import annotations

from collections import deque

from .transport import Transport

__all__ = ["CocotbTransport", "AmaranthTransport", "uart_frame"]


def uart_frame(byte: int) -> list[int]:
    """Line levels of one 8N1 character: start bit, data bits LSB first, stop bit."""
    return [0, *((byte >> i) & 1 for i in range(8)), 1]


def _timing(transport, clock_hz: float, clocks_per_bit: int, timeout_cycles: int) -> None:
    transport.baud = clock_hz / clocks_per_bit
    # the bridge's idle timeout, a FILL of the largest count and the reply's first bytes
    transport.reply_timeout = (2 * timeout_cycles + 70_000 + 100 * clocks_per_bit) / clock_hz
    transport.quiet_time = (timeout_cycles + 30 * clocks_per_bit) / clock_hz


class CocotbTransport(Transport):
    """The link over a cocotb DUT's ``uart_rx``/``uart_tx`` ports.

    Create it inside a cocotb test (it starts a driver and a monitor task) and call the runtime
    from a :func:`cocotb.task.bridge` function.

    Parameters
    ----------
    dut : cocotb handle
        The board top (ports ``clk``, ``uart_rx``, ``uart_tx``).
    clocks_per_bit : int
        The board's UART divisor.
    clock_hz : float
        The simulated clock frequency (for :meth:`now` and timeouts).
    timeout_cycles : int
        The bridge's idle timeout (sets :attr:`reply_timeout` and :attr:`quiet_time`).
    """

    def __init__(self, dut, *, clocks_per_bit: int, clock_hz: float, timeout_cycles: int):
        import cocotb
        from cocotb.task import resume
        from cocotb.triggers import Event

        self.name = "cocotb"
        self._dut, self._cpb, self._hz = dut, clocks_per_bit, clock_hz
        self._period_ps = 1e12 / clock_hz
        _timing(self, clock_hz, clocks_per_bit, timeout_cycles)
        self._out: deque[int] = deque()
        self._in = bytearray()
        self._out_event, self._in_event = Event(), Event()
        dut.uart_rx.value = 1
        self._tasks = [cocotb.start_soon(self._drive()), cocotb.start_soon(self._monitor())]
        self.write = resume(self._write)
        self.read = resume(self._read)

    # Waits are Timers, not ClockCycles: a Timer is one simulator callback, ClockCycles one
    # Python wake-up per clock edge, which made a byte cost milliseconds.
    def _timer(self, cycles: float):
        from cocotb.triggers import Timer

        return Timer(round(cycles * self._period_ps), unit="ps")

    async def _drive(self):
        while True:
            while not self._out:
                self._out_event.clear()
                await self._out_event.wait()
            for level in uart_frame(self._out.popleft()):
                self._dut.uart_rx.value = level
                await self._timer(self._cpb)

    async def _monitor(self):
        from cocotb.triggers import FallingEdge

        while True:
            await FallingEdge(self._dut.uart_tx)
            # the middle of the start bit, a quarter cycle off any clock edge
            await self._timer(self._cpb / 2 + 0.25)
            if self._level():  # a glitch, not a start bit
                continue
            byte = 0
            for i in range(8):
                await self._timer(self._cpb)
                byte |= self._level() << i
            await self._timer(self._cpb)
            if self._level():  # a byte with a bad stop bit is dropped, as a real UART would
                self._in.append(byte)
                self._in_event.set()

    def _level(self) -> int:
        value = self._dut.uart_tx.value
        return int(value) if value.is_resolvable else 0

    async def _write(self, data: bytes) -> None:
        self._out.extend(data)
        self._out_event.set()

    async def _read(self, n: int, timeout: float) -> bytes:
        from cocotb.triggers import First

        deadline = self.now() + timeout
        while len(self._in) < n:
            cycles = int((deadline - self.now()) * self._hz)
            if cycles <= 0:
                break
            self._in_event.clear()
            await First(self._in_event.wait(), self._timer(cycles))
        got = bytes(self._in[:n])
        del self._in[:n]
        return got

    def write(self, data: bytes) -> None:  # replaced per instance by a resume() wrapper
        raise NotImplementedError

    def read(self, n: int, timeout: float) -> bytes:  # replaced per instance
        raise NotImplementedError

    def now(self) -> float:
        from cocotb.simtime import get_sim_time

        return get_sim_time("sec")

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


class AmaranthTransport(Transport):
    """The link over an Amaranth simulation of a board top.

    Adds a driver and a monitor testbench to ``sim``; :meth:`read` runs the simulation until
    the bytes have arrived or the timeout has passed in simulated time.

    Parameters
    ----------
    sim : amaranth.sim.Simulator
        A simulator of ``dut`` with a clock of period ``1 / clock_hz`` already added; run it
        only through this transport.
    rx, tx : Signal
        The board's ``uart_rx`` (driven here) and ``uart_tx`` (decoded here).
    clocks_per_bit, clock_hz, timeout_cycles
        As for :class:`CocotbTransport`.
    """

    def __init__(self, sim, rx, tx, *, clocks_per_bit: int, clock_hz: float,
                 timeout_cycles: int):
        self.name = "amaranth"
        self._sim, self._cpb, self._hz = sim, clocks_per_bit, clock_hz
        _timing(self, clock_hz, clocks_per_bit, timeout_cycles)
        self._out: deque[int] = deque()
        self._in = bytearray()
        self._now = 0.0
        self.framing_errors = 0
        cpb = clocks_per_bit

        async def drive(ctx):
            ctx.set(rx, 1)
            while True:
                if not self._out:
                    await ctx.tick()
                    continue
                for level in uart_frame(self._out.popleft()):
                    ctx.set(rx, level)
                    await ctx.tick().repeat(cpb)

        async def monitor(ctx):
            while True:
                while ctx.get(tx):  # (not tick().until(): its generator warns when dropped)
                    await ctx.tick()
                await ctx.tick().repeat(cpb // 2)
                if ctx.get(tx):
                    continue
                byte = 0
                for i in range(8):
                    await ctx.tick().repeat(cpb)
                    byte |= ctx.get(tx) << i
                await ctx.tick().repeat(cpb)
                if ctx.get(tx):
                    self._in.append(byte)
                else:
                    self.framing_errors += 1

        sim.add_testbench(drive, background=True)
        sim.add_testbench(monitor, background=True)

    def write(self, data: bytes) -> None:
        self._out.extend(data)

    def read(self, n: int, timeout: float) -> bytes:
        deadline = self._now + timeout
        step = 10 * self._cpb / self._hz  # one character time
        while len(self._in) < n and self._now < deadline:
            self._now = min(self._now + step, deadline)
            self._sim.run_until(self._now)
        got = bytes(self._in[:n])
        del self._in[:n]
        return got

    def now(self) -> float:
        return self._now
