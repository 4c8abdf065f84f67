"""Instruction queues (NOP, REPEAT, SYNC/NOTIFY, END), the cycle count, and every
schedule-checker error, each provoked once on purpose."""

import numpy as np
import pytest
from harness import Staging, make_program

from firmware.program import MemInit
from firmware.schedule import ScheduleBuilder
from openlpu.config import PRESETS
from openlpu.isa import Direction, DType, Instruction, Opcode, latency, stream_code
from sim_models.errors import (
    AccumulatorHazard,
    BankConflict,
    CycleLimitExceeded,
    Deadlock,
    EmptyStreamRead,
    StreamConflict,
)
from sim_models.golden import GoldenModel, run_program

ECP5 = PRESETS["ecp5"]
E0 = stream_code(Direction.EAST, 0)
W0 = stream_code(Direction.WEST, 0)


def program(config, queues, mem_init=()):
    b = ScheduleBuilder(config)
    p = make_program(config, b, mem_init)
    p.queues = {k: list(v) for k, v in queues.items()}
    return p


def I(op, **kw):  # noqa: E743 - short name for readable instruction lists
    return Instruction(op, **kw)


# --- cycle count -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_empty_program_takes_one_cycle_per_superlane(name):
    config = PRESETS[name]
    result = run_program(config, program(config, {}))
    assert result.cycles == config.superlanes


def test_cycle_count_covers_queue_end_and_the_last_latency():
    # READ issued at 0 (latency 2), END fetched at 1: done at max(2, 1 + 1) = 2
    r = run_program(ECP5, program(ECP5, {"mem_w0": [I(Opcode.READ, dst=E0, addr=0)]}))
    assert r.cycles == 2 + ECP5.superlanes - 1
    # NOP 10 then END in cycle 10: done at 11
    r = run_program(ECP5, program(ECP5, {"mem_w0": [I(Opcode.NOP, nop_count=10)]}))
    assert r.cycles == 11 + ECP5.superlanes - 1


def test_repeat_reissues_with_stepped_addresses_and_exact_spacing():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(6, ECP5.lanes), dtype=np.uint8)
    bank1 = 1 << ECP5.offset_bits
    b = ScheduleBuilder(ECP5)
    # mem_w0 reads words 0..5 every 3 cycles; mem_e0 writes them to bank 1, words 10..15
    hops = b.arrival("mem_w0", 0, Opcode.READ, "mem_e0")
    queues = {
        "mem_w0": [I(Opcode.READ, dst=E0, addr=0), I(Opcode.REPEAT, rep_n=5, rep_d=3,
                                                      rep_step=1)],
        "mem_e0": [I(Opcode.NOP, nop_count=hops), I(Opcode.WRITE, addr=bank1 + 10, a=E0),
                   I(Opcode.REPEAT, rep_n=5, rep_d=3, rep_step=1)],
    }
    p = program(ECP5, queues, [MemInit("mem_w0", 0, data)])
    from firmware.program import OutputRegion
    p.outputs = [OutputRegion("copy", ("mem_e0",), bank1 + 10, 6, "uint8")]
    trace = []
    r = GoldenModel(ECP5, p, trace=trace).run()
    np.testing.assert_array_equal(r.outputs["copy"], data)
    reads = [t for t, q, op, _ in trace if q == "mem_w0"]
    assert reads == [0, 3, 6, 9, 12, 15]
    assert r.counters["issued"]["mem_w0"] == 6
    # last WRITE issues at hops + 15, lands 2 later; END fetched at hops + 16
    assert r.cycles == max(hops + 15 + 2, hops + 16 + 1) + ECP5.superlanes - 1


def test_schedule_builder_compresses_runs_into_repeat_and_predicts_cycles():
    b = ScheduleBuilder(ECP5)
    for i in range(50):
        b.place("mem_w1", 5 + 2 * i, I(Opcode.READ, dst=E0, addr=i))
    code = b.queues()["mem_w1"]
    assert [i.op for i in code] == [Opcode.NOP, Opcode.READ, Opcode.REPEAT, Opcode.END]
    assert code[2].rep_n == 49 and code[2].rep_d == 2 and code[2].rep_step == 1
    r = run_program(ECP5, make_program(ECP5, b))
    assert r.cycles == b.predicted_cycles()


def test_sync_parks_until_notify_and_resumes_next_cycle():
    trace = []
    queues = {
        "mem_w0": [I(Opcode.SYNC), I(Opcode.READ, dst=E0, addr=0)],
        "mem_w1": [I(Opcode.SYNC), I(Opcode.READ, dst=E0 + 1, addr=0)],
        "mem_e0": [I(Opcode.NOP, nop_count=7), I(Opcode.NOTIFY)],
    }
    GoldenModel(ECP5, program(ECP5, queues), trace=trace).run()
    assert sorted((t, q) for t, q, _, _ in trace) == [(8, "mem_w0"), (8, "mem_w1")]


def test_notify_in_the_same_cycle_as_sync_releases_it():
    trace = []
    queues = {"mem_w0": [I(Opcode.SYNC), I(Opcode.READ, dst=E0, addr=0)],
              "mem_e0": [I(Opcode.NOTIFY)]}
    GoldenModel(ECP5, program(ECP5, queues), trace=trace).run()
    assert [t for t, *_ in trace] == [1]


# --- schedule checker ----------------------------------------------------------------------


def test_stream_conflict_names_cycle_stream_and_position():
    # two VXM ALUs write E0 at the VXM in the same cycle
    st = Staging(ECP5)
    code = st.feed(["mem_w0"], np.zeros(ECP5.lanes), DType.I8, "vxm", 10, stream=1)
    for alu in ("vxm0", "vxm1"):
        st.builder.place(alu, 10, I(Opcode.MOV, dst=E0, a=code))
    due = 10 + latency(Opcode.MOV, ECP5)
    with pytest.raises(StreamConflict, match=rf"cycle {due}.*E0 at position 6"):
        st.run()


def test_empty_stream_read_by_a_consumer_one_cycle_early():
    b = ScheduleBuilder(ECP5)
    b.place("mem_w0", 0, I(Opcode.READ, dst=E0, addr=0))
    early = b.arrival("mem_w0", 0, Opcode.READ, "mem_e1") - 1
    b.place("mem_e1", early, I(Opcode.WRITE, addr=0, a=E0))
    with pytest.raises(EmptyStreamRead, match=rf"cycle {early}, slice mem_e1.*E0"):
        run_program(ECP5, make_program(ECP5, b))


def test_value_is_overwritten_by_a_nearer_producer():
    """A slice downstream of two producers on the same diagonal sees the nearer one."""
    from firmware.program import OutputRegion

    b = ScheduleBuilder(ECP5)
    a = np.full((1, ECP5.lanes), 11, dtype=np.uint8)
    c = np.full((1, ECP5.lanes), 22, dtype=np.uint8)
    # mem_w1 at cycle 0 and mem_w0 (one hop east) at cycle 1 put E0 on the same diagonal
    b.place("mem_w1", 0, I(Opcode.READ, dst=E0, addr=0))
    b.place("mem_w0", 1, I(Opcode.READ, dst=E0, addr=0))
    when = b.arrival("mem_w0", 1, Opcode.READ, "mem_e0")
    b.place("mem_e0", when, I(Opcode.WRITE, addr=1 << ECP5.offset_bits, a=E0))
    p = make_program(ECP5, b, [MemInit("mem_w1", 0, a), MemInit("mem_w0", 0, c)],
                     [OutputRegion("o", ("mem_e0",), 1 << ECP5.offset_bits, 1, "uint8")])
    assert run_program(ECP5, p).outputs["o"][0][0] == 22


def test_bank_conflict_when_a_bank_is_read_and_written_in_one_cycle():
    b = ScheduleBuilder(ECP5)
    b.place("mem_w1", 0, I(Opcode.READ, dst=E0, addr=0))
    when = b.arrival("mem_w1", 0, Opcode.READ, "mem_w0")
    b.place("mem_w0", when, I(Opcode.WRITE, addr=5, a=E0))  # bank 0 written at when + 1
    b.place("mem_w0", when + 1, I(Opcode.READ, dst=E0 + 1, addr=7))  # bank 0 read then
    with pytest.raises(BankConflict, match=rf"cycle {when + 1}, slice mem_w0.*bank 0"):
        run_program(ECP5, make_program(ECP5, b))
    # the same accesses to different banks are fine
    b2 = ScheduleBuilder(ECP5)
    b2.place("mem_w1", 0, I(Opcode.READ, dst=E0, addr=0))
    b2.place("mem_w0", when, I(Opcode.WRITE, addr=5, a=E0))
    b2.place("mem_w0", when + 1, I(Opcode.READ, dst=E0 + 1, addr=(1 << ECP5.offset_bits) + 7))
    run_program(ECP5, make_program(ECP5, b2))


def test_accumulator_hazard_when_acc_reads_before_abc_lands():
    b = ScheduleBuilder(ECP5)
    t = b.arrival("mem_w3", 0, Opcode.READ, "mxm0")
    b.place("mem_w3", 0, I(Opcode.READ, dst=W0, addr=0))
    b.place("mxm0", t, I(Opcode.ABC, addr=3, a=W0))
    b.place("mxm0", t + 2, I(Opcode.ACC, dst=E0, addr=3))
    with pytest.raises(AccumulatorHazard, match="entry 3"):
        run_program(ECP5, make_program(ECP5, b))


def test_deadlock_when_nobody_notifies():
    p = program(ECP5, {"mem_w0": [I(Opcode.SYNC)], "vxm0": [I(Opcode.SYNC)]})
    with pytest.raises(Deadlock, match="mem_w0, vxm0"):
        run_program(ECP5, p)


def test_cycle_limit():
    p = program(ECP5, {"mem_w0": [I(Opcode.NOP, nop_count=1000)]})
    with pytest.raises(CycleLimitExceeded, match="100 cycles"):
        run_program(ECP5, p, max_cycles=100)


def test_collect_mode_reports_every_violation_and_finishes():
    b = ScheduleBuilder(ECP5)
    b.place("mem_e0", 3, I(Opcode.WRITE, addr=0, a=E0))
    b.place("mem_e1", 4, I(Opcode.WRITE, addr=0, a=E0 + 1))
    r = run_program(ECP5, make_program(ECP5, b), on_error="collect")
    assert [v.kind for v in r.violations] == ["empty stream read"] * 2
    assert [v.slice for v in r.violations] == ["mem_e0", "mem_e1"]


@pytest.mark.parametrize("queues", [
    {"mem_w0": [I(Opcode.SYNC), I(Opcode.READ, dst=E0, addr=0), I(Opcode.NOP, nop_count=9)],
     "mem_e0": [I(Opcode.NOP, nop_count=7), I(Opcode.NOTIFY), I(Opcode.SYNC)],
     "vxm1": [I(Opcode.NOP, nop_count=30), I(Opcode.NOTIFY)]},
    {"mem_w2": [I(Opcode.READ, dst=E0, addr=0), I(Opcode.REPEAT, rep_n=7, rep_d=5, rep_step=3),
                I(Opcode.NOP, nop_count=2), I(Opcode.READ, dst=E0, addr=1)]},
    {},
])
def test_static_timing_analysis_agrees_with_the_golden_model(queues):
    from firmware.timing import predict_cycles

    r = run_program(ECP5, program(ECP5, queues))
    assert predict_cycles(ECP5, queues) == r.cycles


def test_accumulator_never_written_in_this_run_is_a_hazard():
    b = ScheduleBuilder(ECP5)
    b.place("mxm0", 5, I(Opcode.ACC, dst=E0, addr=2))
    with pytest.raises(AccumulatorHazard, match="entry 2, which no ABC has written"):
        run_program(ECP5, make_program(ECP5, b))
    b = ScheduleBuilder(ECP5)
    t = b.arrival("mem_w3", 0, Opcode.READ, "mxm0")
    b.place("mem_w3", 0, I(Opcode.READ, dst=W0, addr=0))
    b.place("mxm0", t, I(Opcode.ABC, addr=4, a=W0, accumulate=1))
    with pytest.raises(AccumulatorHazard, match="ABC.acc adds to accumulator entry 4"):
        run_program(ECP5, make_program(ECP5, b))
