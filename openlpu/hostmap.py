"""The chip top's host bus: register addresses, windows and identification words.

One definition shared by the RTL bus decoder (:mod:`hdl.chip`), the cocotb host driver
(:mod:`tb`) and the host runtime: a 32-bit word-addressed bus with registers, performance
counters, one window onto every instruction queue and one onto the SRAM (docs/architecture.md,
section 9).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import __version__
from .config import ChipConfig

__all__ = [
    "ID", "VERSION", "REG", "COUNTER_BASE", "QUEUE_BASE", "SRAM_BASE", "CTRL_START",
    "CTRL_CLEAR", "START_TO_CYCLE0", "READ_LATENCY", "STATUS_BUSY", "STATUS_DONE",
    "STATUS_DEADLOCK", "HostMap",
]

#: ``"OLPU"`` little-endian ('O' in bits 7..0), the same magic as the program file.
ID = int.from_bytes(b"OLPU", "little")
VERSION = (lambda a, b, c: a << 16 | b << 8 | c)(*(int(x) for x in __version__.split(".")[:3]))

#: Register byte addresses.
REG = {
    "ID": 0x00, "VERSION": 0x04, "CONFIG_HASH": 0x08, "CONFIG0": 0x0C, "CTRL": 0x10,
    "STATUS": 0x14, "CYCLES_LO": 0x18, "CYCLES_HI": 0x1C, "CONFIG1": 0x20, "CONFIG2": 0x24,
    "NCOUNTERS": 0x28,
}
COUNTER_BASE = 0x100
QUEUE_BASE = 0x1000_0000
QUEUE_SHIFT = 20
SRAM_BASE = 0x4000_0000
SRAM_WINDOW = 1 << 30

CTRL_START = 1 << 0
CTRL_CLEAR = 1 << 1
#: A ``CTRL.START`` written in bus cycle ``c`` makes bus cycle ``c + START_TO_CYCLE0`` chip
#: cycle 0 (docs/architecture.md section 9.2): the chip registers the command, and its ICUs
#: run a clock ahead of the slices (:mod:`hdl.chip`).
START_TO_CYCLE0 = 3
#: A bus read strobed in cycle ``c`` has its data (and ``bus_rvalid``) in cycle
#: ``c + READ_LATENCY`` (docs/architecture.md section 9): the chip registers the read data once
#: more after its choice between registers, queue words and SRAM, so that the block RAMs'
#: clock-to-output time and that choice do not make a path of their own.
READ_LATENCY = 2
STATUS_BUSY = 1 << 0
STATUS_DONE = 1 << 1
STATUS_DEADLOCK = 1 << 2


def _log2(n: int) -> int:
    return n.bit_length() - 1


@dataclass(frozen=True)
class HostMap:
    """Addresses and identification words of one chip config.

    Raises
    ------
    ValueError
        The config's SRAM or queues do not fit their bus windows.
    """

    config: ChipConfig

    def __post_init__(self):
        cfg = self.config
        if self.sram_window_bytes > SRAM_WINDOW:
            raise ValueError(f"config {cfg.name!r}: SRAM window needs {self.sram_window_bytes} "
                             f"bytes, more than the {SRAM_WINDOW} the bus map has")
        if cfg.queue_depth * 8 > 1 << QUEUE_SHIFT or len(cfg.queues) > 1 << (28 - QUEUE_SHIFT):
            raise ValueError(f"config {cfg.name!r}: queues do not fit the queue window")

    # --- SRAM --------------------------------------------------------------------------------

    @property
    def lanes_padded(self) -> int:
        """Bytes per SRAM word in the window: lanes rounded up to a power of two (>= 4)."""
        lanes = max(self.config.lanes, 4)
        return 1 << (lanes - 1).bit_length()

    @property
    def sram_window_bytes(self) -> int:
        """Bytes of the SRAM window actually used."""
        return self.config.mem_slices * self.config.address_space * self.lanes_padded

    def sram_word(self, mem_index: int, addr: int) -> int:
        """Byte address of lanes 0..3 of SRAM word ``addr`` (bank bit included) of MEM slice
        ``mem_index``; lanes ``4k..4k+3`` are at ``+ 4k``."""
        return SRAM_BASE + (mem_index * self.config.address_space + addr) * self.lanes_padded

    # --- queues ------------------------------------------------------------------------------

    def queue_word(self, queue_index: int, word: int) -> int:
        """Byte address of the low half of instruction word ``word`` of queue ``queue_index``
        (the high half, which commits the word, is at ``+ 4``)."""
        return QUEUE_BASE + (queue_index << QUEUE_SHIFT) + 8 * word

    # --- counters ----------------------------------------------------------------------------

    @property
    def counter_names(self) -> list[tuple[str, str]]:
        """``(group, name)`` of every performance counter, in address order (none when the
        config leaves them out, ``perf_counters = False``)."""
        cfg = self.config
        if not cfg.perf_counters:
            return []
        mems = [s.name for s in cfg.mem_slice_list]
        return ([("issued", q.name) for q in cfg.queues]
                + [("mem_reads", m) for m in mems] + [("mem_writes", m) for m in mems]
                + [("mxm_abc", f"mxm{p}") for p in range(cfg.mxm_planes)])

    def counter(self, i: int) -> int:
        """Byte address of performance counter ``i``."""
        return COUNTER_BASE + 4 * i

    # --- identification ----------------------------------------------------------------------

    @property
    def config_words(self) -> dict[str, int]:
        """Values of the read-only identification registers."""
        cfg = self.config
        return {
            "ID": ID,
            "VERSION": VERSION,
            "CONFIG_HASH": int(cfg.config_hash, 16),
            "CONFIG0": cfg.lanes | cfg.streams_per_direction << 13 | cfg.mem_slices << 19
            | cfg.offset_bits << 27,
            "CONFIG1": cfg.superlanes | cfg.lanes_per_superlane << 9 | cfg.mxm_planes << 14
            | cfg.vxm_alus_per_lane << 17 | _log2(cfg.queue_depth) << 22,
            "CONFIG2": cfg.mxm_acc_depth | len(cfg.queues) << 17,
            "NCOUNTERS": len(self.counter_names),
        }
