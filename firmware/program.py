"""An assembled OpenLPU program in memory, and its binary file format.

A :class:`Program` is what the assembler (:mod:`firmware.asm`) and the compiler produce and
what the golden model, the RTL testbenches and the command line run: one instruction list per
ICU queue, the initial SRAM contents and the named result regions to report. It records the
config it was built for; :meth:`Program.check` refuses to run it on different hardware.

Binary format, version 1
------------------------
All integers are little-endian; ``str`` is a ``u16`` byte length followed by UTF-8 bytes::

    header    4s  magic b"OLPU"
              u16 format version (1)
              u16 flags (0, reserved)
    config    str config name | str config hash | u32 lanes
    queues    u16 count, then per queue:
                  str queue name | u32 n | n x u64 instruction words (isa.encode)
    mem init  u32 count, then per block:
                  str MEM slice name | u32 first address | u32 words | u32 lanes |
                  words x lanes bytes (row-major: word 0 lanes 0.., word 1 ..)
    outputs   u32 count, then per region:
                  str name | u8 n | n x str slice name | u32 address | u32 words | str dtype
    source    u16 file count, file count x str file name (debug info, may be empty)
              u16 count, then per queue: str queue name | u32 n | n x (u16 file, u32 line)
    trailer   u32 CRC-32 (zlib.crc32) of every byte before it

:func:`load` checks the magic, then the version, then the checksum, so a truncated or
corrupted file gives a :class:`ProgramFormatError` saying so rather than garbage. A reader
that sees a newer version refuses it; a new version may change anything after the version.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from os import PathLike

import numpy as np

from openlpu.config import ChipConfig, Slice, SliceKind
from openlpu.isa import Instruction, IsaError, check_queue_program, decode, encode, unit_for_slice

__all__ = [
    "FORMAT_VERSION", "MAGIC", "OUTPUT_DTYPES", "MemInit", "OutputRegion", "Program",
    "ProgramError", "ProgramFormatError", "check_span", "from_bytes", "join_address", "load",
    "mem_slice", "read_output", "save", "split_address", "sram_shape", "to_bytes",
    "write_mem_init",
]

MAGIC = b"OLPU"
FORMAT_VERSION = 1
#: Element types of an :class:`OutputRegion`; the width in bytes is the number of slices.
OUTPUT_DTYPES = ("int8", "uint8", "int16", "int32")


class ProgramError(ValueError):
    """A program does not fit the chip config it is checked against, or is inconsistent."""


class ProgramFormatError(ProgramError):
    """A binary program file is not a valid OpenLPU program of a supported version."""


# --- the program -------------------------------------------------------------------------------


@dataclass(eq=False)
class MemInit:
    """Initial contents of consecutive SRAM words of one MEM slice.

    ``addr`` is a full address (bank bit just above ``config.offset_bits``); ``data`` is a
    ``uint8`` array ``[words, lanes]`` (``int8`` data is reinterpreted as ``uint8``).
    """

    slice: str
    addr: int
    data: np.ndarray

    def __post_init__(self):
        data = np.asarray(self.data)
        if data.dtype == np.int8:
            data = data.view(np.uint8)
        self.data = data

    @property
    def words(self) -> int:
        """Number of vector words initialised."""
        return int(self.data.shape[0]) if self.data.ndim else 0

    def __eq__(self, other):
        if not isinstance(other, MemInit):
            return NotImplemented
        return (self.slice == other.slice and self.addr == other.addr
                and self.data.dtype == other.data.dtype
                and np.array_equal(self.data, other.data))


@dataclass(frozen=True)
class OutputRegion:
    """A named result the run reports: ``words`` vectors at ``addr``, of type ``dtype``.

    Byte ``k`` (little-endian) of every element comes from MEM slice ``slices[k]``, so an
    ``int32`` region names 4 slices, an ``int16`` region 2, ``int8``/``uint8`` one.
    """

    name: str
    slices: tuple[str, ...]
    addr: int
    words: int
    dtype: str = "int8"


@dataclass
class Program:
    """An assembled program: per-queue instructions, initial SRAM and result regions.

    ``source`` (per queue, per instruction: ``(file, line)``) is debug information for error
    messages; it does not take part in ``==``.
    """

    config_name: str
    config_hash: str
    lanes: int
    queues: dict[str, list[Instruction]]
    mem_init: list[MemInit] = field(default_factory=list)
    outputs: list[OutputRegion] = field(default_factory=list)
    source: dict[str, list[tuple[str, int]]] = field(default_factory=dict, compare=False)

    def where(self, queue: str, index: int) -> str:
        """Source location prefix of an instruction, for error messages.

        Parameters
        ----------
        queue : str
            Queue name.
        index : int
            Position of the instruction in the queue.

        Returns
        -------
        str
            ``"file:line: "`` if ``source`` knows the instruction, else ``""``.
        """
        entries = self.source.get(queue, [])
        if 0 <= index < len(entries):
            file, line = entries[index]
            return f"{file}:{line}: "
        return ""

    def check(self, config: ChipConfig) -> None:
        """Check that the program was built for ``config`` and fits it.

        Parameters
        ----------
        config : ChipConfig
            The chip the program is about to run on.

        Raises
        ------
        ProgramError
            Config hash or lane count differ, an unknown queue, an instruction invalid for
            its queue (see :func:`openlpu.isa.check_queue_program`), or a memory init or
            output region outside the SRAM.
        """
        if self.config_hash != config.config_hash or self.lanes != config.lanes:
            raise ProgramError(
                f"program was assembled for config {self.config_name!r} (hash "
                f"{self.config_hash}, {self.lanes} lanes), but the chip is config "
                f"{config.name!r} (hash {config.config_hash}, {config.lanes} lanes)")
        for name, instrs in self.queues.items():
            queue = config.queue_by_name.get(name)
            if queue is None:
                raise ProgramError(config.unknown_queue(name))
            try:
                check_queue_program(instrs, unit_for_slice(queue.slice.kind), config, name)
            except ValueError as e:  # IsaError, or a bad DType code isa does not catch
                index = getattr(e, "index", None) or 0
                raise ProgramError(f"{self.where(name, index)}queue {name}, instruction "
                                   f"{index}: {e}") from None
        for init in self.mem_init:
            check_mem_init(init, config)
        names = set()
        for region in self.outputs:
            if region.name in names:
                raise ProgramError(f"output {region.name!r} is defined twice")
            names.add(region.name)
            check_output(region, config)


# --- addresses and range checks ------------------------------------------------------------------


def split_address(addr: int, config: ChipConfig) -> tuple[int, int]:
    """Split a MEM address into bank and word offset.

    Parameters
    ----------
    addr : int
        Full address; the bank bit sits just above ``config.offset_bits`` offset bits.
    config : ChipConfig
        The chip.

    Returns
    -------
    tuple of int
        ``(bank, offset)``.
    """
    return addr >> config.offset_bits, addr & (config.mem_words_per_bank - 1)


def join_address(bank: int, offset: int, config: ChipConfig) -> int:
    """The MEM address of a bank and word offset (inverse of :func:`split_address`).

    Parameters
    ----------
    bank, offset : int
        Bank number and word offset within the bank.
    config : ChipConfig
        The chip.

    Returns
    -------
    int
        The full address.
    """
    return bank << config.offset_bits | offset


def sram_shape(config: ChipConfig) -> tuple[int, int, int, int]:
    """Shape of the golden model's SRAM array.

    Parameters
    ----------
    config : ChipConfig
        The chip.

    Returns
    -------
    tuple of int
        ``(config.mem_slices, config.mem_banks, config.mem_words_per_bank, config.lanes)``.
    """
    return (config.mem_slices, config.mem_banks, config.mem_words_per_bank, config.lanes)


def mem_slice(name: str, config: ChipConfig) -> Slice:
    """The MEM slice called ``name``.

    Parameters
    ----------
    name : str
        Slice name, e.g. ``mem_w0``.
    config : ChipConfig
        The chip.

    Returns
    -------
    Slice
        The slice; its ``index`` indexes the SRAM array.

    Raises
    ------
    ProgramError
        No MEM slice of that name in ``config`` (the message lists them).
    """
    s = config.slice_by_name.get(name)
    if s is None or s.kind is not SliceKind.MEM:
        names = ", ".join(m.name for m in config.mem_slice_list)
        raise ProgramError(f"{name!r} is not a MEM slice of config {config.name!r}; "
                           f"MEM slices: {names}")
    return s


def check_span(addr: int, words: int, config: ChipConfig, what: str = "region") -> None:
    """Check that ``words`` words from ``addr`` exist and stay within one bank.

    Parameters
    ----------
    addr : int
        First full address.
    words : int
        Number of words.
    config : ChipConfig
        The chip.
    what : str
        What the span is, for the message.

    Raises
    ------
    ProgramError
        Address outside the slice's address space, ``words < 1``, or the span crosses the
        end of its bank.
    """
    if not 0 <= addr < config.address_space:
        raise ProgramError(f"{what} address {addr} is out of range for config "
                           f"{config.name!r}: 0..{config.address_space - 1} (bank bit "
                           f"{config.offset_bits})")
    if words < 1:
        raise ProgramError(f"{what} needs at least 1 word, not {words}")
    bank, offset = split_address(addr, config)
    if offset + words > config.mem_words_per_bank:
        raise ProgramError(f"{what} crosses the end of bank {bank}: offset {offset} + "
                           f"{words} words > {config.mem_words_per_bank} words per bank")


def check_mem_init(init: MemInit, config: ChipConfig) -> None:
    """Check one memory init against ``config``.

    Raises
    ------
    ProgramError
        Unknown slice, bad address span, or data not ``uint8 [words, config.lanes]``.
    """
    what = f"memory init of {init.slice} at {init.addr}"
    mem_slice(init.slice, config)
    data = init.data
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != config.lanes:
        raise ProgramError(f"{what}: data must be uint8 [words, {config.lanes}], not "
                           f"{data.dtype} {list(data.shape)}")
    check_span(init.addr, init.words, config, what)


def check_output(region: OutputRegion, config: ChipConfig) -> None:
    """Check one output region against ``config``.

    Raises
    ------
    ProgramError
        Bad name or dtype, wrong number of slices for the dtype, repeated or unknown slices,
        or a bad address span.
    """
    what = f"output {region.name!r}"
    if not region.name.isidentifier():
        raise ProgramError(f"{what}: the name must be an identifier")
    if region.dtype not in OUTPUT_DTYPES:
        raise ProgramError(f"{what}: unknown dtype {region.dtype!r}; allowed: "
                           f"{', '.join(OUTPUT_DTYPES)}")
    nbytes = np.dtype(region.dtype).itemsize
    if len(region.slices) != nbytes:
        raise ProgramError(f"{what}: a {region.dtype} region needs {nbytes} slice(s) (byte k "
                           f"of each element from slice k), not {len(region.slices)}")
    if len(set(region.slices)) != len(region.slices):
        raise ProgramError(f"{what}: slices must differ: {'+'.join(region.slices)}")
    for s in region.slices:
        mem_slice(s, config)
    check_span(region.addr, region.words, config, what)


# --- SRAM images -------------------------------------------------------------------------------


def _check_sram(sram: np.ndarray, config: ChipConfig) -> None:
    if sram.shape != sram_shape(config) or sram.dtype != np.uint8:
        raise ProgramError(f"SRAM array must be uint8 {list(sram_shape(config))} for config "
                           f"{config.name!r}, not {sram.dtype} {list(sram.shape)}")


def write_mem_init(sram: np.ndarray, program: Program, config: ChipConfig) -> None:
    """Apply a program's memory inits to an SRAM array, in place, in program order.

    Parameters
    ----------
    sram : np.ndarray
        ``uint8 [config.mem_slices, banks, config.mem_words_per_bank, config.lanes]``,
        indexed by MEM slice index, bank, offset, lane.
    program : Program
        Its ``mem_init`` blocks are written.
    config : ChipConfig
        The chip; fixes the array shape and the address split.

    Raises
    ------
    ProgramError
        Wrong array shape, or an init outside the SRAM.
    """
    _check_sram(sram, config)
    for init in program.mem_init:
        check_mem_init(init, config)
        bank, offset = split_address(init.addr, config)
        sram[mem_slice(init.slice, config).index, bank, offset:offset + init.words] = init.data


def read_output(sram: np.ndarray, region: OutputRegion, config: ChipConfig) -> np.ndarray:
    """Read an output region from an SRAM array.

    Parameters
    ----------
    sram : np.ndarray
        ``uint8 [config.mem_slices, banks, config.mem_words_per_bank, config.lanes]``.
    region : OutputRegion
        Byte ``k`` of each element is read from ``region.slices[k]`` (little-endian).
    config : ChipConfig
        The chip.

    Returns
    -------
    np.ndarray
        ``[region.words, config.lanes]`` of ``region.dtype``.

    Raises
    ------
    ProgramError
        Wrong array shape or a region outside the SRAM.
    """
    _check_sram(sram, config)
    check_output(region, config)
    bank, offset = split_address(region.addr, config)
    planes = [sram[mem_slice(s, config).index, bank, offset:offset + region.words]
              for s in region.slices]
    raw = np.ascontiguousarray(np.stack(planes, axis=-1))  # [words, lanes, bytes]
    little = np.dtype(region.dtype).newbyteorder("<")
    return raw.view(little)[..., 0].astype(region.dtype)


# --- binary file format -----------------------------------------------------------------------


class _Writer:
    def __init__(self):
        self.parts: list[bytes] = []

    def put(self, fmt: str, *values):
        self.parts.append(struct.pack("<" + fmt, *values))

    def str(self, text: str):
        raw = text.encode()
        if len(raw) > 0xFFFF:
            raise ProgramError(f"name too long for the file format: {text[:40]!r}...")
        self.put("H", len(raw))
        self.parts.append(raw)


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def raw(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise ProgramFormatError(f"truncated file: {what} needs {n} bytes at offset "
                                     f"{self.pos}, only {self.end - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def get(self, fmt: str, what: str):
        values = struct.unpack("<" + fmt, self.raw(struct.calcsize("<" + fmt), what))
        return values[0] if len(values) == 1 else values

    def str(self, what: str) -> str:
        raw = self.raw(self.get("H", what), what)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ProgramFormatError(f"corrupt file: {what} is not UTF-8: {raw!r}") from None


def to_bytes(program: Program) -> bytes:
    """The binary file image of a program (see the module docstring).

    Raises
    ------
    ProgramError
        An instruction field does not fit its encoding.
    """
    w = _Writer()
    w.parts.append(MAGIC)
    w.put("HH", FORMAT_VERSION, 0)
    w.str(program.config_name)
    w.str(program.config_hash)
    w.put("I", program.lanes)
    w.put("H", len(program.queues))
    for name, instrs in program.queues.items():
        try:
            words = [encode(i) for i in instrs]
        except IsaError as e:
            raise ProgramError(f"queue {name}: {e}") from None
        w.str(name)
        w.put("I", len(words))
        w.put(f"{len(words)}Q", *words)
    w.put("I", len(program.mem_init))
    for init in program.mem_init:
        data = np.ascontiguousarray(init.data, dtype=np.uint8)
        if data.ndim != 2:
            raise ProgramError(f"memory init of {init.slice}: data must be 2-D")
        w.str(init.slice)
        w.put("III", init.addr, *data.shape)
        w.parts.append(data.tobytes())
    w.put("I", len(program.outputs))
    for region in program.outputs:
        w.str(region.name)
        w.put("B", len(region.slices))
        for s in region.slices:
            w.str(s)
        w.put("II", region.addr, region.words)
        w.str(region.dtype)
    files = sorted({f for entries in program.source.values() for f, _ in entries})
    file_index = {f: i for i, f in enumerate(files)}
    w.put("H", len(files))
    for f in files:
        w.str(f)
    w.put("H", len(program.source))
    for name, entries in program.source.items():
        w.str(name)
        w.put("I", len(entries))
        for f, line in entries:
            w.put("HI", file_index[f], line)
    body = b"".join(w.parts)
    return body + struct.pack("<I", zlib.crc32(body))


def from_bytes(data: bytes) -> Program:
    """The program of a binary file image (see the module docstring).

    Raises
    ------
    ProgramFormatError
        Bad magic, unsupported version, checksum mismatch, truncated or inconsistent data.
    """
    if data[:4] != MAGIC:
        raise ProgramFormatError(f"not an OpenLPU program: magic {data[:4]!r}, expected "
                                 f"{MAGIC!r}")
    if len(data) < 8:
        raise ProgramFormatError("truncated file: no format version after the magic")
    version = struct.unpack_from("<H", data, 4)[0]
    if version != FORMAT_VERSION:
        raise ProgramFormatError(f"unsupported program format version {version}; this "
                                 f"OpenLPU reads version {FORMAT_VERSION}")
    if len(data) < 12 or struct.unpack_from("<I", data, len(data) - 4)[0] != \
            zlib.crc32(data[:-4]):
        raise ProgramFormatError("checksum mismatch: the file is truncated or corrupt")
    r = _Reader(data, len(data) - 4)
    r.raw(8, "header")
    config_name = r.str("config name")
    config_hash = r.str("config hash")
    lanes = r.get("I", "lane count")
    queues: dict[str, list[Instruction]] = {}
    for _ in range(r.get("H", "queue count")):
        name = r.str("queue name")
        n = r.get("I", f"queue {name} length")
        words = struct.unpack(f"<{n}Q", r.raw(8 * n, f"queue {name} words"))
        try:
            queues[name] = [decode(word) for word in words]
        except IsaError as e:
            raise ProgramFormatError(f"corrupt file: queue {name}: {e}") from None
    mem_init = []
    for _ in range(r.get("I", "memory init count")):
        slice_name = r.str("memory init slice")
        addr, words, width = r.get("III", f"memory init of {slice_name}")
        raw = r.raw(words * width, f"memory init data of {slice_name}")
        data = np.frombuffer(raw, dtype=np.uint8).reshape(words, width).copy()
        mem_init.append(MemInit(slice_name, addr, data))
    outputs = []
    for _ in range(r.get("I", "output count")):
        name = r.str("output name")
        slices = tuple(r.str(f"output {name} slice")
                       for _ in range(r.get("B", f"output {name} slice count")))
        addr, words = r.get("II", f"output {name} address")
        outputs.append(OutputRegion(name, slices, addr, words, r.str(f"output {name} dtype")))
    files = [r.str("source file name") for _ in range(r.get("H", "source file count"))]
    source = {}
    for _ in range(r.get("H", "source queue count")):
        name = r.str("source queue name")
        entries = []
        for _ in range(r.get("I", f"source of queue {name}")):
            index, line = r.get("HI", f"source of queue {name}")
            if index >= len(files):
                raise ProgramFormatError(f"corrupt file: source file index {index} of "
                                         f"{len(files)}")
            entries.append((files[index], line))
        source[name] = entries
    if r.pos != r.end:
        raise ProgramFormatError(f"corrupt file: {r.end - r.pos} unexpected bytes before the "
                                 "checksum")
    return Program(config_name, config_hash, lanes, queues, mem_init, outputs, source)


def save(program: Program, path: str | PathLike) -> None:
    """Write a program to a binary file (see the module docstring for the format).

    Raises
    ------
    ProgramError
        An instruction field does not fit its encoding.
    OSError
        The file cannot be written.
    """
    data = to_bytes(program)
    with open(path, "wb") as f:
        f.write(data)


def load(path: str | PathLike) -> Program:
    """Read a program from a binary file written by :func:`save`.

    Raises
    ------
    ProgramFormatError
        Not an OpenLPU program, unsupported version, truncated or corrupt.
    OSError
        The file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return from_bytes(data)
    except ProgramFormatError as e:
        raise ProgramFormatError(f"{path}: {e}") from None
