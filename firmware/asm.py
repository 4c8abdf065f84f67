"""The OpenLPU assembler: assembly text to a :class:`~firmware.program.Program`.

The instruction syntax is derived from :data:`openlpu.isa.OPS`: a mnemonic (plus the
suffix its :attr:`OpSpec.suffix` asks for) followed by the operands of ``OpSpec.operands`` in
that order, destination first. Field ranges are checked by :func:`openlpu.isa.validate` and
:func:`openlpu.isa.check_queue_program`; their messages are reported at the offending token.

Syntax (case-insensitive mnemonics, directives, stream, queue and slice names; ``;`` starts a
comment)::

    .config ecp5                  ; optional; must name the config being assembled for
    .equ ROWS, 16                 ; integer constant: 10, -3, 0x1f, 0b101, expressions + - * ( )
    .equ X, E3                    ; stream alias
    .queue mem_w0                 ; following instructions go to this queue (reopen: append)
        READ   X, b1:ROWS+1       ; address = bank 1, offset 17 (or a plain full address)
        REPEAT 15, 1, 1           ; n, d[, step]
        NOP    4
        END                       ; appended automatically when missing
    .queue vxm0
        ADD.i32    E4, E0, E8     ; .i8 / .i16 / .i32 where OpSpec.suffix == "dtype"
        ADD.i8     E1, E1, #-3    ; #imm for a stream-or-immediate operand
        CVT.i32.i8 E4, E0         ; .<dtype>.<stype>
        ABC.acc    3, W2          ; (in an MXM queue) optional .acc
    .data mem_w0, b0:0            ; initial SRAM: the following .vec/.fill lines are words
        .vec  1, 2, -3, 0x7f      ; one word, up to `lanes` bytes (-128..255), zero-filled
        .fill 4, 0                ; 4 words of 0
        .vec                      ; a word of zeros
    .load mem_w1, b0:0, "w.npy"   ; 2-D int8/uint8 [words, <= lanes], relative to the source
    .output acc, mem_e0+mem_e1+mem_e2+mem_e3, 0x20, 4, int32   ; dtype default int8

Integer operands may also be written ``#n``. ``bN:offset`` is accepted for MEM addresses only
(an MXM ``addr`` is a weight row or accumulator entry). ``.config`` and ``.queue`` names may be
quoted (``.config "my-chip"``). ``.equ`` names are case-insensitive and defined before use.
``.vec``/``.fill`` continue the latest ``.data`` block until an instruction or another
``.queue``/``.data``/``.load``/``.output`` ends it.
Errors raise :class:`AsmError`, whose message starts with ``file:line:col:``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from openlpu.config import ChipConfig
from openlpu.isa import (
    OPS_BY_NAME,
    Direction,
    DType,
    Instruction,
    IsaError,
    Opcode,
    OperandKind,
    OpSpec,
    Unit,
    check_queue_program,
    operand_dtype,
    stream_code,
    stream_parts,
    unit_for_slice,
)

from .program import (
    OUTPUT_DTYPES,
    MemInit,
    OutputRegion,
    Program,
    ProgramError,
    check_span,
    join_address,
    mem_slice,
)

__all__ = ["AsmError", "BYTE_RANGE", "OPTIONAL_OPERANDS", "assemble", "assemble_file"]

#: Values a ``.vec`` / ``.fill`` byte may take (int8 or uint8).
BYTE_RANGE = (-128, 255)
#: Operands that may be left out at the end of an instruction, with their default.
OPTIONAL_OPERANDS = {"rep_step": 0}
#: Queue-less directives and the operands they take (for messages).
DIRECTIVES = {
    ".config": "NAME", ".equ": "NAME, VALUE", ".queue": "NAME", ".data": "SLICE, ADDR",
    ".vec": "BYTE, ...", ".fill": "WORDS, BYTE", ".load": 'SLICE, ADDR, "FILE.npy"',
    ".output": "NAME, SLICE[+SLICE...], ADDR, WORDS[, DTYPE]",
}

_STREAM_RE = re.compile(r"([EW])(\d+)$", re.I)
_BANK_RE = re.compile(r"b(\d+)$", re.I)
_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>;.*)
  | (?P<str>"[^"]*")
  | (?P<badstr>"[^"]*$)
  | (?P<num>(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*)(?![A-Za-z0-9_.]))
  | (?P<badnum>[0-9][A-Za-z0-9_.]*)
  | (?P<ident>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<punct>[,:+\-*#()])
""", re.X)


class AsmError(ValueError):
    """An assembly source error, located as ``file:line:col``.

    The message is ``file:line:col: what is wrong`` followed by the source line and a caret
    under the offending column.
    """

    def __init__(self, filename: str, line: int, col: int, message: str, text: str = ""):
        self.filename, self.line, self.col, self.message = filename, line, col, message
        where = f"{filename}:{line}:{col}: " if line else f"{filename}: "
        full = where + message
        if text.strip():
            full += f"\n    {text.rstrip()}\n    {' ' * (col - 1)}^"
        super().__init__(full)


@dataclass
class _Token:
    kind: str  # ident, num, str, punct
    text: str
    col: int  # 1-based

    @property
    def value(self) -> int | str:
        if self.kind == "num":
            text = self.text.replace("_", "")
            return int(text, 0) if text[1:2].isalpha() else int(text, 10)
        if self.kind == "str":
            return self.text[1:-1]
        return self.text


@dataclass
class _Group:
    """One comma-separated operand: its tokens and the column where it starts."""

    tokens: list[_Token]
    col: int


@dataclass
class _Stream:
    code: int


@dataclass
class _Loc:
    """Where an instruction came from: line, its text, mnemonic column, operand columns."""

    line: int
    text: str
    col: int
    cols: dict[str, int]


@dataclass
class _DataBlock:
    slice: str
    addr: int
    rows: list[np.ndarray] = field(default_factory=list)


class _Assembler:
    def __init__(self, config: ChipConfig, filename: str):
        self.config = config
        self.filename = filename
        self.base_dir = Path(filename).parent
        self.symbols: dict[str, int | _Stream] = {}
        self.queues: dict[str, list[Instruction]] = {}
        self.locs: dict[str, list[_Loc]] = {}
        self.queue: str | None = None
        self.block: _DataBlock | None = None
        self.mem_init: list[MemInit] = []
        self.outputs: list[OutputRegion] = []
        self.lineno = 0
        self.text = ""

    # --- errors and lexing -----------------------------------------------------------------

    def error(self, col: int, message: str) -> AsmError:
        return AsmError(self.filename, self.lineno, col, message, self.text.replace("\t", " "))

    def tokenize(self, text: str) -> list[_Token]:
        tokens, pos = [], 0
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if m is None:
                raise self.error(pos + 1, f"unexpected character {text[pos]!r}")
            kind = m.lastgroup
            if kind == "badstr":
                raise self.error(pos + 1, "unterminated string")
            if kind == "badnum":
                raise self.error(pos + 1, f"bad number {m.group()!r}")
            if kind == "comment":
                break
            if kind != "ws":
                tokens.append(_Token(kind, m.group(), pos + 1))
            pos = m.end()
        return tokens

    def split_groups(self, tokens: list[_Token]) -> list[_Group]:
        if not tokens:
            return []
        groups, current = [], []
        for tok in tokens + [_Token("punct", ",", len(self.text) + 1)]:
            if tok.kind == "punct" and tok.text == ",":
                if not current:
                    raise self.error(tok.col, "missing operand before ','"
                                     if tok.col <= len(self.text) else "missing operand")
                groups.append(_Group(current, current[0].col))
                current = []
            else:
                current.append(tok)
        return groups

    # --- operand parsing -------------------------------------------------------------------

    def expr(self, group: _Group) -> int:
        """Evaluate an integer expression: numbers, .equ constants, + - * and parentheses."""
        tokens = group.tokens
        pos = 0

        def peek(*texts):
            return pos < len(tokens) and tokens[pos].kind == "punct" and \
                tokens[pos].text in texts

        def atom():
            nonlocal pos
            if pos >= len(tokens):
                raise self.error(tokens[-1].col + len(tokens[-1].text),
                                 "expected a number after this")
            tok = tokens[pos]
            pos += 1
            if tok.kind == "punct" and tok.text in "+-":
                value = atom()
                return -value if tok.text == "-" else value
            if tok.kind == "punct" and tok.text == "(":
                value = sum_()
                if not peek(")"):
                    raise self.error(tokens[pos].col if pos < len(tokens) else tok.col,
                                     "missing ')'")
                pos += 1
                return value
            if tok.kind == "num":
                return tok.value
            if tok.kind == "ident":
                return self.int_symbol(tok)
            raise self.error(tok.col, f"expected a number, not {tok.text!r}")

        def product():
            nonlocal pos
            value = atom()
            while peek("*"):
                pos += 1
                value *= atom()
            return value

        def sum_():
            nonlocal pos
            value = product()
            while peek("+", "-"):
                sign = tokens[pos].text
                pos += 1
                value = value + product() if sign == "+" else value - product()
            return value

        value = sum_()
        if pos < len(tokens):
            raise self.error(tokens[pos].col, f"unexpected {tokens[pos].text!r} in expression")
        return value

    def int_symbol(self, tok: _Token) -> int:
        value = self.symbols.get(tok.text.upper())
        if value is None:
            if _STREAM_RE.match(tok.text):
                raise self.error(tok.col, f"expected a number, not the stream {tok.text}")
            raise self.error(tok.col, f"undefined symbol {tok.text!r}")
        if isinstance(value, _Stream):
            raise self.error(tok.col, f"{tok.text!r} is a stream alias, not a number")
        return value

    def stream(self, group: _Group, what: str) -> int:
        tok = group.tokens[0]
        if len(group.tokens) != 1 or tok.kind != "ident":
            raise self.error(group.col, f"expected a stream (E<n> or W<n>) for {what}")
        m = _STREAM_RE.match(tok.text)
        if m:
            direction = Direction.EAST if m.group(1).upper() == "E" else Direction.WEST
            index = int(m.group(2))
            code = stream_code(direction, index & 31)
            if stream_parts(code)[1] != index:
                raise self.error(tok.col, f"stream {tok.text} is out of range for config "
                                 f"{self.config.name!r}; streams 0.."
                                 f"{self.config.streams_per_direction - 1} per direction")
            return code
        value = self.symbols.get(tok.text.upper())
        if isinstance(value, _Stream):
            return value.code
        if value is None:
            raise self.error(tok.col, f"undefined symbol {tok.text!r} (expected a stream "
                             f"E<n> or W<n> for {what})")
        raise self.error(tok.col, f"expected a stream for {what}, but {tok.text!r} is the "
                         f"number {value}")

    def address(self, group: _Group, what: str, banked: bool = True) -> int:
        toks = group.tokens
        m = _BANK_RE.match(toks[0].text) if toks[0].kind == "ident" else None
        if not (m and len(toks) > 1 and toks[1].text == ":"):
            return self.expr(group)
        if not banked:
            raise self.error(group.col, f"bN:OFFSET is for MEM addresses; write {what} as "
                             "a plain number")
        if len(toks) == 2:
            raise self.error(toks[1].col, "missing offset after ':'")
        bank = int(m.group(1))
        if bank >= self.config.mem_banks:
            raise self.error(toks[0].col, f"bank {bank} does not exist; banks 0.."
                             f"{self.config.mem_banks - 1}")
        offset = self.expr(_Group(toks[2:], toks[2].col))
        if not 0 <= offset < self.config.mem_words_per_bank:
            raise self.error(toks[2].col, f"offset {offset} is out of range for config "
                             f"{self.config.name!r}: 0..{self.config.mem_words_per_bank - 1} "
                             "words per bank")
        return join_address(bank, offset, self.config)

    def immediate(self, group: _Group) -> int:
        toks = group.tokens
        if toks[0].kind == "punct" and toks[0].text == "#":
            if len(toks) == 1:
                raise self.error(toks[0].col, "missing value after '#'")
            return self.expr(_Group(toks[1:], toks[1].col))
        return self.expr(group)

    def name(self, group: _Group, what: str) -> _Token:
        if len(group.tokens) != 1 or group.tokens[0].kind not in ("ident", "str"):
            raise self.error(group.col, f"expected {what}")
        return group.tokens[0]

    def mem_slice(self, tok: _Token) -> str:
        name = str(tok.value).lower()
        try:
            mem_slice(name, self.config)
        except ProgramError as e:
            raise self.error(tok.col, str(e)) from None
        return name

    def span(self, col: int, addr: int, words: int, what: str) -> None:
        try:
            check_span(addr, words, self.config, what)
        except ProgramError as e:
            raise self.error(col, str(e)) from None

    def expect(self, head: _Token, groups: list[_Group], required: int, optional: int = 0):
        if not required <= len(groups) <= required + optional:
            key = head.text.lower()
            wanted = DIRECTIVES.get(key, "")
            raise self.error(head.col, f"{key} takes {wanted or 'no operands'}; got "
                             f"{len(groups)} operand(s)")

    # --- instructions ----------------------------------------------------------------------

    def suffix_fields(self, spec: OpSpec, head: _Token) -> dict[str, int]:
        parts = head.text.split(".")
        suffixes = parts[1:]
        cols = [head.col + len(".".join(parts[:i + 1])) + 1 for i in range(len(suffixes))]
        allowed = [f".{d.label}" for d in spec.dtypes]
        if spec.suffix == "dtype":
            want, example = 1, f"{spec.name}{allowed[0]}"
        elif spec.suffix == "cvt":
            want, example = 2, f"{spec.name}{allowed[-1]}{allowed[0]}"
        elif spec.suffix == "acc":
            want, example = 1, f"{spec.name}.acc"
        else:
            want, example = 0, spec.name
        if len(suffixes) > want:
            what = "takes no suffix" if want == 0 else f"takes {want} suffix(es), as in " \
                f"{example}"
            raise self.error(cols[want], f"{spec.name} {what}")
        if spec.suffix == "acc":
            if suffixes and suffixes[0].lower() != "acc":
                raise self.error(cols[0], f"unknown suffix '.{suffixes[0]}' for {spec.name}; "
                                 "the only suffix is .acc (accumulate)")
            return {"accumulate": int(bool(suffixes))}
        if spec.suffix not in ("dtype", "cvt"):
            return {}
        if len(suffixes) < want:
            raise self.error(head.col + len(head.text), f"{spec.name} needs "
                             f"{'a type suffix' if want == 1 else 'two type suffixes'} "
                             f"(e.g. {example}); allowed: {', '.join(allowed)}")
        types = []
        for text, col in zip(suffixes, cols, strict=True):
            dtype = next((d for d in spec.dtypes if d.label == text.lower()), None)
            if dtype is None:
                kind = "unsupported" if any(d.label == text.lower() for d in DType) \
                    else "unknown"
                raise self.error(col, f"{kind} suffix '.{text}' for {spec.name}; allowed: "
                                 f"{', '.join(allowed)}")
            types.append(dtype.value)
        if spec.suffix == "cvt":
            return {"dtype": types[0], "stype": types[1]}
        # The source type is the a operand's element type: dtype, except where the ISA fixes
        # it (REQ always reads int32).
        probe = Instruction(spec.opcode, dtype=types[0], stype=types[0])
        return {"dtype": types[0], "stype": operand_dtype(probe, "a").value}

    def instruction(self, head: _Token, groups: list[_Group]) -> None:
        mnemonic = head.text.split(".")[0].upper()
        spec = OPS_BY_NAME.get(mnemonic)
        if spec is None:
            close = difflib.get_close_matches(mnemonic, OPS_BY_NAME, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise self.error(head.col, f"unknown opcode {mnemonic!r}{hint}")
        if self.queue is None:
            raise self.error(head.col, f"{spec.name} comes before any .queue; start a queue "
                             f"with .queue NAME ({self.queue_names()})")
        self.block = None
        values = self.suffix_fields(spec, head)
        operands = spec.operands
        required = len(operands)
        while required and operands[required - 1][0] in OPTIONAL_OPERANDS:
            required -= 1
        if not required <= len(groups) <= len(operands):
            names = ", ".join(f"[{f}]" if i >= required else f
                              for i, (f, _) in enumerate(operands))
            raise self.error(head.col, f"{spec.name} takes {len(operands)} operand(s) "
                             f"({names or 'none'}), got {len(groups)}")
        cols = {}
        for (fname, kind), group in zip(operands, groups, strict=False):
            cols[fname] = group.col
            what = f"operand {fname} of {spec.name}"
            if kind is OperandKind.STREAM:
                values[fname] = self.stream(group, what)
            elif kind is OperandKind.STREAM_OR_IMM:
                if group.tokens[0].text == "#":
                    values.update(bimm=1, imm=self.immediate(group))
                    cols["imm"] = cols["bimm"] = group.col
                else:
                    values[fname] = self.stream(group, what)
            elif kind is OperandKind.ADDR:
                values[fname] = self.address(group, what, banked=spec.unit is Unit.MEM)
            else:
                values[fname] = self.immediate(group)
        for fname, _ in operands[len(groups):]:
            values[fname] = OPTIONAL_OPERANDS[fname]
        instr = Instruction(spec.opcode, **values)
        queue = self.queues.setdefault(self.queue, [])
        locs = self.locs.setdefault(self.queue, [])
        loc = _Loc(self.lineno, self.text, head.col, cols)
        # Check it now, so that errors come in line order; a REPEAT with the instruction it
        # repeats. run() checks each whole queue again.
        context = 1 if instr.op is Opcode.REPEAT else 0
        self.check_queue(queue[len(queue) - context:] + [instr],
                         locs[len(locs) - context:] + [loc], self.queue)
        queue.append(instr)
        locs.append(loc)

    def check_queue(self, instrs: list[Instruction], locs: list[_Loc], queue: str) -> None:
        unit = unit_for_slice(self.config.queue_by_name[queue].slice.kind)
        try:
            check_queue_program(instrs, unit, self.config, queue)
        except IsaError as e:
            loc = locs[e.index if e.index is not None else -1]
            self.lineno, self.text = loc.line, loc.text
            raise self.error(loc.cols.get(e.field, loc.col), str(e)) from None

    def queue_names(self) -> str:
        return "queues: " + ", ".join(self.config.queue_by_name)

    # --- directives ------------------------------------------------------------------------

    def directive(self, head: _Token, groups: list[_Group]) -> None:
        key = head.text.lower()
        handler = {
            ".config": self.d_config, ".equ": self.d_equ, ".queue": self.d_queue,
            ".data": self.d_data, ".vec": self.d_vec, ".fill": self.d_fill,
            ".load": self.d_load, ".output": self.d_output,
        }.get(key)
        if handler is None:
            close = difflib.get_close_matches(key, DIRECTIVES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise self.error(head.col, f"unknown directive {head.text!r}{hint}")
        if key not in (".vec", ".fill", ".equ", ".config"):
            self.close_block()
        handler(head, groups)

    def d_config(self, head, groups):
        self.expect(head, groups, 1)
        tok = self.name(groups[0], "a config name")
        if str(tok.value).lower() != self.config.name.lower():
            raise self.error(tok.col, f"source is for config {tok.value!r}, but it is being "
                             f"assembled for config {self.config.name!r}")

    def d_equ(self, head, groups):
        self.expect(head, groups, 2)
        tok = self.name(groups[0], "a symbol name")
        key = tok.text.upper()
        if tok.kind != "ident" or "." in key or _STREAM_RE.match(key):
            raise self.error(tok.col, f"{tok.text!r} cannot be a symbol name")
        if key in self.symbols:
            raise self.error(tok.col, f"duplicate .equ: {tok.text!r} is already defined")
        value_group = groups[1]
        first = value_group.tokens[0]
        is_stream = len(value_group.tokens) == 1 and first.kind == "ident" and (
            _STREAM_RE.match(first.text) or isinstance(self.symbols.get(first.text.upper()),
                                                       _Stream))
        if is_stream:
            self.symbols[key] = _Stream(self.stream(value_group, f"alias {tok.text}"))
        else:
            self.symbols[key] = self.expr(value_group)

    def d_queue(self, head, groups):
        self.expect(head, groups, 1)
        tok = self.name(groups[0], "a queue name")
        name = str(tok.value).lower()
        if name not in self.config.queue_by_name:
            raise self.error(tok.col, self.config.unknown_queue(name))
        self.queue = name

    def d_data(self, head, groups):
        self.expect(head, groups, 2)
        name = self.mem_slice(self.name(groups[0], "a MEM slice name"))
        addr = self.address(groups[1], ".data address")
        self.span(groups[1].col, addr, 1, ".data")
        self.block = _DataBlock(name, addr)

    def data_block(self, head, words: int) -> _DataBlock:
        """The open .data block, checked to have room for ``words`` more words."""
        if self.block is None:
            raise self.error(head.col, f"{head.text.lower()} outside a .data block; start one "
                             "with .data SLICE, ADDR")
        block = self.block
        self.span(head.col, block.addr, len(block.rows) + words,
                  f".data block of {block.slice} at {block.addr}")
        return block

    def add_rows(self, head, rows: list[np.ndarray]) -> None:
        self.data_block(head, len(rows)).rows.extend(rows)

    def byte(self, group: _Group) -> int:
        value = self.expr(group)
        lo, hi = BYTE_RANGE
        if not lo <= value <= hi:
            raise self.error(group.col, f"byte value {value} is out of range {lo}..{hi}")
        return value & 0xFF

    def d_vec(self, head, groups):
        lanes = self.config.lanes
        if len(groups) > lanes:
            raise self.error(groups[lanes].col, f".vec has {len(groups)} values, but config "
                             f"{self.config.name!r} has {lanes} lanes")
        row = np.zeros(lanes, dtype=np.uint8)
        row[:len(groups)] = [self.byte(g) for g in groups]
        self.add_rows(head, [row])

    def d_fill(self, head, groups):
        self.expect(head, groups, 2)
        count = self.expr(groups[0])
        if count < 1:
            raise self.error(groups[0].col, f".fill count must be >= 1, not {count}")
        value = self.byte(groups[1])
        # Checked before the rows are made: a count far past the bank would fill memory.
        block = self.data_block(head, count)
        block.rows.extend(np.full((count, self.config.lanes), value, dtype=np.uint8))

    def d_load(self, head, groups):
        self.expect(head, groups, 3)
        name = self.mem_slice(self.name(groups[0], "a MEM slice name"))
        addr = self.address(groups[1], ".load address")
        tok = groups[2].tokens[0]
        if len(groups[2].tokens) != 1 or tok.kind != "str":
            raise self.error(groups[2].col, 'expected a quoted file name, e.g. "w.npy"')
        path = self.base_dir / tok.value
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise self.error(tok.col, f"cannot read {str(path)!r}: {e}") from None
        lanes = self.config.lanes
        if array.dtype not in (np.int8, np.uint8) or array.ndim != 2 or \
                not 1 <= array.shape[1] <= lanes or array.shape[0] < 1:
            raise self.error(tok.col, f"{str(path)!r} must hold a 2-D int8 or uint8 array "
                             f"[words, <= {lanes}], not {array.dtype} {list(array.shape)}")
        self.span(groups[1].col, addr, array.shape[0], f".load of {tok.value!r}")
        data = np.zeros((array.shape[0], lanes), dtype=np.uint8)
        data[:, :array.shape[1]] = array.view(np.uint8)
        self.mem_init.append(MemInit(name, addr, data))

    def d_output(self, head, groups):
        self.expect(head, groups, 4, 1)
        tok = self.name(groups[0], "an output name")
        if tok.kind != "ident" or not tok.text.isidentifier():
            raise self.error(tok.col, f"output name {tok.text!r} must be an identifier")
        if any(o.name == tok.text for o in self.outputs):
            raise self.error(tok.col, f"output {tok.text!r} is defined twice")
        slice_toks = groups[1].tokens
        names = []
        for i, st in enumerate(slice_toks):
            if i % 2 and st.text != "+" or i % 2 == 0 and st.kind != "ident":
                raise self.error(st.col, "expected MEM slice names joined by '+', e.g. "
                                 "mem_e0+mem_e1")
            if i % 2 == 0:
                names.append(self.mem_slice(st))
                if names.count(names[-1]) > 1:
                    raise self.error(st.col, f"slice {st.text} appears twice")
        if len(slice_toks) % 2 == 0:
            raise self.error(slice_toks[-1].col, "missing slice name after '+'")
        addr = self.address(groups[2], ".output address")
        words = self.expr(groups[3])
        dtype = "int8"
        if len(groups) == 5:
            dtype = self.name(groups[4], "an output dtype").text.lower()
            if dtype not in OUTPUT_DTYPES:
                raise self.error(groups[4].col, f"unknown output dtype {dtype!r}; allowed: "
                                 f"{', '.join(OUTPUT_DTYPES)}")
        nbytes = np.dtype(dtype).itemsize
        if len(names) != nbytes:
            raise self.error(groups[1].col, f"a {dtype} output needs {nbytes} slice(s) (byte "
                             f"k of each element from slice k), got {len(names)}")
        if words < 1:
            raise self.error(groups[3].col, f"output needs at least 1 word, not {words}")
        self.span(groups[2].col, addr, words, f"output {tok.text!r}")
        self.outputs.append(OutputRegion(tok.text, tuple(names), addr, words, dtype))

    def close_block(self) -> None:
        if self.block is not None and self.block.rows:
            self.mem_init.append(MemInit(self.block.slice, self.block.addr,
                                         np.stack(self.block.rows)))
        self.block = None

    # --- driver ----------------------------------------------------------------------------

    def line(self, text: str) -> None:
        self.text = text
        tokens = self.tokenize(text)
        if not tokens:
            return
        head = tokens[0]
        if head.kind != "ident":
            raise self.error(head.col, f"expected an instruction or directive, not "
                             f"{head.text!r}")
        groups = self.split_groups(tokens[1:])
        if head.text.startswith("."):
            self.directive(head, groups)
        else:
            self.instruction(head, groups)

    def run(self, text: str) -> Program:
        for self.lineno, line in enumerate(text.splitlines(), 1):
            self.line(line)
        self.close_block()
        queues, source = {}, {}
        for q in self.config.queues:
            instrs = self.queues.get(q.name)
            if not instrs:
                continue
            locs = self.locs[q.name]
            if instrs[-1].op is not Opcode.END:
                instrs.append(Instruction(Opcode.END))
                locs.append(locs[-1])
            self.check_queue(instrs, locs, q.name)
            queues[q.name] = instrs
            source[q.name] = [(self.filename, loc.line) for loc in locs]
        return Program(self.config.name, self.config.config_hash, self.config.lanes, queues,
                       self.mem_init, self.outputs, source)


def assemble(text: str, config: ChipConfig, filename: str = "<input>") -> Program:
    """Assemble source text for one chip config.

    Parameters
    ----------
    text : str
        Assembly source (syntax in the module docstring).
    config : ChipConfig
        The chip to assemble for; operand ranges, queues and slices come from it.
    filename : str
        Name used in error messages and ``Program.source``; ``.load`` paths are relative to
        its directory.

    Returns
    -------
    Program
        One instruction list per queue with code (``END`` appended where missing), the memory
        inits and outputs, and the source line of every instruction.

    Raises
    ------
    AsmError
        The first error, located as ``file:line:col``.
    """
    program = _Assembler(config, filename).run(text)
    try:
        program.check(config)
    except ProgramError as e:  # every rule is checked while parsing; this is a safety net
        raise AsmError(filename, 0, 0, str(e)) from None
    return program


def assemble_file(path: str | PathLike, config: ChipConfig) -> Program:
    """Assemble a source file (see :func:`assemble`).

    Raises
    ------
    AsmError
        The file cannot be read, or an error in it.
    """
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise AsmError(str(path), 0, 0, f"cannot read source file: {e}") from None
    return assemble(text, config, str(path))

