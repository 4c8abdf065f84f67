"""``openlpu board`` and ``openlpu build`` in-process: a board identified through a real serial
port (a pseudo-terminal whose other end answers as the bridge would), one-line errors for a
missing port, another config and a baud rate the board clock cannot make."""

import json
import os
import struct
import threading

import pytest

from openlpu.cli import main
from openlpu.config import PRESETS
from openlpu.hostmap import REG, HostMap
from openlpu.link import SYNC_CMD, Cmd, Status, bridge_info, encode_reply

pytest.importorskip("serial")


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


class PtyBoard:
    """The controller side of a pseudo-terminal that answers ``PING`` and ``READ`` with the
    identification registers of ``config``, as the bridge and chip do."""

    def __init__(self, config):
        self.bus = {REG[k]: v for k, v in HostMap(config).config_words.items()}
        self.controller, self.device = os.openpty()
        self.port = os.ttyname(self.device)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = os.read(self.controller, n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self):
        try:
            while True:
                frame = self._read(10)
                assert frame[0] == SYNC_CMD
                cmd, tag, addr, count = struct.unpack("<BBIH", frame[1:9])
                if cmd == Cmd.PING:
                    words = [bridge_info(104)] + [self.bus[a] for a in (0, 4, 8)]
                else:
                    words = [self.bus.get(addr + 4 * i, 0) for i in range(count)]
                os.write(self.controller, encode_reply(Status.OK, tag, words))
        except (OSError, EOFError):
            pass  # the test closed the terminal

    def close(self):
        os.close(self.device)
        os.close(self.controller)


@pytest.fixture
def small_board():
    """A pseudo-terminal answering as a small-preset board."""
    board = PtyBoard(PRESETS["small"])
    yield board
    board.close()


def test_identify_through_a_serial_port(capsys, small_board):
    code, out, err = run(capsys, "board", "identify", "--port", small_board.port, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["preset"] == "small" and info["clocks_per_bit"] == 104
    code, out, _ = run(capsys, "board", "identify", "--port", small_board.port)
    assert code == 0 and "config hash 9dbdeec9 (preset 'small')" in out


def test_identify_refuses_another_config(capsys, small_board):
    code, _, err = run(capsys, "board", "identify", "--port", small_board.port, "--config",
                       "ecp5")
    assert code == 1
    assert "the board runs config hash 9dbdeec9 (preset 'small'), not config 'ecp5'" in err


def test_run_with_a_missing_port_is_one_line(capsys, tmp_path):
    from firmware.program import save
    from firmware.random_program import random_program

    program = tmp_path / "p.bin"
    save(random_program(PRESETS["small"], 1, 3), program)
    code, out, err = run(capsys, "board", "run", str(program), "--port", "/dev/no-such-tty")
    assert code == 1 and out == ""
    assert err.startswith("openlpu: error: cannot open serial port '/dev/no-such-tty'")
    assert len(err.strip().splitlines()) == 1


def test_build_refuses_a_baud_rate_the_clock_cannot_make(capsys, tmp_path):
    pytest.importorskip("amaranth_boards")
    code, _, err = run(capsys, "build", "--board", "ulx3s-85f", "--baud", "3000000", "--out",
                       str(tmp_path))
    assert code == 1
    assert "ulx3s-85f: 3000000 baud does not fit a 12.5 MHz clock" in err  # the default PLL
    code, _, err = run(capsys, "build", "--board", "ulx3s-85f", "--clock-mhz", "16", "--out",
                       str(tmp_path))
    assert code == 1
    assert "an ECP5 PLL cannot make 16 MHz from 25 MHz within 1 % (nearest" in err
