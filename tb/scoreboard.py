"""Scoreboard: the RTL's results against the golden model's, with the first difference named.

The host cannot afford to read the whole SRAM of a large config through the bus after every
run, so :func:`readback_words` picks every word the golden model wrote, every output region
word, and — for configs of at most 64 KiB — all of SRAM; untouched words hold their initial
values in both models by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware.program import Program
from openlpu.config import ChipConfig
from openlpu.hostmap import HostMap
from sim_models.golden import RunResult

__all__ = ["Comparison", "compare", "readback_words", "result_words", "FULL_READBACK_BYTES"]

FULL_READBACK_BYTES = 64 * 1024


def readback_words(config: ChipConfig, program: Program,
                   golden: RunResult) -> list[tuple[int, int]]:
    """SRAM words ``(mem index, address)`` to read back after the run."""
    if config.sram_bytes <= FULL_READBACK_BYTES:
        return [(mi, a) for mi in range(config.mem_slices) for a in range(config.address_space)]
    return result_words(config, program, golden)


def result_words(config: ChipConfig, program: Program,
                 golden: RunResult) -> list[tuple[int, int]]:
    """The program's results: every SRAM word ``(mem index, address)`` the golden model wrote
    and every output region word, sorted (a subset of :func:`readback_words`)."""
    words = set(golden.written_words)
    for region in program.outputs:
        for s in region.slices:
            mi = config.slice_by_name[s].index
            words.update((mi, region.addr + w) for w in range(region.words))
    return sorted(words)


@dataclass
class Comparison:
    """Outcome of one RTL-vs-golden comparison."""

    matches: bool
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "match" if self.matches else "; ".join(self.problems)


def _golden_word(config: ChipConfig, golden: RunResult, mi: int, addr: int) -> np.ndarray:
    bank, offset = addr >> config.offset_bits, addr & (config.mem_words_per_bank - 1)
    return golden.sram[mi, bank, offset]


def _region_of(config: ChipConfig, program: Program, mi: int, addr: int) -> str:
    name = config.mem_slice_list[mi].name
    for r in program.outputs:
        if name in r.slices and r.addr <= addr < r.addr + r.words:
            return f" (output {r.name!r} word {addr - r.addr})"
    return ""


def compare(config: ChipConfig, program: Program, golden: RunResult, rtl) -> Comparison:
    """Compare an :class:`tb.runner.RtlResult` with the golden model's run of ``program``."""
    problems = []
    if rtl.cycles != golden.cycles:
        problems.append(f"cycle count: RTL {rtl.cycles}, golden {golden.cycles}")
    names = HostMap(config).counter_names
    c = golden.counters
    want = ([c["issued"][q] for _, q in names if _ == "issued"]
            + [c["mem_reads"][m] for g, m in names if g == "mem_reads"]
            + [c["mem_writes"][m] for g, m in names if g == "mem_writes"]
            + [c["mxm_abc"][p] for g, p in names if g == "mxm_abc"])
    for (group, name), got, exp in zip(names, rtl.counters, want, strict=True):
        if got != exp:
            problems.append(f"counter {group}[{name}]: RTL {got}, golden {exp}")
            break
    expected = np.stack([_golden_word(config, golden, mi, a) for mi, a in rtl.readback]) \
        if rtl.readback else np.zeros((0, config.lanes), np.uint8)
    diff = np.argwhere(rtl.words != expected)
    if len(diff):
        i, lane = diff[0]
        mi, addr = rtl.readback[i]
        sl = config.mem_slice_list[mi].name
        bank, off = addr >> config.offset_bits, addr & (config.mem_words_per_bank - 1)
        problems.append(
            f"SRAM {sl} b{bank}:{off} lane {lane} (superlane "
            f"{lane // config.lanes_per_superlane}){_region_of(config, program, mi, addr)}: "
            f"RTL {rtl.words[i, lane]}, golden {expected[i, lane]} "
            f"({len(diff)} bytes differ in {len(np.unique(diff[:, 0]))} words)")
    return Comparison(not problems, problems)
