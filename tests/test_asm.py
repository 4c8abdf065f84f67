"""Tests of the assembler, the disassembler and the binary program format (firmware/)."""

from __future__ import annotations

import dataclasses
import random
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from firmware.asm import AsmError, assemble, assemble_file
from firmware.disasm import disassemble, format_instruction
from firmware.program import (
    MemInit,
    OutputRegion,
    Program,
    ProgramError,
    ProgramFormatError,
    from_bytes,
    load,
    read_output,
    save,
    sram_shape,
    to_bytes,
    write_mem_init,
)
from openlpu.config import get_config
from openlpu.isa import (
    FIELDS,
    OPS,
    Instruction,
    IsaError,
    Opcode,
    Unit,
    check_queue_program,
    decode,
    encode,
    unit_for_slice,
    validate,
)

PRESET_NAMES = ("small", "ecp5", "sim")
ECP5 = get_config("ecp5")
RESERVED = [op for op, spec in OPS.items() if spec.reserved]
USABLE = [op for op, spec in OPS.items() if not spec.reserved]


# --- helpers ---------------------------------------------------------------------------------


def queue_for(unit: Unit, config) -> str:
    """The first queue that runs instructions of ``unit`` (any queue for ICU)."""
    for q in config.queues:
        if unit in (Unit.ICU, unit_for_slice(q.slice.kind)):
            return q.name
    raise AssertionError(f"no queue for {unit}")


def make_instruction(op: Opcode, config, draw) -> Instruction | None:
    """A valid instruction of ``op`` for ``config``, or None.

    Fields start random over their full encoding; a field that ``validate`` rejects is drawn
    again from a range that narrows on each failure. ``draw(lo, hi)`` returns an integer.
    Only the ISA's own tables and checks are used, so new opcodes are covered as they come.
    """
    spec = OPS[op]
    values = {f: draw(FIELDS[f].min, FIELDS[f].max) for f in spec.fields}
    fails: dict[str, int] = {}
    def redraw(name, bits):
        f = FIELDS[name]
        bits = max(2, min(bits, f.width))
        return draw(max(f.min, -(1 << (bits - 1))), min(f.max, (1 << bits) - 1))

    for attempt in range(300):
        try:
            validate(Instruction(op, **values), config)
            break
        except IsaError as e:
            if e.field not in values:
                raise
            fails[e.field] = fails.get(e.field, 0) + 1
            values[e.field] = redraw(e.field, FIELDS[e.field].width - fails[e.field])
            if attempt % 40 == 39:  # stuck on a field another one constrains: all small
                values = {f: redraw(f, 2) for f in spec.fields}
        except ValueError:  # isa.validate lets DType(3) escape for CVT's stype: start again
            values = {f: redraw(f, 2) for f in spec.fields}
    else:
        return None
    # The canonical form: text has either a stream b or an immediate, not both.
    if values.get("bimm"):
        values["b"] = 0
    elif "imm" in values and "bimm" in values:
        values["imm"] = 0
    return Instruction(op, **values)


def context_for(instr: Instruction, config) -> list[Instruction]:
    """Instructions to put before ``instr`` in its queue (a REPEAT repeats a READ)."""
    return [Instruction(Opcode.READ)] if instr.op is Opcode.REPEAT else []


def fit_repeat(instr: Instruction, config) -> Instruction:
    """Shrink a REPEAT until the READ before it stays in range."""
    if instr.op is not Opcode.REPEAT:
        return instr
    unit = Unit.MEM
    while True:
        try:
            check_queue_program(context_for(instr, config) + [instr], unit, config)
            return instr
        except IsaError:
            instr = instr.replace(rep_n=max(1, instr.rep_n // 2), rep_step=int(instr.rep_step / 2))


def single_program_text(instr: Instruction, config, with_config=True) -> str:
    unit = OPS[instr.op].unit
    queue = queue_for(Unit.MEM if instr.op is Opcode.REPEAT else unit, config)
    lines = [f".queue {queue}"]
    lines += ["  " + format_instruction(i, config if with_config else None)
              for i in context_for(instr, config) + [instr]]
    return "\n".join(lines) + "\n"


def asm_error(text: str, config=ECP5) -> AsmError:
    with pytest.raises(AsmError) as info:
        assemble(text, config, "t.s")
    return info.value


def assert_error(text: str, line: int, col: int, *words: str, config=ECP5) -> None:
    e = asm_error(text, config)
    first = str(e).splitlines()[0]
    assert first.startswith(f"t.s:{line}:{col}: "), first
    for w in words:
        assert w.lower() in first.lower(), (w, first)


# --- every opcode ----------------------------------------------------------------------------


@pytest.mark.parametrize("op", USABLE, ids=lambda op: op.name)
def test_every_opcode_round_trips(op):
    rng = random.Random(op.value)
    for name in PRESET_NAMES:
        config = get_config(name)
        instr = make_instruction(op, config, rng.randint)
        assert instr is not None
        instr = fit_repeat(instr, config)
        text = single_program_text(instr, config)
        program = assemble(text, config)
        queue, = program.queues
        assert program.queues[queue][-2 if op is not Opcode.END else -1] == instr
        binary = to_bytes(program)
        again = assemble(disassemble(from_bytes(binary)), config)
        assert again == program
        assert to_bytes(dataclasses.replace(again, source={})) == \
            to_bytes(dataclasses.replace(program, source={}))


@pytest.mark.parametrize("op", RESERVED, ids=lambda op: op.name)
def test_reserved_opcodes_error(op):
    e = asm_error(f".queue vxm0\n  {op.name}\n")
    assert str(e).startswith("t.s:2:3: ") and "reserved" in str(e)


# --- random instructions ---------------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), preset=st.sampled_from(PRESET_NAMES), op=st.sampled_from(USABLE),
       with_config=st.booleans())
def test_random_instructions_round_trip(data, preset, op, with_config):
    config = get_config(preset)
    instr = make_instruction(op, config, lambda lo, hi: data.draw(st.integers(lo, hi)))
    assume(instr is not None)
    assert decode(encode(instr)) == instr
    instr = fit_repeat(instr, config)
    program = assemble(single_program_text(instr, config, with_config), config)
    assert instr in next(iter(program.queues.values()))


# --- a complete program ----------------------------------------------------------------------

SOURCE = """\
.config ecp5                 ; optional
.equ ROWS, 16
.equ X, E3
.equ Y, x                    ; alias of an alias, case-insensitive
.queue MEM_W0
    READ   E3, b1:0x10
    read   y, ROWS+1         ; 17
    REPEAT 15, 1, 1
    NOP 4
    END
.queue vxm0
    ADD.i32  E4, E0, E4
    ADD.I8   E1, E1, #-3
    SUB.i16  W2, W0, #(ROWS - 2) * 0b10
    CVT.i32.i8 E4, E0
    REQ.i8   E0, E4, #12345, 20
.queue mxm0
    ABC.acc  3, W2
    ABC      4, W2
    LW 0, W0, 8
.queue mem_w0                ; reopened: appends
    WRITE 0x20, E1
.data mem_w0, b0:0
    .vec 1, 2, -3, 0x7f
    .fill 4, -1
    .vec
.output result, mem_e0, b0:0, 4
.output acc32, mem_e0+mem_e1+mem_w0+mem_w1, 0x20, 4, int32
"""


def test_program_round_trip_text_and_binary(tmp_path):
    program = assemble(SOURCE, ECP5, "prog.s")
    assert list(program.queues) == ["mxm0", "mem_w0", "vxm0"]  # config.queues order
    mem = program.queues["mem_w0"]
    assert mem[0] == Instruction(Opcode.READ, dst=3, addr=ECP5.mem_words_per_bank + 16)
    assert mem[1].addr == 17 and mem[1].dst == 3
    assert mem[2] == Instruction(Opcode.REPEAT, rep_n=15, rep_d=1, rep_step=1)
    assert [i.op for i in mem] == [Opcode.READ, Opcode.READ, Opcode.REPEAT, Opcode.NOP,
                                   Opcode.END, Opcode.WRITE, Opcode.END]
    vxm = program.queues["vxm0"]
    assert vxm[1].bimm == 1 and vxm[1].imm == -3
    assert vxm[2].dst == 32 + 2 and vxm[2].imm == 28
    assert (vxm[3].dtype, vxm[3].stype) == (2, 0)
    assert (vxm[4].dtype, vxm[4].stype, vxm[4].c) == (0, 2, 20)
    assert vxm[-1].op is Opcode.END
    assert program.queues["mxm0"][0].accumulate == 1
    assert program.queues["mxm0"][1].accumulate == 0
    assert program.source["mem_w0"][0] == ("prog.s", 6)
    init, = program.mem_init
    assert init.data.shape == (6, ECP5.lanes) and init.data.dtype == np.uint8
    assert list(init.data[0, :5]) == [1, 2, 253, 127, 0]
    assert (init.data[1:5] == 255).all() and (init.data[5] == 0).all()
    assert program.outputs[1] == OutputRegion(
        "acc32", ("mem_e0", "mem_e1", "mem_w0", "mem_w1"), 0x20, 4, "int32")
    program.check(ECP5)

    text = disassemble(program)
    assert text.count(".config ecp5") == 1
    assert assemble(text, ECP5) == program
    assert assemble(disassemble(program, ECP5), ECP5) == program

    path = tmp_path / "prog.olpu"
    save(program, path)
    loaded = load(path)
    assert loaded == program and loaded.source == program.source
    assert to_bytes(loaded) == path.read_bytes()


def test_format_instruction_examples():
    add = Instruction(Opcode.ADD, dtype=2, stype=2, dst=4, a=0, bimm=1, imm=5)
    assert format_instruction(add) == "ADD.i32 E4, E0, #5"
    read = Instruction(Opcode.READ, dst=3, addr=ECP5.mem_words_per_bank + 16)
    assert format_instruction(read) == f"READ E3, {ECP5.mem_words_per_bank + 16}"
    assert format_instruction(read, ECP5) == "READ E3, b1:16"
    assert format_instruction(Instruction(Opcode.REPEAT, rep_n=3, rep_d=2)) == "REPEAT 3, 2"
    odd = Instruction(Opcode.READ, dst=3, imm=7)
    assert "not expressible: imm=7" in format_instruction(odd)


# --- binary format errors --------------------------------------------------------------------


def test_load_rejects_bad_files(tmp_path):
    data = to_bytes(assemble(SOURCE, ECP5, "prog.s"))
    bad = [
        (b"ELF\x00" + data[4:], "magic"),
        (data[:4] + struct.pack("<H", 99) + data[6:], "version 99"),
        (data[:40] + bytes([data[40] ^ 1]) + data[41:], "checksum"),
        (data[:-1], "checksum"),
        (b"", "magic"),
        (b"OLPU", "truncated"),
    ]
    # truncated structure behind a valid checksum, and junk before the checksum
    for body, words in ((data[:60], "truncated"), (data[:-4] + b"\0", "unexpected bytes")):
        bad.append((body + struct.pack("<I", zlib.crc32(body)), words))
    for i, (blob, words) in enumerate(bad):
        path = tmp_path / f"bad{i}.olpu"
        path.write_bytes(blob)
        with pytest.raises(ProgramFormatError, match=words):
            load(path)
    for n in range(len(data)):  # every truncation
        with pytest.raises(ProgramFormatError):
            from_bytes(data[:n])


# --- assembler error messages ----------------------------------------------------------------

# Numbers that depend on the preset.
_AS, _WPB, _S = ECP5.address_space, ECP5.mem_words_per_bank, ECP5.streams_per_direction
_ACC, _LANES = ECP5.mxm_acc_depth, ECP5.lanes

# (source with '@' just before the token the error must point at, key words of the message)
ERRORS = [
    (".queue vxm0\n  @ADDD.i8 E0, E0, E0", "unknown opcode", "did you mean ADD"),
    (".queue vxm0\n  @ADD.i8 E0, E1", "takes 3 operand", "(dst, a, b)", "got 2"),
    (".queue mem_w0\n  READ E0, 0\n  @REPEAT 1", "rep_n, rep_d, [rep_step]"),
    (f".queue mem_w0\n  READ E0, @{_AS + 8}", f"addr = {_AS + 8}", f"0..{_AS - 1}"),
    (".queue mem_w0\n  NOP @0", "nop_count", ">= 1"),
    (".queue mem_w0\n  NOP 1\n  NOP 2\n  NOP @0", "nop_count", ">= 1"),
    (f".queue mxm0\n  ABC @{_ACC}, E0", f"addr = {_ACC}", f"0..{_ACC - 1}"),
    (".queue vxm0\n  ADD.i32 @E1, E0, E4", "E1", "not aligned"),
    (f".queue vxm0\n  ADD.i8 E0, E0, @E{_S}", "out of range", f"0..{_S - 1}"),
    (".queue vxm0\n  ADD.i8 E0, E0, @#300", "imm = 300", "-128..255"),
    (".queue vxm0\n  ADD.i8 E0, E0, @E99", "E99", "out of range"),
    (".queue @mem_x\n", "unknown queue", "mem_w0", "vxm0"),
    (".queue mem_w0\n  @ADD.i8 E0, E0, E0", "VXM instruction", "mem_w0", "MEM"),
    ("  @READ E0, 0", "before any .queue"),
    (".queue mem_w0\n  @REPEAT 2, 1", "REPEAT must follow"),
    (".queue mem_w0\n  READ E0, 0\n  NOP 1\n  @REPEAT 2, 1", "REPEAT must follow", "NOP"),
    (".queue mxm0\n  IW\n  REPEAT 2, 1, @1", "IW has no field"),
    (f".queue mem_w0\n  READ E0, b1:{_WPB - 8}\n  @REPEAT 9, 1, 1", f"addr = {_AS + 1}"),
    (".queue vxm0\n  ADD@ E0, E0, E0", "needs a type suffix", ".i8, .i16, .i32"),
    (".queue vxm0\n  EXP.@i8 E0, E0", "unsupported suffix", "allowed: .i32"),
    (".queue vxm0\n  ADD.@f32 E0, E0, E0", "unknown suffix '.f32'"),
    (".queue vxm0\n  CVT.i8@ E0, E0", "two type suffixes"),
    (".queue mem_w0\n  READ.@i8 E0, 0", "takes no suffix"),
    (".queue mxm0\n  ABC.@sum 0, E0", "unknown suffix", ".acc"),
    (".queue mxm0\n  LW @b0:1, E0, 1", "MEM addresses"),
    (f".queue mem_w0\n  READ E0, b0:@{_WPB}", f"offset {_WPB}", f"0..{_WPB - 1}"),
    (".queue mem_w0\n  READ E0, @b2:0", "bank 2"),
    (".queue mem_w0\n  READ @3, 0", "expected a stream"),
    (".equ N, 3\n.queue mem_w0\n  READ @N, 0", "expected a stream", "number 3"),
    (".equ S, E1\n.queue mem_w0\n  READ E0, @S", "stream alias, not a number"),
    (".queue mem_w0\n  READ E0, @FOO + 1", "undefined symbol 'FOO'"),
    (".queue mem_w0\n  READ E0, @(1 + 2", "missing ')'"),
    (".queue mem_w0\n  READ E0, @12ab", "bad number"),
    (".queue mem_w0\n  READ E0, 1 @$", "unexpected character '$'"),
    (".queue mem_w0\n  READ E0,@", "missing operand"),
    (".equ N, 1\n.equ @n, 2", "duplicate .equ", "'n'"),
    (".equ @E3, 2", "cannot be a symbol"),
    (".config @small", "small", "'ecp5'"),
    ("@.equx N, 1", "unknown directive", ".equ"),
    ("@.queue vxm0, mem_w0", ".queue takes NAME"),
    ("@.vec 1, 2", ".vec outside a .data block"),
    (".data mem_w0, 0\n.vec " + "1, " * _LANES + "@1", f"{_LANES + 1} values",
     f"{_LANES} lanes"),
    (".data mem_w0, 0\n.vec 1, @256", "256", "-128..255"),
    (".data mem_w0, 0\n.vec @-129", "-129"),
    (f".data mem_w0, b0:{_WPB - 1}\n.vec 1\n@.fill 1, 0", "crosses the end of bank 0"),
    (".data mem_w0, 0\n.fill @0, 1", ".fill count"),
    # Refused before the rows are made (this count used to fill memory for minutes).
    (".data mem_w0, 0\n@.fill 99999999999, 0", "crosses the end of bank 0"),
    (".data @mem_q, 0", "not a MEM slice", "mem_e1"),
    (".data @vxm, 0", "not a MEM slice"),
    ('.load mem_w0, 0, @"nonexistent.npy"', "cannot read", "nonexistent.npy"),
    (".load mem_w0, 0, @nonexistent.npy", "quoted file name"),
    (".output r, mem_e0+@vxm, 0, 4", "not a MEM slice"),
    (".output r, mem_e0@+, 0, 4", "missing slice name"),
    (".output r, mem_e0+@mem_e0, 0, 4, int16", "appears twice"),
    (".output r, @mem_e0, 0, 4, int32", "int32 output needs 4 slice(s)", "got 1"),
    (".output r, mem_e0, 0, 4, @float32", "unknown output dtype", "int16"),
    (f".output r, mem_e0, @b0:{_WPB - 2}, 4", "crosses the end of bank 0"),
    (".output r, mem_e0, 0, @0", "at least 1 word"),
    (".output r, mem_e0, 0, 1\n.output @r, mem_e1, 0, 1", "defined twice"),
    ('.config @"ecp5', "unterminated string"),
]


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c[0].splitlines()[-1][:40])
def test_error_messages(case):
    marked, *words = case
    line = marked[:marked.index("@")].count("\n") + 1
    col = marked.splitlines()[line - 1].index("@") + 1
    assert_error(marked.replace("@", ""), line, col, *words)


def test_error_shows_caret():
    e = asm_error(".queue vxm0\n  ADD.i32 E1, E0, E4\n")
    lines = str(e).splitlines()
    assert lines[1].strip() == "ADD.i32 E1, E0, E4"
    assert lines[2].index("^") - lines[1].index("A") == 8


def test_config_case_and_json_name():
    assemble(".config ECP5\n", ECP5)
    custom = ECP5.replace(name="my-chip")
    assemble('.config "my-chip"\n', custom)
    assert assemble(disassemble(assemble(".queue vxm0\nNOP 1\n", custom)), custom).queues


# --- .load, SRAM images and outputs ----------------------------------------------------------


def test_load_npy(tmp_path):
    weights = np.arange(-6, 9, dtype=np.int8).reshape(3, 5)
    np.save(tmp_path / "w.npy", weights)
    np.save(tmp_path / "f.npy", weights.astype(np.float32))
    np.save(tmp_path / "wide.npy", np.zeros((2, ECP5.lanes + 1), dtype=np.uint8))
    src = tmp_path / "prog.s"
    src.write_text('.load mem_w1, b1:4, "w.npy"\n')
    program = assemble_file(src, ECP5)
    init, = program.mem_init
    assert init.slice == "mem_w1" and init.addr == ECP5.mem_words_per_bank + 4
    assert init.data.shape == (3, ECP5.lanes)
    assert (init.data[:, :5].view(np.int8) == weights).all() and (init.data[:, 5:] == 0).all()
    assert assemble(disassemble(program), ECP5) == program
    for name in ("f.npy", "wide.npy"):
        src.write_text(f'.load mem_w1, 0, "{name}"\n')
        with pytest.raises(AsmError, match="int8 or uint8"):
            assemble_file(src, ECP5)
    with pytest.raises(AsmError, match="cannot read source file"):
        assemble_file(tmp_path / "missing.s", ECP5)


def test_read_output_int8_and_int32():
    cfg = ECP5
    program = assemble(".data mem_e0, b1:3\n.vec 1, -2, 3\n.fill 2, -128\n"
                       ".output small, mem_e0, b1:3, 3\n"
                       ".output big, mem_w1+mem_w0+mem_e0+mem_e1, 8, 2, int32\n"
                       ".output half, mem_w1+mem_w0, 8, 2, int16\n", cfg)
    sram = np.zeros(sram_shape(cfg), dtype=np.uint8)
    write_mem_init(sram, program, cfg)
    small = read_output(sram, program.outputs[0], cfg)
    assert small.dtype == np.int8 and small.shape == (3, cfg.lanes)
    assert list(small[0, :4]) == [1, -2, 3, 0] and (small[1:] == -128).all()

    values = np.arange(2 * cfg.lanes, dtype=np.int64).reshape(2, cfg.lanes)
    values = (values * 0x01020305 - 2**31).astype(np.int32)
    raw = values.astype("<i4").view(np.uint8).reshape(2, cfg.lanes, 4)
    for k, name in enumerate(program.outputs[1].slices):
        sram[cfg.slice_by_name[name].index, 0, 8:10] = raw[..., k]
    big = read_output(sram, program.outputs[1], cfg)
    assert big.dtype == np.int32 and (big == values).all()
    half = read_output(sram, program.outputs[2], cfg)
    assert half.dtype == np.int16 and (half == values.astype(np.int16)).all()

    with pytest.raises(ProgramError, match="crosses the end of bank"):
        read_output(sram, OutputRegion("x", ("mem_e0",), cfg.mem_words_per_bank - 1, 2), cfg)
    with pytest.raises(ProgramError, match="SRAM array"):
        read_output(sram[:1], program.outputs[0], cfg)


def test_program_check():
    program = assemble(".queue vxm0\nADD.i8 E0, E0, E0\n", ECP5)
    program.check(get_config("ecp5"))
    with pytest.raises(ProgramError, match=r"'ecp5'.*'small'"):
        program.check(get_config("small"))
    bad = Program(program.config_name, program.config_hash, program.lanes,
                  {"mem_w0": [Instruction(Opcode.ADD)]}, source={"mem_w0": [("x.s", 7)]})
    with pytest.raises(ProgramError, match=r"x\.s:7: queue mem_w0, instruction 0: ADD is a VXM"):
        bad.check(ECP5)
    for init in (MemInit("mem_w0", 0, np.zeros((1, 3), np.uint8)),
                 MemInit("vxm", 0, np.zeros((1, ECP5.lanes), np.uint8)),
                 MemInit("mem_w0", ECP5.address_space, np.zeros((1, ECP5.lanes), np.uint8))):
        with pytest.raises(ProgramError):
            Program("ecp5", ECP5.config_hash, ECP5.lanes, {}, [init]).check(ECP5)


def test_opcodes_the_config_leaves_out_are_refused_by_assembler_and_golden_model():
    from firmware.program import Program
    from openlpu.isa import Instruction, Opcode
    from sim_models.golden import GoldenModel

    lean = ECP5.replace(name="lean", vxm_special_alus=0, vxm_multiplier=False)
    for line, field in (("EXP.i32 E0, E4", "vxm_special_alus = 0"),
                        ("MUL.i8 E0, E1, E2", "vxm_multiplier = False")):
        with pytest.raises(AsmError, match=field):
            assemble(f".queue vxm0\n  {line}\n", lean)
    program = Program(config_name=lean.name, config_hash=lean.config_hash, lanes=lean.lanes,
                      queues={"vxm0": [Instruction(Opcode.MUL, dtype=2, stype=2)]},
                      mem_init=[], outputs=[], source={})
    with pytest.raises(Exception, match="MUL needs the VXM multiplier.*vxm_multiplier"):
        GoldenModel(lean, program)


def test_a_chip_without_sxms_refuses_their_queues():
    from firmware.program import Program, ProgramError

    bare = ECP5.replace(name="bare", sxm=False)
    with pytest.raises(AsmError, match=r"unknown queue 'sxm_e' \(this config has no SXMs: "
                                       r"sxm = false\)"):
        assemble(".queue sxm_e\n  SHIFT.i8 E0, E0, #1\n", bare)
    program = assemble(".queue sxm_e\n  SHIFT.i8 E0, E0, #1\n", ECP5)
    with pytest.raises(ProgramError, match="sxm = false"):
        Program(bare.name, bare.config_hash, bare.lanes, program.queues, [], []).check(bare)
