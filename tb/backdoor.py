"""Backdoor access to the chip's SRAM under cocotb: write and read the MEM tiles' lane
memories directly through the simulator's VPI, with no clock cycles spent.

Loading a layer's weights through the 32-bit host bus costs one clock cycle (and one wake-up of
Python) per four bytes: hours of simulation for a real model on a large preset. The backdoor
writes the same bytes into the same memories in the idle time between programs, so the run
itself is unchanged: every instruction still executes on the RTL, cycle for cycle. The host
bus remains the path a board uses and the path the chip-top tests check.

Where the bytes live (:mod:`hdl.mem_tile`): MEM slice ``s`` has one tile per superlane,
instance ``core.<s>_sl<k>``, and each tile one 8-bit memory per lane, ``lane<j>``, indexed by
the full MEM address (bank bit on top). Byte ``l`` of a word is in superlane
``l // lanes_per_superlane``, lane ``l % lanes_per_superlane``. Verilator exposes these
memories only when the model is built with :data:`VERILATOR_CONFIG` (:mod:`tb.runner` does).
"""

from __future__ import annotations

import numpy as np

from firmware.program import Program
from openlpu.config import ChipConfig

__all__ = ["SramBackdoor", "VERILATOR_CONFIG"]

#: Verilator configuration file text that makes the lane memories visible through VPI (and
#: nothing else: the rest of the design keeps Verilator's optimisations).
VERILATOR_CONFIG = '`verilator_config\npublic_flat_rw -module "*" -var "lane*"\n'


class SramBackdoor:
    """The SRAM of a simulated chip top (a cocotb DUT handle), word by word, without cycles.

    Writes take effect at once (``Immediate``); use them only while the chip is idle, as the
    host bus does.
    """

    def __init__(self, dut, config: ChipConfig):
        from cocotb.handle import Immediate

        self._immediate = Immediate
        self.config = config
        lps = config.lanes_per_superlane
        self._lanes: dict[int, list] = {}
        for s in config.mem_slice_list:
            handles = []
            for lane in range(config.lanes):
                tile = getattr(dut.core, f"{s.name}_sl{lane // lps}")
                handles.append(getattr(tile, f"lane{lane % lps}"))
            self._lanes[s.index] = handles

    def _memories(self, mem_index: int) -> list:
        try:
            return self._lanes[mem_index]
        except KeyError:
            raise ValueError(f"{mem_index} is not the index of a MEM slice of config "
                             f"{self.config.name!r}") from None

    def write(self, mem_index: int, addr: int, rows: np.ndarray) -> None:
        """Write ``rows`` (uint8 ``[n, <= lanes]``) to words ``addr .. addr + n - 1``."""
        rows = np.asarray(rows, dtype=np.uint8)
        imm = self._immediate
        for lane, mem in enumerate(self._memories(mem_index)[:rows.shape[1]]):
            for w, byte in enumerate(rows[:, lane].tolist()):
                mem[addr + w].value = imm(byte)

    def clear(self, words: list[tuple[int, int]]) -> None:
        """Write zeros to the words ``(mem_index, addr)``."""
        zero = np.zeros((1, self.config.lanes), dtype=np.uint8)
        for mi, addr in words:
            self.write(mi, addr, zero)

    def load(self, program: Program) -> None:
        """Write the program's SRAM image (its ``mem_init``)."""
        for init in program.mem_init:
            self.write(self.config.slice_by_name[init.slice].index, init.addr, init.data)

    def read_words(self, words: list[tuple[int, int]]) -> np.ndarray:
        """The words ``(mem_index, addr)`` as a uint8 array ``[len(words), lanes]``."""
        out = np.zeros((len(words), self.config.lanes), dtype=np.uint8)
        for i, (mi, addr) in enumerate(words):
            for lane, mem in enumerate(self._memories(mi)):
                value = mem[addr].value
                if not value.is_resolvable:
                    raise RuntimeError(f"SRAM word {addr} of MEM slice {mi}, lane {lane}, is "
                                       f"not a defined value: {value}")
                out[i, lane] = int(value)
        return out
