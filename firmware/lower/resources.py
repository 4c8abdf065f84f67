"""Reservation tables: what a schedule has already promised, so the next promise cannot break it.

The TSP has no interlocks, so a lowering pass must itself guarantee what the golden model
checks (and what the hardware silently gets wrong): one instruction per queue per cycle (a MEM
slice's ``READ`` and ``WRITE`` of one cycle issue as one ``RDWR``), no bank read and written in
one cycle, and every stream value still where its consumer reads it.
:class:`Reservations` records three kinds of claims and a :class:`Txn` adds a group of them
all-or-nothing:

- **queue slots** — the :class:`firmware.schedule.ScheduleBuilder` timetable itself;
- **stream cells** — a value present at position ``p`` in cycle ``w`` and consumed at ``q``
  occupies the register of its stream at every position from ``p`` to ``q`` on its diagonal
  (``p - w`` eastward, ``p + w`` westward, see ``docs/architecture.md`` section 3). Two
  transfers whose position ranges overlap on one diagonal of one stream would overwrite each
  other (or write one register in one cycle), so claims on a diagonal must be disjoint. Values
  nobody consumes any more may be overwritten freely: only the consumed stretch is claimed;
- **bank accesses** — a read in its issue cycle, a write in the cycle after its issue; a read
  and a write of the same bank of one slice in one cycle is a bank conflict.

A word the SRAM plan hands out again (``SramPlan(reuse=True)``) gets a *fence*: the last cycle
its previous occupant was read or written. A ``WRITE`` to it must come later, or it would
destroy a value still to be read (or be overwritten by a late write of the old value).
"""

from __future__ import annotations

from firmware.schedule import JOINS, ScheduleBuilder
from openlpu.isa import Instruction, Opcode

__all__ = ["Reservations", "Txn"]


class Reservations:
    """Everything a schedule has claimed so far.

    Parameters
    ----------
    builder : ScheduleBuilder
        The timetable the committed instructions are placed in.
    """

    def __init__(self, builder: ScheduleBuilder):
        self.builder = builder
        self.config = builder.config
        # (direction, stream, diagonal) -> claimed position intervals [lo, hi]
        self.cells: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
        # (slice, cycle, "r" | "w") -> bank
        self.banks: dict[tuple[str, int, str], int] = {}
        #: No instruction may issue before this cycle (the start of the current program of a
        #: timetable cut into several, :meth:`firmware.lower.placer.Placer.cut`).
        self.floor = 0
        #: (slice, address) -> last cycle a committed READ or WRITE accessed its bank.
        self.touched: dict[tuple[str, int], int] = {}
        #: (slice, address) -> a WRITE to the word must access its bank after this cycle.
        self.fences: dict[tuple[str, int], int] = {}

    def fence(self, slice_name: str, addr: int) -> None:
        """The word at ``addr`` of ``slice_name`` changes hands: later writes come after every
        access committed so far."""
        last = self.touched.get((slice_name, addr))
        if last is not None:
            key = (slice_name, addr)
            self.fences[key] = max(last, self.fences.get(key, last))

    def txn(self) -> Txn:
        """A new, empty group of claims."""
        return Txn(self)


class Txn:
    """Claims that are committed together or not at all.

    Each ``claim`` method returns ``False`` (and records nothing) if the claim collides with a
    committed one or with one already in this transaction. :meth:`mark` and :meth:`rollback`
    undo the claims made after a mark, so alternatives can be tried inside one transaction.
    """

    def __init__(self, res: Reservations):
        self.res = res
        self.slots: list[tuple[str, int, Instruction]] = []
        # (queue, cycle) -> the opcode claimed there; a READ and a WRITE share a MEM slot
        self._slot_keys: dict[tuple[str, int], list[Opcode]] = {}
        self.cells: list[tuple[tuple[int, int, int], int, int]] = []
        self.banks: list[tuple[tuple[str, int, str], int]] = []
        self._bank_keys: dict[tuple[str, int, str], int] = {}

    # --- undo --------------------------------------------------------------------------------

    def mark(self) -> tuple[int, int, int]:
        """A point to :meth:`rollback` to."""
        return len(self.slots), len(self.cells), len(self.banks)

    def rollback(self, mark: tuple[int, int, int]) -> None:
        """Forget every claim made after ``mark``."""
        ns, nc, nb = mark
        for queue, cycle, instr in self.slots[ns:]:
            ops = self._slot_keys[(queue, cycle)]
            ops.remove(instr.op)
            if not ops:
                del self._slot_keys[(queue, cycle)]
        del self.slots[ns:]
        del self.cells[nc:]
        for key, _ in self.banks[nb:]:
            del self._bank_keys[key]
        del self.banks[nb:]

    # --- claims ------------------------------------------------------------------------------

    def slot(self, queue: str, cycle: int, instr: Instruction) -> bool:
        """Issue ``instr`` on ``queue`` in ``cycle`` (a MEM slice's ``READ`` and ``WRITE`` may
        share a cycle: they issue as one ``RDWR``)."""
        op = instr.op
        if cycle < self.res.floor or not self.res.builder.free_for(queue, cycle, op):
            return False
        mine = self._slot_keys.get((queue, cycle))
        if mine is not None and (len(mine) > 1 or JOINS.get(mine[0]) is not op
                                 or self.res.builder.busy(queue, cycle)):
            return False
        if instr.op is Opcode.WRITE and self.res.fences:
            fence = self.res.fences.get((queue, instr.addr))
            if fence is not None and cycle + 1 <= fence:
                return False
        self.slots.append((queue, cycle, instr))
        self._slot_keys.setdefault((queue, cycle), []).append(op)
        return True

    def free(self, queue: str, cycle: int) -> bool:
        """Whether ``queue`` could still issue something in ``cycle``."""
        return (cycle >= self.res.floor and (queue, cycle) not in self._slot_keys
                and not self.res.builder.busy(queue, cycle))

    def path(self, direction: int, stream: int, p: int, w: int, q: int) -> bool:
        """A value on ``stream`` flowing in ``direction`` (0 east, 1 west), present at
        position ``p`` in cycle ``w``, stays intact until it is consumed at position ``q``."""
        if direction == 0:
            if q < p:
                raise ValueError(f"eastward value from position {p} cannot reach {q}")
            key, lo, hi = (0, stream, p - w), p, q
        else:
            if q > p:
                raise ValueError(f"westward value from position {p} cannot reach {q}")
            key, lo, hi = (1, stream, p + w), q, p
        for a, b in self.res.cells.get(key, ()):
            if a <= hi and lo <= b:
                return False
        for k, a, b in self.cells:
            if k == key and a <= hi and lo <= b:
                return False
        self.cells.append((key, lo, hi))
        return True

    def bank(self, slice_name: str, cycle: int, bank: int, kind: str) -> bool:
        """Access ``bank`` of ``slice_name`` in ``cycle`` (``kind`` ``"r"`` or ``"w"``)."""
        other_key = (slice_name, cycle, "w" if kind == "r" else "r")
        other = self._bank_keys.get(other_key, self.res.banks.get(other_key))
        if other == bank:
            return False
        key = (slice_name, cycle, kind)
        self.banks.append((key, bank))
        self._bank_keys[key] = bank
        return True

    # --- commit ------------------------------------------------------------------------------

    def commit(self) -> None:
        """Make every claim permanent and place the instructions in the timetable."""
        res = self.res
        touched = res.touched
        for queue, cycle, instr in self.slots:
            res.builder.place(queue, cycle, instr)
            if instr.op is Opcode.READ or instr.op is Opcode.WRITE:
                at = cycle + (instr.op is Opcode.WRITE)
                key = (queue, instr.addr)
                if touched.get(key, -1) < at:
                    touched[key] = at
        for key, lo, hi in self.cells:
            res.cells.setdefault(key, []).append((lo, hi))
        for key, value in self.banks:
            res.banks[key] = value
        self.slots, self.cells, self.banks = [], [], []
        self._slot_keys.clear()
        self._bank_keys.clear()
