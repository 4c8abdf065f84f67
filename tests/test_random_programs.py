"""Constrained-random valid programs on the golden model: they run with no schedule violation,
take exactly the predicted number of cycles, and survive the text and binary round trips."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.asm import assemble
from firmware.disasm import disassemble
from firmware.program import from_bytes, to_bytes
from firmware.random_program import KINDS, directed_programs, random_program
from firmware.timing import predict_cycles
from openlpu.config import PRESETS
from sim_models.golden import run_program

SMALL = ["small", "ecp5", "sim"]




@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(SMALL), seed=st.integers(0, 2**32 - 1),
       n=st.integers(1, 40))
def test_random_programs_run_clean_and_round_trip(name, seed, n):
    config = PRESETS[name]
    program = random_program(config, seed, n)
    result = run_program(config, program, on_error="collect")
    assert result.violations == [], f"seed {seed}: {result.violations[:3]}"
    assert result.cycles == predict_cycles(config, program.queues)
    again = assemble(disassemble(program), config)
    binary = from_bytes(to_bytes(again))
    result2 = run_program(config, binary)
    assert result2.cycles == result.cycles
    for key, value in result.outputs.items():
        np.testing.assert_array_equal(result2.outputs[key], value)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", SMALL)
def test_every_transaction_kind_on_every_small_preset(name, kind):
    config = PRESETS[name]
    for seed in range(5):
        program = random_program(config, seed, 15, kinds=(kind,))
        assert program.queues, f"{kind} placed nothing on {name}"
        result = run_program(config, program)
        assert result.cycles == predict_cycles(config, program.queues)


def test_random_program_on_the_full_chip():
    config = PRESETS["groqchip"]
    result = run_program(config, random_program(config, 1, 25))
    assert result.counters["stream_writes"] > 0


@pytest.mark.parametrize("name", SMALL)
def test_directed_programs_cover_every_instruction(name):
    from openlpu.isa import OPS, Unit

    config = PRESETS[name]
    programs = directed_programs(config)
    used = {i.op for p in programs.values() for code in p.queues.values() for i in code}
    units = {Unit.MEM, Unit.VXM, Unit.MXM, Unit.SXM}
    assert {s.opcode for s in OPS.values() if s.unit in units} <= used
    for key, program in programs.items():
        result = run_program(config, program)
        assert result.cycles == predict_cycles(config, program.queues), key
