"""Stream-register views: what one slice sees and drives at its position.

For one superlane tile, a slice reads the eastward and westward stream registers at its position
(``e``/``w``: ``streams x lanes_per_superlane`` bytes) and may overwrite any of them: it drives
``e_we``/``w_we`` (one bit per stream) and ``e_data``/``w_data`` during cycle ``t + latency - 1``
so that the register holds the value during cycle ``t + latency`` (docs/architecture.md).

Whole-chip units (MXM, SXM) get the same view for every superlane at once, indexed
``[superlane]``; superlane ``k``'s registers carry superlane-0 data ``k`` cycles later.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from openlpu.config import ChipConfig

__all__ = ["lane_vector", "stream_bank", "StreamTileSignature", "StreamChipSignature"]


def lane_vector(config: ChipConfig) -> data.ArrayLayout:
    """One stream's bytes in one superlane: ``lanes_per_superlane`` x 8 bits, lane 0 lowest."""
    return data.ArrayLayout(unsigned(8), config.lanes_per_superlane)


def stream_bank(config: ChipConfig) -> data.ArrayLayout:
    """All streams of one direction in one superlane: ``[stream][lane]``."""
    return data.ArrayLayout(lane_vector(config), config.streams_per_direction)


class StreamTileSignature(wiring.Signature):
    """A slice's view of the stream registers at its position, in one superlane tile.

    Members (from the slice's side)
    -------------------------------
    e, w : In(stream_bank)
        Eastward / westward register values at this position this cycle.
    e_we, w_we : Out(streams)
        One bit per stream: overwrite that register (it holds ``*_data`` next cycle).
    e_data, w_data : Out(stream_bank)
        The values to write.
    """

    def __init__(self, config: ChipConfig):
        bank = stream_bank(config)
        s = config.streams_per_direction
        super().__init__({
            "e": In(bank), "w": In(bank),
            "e_we": Out(s), "w_we": Out(s),
            "e_data": Out(bank), "w_data": Out(bank),
        })


class StreamChipSignature(wiring.Signature):
    """A whole-chip unit's view: :class:`StreamTileSignature` for every superlane,
    ``tiles[k]`` being superlane ``k``."""

    def __init__(self, config: ChipConfig):
        super().__init__({"tiles": Out(StreamTileSignature(config)).array(config.superlanes)})
