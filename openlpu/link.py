"""The UART host link: the framed byte protocol between a host and the board's bus bridge.

One definition shared by the RTL bridge (:mod:`hdl.bridge`) and the host runtime
(:mod:`firmware.runtime`); docs/board.md has the byte-level tables.

A **command** (host to board) is ``SYNC_CMD, CMD, TAG, ADDR[4], COUNT[2], HCRC``, followed for
``WRITE`` by ``4 * COUNT`` data bytes and for ``FILL`` by 4 data bytes, then ``DCRC``. A
**reply** (board to host) is ``SYNC_REPLY, STATUS, TAG, payload, CRC``; the payload is
``4 * COUNT`` bytes for a successful ``READ``, :data:`PING_WORDS` words for ``PING`` and empty
otherwise. Multi-byte fields are little-endian; every checksum is :func:`crc8` (CRC-8, polynomial
``0x07``, initial value 0, MSB first, no final XOR) over the bytes after the sync byte up to the
checksum (``HCRC``: the 8 header bytes; ``DCRC``: the data bytes only; reply ``CRC``: status,
tag and payload).

Every command gets exactly one reply: a frame the bridge cannot use (bad sync byte, header or
data checksum, unknown command, zero count, a malformed or lost byte, a frame that stops for
:attr:`idle timeout <hdl.bridge.Bridge.timeout>` cycles) gets an error :class:`Status`; after
errors in the header the bridge drops bytes until the line has been idle that long, so it is
back in step with the host by the time the reply arrives.
"""

from __future__ import annotations

import enum
import struct

__all__ = [
    "SYNC_CMD", "SYNC_REPLY", "PROTOCOL_VERSION", "HEADER_BYTES", "MAX_COUNT", "PING_WORDS",
    "Cmd", "Status", "crc8", "encode_command", "encode_reply", "bridge_info", "LinkError",
]

#: First byte of every command.
SYNC_CMD = 0xA5
#: First byte of every reply.
SYNC_REPLY = 0x5A
#: Version of this protocol, in the low byte of the bridge's information word.
PROTOCOL_VERSION = 1
#: ``CMD, TAG, ADDR[4], COUNT[2]``: the bytes covered by ``HCRC``.
HEADER_BYTES = 8
#: Largest ``COUNT`` (16 bits; 0 is refused).
MAX_COUNT = 0xFFFF
#: Payload words of a ``PING`` reply: the bridge information word (:func:`bridge_info`), then
#: the chip's ``ID``, ``VERSION`` and ``CONFIG_HASH`` registers (bus addresses 0, 4, 8).
PING_WORDS = 4


class LinkError(ValueError):
    """A command or reply that this protocol cannot express or does not allow."""


class Cmd(enum.IntEnum):
    """Command codes (the ``CMD`` byte)."""

    #: Identify: reply with :data:`PING_WORDS` words; ``ADDR`` and ``COUNT`` are ignored.
    PING = 0x01
    #: Read ``COUNT`` words from ``ADDR``, ``ADDR + 4``, ...
    READ = 0x02
    #: Write ``COUNT`` words (in the frame) to ``ADDR``, ``ADDR + 4``, ...
    WRITE = 0x03
    #: Write one word (in the frame) ``COUNT`` times, to ``ADDR``, ``ADDR + 4``, ...
    FILL = 0x04


class Status(enum.IntEnum):
    """Reply status codes (the ``STATUS`` byte)."""

    OK = 0x00
    #: The first byte of a frame was not ``SYNC_CMD``.
    BAD_SYNC = 0x01
    #: ``HCRC`` did not match: nothing was done.
    BAD_HEADER_CRC = 0x02
    #: Unknown ``CMD``: nothing was done.
    BAD_COMMAND = 0x03
    #: ``COUNT`` was 0: nothing was done.
    BAD_LENGTH = 0x04
    #: ``DCRC`` did not match: the last word of a ``WRITE`` was not written and a ``FILL``
    #: wrote nothing, but earlier words of a ``WRITE`` burst may hold corrupt data.
    BAD_DATA_CRC = 0x05
    #: The frame stopped before its end: the line was idle for the bridge's timeout.
    TIMEOUT = 0x06
    #: A byte had a bad stop bit (noise, wrong baud rate, a break).
    FRAMING = 0x07
    #: A byte arrived while the bridge's receive buffer was full and was lost.
    OVERRUN = 0x08

    @property
    def meaning(self) -> str:
        """One line saying what the status means."""
        return _MEANING[self]


_MEANING = {
    Status.OK: "ok",
    Status.BAD_SYNC: "the frame did not start with the command sync byte 0xA5",
    Status.BAD_HEADER_CRC: "header checksum mismatch (nothing was done)",
    Status.BAD_COMMAND: "unknown command code (nothing was done)",
    Status.BAD_LENGTH: "word count 0 (nothing was done)",
    Status.BAD_DATA_CRC: "data checksum mismatch (the last word was not written; earlier words "
                         "of the burst may be corrupt)",
    Status.TIMEOUT: "the command frame stopped before its end",
    Status.FRAMING: "a received byte had a bad stop bit (noise or wrong baud rate)",
    Status.OVERRUN: "a received byte was lost: the bridge's receive buffer was full",
}


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = ((c << 1) ^ 0x07 if c & 0x80 else c << 1) & 0xFF
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8 (polynomial ``0x07``, MSB first, no reflection, no final XOR) of ``data``,
    continuing from ``crc``. ``crc8(b"123456789") == 0xF4``."""
    for b in data:
        crc = _CRC_TABLE[crc ^ b]
    return crc


def _words(data, what: str) -> bytes:
    try:
        return struct.pack(f"<{len(data)}I", *(int(w) for w in data))
    except struct.error:
        raise LinkError(f"{what} must be 32-bit unsigned words") from None


def encode_command(cmd: Cmd, tag: int, addr: int = 0, count: int = 1,
                   data=None) -> bytes:
    """The bytes of one command frame.

    Parameters
    ----------
    cmd : Cmd
        The command.
    tag : int
        0..255, echoed in the reply so that the host can tell replies apart.
    addr : int
        Byte address of the first word (bits 1..0 are ignored by the chip).
    count : int
        Words to read, write or fill, 1..:data:`MAX_COUNT`.
    data : sequence of int, optional
        ``WRITE``: the ``count`` words; ``FILL``: one word; otherwise ``None``.

    Raises
    ------
    LinkError
        A field out of range or data that does not match the command.
    """
    cmd = Cmd(cmd)
    if not 0 <= tag <= 0xFF:
        raise LinkError(f"tag must be 0..255, not {tag!r}")
    if not 0 <= addr <= 0xFFFF_FFFF:
        raise LinkError(f"address must be a 32-bit unsigned number, not {addr!r}")
    if not 1 <= count <= MAX_COUNT:
        raise LinkError(f"count must be 1..{MAX_COUNT}, not {count!r}")
    header = struct.pack("<BBIH", cmd, tag, addr, count)
    frame = bytes([SYNC_CMD]) + header + bytes([crc8(header)])
    if cmd is Cmd.WRITE or cmd is Cmd.FILL:
        want = count if cmd is Cmd.WRITE else 1
        if data is None or len(data) != want:
            raise LinkError(f"{cmd.name} needs {want} data word(s), got "
                            f"{'none' if data is None else len(data)}")
        payload = _words(data, f"{cmd.name} data")
        frame += payload + bytes([crc8(payload)])
    elif data is not None:
        raise LinkError(f"{cmd.name} carries no data")
    return frame


def encode_reply(status: Status, tag: int, words=()) -> bytes:
    """The bytes of one reply frame, as the bridge sends it (for tests and models)."""
    body = bytes([Status(status), tag]) + _words(list(words), "reply payload")
    return bytes([SYNC_REPLY]) + body + bytes([crc8(body)])


def bridge_info(clocks_per_bit: int) -> int:
    """The bridge information word of a ``PING`` reply: bits ``[7:0]`` the protocol version,
    ``[31:8]`` the UART's clock cycles per bit (0 if it does not fit 24 bits)."""
    cpb = clocks_per_bit if 0 < clocks_per_bit < 1 << 24 else 0
    return PROTOCOL_VERSION | cpb << 8
