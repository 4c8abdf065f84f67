"""The trace of an integer layer forward: every intermediate tensor, by name, in order.

Each primitive of :class:`sim_models.transformer.ops.IntOps` records its result here under a
unique name (``"attn.scores"``, ``"ln1.rsqrt"``, ...) together with the instruction it stands
for (``"ABC"``, ``"REQ.i8"``, ``"EXP"``, ...). When the chip later runs the compiled layer,
comparing its tensors against this trace with :meth:`Trace.first_difference` names the first
op, tensor and element index where chip and reference disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Difference", "Trace", "TraceEntry"]


@dataclass(frozen=True)
class TraceEntry:
    """One recorded tensor: its name, the instruction that produced it and its values."""

    name: str
    op: str
    value: np.ndarray  #: int64 values (already in the range of the op's result type)


@dataclass(frozen=True)
class Difference:
    """Where two traces first disagree.

    ``index`` is the first differing element (C order) or None when the shapes differ or the
    tensor is missing on one side (``got`` is None then).
    """

    name: str
    op: str
    index: tuple[int, ...] | None
    expected: int | tuple[int, ...] | None
    got: int | tuple[int, ...] | None

    def __str__(self) -> str:
        if self.got is None:
            return f"{self.name} ({self.op}): missing from the compared trace"
        if self.index is None:
            return f"{self.name} ({self.op}): shape {self.got}, expected {self.expected}"
        return (f"{self.name} ({self.op}) at index {list(self.index)}: got {self.got}, "
                f"expected {self.expected}")


class Trace:
    """Ordered record ``name -> (op, int64 tensor)`` of one integer forward pass."""

    def __init__(self) -> None:
        self._entries: dict[str, TraceEntry] = {}

    def record(self, name: str, op: str, value: np.ndarray) -> np.ndarray:
        """Store ``value`` (as a read-only int64 array) under ``name``; returns it.

        Raises
        ------
        ValueError
            ``name`` was recorded already (names must identify one tensor).
        """
        if name in self._entries:
            raise ValueError(f"trace already has a tensor named {name!r}")
        arr = np.array(value, dtype=np.int64)  # a copy: later in-place edits cannot change it
        arr.setflags(write=False)
        self._entries[name] = TraceEntry(name, op, arr)
        return arr

    def __getitem__(self, name: str) -> np.ndarray:
        return self._entries[name].value

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Tensor names in the order they were computed."""
        return list(self._entries)

    def entries(self) -> list[TraceEntry]:
        """All entries in order."""
        return list(self._entries.values())

    def op(self, name: str) -> str:
        """The instruction that produced tensor ``name``."""
        return self._entries[name].op

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{name: tensor}`` in order."""
        return {n: e.value for n, e in self._entries.items()}

    def first_difference(self, other: Trace | Mapping[str, np.ndarray]) -> Difference | None:
        """The first tensor of this (reference) trace that ``other`` does not reproduce.

        Tensors are visited in the order they were computed, so the result is the earliest
        op whose output differs: the place to look for the bug. Tensors missing from
        ``other`` count as differences. Returns None when every tensor matches bit for bit.
        """
        got_all = other.as_dict() if isinstance(other, Trace) else other
        for name, e in self._entries.items():
            if name not in got_all:
                return Difference(name, e.op, None, tuple(e.value.shape), None)
            got = np.asarray(got_all[name])
            if got.shape != e.value.shape:
                return Difference(name, e.op, None, tuple(e.value.shape), tuple(got.shape))
            bad = np.flatnonzero(got.reshape(-1) != e.value.reshape(-1))
            if bad.size:
                idx = tuple(int(i) for i in np.unravel_index(bad[0], e.value.shape))
                return Difference(name, e.op, idx, int(e.value[idx]), int(got[idx]))
        return None
