"""The OpenLPU disassembler: a :class:`~firmware.program.Program` back to assembly text.

The text is written in the syntax of :mod:`firmware.asm` (mnemonics, suffixes and operand
order all come from :data:`openlpu.isa.OPS`), so that ``assemble(disassemble(p), config)``
gives back a program equal to ``p`` (``source`` aside).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from openlpu.config import PRESETS, ChipConfig
from openlpu.isa import DType, Instruction, OperandKind, Unit, operand_dtype, stream_name

from .asm import OPTIONAL_OPERANDS
from .program import MemInit, OutputRegion, Program, ProgramError, split_address

__all__ = ["disassemble", "format_instruction"]

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")


def _label(value: int) -> str:
    try:
        return DType(value).label
    except ValueError:
        return f"?{value}"  # not a DType: the assembler will reject it


def _address(addr: int, config: ChipConfig | None) -> str:
    if config is None or not 0 <= addr < config.address_space:
        return str(addr)
    bank, offset = split_address(addr, config)
    return f"b{bank}:{offset}"


def _mnemonic(instr: Instruction) -> tuple[str, dict[str, int]]:
    """The mnemonic with its suffix, and the fields the suffix conveys."""
    spec = instr.spec
    if spec.suffix == "dtype":
        probe = Instruction(instr.op, dtype=instr.dtype, stype=instr.dtype)
        try:
            stype = operand_dtype(probe, "a").value
        except ValueError:
            stype = instr.dtype
        return f"{spec.name}.{_label(instr.dtype)}", {"dtype": instr.dtype, "stype": stype}
    if spec.suffix == "cvt":
        return (f"{spec.name}.{_label(instr.dtype)}.{_label(instr.stype)}",
                {"dtype": instr.dtype, "stype": instr.stype})
    if spec.suffix == "acc":
        return spec.name + (".acc" if instr.accumulate else ""), \
            {"accumulate": instr.accumulate}
    return spec.name, {}


def format_instruction(instr: Instruction, config: ChipConfig | None = None) -> str:
    """One line of assembly for an instruction.

    Parameters
    ----------
    instr : Instruction
        The instruction.
    config : ChipConfig, optional
        If given, MEM addresses are written ``bN:OFFSET`` for this config's bank split;
        otherwise as plain integers.

    Returns
    -------
    str
        E.g. ``ADD.i32 E4, E0, #5`` or ``READ E3, b1:16``. Fields the text cannot express
        (set although the operands do not use them) are listed in a trailing comment.
    """
    spec = instr.spec
    text, conveyed = _mnemonic(instr)
    operands = []
    for name, kind in spec.operands:
        value = getattr(instr, name)
        if kind is OperandKind.STREAM:
            operands.append(stream_name(value))
            conveyed[name] = value
        elif kind is OperandKind.STREAM_OR_IMM:
            if instr.bimm:
                operands.append(f"#{instr.imm}")
                conveyed.update(bimm=1, imm=instr.imm)
            else:
                operands.append(stream_name(value))
                conveyed[name] = value
        elif kind is OperandKind.ADDR:
            operands.append(_address(value, config if spec.unit is Unit.MEM else None))
            conveyed[name] = value
        else:
            operands.append(str(value))
            conveyed[name] = value
    while operands:  # leave out trailing operands that have their default value
        name = spec.operands[len(operands) - 1][0]
        if name not in OPTIONAL_OPERANDS or getattr(instr, name) != OPTIONAL_OPERANDS[name]:
            break
        operands.pop()
    if operands:
        text += " " + ", ".join(operands)
    lost = [f"{f.name}={getattr(instr, f.name)}" for f in dataclasses.fields(instr)
            if f.name != "op" and getattr(instr, f.name) != conveyed.get(f.name, 0)]
    if lost:
        text += "  ; not expressible: " + ", ".join(lost)
    return text


def _name(text: str) -> str:
    return text if _IDENT_RE.match(text) else '"' + text + '"'


def _data_lines(init: MemInit, config: ChipConfig | None) -> list[str]:
    lines = [f".data {init.slice}, {_address(init.addr, config)}"]
    rows = init.data.view(np.int8) if init.data.dtype == np.uint8 else init.data
    i = 0
    while i < len(rows):
        row = rows[i]
        if np.all(row == row[0]):
            j = i + 1
            while j < len(rows) and np.array_equal(rows[j], row):
                j += 1
            lines.append(f"    .fill {j - i}, {int(row[0])}")
            i = j
            continue
        values = [int(v) for v in row]
        while values and values[-1] == 0:
            values.pop()
        lines.append("    .vec " + ", ".join(map(str, values)))
        i += 1
    return lines


def _output_line(region: OutputRegion, config: ChipConfig | None) -> str:
    return (f".output {region.name}, {'+'.join(region.slices)}, "
            f"{_address(region.addr, config)}, {region.words}, {region.dtype}")


def disassemble(program: Program, config: ChipConfig | None = None) -> str:
    """Assembly text for a whole program.

    Parameters
    ----------
    program : Program
        The program.
    config : ChipConfig, optional
        Used to write MEM addresses as ``bN:OFFSET``. Defaults to the preset named by
        ``program.config_name`` if its hash matches; otherwise addresses are plain integers.

    Returns
    -------
    str
        Source that :func:`firmware.asm.assemble` turns back into an equal program.

    Raises
    ------
    ProgramError
        ``config`` is not the config the program was assembled for.
    """
    if config is None:
        preset = PRESETS.get(program.config_name)
        if preset is not None and preset.config_hash == program.config_hash:
            config = preset
    elif config.config_hash != program.config_hash:
        raise ProgramError(f"program was assembled for config {program.config_name!r} (hash "
                           f"{program.config_hash}), not {config.name!r} (hash "
                           f"{config.config_hash})")
    lines = [f"; OpenLPU program for config {program.config_name} (hash "
             f"{program.config_hash}, {program.lanes} lanes)",
             f".config {_name(program.config_name)}"]
    for queue, instrs in program.queues.items():
        lines += ["", f".queue {queue}"]
        lines += ["    " + format_instruction(i, config) for i in instrs]
    if program.mem_init:
        lines.append("")
        for init in program.mem_init:
            lines += _data_lines(init, config)
    if program.outputs:
        lines.append("")
        lines += [_output_line(o, config) for o in program.outputs]
    return "\n".join(lines) + "\n"
