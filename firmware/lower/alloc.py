"""SRAM allocation for a lowered layer: every tensor, constant and cache word gets an address.

A *group* is ``nbytes`` adjacent MEM slices on one side of the VXM: byte ``k`` of every element
of a word lives in slice ``k`` of its group, at the same address (the layout of an
:class:`firmware.program.OutputRegion`). A tensor's words are striped over all groups of its
width (int8 words over every slice), so that consecutive words sit in different slices and
can be read or written in the same cycle. Each slice hands out addresses ``0 .. 2W - 1`` in
order (bank 0 first). Nothing is freed: every intermediate tensor stays readable in the final
SRAM, for the op-by-op comparison with the integer reference.

Constants (weights, biases, requantisation multipliers, masks, tables) are deduplicated: two
identical words share one address. :class:`SramCapacityError` reports bytes needed against
bytes available when a slice is full.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware.program import MemInit
from openlpu.config import ChipConfig

from .errors import SramCapacityError
from .layout import Layout

__all__ = ["SramPlan", "Tensor"]


@dataclass
class Tensor:
    """A tensor stored in SRAM: ``bits``-bit elements laid out by ``layout``.

    ``gid[r, j]`` / ``addr[r, j]`` locate word ``(r, j)`` (group index into
    :attr:`SramPlan.groups`, -1 for a word that holds no element); ``ready[r, j]`` is the
    first cycle a ``READ`` may see its value.
    """

    name: str
    bits: int
    layout: Layout
    gid: np.ndarray
    addr: np.ndarray
    ready: np.ndarray = field(repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes per element (= slices per group)."""
        return self.bits // 8

    def view(self, name: str, layout: Layout) -> Tensor:
        """The same words seen through another layout of the same word matrix (``ready`` is
        shared, so writes through the view are seen by readers of the whole)."""
        if (layout.rows, layout.tiles) != self.gid.shape:
            raise ValueError(f"view {name}: word matrix {(layout.rows, layout.tiles)} differs "
                             f"from {self.gid.shape}")
        return Tensor(name, self.bits, layout, self.gid, self.addr, self.ready)

    def loc(self, r: int, j: int) -> tuple[int, int]:
        """``(group, address)`` of word ``(r, j)``."""
        return int(self.gid[r, j]), int(self.addr[r, j])


class SramPlan:
    """Addresses of every word of a lowered layer, and the initial SRAM contents.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    """

    def __init__(self, config: ChipConfig):
        self.config = config
        n = config.mem_slices_per_hemisphere
        self.groups: list[tuple[str, ...]] = []
        self.by_width: dict[int, list[int]] = {}
        for nb in (1, 2, 4):
            ids = []
            for side in ("w", "e"):
                for k in range(n // nb):
                    ids.append(len(self.groups))
                    self.groups.append(tuple(f"mem_{side}{k * nb + i}" for i in range(nb)))
            self.by_width[nb] = ids
        self.next: dict[str, int] = {s.name: 0 for s in config.mem_slice_list}
        self.inits: list[MemInit] = []
        self._consts: dict[tuple[bytes, int], int] = {}
        self._turn = {1: 0, 2: 0, 4: 0}

    @property
    def words_used(self) -> int:
        """SRAM words handed out, summed over slices."""
        return sum(self.next.values())

    @property
    def bytes_used(self) -> int:
        """SRAM bytes handed out."""
        return self.words_used * self.config.lanes

    def candidates(self, nbytes: int, avoid: set[str] = frozenset()) -> list[int]:
        """Groups of width ``nbytes``, those sharing no slice with ``avoid`` first."""
        ids = self.by_width.get(nbytes)
        if not ids:
            raise SramCapacityError(
                f"a {8 * nbytes}-bit word needs {nbytes} MEM slices on one side of the VXM; "
                f"config {self.config.name!r} has {self.config.mem_slices_per_hemisphere}",
                nbytes, self.config.mem_slices_per_hemisphere)
        free = [g for g in ids if not avoid.intersection(self.groups[g])]
        return free + [g for g in ids if g not in free]

    def _take(self, gid: int, what: str) -> int:
        cfg = self.config
        group = self.groups[gid]
        addr = max(self.next[s] for s in group)
        if addr >= 2 * cfg.mem_words_per_bank:
            need = self.bytes_used + cfg.lanes * len(group)
            raise SramCapacityError(
                f"SRAM full while placing {what}: MEM slice(s) {'+'.join(group)} have no free "
                f"word left; the layer needs more than {need} bytes of SRAM, config "
                f"{cfg.name!r} has {cfg.sram_bytes} ({cfg.mem_slices} slices x "
                f"{2 * cfg.mem_words_per_bank} words x {cfg.lanes} bytes)", need,
                cfg.sram_bytes)
        for s in group:
            self.next[s] = addr + 1
        return addr

    def scratch(self, bits: int, avoid: set[str], what: str,
                side: str | None = None) -> tuple[int, int]:
        """``(group, address)`` of one fresh word, in the emptiest group avoiding ``avoid``
        (on the ``"w"`` or ``"e"`` side of the VXM if given)."""
        cands = self.candidates(bits // 8, avoid)
        if side is not None:
            cands = [c for c in cands if self.groups[c][0].startswith(f"mem_{side}")] or cands
        cands = [c for c in cands if not avoid.intersection(self.groups[c])] or cands
        g = min(cands, key=lambda c: max(self.next[s] for s in self.groups[c]))
        return g, self._take(g, what)

    def tensor(self, name: str, bits: int, layout: Layout, avoid: set[str] = frozenset(),
               spread: int | None = None) -> Tensor:
        """Allocate every used word of a new tensor, striped over the groups of its width
        (over the first ``spread`` candidates only, if given)."""
        nb = bits // 8
        cands = self.candidates(nb, avoid)
        if spread:
            cands = cands[:spread]
        used = layout.words()
        gid = np.full(used.shape, -1, np.int64)
        addr = np.full(used.shape, -1, np.int64)
        for r, j in zip(*np.nonzero(used), strict=True):
            g = cands[self._turn[nb] % len(cands)]
            self._turn[nb] += 1
            gid[r, j] = g
            addr[r, j] = self._take(g, f"tensor {name}")
        return Tensor(name, bits, layout, gid, addr, np.zeros(used.shape, np.int64))

    def init(self, gid: int, addr: int, bits: int, values: np.ndarray) -> None:
        """Initial contents of one word (``values``: ``L`` integers)."""
        raw = np.asarray(values, np.int64).astype(f"<i{bits // 8}").view(np.uint8)
        raw = raw.reshape(self.config.lanes, bits // 8)
        for k, s in enumerate(self.groups[gid]):
            self.inits.append(MemInit(s, addr, raw[:, k].reshape(1, -1).copy()))

    def const_word(self, bits: int, values: np.ndarray, avoid: set[str] = frozenset(),
                   what: str = "constant", turn: int | None = None) -> tuple[int, int]:
        """``(group, address)`` of a constant word, shared with an identical earlier one in a
        group that avoids ``avoid`` where possible; ``turn`` picks the group
        ``turn mod groups`` of the width (weight rows that one ``LW`` loads together must
        sit in different slices)."""
        key = np.asarray(values, np.int64).astype(f"<i{bits // 8}").tobytes()
        cands = self.candidates(bits // 8, avoid)
        preferred = [g for g in cands if not avoid.intersection(self.groups[g])] or cands
        if turn is not None:
            ids = self.by_width[bits // 8]
            preferred = [ids[turn % len(ids)]]
        for g in preferred:
            if (key, g) in self._consts:
                return g, self._consts[(key, g)]
        g = min(preferred, key=lambda c: max(self.next[s] for s in self.groups[c]))
        addr = self._take(g, what)
        self._consts[(key, g)] = addr
        self.init(g, addr, bits, values)
        return g, addr

    def const_tensor(self, name: str, bits: int, layout: Layout, values,
                     avoid: set[str] = frozenset()) -> Tensor:
        """A constant tensor (every word deduplicated, ready at cycle 0)."""
        mat = layout.store(values)
        used = layout.words()
        L = self.config.lanes  # noqa: N806
        gid = np.full(used.shape, -1, np.int64)
        addr = np.full(used.shape, -1, np.int64)
        for r, j in zip(*np.nonzero(used), strict=True):
            gid[r, j], addr[r, j] = self.const_word(bits, mat[r, j * L:(j + 1) * L], avoid,
                                                    f"constant {name}")
        return Tensor(name, bits, layout, gid, addr, np.zeros(used.shape, np.int64))

    def bind(self, t: Tensor, values) -> list[MemInit]:
        """Memory inits that put ``values`` (logical shape) into tensor ``t``'s words."""
        mat = t.layout.store(values)
        L = self.config.lanes  # noqa: N806
        out: list[MemInit] = []
        saved, self.inits = self.inits, out
        try:
            for r, j in zip(*np.nonzero(t.gid >= 0), strict=True):
                self.init(int(t.gid[r, j]), int(t.addr[r, j]), t.bits,
                          mat[r, j * L:(j + 1) * L])
        finally:
            self.inits = saved
        return out

    def read(self, t: Tensor, sram: np.ndarray) -> np.ndarray:
        """Tensor ``t`` (logical shape, int64) from a final SRAM image (``RunResult.sram``,
        ``uint8 [slices, 2, W, L]``)."""
        cfg = self.config
        L = cfg.lanes  # noqa: N806
        flat = np.asarray(sram).reshape(cfg.mem_slices, 2 * cfg.mem_words_per_bank, L)
        index = {s.name: s.index for s in cfg.mem_slice_list}
        mat = np.zeros((t.layout.rows, t.layout.tiles * L), np.int64)
        dt = np.dtype(f"<i{t.nbytes}")
        for r, j in zip(*np.nonzero(t.gid >= 0), strict=True):
            group = self.groups[int(t.gid[r, j])]
            raw = np.stack([flat[index[s], int(t.addr[r, j])] for s in group], axis=1)
            mat[r, j * L:(j + 1) * L] = raw.copy().view(dt).reshape(L)
        return t.layout.load(mat)
