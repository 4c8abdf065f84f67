"""Exact placement of instructions for a lowered layer: one timetable, claims, op accounting.

:class:`Placer` wraps a :class:`firmware.schedule.ScheduleBuilder` and its
:class:`~firmware.lower.resources.Reservations`. Every instruction group (a ``READ`` feeding a
VXM op and the ``WRITE`` of its result, say) is placed with :meth:`Placer.place`: the earliest
cycle from which an *attempt* can claim everything it needs all-or-nothing. Reads wait for the
words they read (``ready`` = write issue + 2, ``docs/architecture.md`` section 4.1), so tensors
flow from op to op without barriers and independent ops overlap. The cycles each named op
occupies are recorded for per-op and per-phase figures.
"""

from __future__ import annotations

from collections.abc import Callable

from firmware.schedule import ScheduleBuilder
from openlpu.config import ChipConfig
from openlpu.isa import Instruction, Opcode, latency, stream_code

from .errors import LoweringError
from .resources import Reservations, Txn

__all__ = ["MAX_WAIT", "Placer"]

#: How many cycles past its earliest an instruction group may be pushed by collisions.
MAX_WAIT = 50_000


class Placer:
    """The timetable of one lowered layer (see the module docstring)."""

    def __init__(self, config: ChipConfig):
        if not config.sxm:
            raise LoweringError(
                f"config {config.name!r} has no SXMs (sxm = false); lowering a layer needs them "
                "for its lane reductions and permutations")
        self.config = config
        self.builder = ScheduleBuilder(config)
        self.res = Reservations(self.builder)
        self.pos = {s.name: s.position for s in config.slices}
        self.v = self.pos["vxm"]
        self.streams = config.streams_per_direction
        self.alus = [f"vxm{i}" for i in range(config.vxm_alus_per_lane)]
        self.op = "?"
        #: op name -> [first issue cycle, last cycle + latency]
        self.op_cycles: dict[str, list[int]] = {}
        #: (queue, issue cycle) -> the op the instruction was placed for
        self.owner: dict[tuple[str, int], str] = {}
        #: Set by an attempt that places instructions of several ops (a chain): the op of
        #: each claimed slot, instead of :attr:`op`.
        self.pending_owner: dict[tuple[str, int], str] = {}
        self.sticky: dict[object, object] = {}
        #: MXM queue -> cycle of its last instruction: a plane's queue is placed in order
        #: (its shadow buffer and accumulators carry state from one instruction to the next)
        self.plane_last: dict[str, int] = {}
        #: First cycle of each program after the first (see :meth:`cut`).
        self.cuts: list[int] = []
        #: A transaction that never claims anything: :meth:`Txn.free` and :meth:`group_free`
        #: on it see the committed claims only (the ``blocked`` tests of :meth:`place`).
        self.empty = self.res.txn()

    def cut(self) -> int:
        """End the current program here: everything placed so far completes before the
        returned cycle, and everything placed from now on issues at or after it, so the
        timetable can be run as two programs in turn with the SRAM kept between them (no
        stream value, MXM weight or accumulator crosses the cut). Returns the cut cycle."""
        at = max(self.res.floor, self.builder.done)
        self.res.floor = at
        self.cuts.append(at)
        return at

    def segments(self) -> list[tuple[int, int | None]]:
        """The ``(first, stop)`` cycle range of each program (``stop`` None for the last)."""
        starts = [0, *self.cuts]
        return list(zip(starts, [*self.cuts, None], strict=True))

    # --- geometry --------------------------------------------------------------------------

    def toward(self, src: int, dst: int) -> int:
        """Stream direction (0 east, 1 west) from position ``src`` to ``dst``."""
        return 0 if dst >= src else 1

    def bases(self, width: int, key: object = None) -> list[int]:
        """Aligned stream-group bases, highest first, the last one used for ``key`` first."""
        out = list(range(self.streams - width, -1, -width))
        last = self.sticky.get(key)
        if last in out:
            out.remove(last)
            out.insert(0, last)
        return out

    # --- claims ----------------------------------------------------------------------------

    def read(self, txn: Txn, slice_name: str, addr: int, direction: int, stream: int,
             dest: int, arrive: int, ready: int) -> bool:
        """``READ`` so that the word is on ``stream`` at position ``dest`` in ``arrive``."""
        p = self.pos[slice_name]
        issue = arrive - 2 - abs(p - dest)
        if issue < ready or issue < 0:
            return False
        return (txn.slot(slice_name, issue, Instruction(
                    Opcode.READ, dst=stream_code(direction, stream), addr=addr))
                and txn.path(direction, stream, p, issue + 2, dest)
                and txn.bank(slice_name, issue, addr >> self.config.offset_bits, "r"))

    def group_free(self, txn: Txn, group: tuple[str, ...], src_or_dest: int, cycle: int,
                   ready: int | None = None) -> bool:
        """Whether every slice of ``group`` could issue its ``READ`` (``ready`` given: the
        word is on a stream at ``src_or_dest`` in ``cycle``) or its ``WRITE`` (the word is at
        ``src_or_dest`` in ``cycle``) then: a cheap test before trying streams."""
        for s in group:
            d = abs(self.pos[s] - src_or_dest)
            t = cycle - 2 - d if ready is not None else cycle + d
            if (ready is not None and t < ready) or not txn.free(s, t):
                return False
        return True

    def read_group(self, txn: Txn, group: tuple[str, ...], addr: int, direction: int,
                   base: int, dest: int, arrive: int, ready: int) -> bool:
        """Read every byte of a word of ``group`` onto streams ``base ..``."""
        return all(self.read(txn, s, addr, direction, base + k, dest, arrive, ready)
                   for k, s in enumerate(group))

    def write_group(self, txn: Txn, group: tuple[str, ...], addr: int, direction: int,
                    base: int, src: int, present: int, claim: bool = True) -> int | None:
        """``WRITE`` a word present on streams ``base ..`` at ``src`` in cycle ``present``;
        returns the cycle from which it can be read, or ``None``. ``claim=False``: the
        caller has claimed the streams already (the value travels on, past the slices)."""
        last = 0
        for k, s in enumerate(group):
            p = self.pos[s]
            if self.toward(src, p) != direction:
                return None
            t = present + abs(p - src)
            if not ((not claim or txn.path(direction, base + k, src, present, p))
                    and txn.slot(s, t, Instruction(Opcode.WRITE, addr=addr,
                                                   a=stream_code(direction, base + k)))
                    and txn.bank(s, t + 1, addr >> self.config.offset_bits, "w")):
                return None
            last = max(last, t + 2)
        return last

    # --- placement -------------------------------------------------------------------------

    def place(self, earliest: int, attempt: Callable[[Txn, int], object], what: str,
              max_wait: int = MAX_WAIT, blocked: Callable[[int], bool] | None = None):
        """Commit ``attempt(txn, t)`` at the first ``t >= earliest`` where it returns
        something other than ``None``/``False``; returns ``(t, result)``.

        ``blocked(t)``, if given, must be true only where ``attempt(txn, t)`` would return
        ``None`` before claiming or changing anything (the first checks it makes, made on
        :attr:`empty`): those cycles are passed over without a transaction, which changes
        nothing but the time the search takes (most cycles an instruction group is pushed
        past fail its first test: the ALU, queue or slice is taken).

        Raises
        ------
        LoweringError
            Nothing fits within ``max_wait`` cycles."""
        earliest = max(self.res.floor, earliest)
        for t in range(earliest, earliest + max_wait):
            if blocked is not None and blocked(t):
                continue
            txn = self.res.txn()
            out = attempt(txn, t)
            if out is not None and out is not False:
                self._account(txn)
                txn.commit()
                return t, out
            self.pending_owner.clear()
        raise LoweringError(f"{what} (op {self.op}) found no free cycle for its reads, "
                            f"streams and writes within {max_wait} cycles of cycle "
                            f"{earliest} (config {self.config.name!r})")

    def _account(self, txn: Txn) -> None:
        spans: dict[str, list[int]] = {}
        for q, c, i in txn.slots:
            op = self.pending_owner.get((q, c), self.op)
            self.owner[(q, c)] = op
            end = c + latency(i.op, self.config)
            lo, hi = spans.setdefault(op, [c, end])
            spans[op] = [min(lo, c), max(hi, end)]
        self.pending_owner.clear()
        for op, (lo, hi) in spans.items():
            rng = self.op_cycles.setdefault(op, [lo, hi])
            rng[0] = min(rng[0], lo)
            rng[1] = max(rng[1], hi)
