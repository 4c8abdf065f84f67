"""Schedule-checker errors of the golden model.

The TSP has no interlocks: a program whose schedule is wrong silently computes garbage on the
real chip. The golden model is therefore also the schedule checker, and every error names the
cycle (of superlane 0), the slice, the stream or bank, and the instruction with its source line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ScheduleError", "StreamConflict", "EmptyStreamRead", "BankConflict",
    "AccumulatorHazard", "Deadlock", "CycleLimitExceeded", "Violation",
]


@dataclass
class Violation:
    """One schedule violation, as collected when the model runs with ``on_error="collect"``."""

    kind: str
    cycle: int
    slice: str
    message: str
    queue: str | None = None
    index: int | None = None
    source: str | None = None
    details: dict = field(default_factory=dict)

    def __str__(self) -> str:
        where = f"cycle {self.cycle}, slice {self.slice}"
        if self.queue is not None:
            where += f", queue {self.queue} instruction #{self.index}"
        if self.source:
            where += f" ({self.source})"
        return f"{self.kind}: {where}: {self.message}"


class ScheduleError(RuntimeError):
    """A program breaks a timing or resource rule of the statically scheduled chip."""

    kind = "schedule error"

    def __init__(self, violation: Violation):
        super().__init__(str(violation))
        self.violation = violation


class StreamConflict(ScheduleError):
    """Two producers write the same stream register in the same cycle."""

    kind = "stream conflict"


class EmptyStreamRead(ScheduleError):
    """An instruction consumes a stream slot that holds no value in that cycle."""

    kind = "empty stream read"


class BankConflict(ScheduleError):
    """A bank is read and written in the same cycle (one slice: one read, one write, two banks)."""

    kind = "bank conflict"


class AccumulatorHazard(ScheduleError):
    """An MXM accumulator entry is read before an earlier ABC has written it, or before any
    ABC wrote it in this run."""

    kind = "accumulator hazard"


class Deadlock(ScheduleError):
    """Queues are parked at SYNC and no queue is left that could NOTIFY them."""

    kind = "deadlock"


class CycleLimitExceeded(ScheduleError):
    """The program ran past the cycle limit without finishing."""

    kind = "cycle limit exceeded"


ERROR_TYPES = {cls.kind: cls for cls in (
    StreamConflict, EmptyStreamRead, BankConflict, AccumulatorHazard, Deadlock,
    CycleLimitExceeded)}
