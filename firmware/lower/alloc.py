"""SRAM allocation for a lowered layer: every tensor, constant and cache word gets an address.

A *group* is ``nbytes`` adjacent MEM slices on one side of the VXM: byte ``k`` of every element
of a word lives in slice ``k`` of its group, at the same address (the layout of an
:class:`firmware.program.OutputRegion`). A tensor's words are striped over all groups of its
width (int8 words over every slice), so that consecutive words sit in different slices and
can be read or written in the same cycle. Each slice hands out its words in an order that
alternates the two banks (bank 0 offset 0, bank 1 offset 0, bank 0 offset 1, ..): a ``READ``
collides with the ``WRITE`` issued the cycle before only in the same bank, and with everything
in bank 0 (as with addresses in order) every such pair would. By default nothing is freed:
every intermediate tensor stays readable in the final SRAM, for the op-by-op comparison with
the integer reference.

A plan made with ``reuse=True`` (for a layer that does not fit otherwise) gives a tensor the
free address of a group released longest ago (fresh words last), constants the highest address
that never held a tensor, and :meth:`SramPlan.release` returns the words of a dead tensor or of
an op's scratch words to the pool. Every allocated word carries a
*lifetime key* (``("t", tensor name)``, or ``("s", op index)`` for scratch words) in
:attr:`SramPlan.owner`, so the lowering can tell which tensor a word belongs to now; that the
new occupant's writes come after the old one's last access is the timetable's business
(:attr:`firmware.lower.resources.Reservations.fences`).

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

_FRESH = 1 << 40
_NEVER = 1 << 41


@dataclass
class Tensor:
    """A tensor stored in SRAM: ``bits``-bit elements laid out by ``layout``.

    ``gid[r, j]`` / ``addr[r, j]`` locate word ``(r, j)`` (group index into
    :attr:`SramPlan.groups`, -1 for a word that holds no element); ``ready[r, j]`` is the
    first cycle a ``READ`` may see its value; ``key`` is the lifetime key of its words
    (``None`` for constants, which live for the whole layer).
    """

    name: str
    bits: int
    layout: Layout
    gid: np.ndarray
    addr: np.ndarray
    ready: np.ndarray = field(repr=False)
    key: tuple | None = field(default=None, repr=False)

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
        return Tensor(name, self.bits, layout, self.gid, self.addr, self.ready, self.key)

    def loc(self, r: int, j: int) -> tuple[int, int]:
        """``(group, address)`` of word ``(r, j)``."""
        return int(self.gid[r, j]), int(self.addr[r, j])


class SramPlan:
    """Addresses of every word of a lowered layer, and the initial SRAM contents.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    reuse : bool
        Hand out released words again (see the module docstring).
    """

    def __init__(self, config: ChipConfig, reuse: bool = False):
        self.config = config
        self.reuse = reuse
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
        #: (slice, address) -> lifetime key of the tensor or scratch word living there.
        self.owner: dict[tuple[str, int], tuple] = {}
        #: Lifetime key -> its words, as (group, address).
        self.words_of: dict[tuple, list[tuple[int, int]]] = {}
        #: Keys of tensors that live to the end of the layer (the KV cache).
        self.kept: set[tuple] = set()
        #: The op being lowered (its index in program order): the key of scratch words.
        self.op_index = 0
        self._busy = {s: np.zeros(2 * config.mem_words_per_bank, bool) for s in self.next}
        # Words that ever held a tensor: a constant (written before cycle 0) must not go
        # where a tensor is written during the run.
        self._ever = {s: np.zeros(2 * config.mem_words_per_bank, bool) for s in self.next}
        # When each word was last released (a count of releases; never: _FRESH). A tensor
        # takes the word released longest ago, whose old accesses lie furthest in the past,
        # so its writes rarely wait at the fence; fresh words come after every released one.
        self._released_at = {s: np.full(2 * config.mem_words_per_bank, _FRESH, np.int64)
                             for s in self.next}
        self._releases = 0
        # Allocation order -> address: the banks alternate (see the module docstring).
        w = config.mem_words_per_bank
        slots = np.arange(2 * w)
        self._addr_of_slot = (slots % 2) * w + slots // 2

    @property
    def words_used(self) -> int:
        """SRAM words handed out at some point, summed over slices (with reuse, a word handed
        out several times counts once)."""
        return int(sum(int(e.sum()) for e in self._ever.values()))

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

    def _take(self, gid: int, what: str, key: tuple | None = None) -> int:
        cfg = self.config
        group = self.groups[gid]
        order = self._addr_of_slot
        if self.reuse and key is None:
            # Constants fill each slice from the top, tensors from the bottom, so that
            # neither fragments the other's end of the address space.
            free = ~np.logical_or.reduce([self._ever[s] for s in group])[order]
            slot = (len(free) - 1 - int(np.argmax(free[::-1])) if free.any()
                    else 2 * cfg.mem_words_per_bank)
        elif self.reuse:
            free = ~np.logical_or.reduce([self._busy[s] for s in group])[order]
            if free.any():
                age = np.maximum.reduce([self._released_at[s] for s in group])[order]
                slot = int(np.argmin(np.where(free, age, _NEVER)))
            else:
                slot = 2 * cfg.mem_words_per_bank
        else:
            slot = max(self.next[s] for s in group)
        if slot >= 2 * cfg.mem_words_per_bank:
            need = self.bytes_used + cfg.lanes * len(group)
            reused = " (even reusing the words of dead tensors)" if self.reuse else ""
            raise SramCapacityError(
                f"SRAM full while placing {what}: MEM slice(s) {'+'.join(group)} have no free "
                f"word left{reused}; the layer needs more than {need} bytes of SRAM, config "
                f"{cfg.name!r} has {cfg.sram_bytes} ({cfg.mem_slices} slices x "
                f"{2 * cfg.mem_words_per_bank} words x {cfg.lanes} bytes)", need,
                cfg.sram_bytes)
        addr = int(order[slot])
        for s in group:
            self.next[s] = max(self.next[s], slot + 1)
            self._busy[s][addr] = True
            self._ever[s][addr] = True
            if key is not None:
                self.owner[(s, addr)] = key
        if key is not None:
            self.words_of.setdefault(key, []).append((gid, addr))
        return addr

    def release(self, key: tuple) -> list[tuple[str, int]]:
        """Return the words of lifetime key ``key`` to the pool (a plan made with
        ``reuse=True``); returns them as ``(slice, address)``."""
        out = []
        self._releases += 1
        for gid, addr in self.words_of.pop(key, ()):
            for s in self.groups[gid]:
                if self.owner.get((s, addr)) == key:
                    del self.owner[(s, addr)]
                    self._busy[s][addr] = False
                    self._released_at[s][addr] = self._releases
                    out.append((s, addr))
        return out

    def key_at(self, gid: int, addr: int) -> tuple | None:
        """The lifetime key of the word living at ``addr`` of group ``gid`` now."""
        return self.owner.get((self.groups[gid][0], addr))

    def scratch(self, bits: int, avoid: set[str], what: str,
                side: str | None = None) -> tuple[int, int]:
        """``(group, address)`` of one fresh word, in the emptiest group avoiding ``avoid``
        (on the ``"w"`` or ``"e"`` side of the VXM if given)."""
        cands = self.candidates(bits // 8, avoid)
        if side is not None:
            cands = [c for c in cands if self.groups[c][0].startswith(f"mem_{side}")] or cands
        cands = [c for c in cands if not avoid.intersection(self.groups[c])] or cands
        g = min(cands, key=lambda c: max(self.next[s] for s in self.groups[c]))
        return g, self._take(g, what, ("s", self.op_index))

    def tensor(self, name: str, bits: int, layout: Layout, avoid: set[str] = frozenset(),
               spread: int | None = None, keep: bool = False) -> Tensor:
        """Allocate every used word of a new tensor, striped over the groups of its width
        (over the first ``spread`` candidates only, if given); ``keep``: the tensor lives to
        the end of the layer, it is never released."""
        key = ("t", name)
        if keep:
            self.kept.add(key)
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
            addr[r, j] = self._take(g, f"tensor {name}", key)
        return Tensor(name, bits, layout, gid, addr, np.zeros(used.shape, np.int64), key)

    def init(self, gid: int, addr: int, bits: int, values: np.ndarray) -> None:
        """Initial contents of one word (``values``: ``L`` integers)."""
        raw = np.asarray(values, np.int64).astype(f"<i{bits // 8}").view(np.uint8)
        raw = raw.reshape(self.config.lanes, bits // 8)
        for k, s in enumerate(self.groups[gid]):
            self.inits.append(MemInit(s, addr, raw[:, k].reshape(1, -1).copy()))

    def const_word(self, bits: int, values: np.ndarray, avoid: set[str] = frozenset(),
                   what: str = "constant", turn: int | None = None,
                   spread: int | None = None, side: str | None = None) -> tuple[int, int]:
        """``(group, address)`` of a constant word, shared with an identical earlier one in a
        group that avoids ``avoid`` where possible; ``turn`` picks the group
        ``turn mod groups`` of the width (weight rows that one ``LW`` loads together must
        sit in different slices), among the groups on ``side`` (``"w"``/``"e"``) if given;
        ``spread`` picks group ``spread mod n`` of the ``n`` that
        avoid ``avoid``, so that the rows of an op read copies in different slices instead
        of queueing for one (a per-channel multiplier is read once per row)."""
        key = np.asarray(values, np.int64).astype(f"<i{bits // 8}").tobytes()
        cands = self.candidates(bits // 8, avoid)
        preferred = [g for g in cands if not avoid.intersection(self.groups[g])] or cands
        if spread is not None:
            preferred = [preferred[spread % len(preferred)]]
        if turn is not None:
            ids = self.by_width[bits // 8]
            if side is not None:
                ids = [g for g in ids if self.groups[g][0].startswith(f"mem_{side}")]
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
