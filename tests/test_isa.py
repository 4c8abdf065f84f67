"""The ISA definition: encodings round-trip, field layout is consistent, validation is strict."""

import pytest

from openlpu.config import PRESETS
from openlpu.isa import (
    FIELDS,
    OPS,
    WORD_BITS,
    Instruction,
    IsaError,
    Opcode,
    decode,
    encode,
    latency,
    stream_code,
    validate,
)

ECP5 = PRESETS["ecp5"]


def test_every_opcode_has_a_spec_and_fields_fit_the_word():
    assert set(OPS) == set(Opcode)
    for spec in OPS.values():
        bits = [FIELDS["opcode"]] + [FIELDS[f] for f in spec.fields]
        assert all(0 <= f.lsb and f.msb < WORD_BITS for f in bits)
        taken = set()
        for f in bits:
            span = set(range(f.lsb, f.msb + 1))
            assert not span & taken, f"{spec.name}: field {f.name} overlaps another"
            taken |= span


def test_opcode_zero_is_end_so_zeroed_queue_memory_stops():
    assert decode(0) == Instruction(Opcode.END)


@pytest.mark.parametrize("name", list(PRESETS))
def test_cross_superlane_latencies_cover_the_wavefront(name):
    cfg = PRESETS[name]
    for op in (Opcode.ABC, Opcode.SHIFT, Opcode.PERMUTE):
        assert latency(op, cfg) > cfg.superlanes


def test_unused_fields_must_be_zero():
    with pytest.raises(IsaError, match="addr.*not used by ADD"):
        validate(Instruction(Opcode.ADD, addr=77), ECP5)
    with pytest.raises(IsaError, match="imm"):
        validate(Instruction(Opcode.ADD, imm=3), ECP5)  # imm without bimm
    with pytest.raises(IsaError, match=r"\bb\b"):
        validate(Instruction(Opcode.ADD, bimm=1, b=5, imm=1), ECP5)
    validate(Instruction(Opcode.ADD, bimm=1, imm=1), ECP5)


def test_lw_count_is_checked_before_its_stream_group():
    with pytest.raises(IsaError, match="count = 18.*1..8"):
        validate(Instruction(Opcode.LW, a=0, count=18), ECP5)


def test_bad_types_give_isa_errors_not_value_errors():
    with pytest.raises(IsaError, match="stype"):
        validate(Instruction(Opcode.CVT, dtype=0, stype=3), ECP5)


def test_decode_rejects_unknown_opcodes_and_stray_bits():
    with pytest.raises(IsaError, match="unknown opcode 0x7f"):
        decode(0x7F << 56)
    word = encode(Instruction(Opcode.IW)) | 1
    with pytest.raises(IsaError, match="outside its fields"):
        decode(word)


def test_encode_refuses_values_that_do_not_fit():
    with pytest.raises(IsaError, match="nop_count"):
        encode(Instruction(Opcode.NOP, nop_count=1 << 32))


def test_group_alignment_and_range():
    with pytest.raises(IsaError, match="not aligned"):
        validate(Instruction(Opcode.ADD, dtype=2, stype=2, a=stream_code(0, 2)), ECP5)
    with pytest.raises(IsaError, match="out of range.*streams 0..7"):
        validate(Instruction(Opcode.ADD, dtype=2, stype=2, dst=stream_code(1, 8)), ECP5)


def test_reserved_c2c_opcodes_are_refused_with_a_clear_message():
    for op in (Opcode.SEND, Opcode.RECEIVE, Opcode.DESKEW):
        with pytest.raises(IsaError, match="reserved C2C"):
            validate(Instruction(op), ECP5)


def test_special_functions_only_on_the_special_function_queue():
    from openlpu.isa import SPECIAL_FUNCTION_QUEUE, Unit, check_queue_program

    exp = Instruction(Opcode.EXP, dtype=2, stype=2)
    check_queue_program([exp], Unit.VXM, ECP5, SPECIAL_FUNCTION_QUEUE)
    with pytest.raises(IsaError, match="only queue vxm0 has the special-function unit"):
        check_queue_program([exp], Unit.VXM, ECP5, "vxm1")


def test_repeat_is_refused_where_the_queues_leave_it_out():
    from openlpu.isa import Unit, check_queue_program

    read = Instruction(Opcode.READ, addr=3)
    repeat = Instruction(Opcode.REPEAT, rep_n=2, rep_d=1, rep_step=1)
    check_queue_program([read, repeat], Unit.MEM, ECP5, "mem_w0")
    plain = ECP5.replace(name="plain", icu_repeat=False)
    check_queue_program([read, Instruction(Opcode.NOP, nop_count=3), read], Unit.MEM, plain,
                        "mem_w0")
    with pytest.raises(IsaError, match=r"REPEAT cannot run on queue mem_w0 of config 'plain'.*"
                                       r"\(icu_repeat = False\)") as e:
        check_queue_program([read, repeat], Unit.MEM, plain, "mem_w0")
    assert e.value.index == 1


def test_opcodes_the_config_leaves_out_are_refused_naming_the_field():
    from openlpu.isa import VXM_MULTIPLY, VXM_SPECIAL, Unit, check_queue_program

    lean = ECP5.replace(name="lean", vxm_special_alus=0, vxm_multiplier=False)
    add = Instruction(Opcode.ADD, dtype=2, stype=2)
    check_queue_program([add], Unit.VXM, lean, "vxm0")
    for op in VXM_SPECIAL:
        with pytest.raises(IsaError, match=rf"{op.name} cannot run on queue vxm0 of config "
                                           r"'lean'.*\(vxm_special_alus = 0\)"):
            check_queue_program([Instruction(op, dtype=2, stype=2)], Unit.VXM, lean, "vxm0")
    for op in VXM_MULTIPLY:
        instr = Instruction(op, dtype=2, stype=2)
        check_queue_program([instr], Unit.VXM, ECP5, "vxm1")
        with pytest.raises(IsaError, match=r"needs the VXM multiplier.*vxm_multiplier = False"):
            check_queue_program([instr], Unit.VXM, lean, "vxm1")
    two = ECP5.replace(vxm_special_alus=2)
    exp = Instruction(Opcode.EXP, dtype=2, stype=2)
    check_queue_program([exp], Unit.VXM, two, "vxm1")
