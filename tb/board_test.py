"""cocotb test module: the host runtime drives the simulated board top over its UART lines.

The job (config, UART divisor, programs, checks) comes as JSON in the file named by
``OPENLPU_BOARD_JOB``; the result goes to the job's ``result`` path. :mod:`tb.board_runner`
writes the job and reads the result.

The runtime is the very code that drives a real board (:class:`firmware.runtime.Board`): it
runs in a :func:`cocotb.task.bridge` thread and talks through
:class:`firmware.runtime.sim.CocotbTransport`, which bit-bangs its bytes onto ``uart_rx`` and
decodes ``uart_tx``. So a run goes host API -> UART bytes -> RTL UART -> bridge -> chip bus ->
results, compared with the golden model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles

from firmware.program import load
from firmware.runtime import Board, CommandRejected, ConfigMismatch
from firmware.runtime.sim import CocotbTransport
from openlpu.config import ChipConfig
from openlpu.hostmap import SRAM_BASE
from openlpu.link import Cmd, encode_command

CLOCK_HZ = 100e6


def _rejected(board: Board, frame: bytes, cmd: Cmd, tag: int) -> str:
    """Send a damaged frame; the name of the error status the bridge answers with."""
    try:
        board.link.send_frame(frame, cmd, tag, 0)
    except CommandRejected as e:
        return e.status.name
    return "OK"


def _error_checks(board: Board, transport, other: ChipConfig) -> dict:
    """Damaged frames get error replies from the RTL bridge, and the link goes on working."""
    out = {}
    frame = bytearray(encode_command(Cmd.READ, 0x42, 0, 1))
    frame[4] ^= 0x01  # an address bit: the header checksum no longer matches
    out["bad_header_crc"] = _rejected(board, bytes(frame), Cmd.READ, 0x42)
    frame = encode_command(Cmd.WRITE, 0x43, SRAM_BASE, 2, [0x11, 0x22])
    out["bad_data_crc"] = _rejected(board, frame[:-1] + bytes([frame[-1] ^ 0xFF]), Cmd.WRITE,
                                    0x43)
    out["cut_short"] = _rejected(board, frame[:12], Cmd.WRITE, 0x43)
    out["not_a_frame"] = _rejected(board, b"\x00\x01\x02", Cmd.PING, 0)
    out["then_read"] = board.read(SRAM_BASE, 2)  # the burst whose checksum failed left one
    try:
        Board(transport, other).identify()
        out["other_config"] = "accepted"
    except ConfigMismatch as e:
        out["other_config"] = str(e)
    return out


def _host(transport, job: dict) -> dict:
    config = ChipConfig(**job["config"])
    board = Board(transport, config)
    t0 = time.perf_counter()
    ident = board.identify()
    out: dict = {"identity": ident.to_dict(), "identify_seconds": time.perf_counter() - t0,
                 "programs": []}
    if job.get("other_config"):
        out["errors"] = _error_checks(board, transport, ChipConfig(**job["other_config"]))
    for name, path in job["programs"]:
        result = board.run_program(load(path), readback=job.get("readback", "auto"))
        row = result.to_dict()
        row.pop("outputs")
        row["name"] = name
        out["programs"].append(row)
    out["retried"] = board.link.retried
    return out


@cocotb.test()
async def board_link(dut):
    """Identify the board, check the error replies, run each program and compare."""
    job = json.loads(Path(os.environ["OPENLPU_BOARD_JOB"]).read_text())
    Clock(dut.clk, round(1e9 / CLOCK_HZ), unit="ns").start()
    dut.uart_rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    transport = CocotbTransport(dut, clocks_per_bit=job["clocks_per_bit"], clock_hz=CLOCK_HZ,
                                timeout_cycles=job["timeout"])
    t0 = time.perf_counter()
    result = await bridge(_host)(transport, job)
    result["wall_seconds"] = time.perf_counter() - t0
    transport.close()
    Path(job["result"]).write_text(json.dumps(result))
