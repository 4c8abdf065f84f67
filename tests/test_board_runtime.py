"""firmware.runtime without a board or a simulator: the error paths of the host runtime against
a fake transport that answers like the bridge (a dictionary for a bus) and can be told to stay
silent, garble a reply or report another config. Every failure must raise the exception that
names it, quickly (the fake transport's clock jumps instead of waiting), and never hang; plus
the serial transport's own errors on a missing port and a silent pseudo-terminal."""

import os
import struct

import pytest

from firmware.random_program import random_program
from firmware.runtime import (
    Board,
    BoardTimeout,
    CommandRejected,
    ConfigMismatch,
    ProtocolError,
    RunError,
    SerialTransport,
    Transport,
    TransportError,
)
from firmware.runtime.link import Link
from openlpu.config import PRESETS
from openlpu.hostmap import REG, STATUS_DEADLOCK, STATUS_DONE, HostMap
from openlpu.link import SYNC_CMD, Cmd, Status, bridge_info, encode_reply

SMALL, ECP5 = PRESETS["small"], PRESETS["ecp5"]


class FakeBoard(Transport):
    """Answers commands as the bridge would, from a dictionary bus; ``mangle`` may change or
    drop (return ``b""``) each reply."""

    def __init__(self, config, mangle=None):
        self.name = "fake"
        self.baud = 115200
        self.reply_timeout = 0.5
        self.quiet_time = 0.05
        self.bus = {REG[k]: v for k, v in HostMap(config).config_words.items()}
        self.bus[REG["STATUS"]] = STATUS_DONE
        self.mangle = mangle or (lambda n, reply: reply)
        self.commands = []  # (cmd, addr, count)
        self.clock = 0.0
        self.pending = b""

    def write(self, data: bytes) -> None:
        assert data[0] == SYNC_CMD
        cmd, tag, addr, count = struct.unpack("<BBIH", data[1:9])
        self.commands.append((Cmd(cmd), addr, count))
        words = []
        if cmd == Cmd.PING:
            words = [bridge_info(217)] + [self.bus.get(a, 0) for a in (0, 4, 8)]
        elif cmd == Cmd.READ:
            words = [self.bus.get(addr + 4 * i, 0) for i in range(count)]
        elif cmd == Cmd.WRITE:
            for i in range(count):
                self.bus[addr + 4 * i] = int.from_bytes(data[10 + 4 * i:14 + 4 * i], "little")
        self.pending += self.mangle(len(self.commands), encode_reply(Status.OK, tag, words))

    def read(self, n: int, timeout: float) -> bytes:
        got, self.pending = self.pending[:n], self.pending[n:]
        if len(got) < n:
            self.clock += timeout  # waited in vain
        return got

    def now(self) -> float:
        return self.clock


def test_identify_reports_the_board():
    ident = Board(FakeBoard(SMALL), SMALL).identify()
    assert ident.config_hash == SMALL.config_hash
    assert ident.preset == "small"
    assert ident.clocks_per_bit == 217 and ident.protocol_version == 1


def test_a_board_with_another_config_is_refused_by_name():
    board = Board(FakeBoard(ECP5), SMALL)
    with pytest.raises(ConfigMismatch, match=rf"runs config hash {ECP5.config_hash} "
                                             rf"\(preset 'ecp5'\), not config 'small'"):
        board.identify()


def test_a_program_for_another_config_is_refused_before_anything_is_sent():
    fake = FakeBoard(SMALL)
    with pytest.raises(ConfigMismatch, match="assembled for config 'ecp5'"):
        Board(fake, SMALL).load(random_program(ECP5, 1, 3))
    assert fake.commands == []


def test_something_that_is_not_an_openlpu_chip_is_refused():
    fake = FakeBoard(SMALL)
    fake.bus[0] = 0x1234_5678
    with pytest.raises(ConfigMismatch, match="not an OpenLPU chip: its ID register reads "
                                             "0x12345678"):
        Board(fake, SMALL).identify()


def test_silence_is_a_timeout_after_the_retries():
    fake = FakeBoard(SMALL, mangle=lambda n, reply: b"")
    board = Board(fake, SMALL)
    with pytest.raises(BoardTimeout, match=r"nothing received yet: is the bitstream loaded, "
                                           r"and built for 115200 baud\?\) \(after 3 attempts\)"):
        board.identify()
    assert board.link.retried == 2
    assert fake.clock < 5  # simulated waiting only


@pytest.mark.parametrize("mangle, message", [
    (lambda reply: reply[:-1] + bytes([reply[-1] ^ 1]), "checksum"),
    (lambda reply: b"\x00" + reply[1:], "first byte 0x00 is not the reply sync byte 0x5a"),
    (lambda reply: reply[:1] + b"\x77" + reply[2:], "unknown status 0x77"),
    (lambda reply: reply[:2] + bytes([reply[2] ^ 0x80]) + reply[3:], "checksum"),
    (lambda reply: reply[:5], "got 2 of"),
])
def test_a_garbled_reply_is_a_protocol_error_or_timeout(mangle, message):
    board = Board(FakeBoard(SMALL, mangle=lambda n, reply: mangle(reply)), SMALL)
    with pytest.raises((ProtocolError, BoardTimeout), match=message):
        board.identify()


def test_a_reply_with_another_tag_is_refused():
    def retag(n, reply):
        body = reply[1:2] + bytes([reply[2] + 1]) + reply[3:-1]
        return encode_reply(Status.OK, body[1], [int.from_bytes(body[2 + 4 * i:6 + 4 * i],
                                                                "little")
                                                 for i in range((len(body) - 2) // 4)])
    board = Board(FakeBoard(SMALL, mangle=retag), SMALL, retries=0)
    with pytest.raises(ProtocolError, match="carries tag 1, expected 0"):
        board.identify()


def test_one_garbled_reply_is_retried_and_recovers():
    board = Board(FakeBoard(SMALL, mangle=lambda n, r: r[:-1] + b"\x00" if n == 1 else r),
                  SMALL)
    assert board.identify().preset == "small"
    assert board.link.retried == 1


def test_an_error_status_names_the_problem_and_is_not_retried_when_it_is_ours():
    fake = FakeBoard(SMALL, mangle=lambda n, r: encode_reply(Status.BAD_COMMAND, 0))
    link = Link(fake)
    with pytest.raises(CommandRejected, match="status BAD_COMMAND: unknown command code") as e:
        link.read(0, 1)
    assert e.value.status is Status.BAD_COMMAND
    assert len(fake.commands) == 1


def test_a_register_write_is_never_sent_twice():
    fake = FakeBoard(SMALL, mangle=lambda n, r: encode_reply(Status.BAD_DATA_CRC, 0))
    with pytest.raises(CommandRejected, match="BAD_DATA_CRC"):
        Link(fake).write(REG["CTRL"], [3])
    assert len(fake.commands) == 1
    fake.commands.clear()
    with pytest.raises(CommandRejected, match=r"after 3 attempts"):
        Link(fake).write(0x4000_0000, [3])  # SRAM: safe to repeat
    assert len(fake.commands) == 3


def test_deadlock_and_a_run_that_never_ends_are_run_errors():
    fake = FakeBoard(SMALL)
    board = Board(fake, SMALL)
    fake.bus[REG["STATUS"]] = STATUS_DEADLOCK
    with pytest.raises(RunError, match="DEADLOCK"):
        board.run()
    fake.bus[REG["STATUS"]] = 1  # busy forever
    fake.mangle = lambda n, r: (setattr(fake, "clock", fake.clock + 0.5), r)[1]
    with pytest.raises(RunError, match="still busy after 2 s"):
        board.run(timeout=2)


def test_bursts_are_split_and_merged():
    fake = FakeBoard(SMALL)
    link = Link(fake, max_burst=4)
    link.write_pairs([(0x100 + 4 * i, i) for i in range(10)] + [(0x200, 7)])
    assert [(c, a, n) for c, a, n in fake.commands] == [
        (Cmd.WRITE, 0x100, 4), (Cmd.WRITE, 0x110, 4), (Cmd.WRITE, 0x120, 2),
        (Cmd.WRITE, 0x200, 1)]
    assert link.read_addrs([0x108, 0x10C, 0x200]) == [2, 3, 7]


def test_a_missing_serial_port_is_named():
    with pytest.raises(TransportError, match="cannot open serial port '/dev/no-such-tty'"):
        SerialTransport("/dev/no-such-tty", 115200, timeout=0.1)


def test_a_silent_serial_port_times_out_quickly():
    pytest.importorskip("serial")
    controller, device = os.openpty()
    try:
        port = SerialTransport(os.ttyname(device), 115200, timeout=0.1)
        board = Board(port, SMALL, retries=0)
        with pytest.raises(BoardTimeout, match=r"got 0 of 3 bytes within"):
            board.identify()
        port.close()
    finally:
        os.close(controller)
        os.close(device)
