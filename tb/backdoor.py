"""Backdoor access to the chip's memories under cocotb: write and read the MEM tiles' lane
memories and the instruction queues directly through the simulator's VPI, with no clock cycles
spent.

Loading a program through the 32-bit host bus costs a clock cycle (and a wake-up of Python) per
four bytes: for a real model's layer on a large preset, minutes to hours of simulation before
the program starts (MiniLM's layer 0 on the ``sim`` preset: 450 s for the first of its four
programs' queues alone). The backdoor writes the same words into the same memories in the idle
time between programs, so the run itself is unchanged: every instruction still executes on the
RTL, cycle for cycle. The host bus remains the path a board uses and the path the chip-top
tests check (on Icarus, most programs of a test batch load through the backdoor and read their
results over the bus: ``"backdoor_load"`` in :data:`PROGRAM_ACCESS`).

Where the words live: MEM slice ``s`` has one tile per superlane, instance ``core.<s>_sl<k>``
(:mod:`hdl.mem_tile`), and each tile one 8-bit memory per lane, ``lane<j>``, indexed by the
full MEM address (bank bit on top); byte ``l`` of a word is in superlane
``l // lanes_per_superlane``, lane ``l % lanes_per_superlane``. Queue ``q`` is the memory
``mem`` of instance ``core.icu_<q>`` (:mod:`hdl.icu`), one instruction word per entry, and
with prefetch (``config.icu_prefetch``) the ICU keeps a copy of word 0 in its register
``word0`` (the host bus's writes to word 0 update it; so must the backdoor's, or ``start``
would execute a stale first word).
Verilator exposes these memories only when the model is built with :data:`VERILATOR_CONFIG`
(:mod:`tb.runner` does).
"""

from __future__ import annotations

import numpy as np

from firmware.program import Program
from openlpu.config import ChipConfig
from openlpu.isa import WORD_BITS

from .host import queue_image

__all__ = ["Backdoor", "SRAM_ACCESS", "PROGRAM_ACCESS", "VERILATOR_CONFIG"]

#: How an RTL run loads and reads back the queues and SRAM: over the chip's host bus, or
#: through this backdoor.
SRAM_ACCESS = ("bus", "backdoor")

#: What one program of a run may use (:func:`tb.runner.run_rtl` takes one per program):
#: :data:`SRAM_ACCESS`, or ``"backdoor_load"``: the queues and the SRAM image are loaded, and
#: the previous program's words cleared, through the backdoor; the program's results (every
#: word it writes or reports) are read back over the bus, and through the backdoor as well,
#: which must agree; any further word (the whole-SRAM check of small configs) through the
#: backdoor. For test batches on slow simulators, where loading dominates: the run and the
#: results still go through the chip's datapath and bus.
PROGRAM_ACCESS = (*SRAM_ACCESS, "backdoor_load")

#: Verilator configuration file text that makes the lane and queue memories visible through VPI
#: (and nothing else: the rest of the design keeps Verilator's optimisations).
VERILATOR_CONFIG = ('`verilator_config\n'
                    'public_flat_rw -module "*" -var "lane*"\n'
                    'public_flat_rw -module "*" -var "mem"\n'
                    'public_flat_rw -module "*" -var "word0"\n')


class Backdoor:
    """The SRAM and instruction queues of a simulated chip top (a cocotb DUT handle), word by
    word, without cycles.

    Writes take effect at once; use them only while the chip is idle, as the host bus does.
    """

    def __init__(self, dut, config: ChipConfig):
        from cocotb.handle import _GPISetAction

        self._immediate = _GPISetAction.NO_DELAY.value  # what ``Immediate`` writes use
        self.config = config
        lps = config.lanes_per_superlane
        # The raw simulator objects of the memories: cocotb's handle and LogicArray layers
        # cost tens of microseconds per byte, minutes for a model's weights; the raw GPI calls
        # used here are what those layers end in (cocotb is pinned to 2.1).
        self._lanes: dict[int, list] = {}
        for s in config.mem_slice_list:
            handles = []
            for lane in range(config.lanes):
                tile = getattr(dut.core, f"{s.name}_sl{lane // lps}")
                handles.append(getattr(tile, f"lane{lane % lps}")._handle)
            self._lanes[s.index] = handles
        self._queues = {q.name: getattr(dut.core, f"icu_{q.name}").mem._handle
                        for q in config.queues}
        self._word0 = ({q.name: getattr(dut.core, f"icu_{q.name}").word0._handle
                        for q in config.queues} if config.icu_prefetch else {})

    def _memories(self, mem_index: int) -> list:
        try:
            return self._lanes[mem_index]
        except KeyError:
            raise ValueError(f"{mem_index} is not the index of a MEM slice of config "
                             f"{self.config.name!r}") from None

    def write(self, mem_index: int, addr: int, rows: np.ndarray) -> None:
        """Write ``rows`` (uint8 ``[n, <= lanes]``) to SRAM words ``addr .. addr + n - 1``."""
        rows = np.asarray(rows, dtype=np.uint8)
        imm = self._immediate
        for lane, mem in enumerate(self._memories(mem_index)[:rows.shape[1]]):
            for w, byte in enumerate(rows[:, lane].tolist()):
                mem.get_handle_by_index(addr + w).set_signal_val_int(imm, byte)

    def clear(self, words: list[tuple[int, int]]) -> None:
        """Write zeros to the SRAM words ``(mem_index, addr)``."""
        zero = np.zeros((1, self.config.lanes), dtype=np.uint8)
        for mi, addr in words:
            self.write(mi, addr, zero)

    def load(self, program: Program) -> None:
        """Write every queue (:func:`tb.host.queue_image`, as :meth:`HostBus.load` does) and
        the program's SRAM image (its ``mem_init``)."""
        imm = self._immediate
        for name, mem in self._queues.items():
            for w, word in enumerate(queue_image(program, name)):
                bits = f"{word:0{WORD_BITS}b}"
                mem.get_handle_by_index(w).set_signal_val_binstr(imm, bits)
                if w == 0 and name in self._word0:
                    self._word0[name].set_signal_val_binstr(imm, bits)
        for init in program.mem_init:
            self.write(self.config.slice_by_name[init.slice].index, init.addr, init.data)

    def read_queue(self, name: str, n: int) -> list[int]:
        """Instruction words ``0 .. n - 1`` of queue ``name``."""
        out = []
        for w in range(n):
            bits = self._queues[name].get_handle_by_index(w).get_signal_val_binstr()
            try:
                out.append(int(bits, 2))
            except ValueError:
                raise RuntimeError(f"word {w} of queue {name} is not a defined value: "
                                   f"{bits}") from None
        return out

    def read_words(self, words: list[tuple[int, int]]) -> np.ndarray:
        """The SRAM words ``(mem_index, addr)`` as a uint8 array ``[len(words), lanes]``."""
        out = np.zeros((len(words), self.config.lanes), dtype=np.uint8)
        for i, (mi, addr) in enumerate(words):
            for lane, mem in enumerate(self._memories(mi)):
                bits = mem.get_handle_by_index(addr).get_signal_val_binstr()
                try:
                    out[i, lane] = int(bits, 2)
                except ValueError:
                    raise RuntimeError(f"SRAM word {addr} of MEM slice {mi}, lane {lane}, is "
                                       f"not a defined value: {bits}") from None
        return out
