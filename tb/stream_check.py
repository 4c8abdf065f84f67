"""Locate the first difference between an RTL run and the golden model on the stream registers.

The final SRAM says *that* a run went wrong; the stream registers say *where*: every value a
unit puts on a stream is logged by the golden model (:class:`sim_models.golden.StreamWrite`) and
must sit in the RTL's register at that position in that cycle. :func:`first_stream_difference`
walks the golden writes in cycle order and checks each against the RTL's waveform, superlane by
superlane (superlane ``k`` carries superlane 0's data ``k`` cycles later), so the report names
the first cycle, stream, position (slice), superlane and lane that differ, and who wrote the
value.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from openlpu.config import ChipConfig
from sim_models.golden import StreamWrite

from .waveform import Var, Waveform, cycle_edge

__all__ = ["StreamMismatch", "first_stream_difference", "register_name"]

def register_name(direction: int, superlane: int, position: int) -> str:
    """Name of the chip top's stream register (as :mod:`hdl.chip` names it)."""
    return f"{'e' if direction == 0 else 'w'}_sl{superlane}_p{position}"


@dataclass(frozen=True)
class StreamMismatch:
    """The first stream-register byte where the RTL and the golden model disagree."""

    cycle: int
    direction: int
    stream: int
    position: int
    slice_name: str
    superlane: int
    lane: int
    rtl: int | None
    golden: int
    producer: str

    def __str__(self) -> str:
        d = "E" if self.direction == 0 else "W"
        got = "undefined" if self.rtl is None else f"{self.rtl:#04x}"
        return (f"first stream difference: cycle {self.cycle} (superlane-0 time), stream "
                f"{d}{self.stream} at position {self.position} ({self.slice_name}), superlane "
                f"{self.superlane}, lane {self.lane}: RTL {got}, golden {self.golden:#04x}, "
                f"written by {self.producer}")


def first_stream_difference(config: ChipConfig, writes: list[StreamWrite],
                            waveform: Waveform) -> StreamMismatch | None:
    """The earliest golden stream write the RTL's registers do not hold, or ``None``."""
    lps = config.lanes_per_superlane
    edges = waveform.rising_edges()
    start = waveform.start_edge()
    needed = {(w.direction, k, w.position) for w in writes for k in range(config.superlanes)}
    regs: dict[tuple[int, int, int], Var] = {
        key: waveform.find(register_name(*key)) for key in sorted(needed)}
    changes = waveform.changes(list(regs.values()))
    times = {h: [t for t, _ in seq] for h, seq in changes.items()}
    names = {s.position: s.name for s in config.slices}
    for w in sorted(writes, key=lambda w: (w.cycle, w.direction, w.stream, w.position)):
        for k in range(config.superlanes):
            var = regs[(w.direction, k, w.position)]
            edge = cycle_edge(start, edges, w.cycle + k)
            bits = None
            if edge is not None:
                i = bisect.bisect_right(times[var.handle], edges[edge]) - 1
                bits = changes[var.handle][i][1] if i >= 0 else None
            for lane in range(lps):
                want = int(w.value[k * lps + lane])
                got = _byte(bits, w.stream * lps + lane)
                if got != want:
                    return StreamMismatch(w.cycle, w.direction, w.stream, w.position,
                                          names.get(w.position, "?"), k, k * lps + lane, got,
                                          want, str(w.producer))
    return None


def _byte(bits: str | None, index: int) -> int | None:
    """Byte ``index`` (little-endian) of an MSB-first bit string; ``None`` if undefined."""
    if bits is None:
        return None
    hi = len(bits) - 8 * index
    field = bits[max(hi - 8, 0):hi]
    if not field or any(c not in "01" for c in field):
        return None
    return int(field, 2)
