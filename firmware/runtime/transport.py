"""Transports: the byte pipe between the host runtime and a board.

A :class:`Transport` moves bytes and keeps time; the link protocol (:mod:`firmware.runtime.link`)
is built on it. :class:`SerialTransport` talks to a real board through pyserial; the simulation
transports (:mod:`firmware.runtime.sim`) bit-bang the same bytes onto a simulated board's UART
lines, so the runtime above them is the same code either way.
"""

from __future__ import annotations

import abc
import time

from .errors import BoardTimeout, TransportError

__all__ = ["Transport", "SerialTransport"]


class Transport(abc.ABC):
    """A byte pipe to the board, with a clock.

    Subclasses set :attr:`name`, :attr:`baud`, :attr:`reply_timeout` and :attr:`quiet_time`.
    Times are seconds on the transport's own clock (:meth:`now`): wall-clock time for a real
    port, simulated board time for a simulation.
    """

    #: What to call the transport in messages (a port name, ``"verilator"``).
    name: str = "transport"
    #: Bits per second on the line (for transfer-time estimates).
    baud: float = 115200
    #: Seconds the board may take to start a reply once the command has been sent (its
    #: idle-line timeout after a bad frame, a long FILL), before transfer time.
    reply_timeout: float = 1.0
    #: Seconds without a byte after which the line is taken as quiet (the bridge has finished
    #: any reply and dropped any partial frame).
    quiet_time: float = 0.1

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` (returns once it is queued for sending)."""

    @abc.abstractmethod
    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes; fewer only if ``timeout`` seconds passed first."""

    @abc.abstractmethod
    def now(self) -> float:
        """The transport's clock, in seconds."""

    def transfer_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the line (10 bits each)."""
        return nbytes * 10 / self.baud

    def drain(self) -> int:
        """Drop received bytes until the line has been quiet for :attr:`quiet_time`; returns
        how many were dropped."""
        dropped = 0
        while True:
            got = self.read(4096, self.quiet_time)
            dropped += len(got)
            if not got:
                return dropped

    def close(self) -> None:  # noqa: B027 - optional: a simulation has nothing to release
        """Release the port (the default does nothing)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialTransport(Transport):
    """A serial port (pyserial), e.g. the board's USB-serial adapter.

    Parameters
    ----------
    port : str
        Device name (``/dev/ttyUSB0``, ``COM3``) or a pyserial URL.
    baud : int
        Baud rate the bitstream was built for (``openlpu build --baud``, default 115200).
    timeout : float
        Seconds the board may take to start a reply (plus the transfer time of the reply).

    Raises
    ------
    TransportError
        pyserial is missing, or the port does not exist or cannot be opened.
    """

    def __init__(self, port: str, baud: int = 115200, timeout: float = 1.0):
        try:
            import serial
        except ImportError:
            raise TransportError("pyserial is not installed: pip install pyserial") from None
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise TransportError(f"baud must be a positive integer, not {baud!r}")
        if not timeout > 0:
            raise TransportError(f"timeout must be positive, not {timeout!r}")
        self.name = port
        self.baud = baud
        self.reply_timeout = timeout
        # the bridge drops a bad frame after 64 byte times or 20 ms of idle line
        self.quiet_time = max(0.05, 2 * self.transfer_time(64))
        try:
            self._port = serial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N",
                                               stopbits=1, timeout=timeout,
                                               write_timeout=max(timeout, 1.0))
        except (serial.SerialException, OSError, ValueError) as e:
            raise TransportError(f"cannot open serial port {port!r}: {e}") from None
        self._serial = serial
        self._port.reset_input_buffer()

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except self._serial.SerialTimeoutException:
            raise BoardTimeout(f"{self.name}: could not send {len(data)} bytes within "
                               f"{self._port.write_timeout} s (flow control?)") from None
        except (self._serial.SerialException, OSError) as e:
            raise TransportError(f"{self.name}: write failed: {e}") from None

    def read(self, n: int, timeout: float) -> bytes:
        try:
            self._port.timeout = max(timeout, 0.0)
            return bytes(self._port.read(n))
        except (self._serial.SerialException, OSError) as e:
            raise TransportError(f"{self.name}: read failed: {e}") from None

    def now(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        self._port.close()
