"""Stream registers of the golden model, stored by diagonal instead of shifted every cycle.

Every stream-register position holds, per direction and stream, one byte per lane. Each cycle a
value moves one position in its direction unless the slice at the next position overwrites it.
Shifting ``positions x streams x lanes`` bytes every cycle would cost the model far more than the
instructions themselves at ``groqchip`` scale, so the model stores *writes* instead:

a value present at position ``p`` in cycle ``w`` travelling east is at ``p + j`` in cycle
``w + j``, so ``p - w`` is constant along its path (its *diagonal*; ``p + w`` westward). The
value a slice at ``q`` sees in cycle ``t`` is the write on diagonal ``q - t`` nearest upstream
of ``q`` (the last overwrite), and there is none if no producer wrote that diagonal upstream.
Reads and writes cost a dictionary lookup, whatever the size of the chip, and idle cycles cost
nothing.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["StreamFile", "Producer"]


class Producer:
    """Who wrote a stream value (for error messages)."""

    __slots__ = ("queue", "index", "issue_cycle", "op")

    def __init__(self, queue: str, index: int, issue_cycle: int, op: str):
        self.queue = queue
        self.index = index
        self.issue_cycle = issue_cycle
        self.op = op

    def __str__(self) -> str:
        return f"{self.op} (queue {self.queue} #{self.index}, issued cycle {self.issue_cycle})"


class StreamFile:
    """All east- and westbound stream registers of one chip.

    Parameters
    ----------
    positions : int
        Stream-register positions (one per slice, west = 0).
    """

    def __init__(self, positions: int):
        self.positions = positions
        # (direction, stream, diagonal) -> {position: (write cycle, value, producer)}
        self._diagonals: dict[tuple[int, int, int], dict[int, tuple]] = {}
        # write cycle -> keys written then, for pruning values that have left the chip
        self._by_cycle: deque[tuple[int, list]] = deque()
        self.writes = 0

    def write(self, direction: int, stream: int, position: int, cycle: int,
              value: np.ndarray, producer: Producer) -> Producer | None:
        """Make ``value`` present at ``position`` during ``cycle``; ``direction`` is the
        :class:`~openlpu.isa.Direction` value (0 east, 1 west).

        Returns the producer already writing that register in that cycle (a conflict; the new
        value wins), else ``None``.
        """
        d = direction
        key = (d, stream, position - cycle if d == 0 else position + cycle)
        slots = self._diagonals.setdefault(key, {})
        previous = slots.get(position)
        clash = previous[2] if previous is not None and previous[0] == cycle else None
        slots[position] = (cycle, value, producer)
        if self._by_cycle and self._by_cycle[-1][0] == cycle:
            self._by_cycle[-1][1].append(key)
        else:
            self._by_cycle.append((cycle, [key]))
        self.writes += 1
        return clash

    def read(self, direction: int, stream: int, position: int,
             cycle: int) -> np.ndarray | None:
        """The value at ``position`` during ``cycle``, or ``None`` if the slot is empty."""
        d = direction
        slots = self._diagonals.get(
            (d, stream, position - cycle if d == 0 else position + cycle))
        if not slots:
            return None
        best = None
        if d == 0:  # eastward: nearest producer at or west of the reader
            for p in slots:
                if p <= position and (best is None or p > best):
                    best = p
        else:
            for p in slots:
                if p >= position and (best is None or p < best):
                    best = p
        return None if best is None else slots[best][1]

    def prune(self, now: int) -> None:
        """Forget writes that can no longer reach any position from cycle ``now`` on."""
        horizon = now - self.positions
        while self._by_cycle and self._by_cycle[0][0] < horizon:
            cycle, keys = self._by_cycle.popleft()
            for key in keys:
                slots = self._diagonals.get(key)
                if slots is None:
                    continue
                for p in [p for p, (w, _, _) in slots.items() if w == cycle]:
                    del slots[p]
                if not slots:
                    del self._diagonals[key]
