"""The host side of the UART link protocol (:mod:`openlpu.link`): one command, one reply.

:class:`Link` frames commands, checks every reply (sync byte, status, tag, length, checksum)
and turns each failure into an exception that names it. Bus-level helpers split long transfers
into bursts. Commands that can safely be repeated (``PING``, ``READ``, and ``WRITE``/``FILL``
outside the register page) are retried after a transmission error; a write to a register such
as ``CTRL`` is not, since it may already have taken effect.
"""

from __future__ import annotations

from openlpu.link import MAX_COUNT, PING_WORDS, SYNC_REPLY, Cmd, Status, crc8, encode_command

from .errors import BoardTimeout, CommandRejected, ProtocolError
from .transport import Transport

__all__ = ["Link", "REGISTER_PAGE"]

#: Bus addresses below this are registers (docs/architecture.md 9.1): writes there are not
#: retried.
REGISTER_PAGE = 0x1000

# statuses that mean the bytes were damaged on the way, not that the command was wrong
_TRANSMISSION = {Status.BAD_SYNC, Status.BAD_HEADER_CRC, Status.BAD_DATA_CRC, Status.TIMEOUT,
                 Status.FRAMING, Status.OVERRUN}


class Link:
    """Commands and replies over a :class:`~firmware.runtime.transport.Transport`.

    Parameters
    ----------
    transport : Transport
        The byte pipe.
    retries : int
        How many times a repeatable command is sent again after a transmission error.
    max_burst : int
        Most words per ``READ`` or ``WRITE`` frame (a damaged frame costs at most this much
        to resend).

    Attributes
    ----------
    bytes_sent, bytes_received : int
        Totals, for throughput figures.
    retried : int
        How many commands were sent again.
    """

    def __init__(self, transport: Transport, *, retries: int = 2, max_burst: int = 1024):
        if not 1 <= max_burst <= MAX_COUNT:
            raise ValueError(f"max_burst must be 1..{MAX_COUNT}, not {max_burst!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries!r}")
        self.transport = transport
        self.retries = retries
        self.max_burst = max_burst
        self.bytes_sent = 0
        self.bytes_received = 0
        self.retried = 0
        self._tag = 0

    # --- one command --------------------------------------------------------------------------

    def transact(self, cmd: Cmd, addr: int = 0, count: int = 1, data=None) -> list[int]:
        """Send one command and return the reply's payload words (with retries).

        Raises
        ------
        BoardTimeout, ProtocolError, CommandRejected
            The last attempt failed this way.
        """
        repeatable = cmd in (Cmd.PING, Cmd.READ) or addr >= REGISTER_PAGE
        attempt = 0
        while True:
            try:
                return self._transact_once(cmd, addr, count, data)
            except (BoardTimeout, ProtocolError, CommandRejected) as e:
                damaged = not isinstance(e, CommandRejected) or e.status in _TRANSMISSION
                if not (repeatable and damaged and attempt < self.retries):
                    if attempt:
                        e.args = (f"{e.args[0]} (after {attempt + 1} attempts)",)
                    raise
                attempt += 1
                self.retried += 1
                self.transport.drain()  # let the bridge finish and resynchronise

    def send_frame(self, frame: bytes, cmd: Cmd, tag: int, words: int) -> list[int]:
        """Send raw ``frame`` bytes and read the reply to a ``cmd`` with ``tag`` carrying
        ``words`` payload words: for tests that send damaged frames on purpose."""
        self.transport.write(frame)
        self.bytes_sent += len(frame)
        return self._read_reply(cmd, tag, words, len(frame))

    def _transact_once(self, cmd: Cmd, addr: int, count: int, data) -> list[int]:
        tag = self._tag
        self._tag = (self._tag + 1) & 0xFF
        frame = encode_command(cmd, tag, addr, count, data)
        words = {Cmd.PING: PING_WORDS, Cmd.READ: count}.get(cmd, 0)
        return self.send_frame(frame, cmd, tag, words)

    def _read(self, n: int, timeout: float, what: str) -> bytes:
        got = self.transport.read(n, timeout)
        self.bytes_received += len(got)
        if len(got) < n:
            hint = ("" if got or self.bytes_received else
                    f" (nothing received yet: is the bitstream loaded, and built for "
                    f"{self.transport.baud:g} baud?)")
            raise BoardTimeout(f"{self.transport.name}: {what}: got {len(got)} of {n} bytes "
                               f"within {timeout:.3g} s{hint}")
        return got

    def _read_reply(self, cmd: Cmd, tag: int, words: int, sent: int) -> list[int]:
        t = self.transport
        what = f"reply to {cmd.name}"
        head = self._read(3, t.reply_timeout + 2 * t.transfer_time(sent + 3), what)
        if head[0] != SYNC_REPLY:
            raise ProtocolError(f"{t.name}: garbled {what}: first byte {head[0]:#04x} is not "
                                f"the reply sync byte {SYNC_REPLY:#04x}")
        try:
            status = Status(head[1])
        except ValueError:
            raise ProtocolError(f"{t.name}: garbled {what}: unknown status "
                                f"{head[1]:#04x}") from None
        n = 4 * words if status is Status.OK else 0
        rest = self._read(n + 1, t.reply_timeout + 2 * t.transfer_time(n + 1), what)
        body = head[1:] + rest[:-1]
        if crc8(body) != rest[-1]:
            raise ProtocolError(f"{t.name}: garbled {what}: checksum {rest[-1]:#04x}, "
                                f"expected {crc8(body):#04x}")
        if status is not Status.OK:
            raise CommandRejected(f"{t.name}: the board rejected {cmd.name} "
                                  f"(status {status.name}: {status.meaning})", status)
        if head[2] != tag:
            raise ProtocolError(f"{t.name}: {what} carries tag {head[2]}, expected {tag} "
                                f"(a late reply to an earlier command?)")
        return [int.from_bytes(body[2 + 4 * i:6 + 4 * i], "little") for i in range(words)]

    # --- bus level ---------------------------------------------------------------------------

    def ping(self) -> list[int]:
        """The ``PING`` payload: bridge information, chip ``ID``, ``VERSION``, ``CONFIG_HASH``."""
        return self.transact(Cmd.PING)

    def read(self, addr: int, count: int) -> list[int]:
        """``count`` consecutive words from ``addr`` (in bursts of at most ``max_burst``)."""
        out: list[int] = []
        while count > 0:
            n = min(count, self.max_burst)
            out += self.transact(Cmd.READ, addr, n)
            addr, count = addr + 4 * n, count - n
        return out

    def write(self, addr: int, words) -> None:
        """Write ``words`` to ``addr``, ``addr + 4``, ... (in bursts)."""
        words = [int(w) & 0xFFFF_FFFF for w in words]
        for i in range(0, len(words), self.max_burst):
            chunk = words[i:i + self.max_burst]
            self.transact(Cmd.WRITE, addr + 4 * i, len(chunk), chunk)

    def fill(self, addr: int, count: int, value: int = 0) -> None:
        """Write ``value`` to ``count`` consecutive words from ``addr``."""
        while count > 0:
            n = min(count, MAX_COUNT)
            self.transact(Cmd.FILL, addr, n, [value & 0xFFFF_FFFF])
            addr, count = addr + 4 * n, count - n

    def write_pairs(self, pairs) -> None:
        """Write ``(addr, data)`` pairs, merged into bursts wherever addresses run on."""
        run_addr, run = None, []
        for addr, data in pairs:
            if run and addr == run_addr + 4 * len(run):
                run.append(data)
                continue
            if run:
                self.write(run_addr, run)
            run_addr, run = addr, [data]
        if run:
            self.write(run_addr, run)

    def read_addrs(self, addrs) -> list[int]:
        """Words at ``addrs`` (in order), read in bursts wherever addresses run on."""
        addrs = list(addrs)
        out: list[int] = []
        i = 0
        while i < len(addrs):
            j = i + 1
            while j < len(addrs) and addrs[j] == addrs[i] + 4 * (j - i):
                j += 1
            out += self.read(addrs[i], j - i)
            i = j
        return out
