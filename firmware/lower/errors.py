"""Errors of the lowering passes (:mod:`firmware.lower`).

Every error says what did not fit and by how much, so that a caller can pick a smaller tile, a
bigger preset or split the operator itself.
"""

from __future__ import annotations

__all__ = [
    "AccumulatorDepthError",
    "LoweringError",
    "QueueDepthError",
    "SramCapacityError",
    "queue_depth_for",
]


class LoweringError(ValueError):
    """An operator cannot be lowered to a program for this chip config."""


class SramCapacityError(LoweringError):
    """The operator's tensors do not fit the SRAM (in total, or in the slices given a role).

    Attributes
    ----------
    needed, available : int
        Bytes (or words, as the message says) needed and available.
    """

    def __init__(self, message: str, needed: int, available: int):
        super().__init__(message)
        self.needed = needed
        self.available = available


class AccumulatorDepthError(LoweringError):
    """More accumulator entries are asked for than an MXM plane has."""

    def __init__(self, message: str, needed: int, available: int):
        super().__init__(message)
        self.needed = needed
        self.available = available


class QueueDepthError(LoweringError):
    """A queue's code (with its END) is longer than the chip's instruction queues.

    Attributes
    ----------
    queue : str
        The longest queue.
    needed, available : int
        Its instruction words and ``config.queue_depth``.
    required : int
        The smallest power of two that holds ``needed`` words (at least 16): the
        ``queue_depth`` to ask for (it may exceed
        :data:`openlpu.config.MAX_QUEUE_DEPTH`).
    """

    def __init__(self, message: str, queue: str, needed: int, available: int):
        super().__init__(message)
        self.queue = queue
        self.needed = needed
        self.available = available
        self.required = queue_depth_for(needed)


def queue_depth_for(words: int) -> int:
    """The smallest ``queue_depth`` (a power of two, at least 16) that holds ``words``
    instruction words."""
    return max(16, 1 << max(0, words - 1).bit_length())
