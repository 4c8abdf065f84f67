"""Test harness: run single instructions on the golden model with real, timed data movement.

Operands are placed in SRAM, read by MEM slices so that every byte reaches the unit under test
in exactly the cycle it issues, and results travel on to other MEM slices that write them back.
So each directed test exercises the stream timing rules as well as the datapath.
"""

from __future__ import annotations

import numpy as np

from firmware.program import MemInit, OutputRegion, Program
from firmware.schedule import ScheduleBuilder
from openlpu.config import ChipConfig
from openlpu.isa import DType, Instruction, Opcode, stream_code
from sim_models.golden import run_program

NP_DTYPE = {DType.I8: np.int8, DType.I16: np.int16, DType.I32: np.int32}
OUT_NAME = {DType.I8: "int8", DType.I16: "int16", DType.I32: "int32"}


def to_planes(values: np.ndarray, dtype: DType) -> list[np.ndarray]:
    """Little-endian byte planes of ``values`` (one uint8 vector per byte)."""
    raw = np.ascontiguousarray(np.asarray(values).astype(NP_DTYPE[dtype]))
    b = raw.view(np.uint8).reshape(-1, dtype.nbytes)
    return [b[:, i].copy() for i in range(dtype.nbytes)]


def make_program(config: ChipConfig, builder: ScheduleBuilder, mem_init=(), outputs=()):
    """A Program from a schedule plus SRAM contents and output regions."""
    return Program(config_name=config.name, config_hash=config.config_hash,
                   lanes=config.lanes, queues=builder.queues(), mem_init=list(mem_init),
                   outputs=list(outputs), source={})


class Staging:
    """Book-keeping for placing operands in SRAM and reading them out on time."""

    def __init__(self, config: ChipConfig):
        self.config = config
        self.builder = ScheduleBuilder(config)
        self.mem_init: list[MemInit] = []
        self.outputs: list[OutputRegion] = []
        self._used = {0: 0, 1: 0}  # next free stream per direction

    def feed(self, slices: list[str], values: np.ndarray, dtype: DType, unit: str,
             cycle: int, bank: int = 0, offset: int = 0, stream: int | None = None) -> int:
        """Put ``values`` at ``bank:offset`` of ``slices`` (byte k in slices[k]) and READ them
        so they are present at ``unit`` in ``cycle``; returns the stream code of the group
        (the next free aligned group unless ``stream`` names its base index)."""
        b = self.builder
        direction = b.direction(slices[0], unit)
        addr = (bank << self.config.offset_bits) + offset
        base = self._next_base(direction, dtype) if stream is None else stream
        for k, (s, plane) in enumerate(zip(slices, to_planes(values, dtype), strict=True)):
            self.mem_init.append(MemInit(s, addr, plane.reshape(1, -1)))
            b.place(s, b.issue_for(s, Opcode.READ, unit, cycle),
                    Instruction(Opcode.READ, dst=stream_code(direction, base + k), addr=addr))
        if stream is None:
            self._used[direction.value] = base + dtype.nbytes
        return stream_code(direction, base)

    def expect_output(self, name: str, slices, addr: int, words: int, dtype: str) -> None:
        """Report ``words`` words at ``addr`` of ``slices`` as output ``name``."""
        self.outputs.append(OutputRegion(name, tuple(slices), addr, words, dtype))

    def _next_base(self, direction, dtype) -> int:
        base = self._used[direction.value]
        return -(-base // dtype.nbytes) * dtype.nbytes

    def alloc(self, direction, dtype) -> int:
        """A free aligned stream group in ``direction`` for a result."""
        base = self._next_base(direction, dtype)
        self._used[direction.value] = base + dtype.nbytes
        return stream_code(direction, base)

    def collect(self, unit: str, op: Opcode, issue: int, code: int, slices: list[str],
                dtype: DType, name: str = "out", bank: int = 1) -> None:
        """WRITE the group ``code`` produced by ``op`` at ``unit`` in ``issue`` into
        ``slices`` (byte k into slices[k]) and name it as an output."""
        b = self.builder
        addr = bank << self.config.offset_bits
        for k, s in enumerate(slices):
            when = b.arrival(unit, issue, op, s)
            b.place(s, when, Instruction(Opcode.WRITE, addr=addr, a=code + k))
        self.outputs.append(OutputRegion(name, tuple(slices), addr, 1, OUT_NAME[dtype]))

    def run(self, **kwargs):
        """Run on the golden model; returns (result, program)."""
        program = make_program(self.config, self.builder, self.mem_init, self.outputs)
        return run_program(self.config, program, **kwargs), program


def west(config: ChipConfig, first: int, n: int) -> list[str]:
    """Names of west MEM slices ``first .. first+n-1`` (counted from the VXM outward)."""
    return [f"mem_w{i}" for i in range(first, first + n)]


def east(config: ChipConfig, first: int, n: int) -> list[str]:
    """Names of east MEM slices ``first .. first+n-1``."""
    return [f"mem_e{i}" for i in range(first, first + n)]
