"""Exceptions of the host runtime: each names what went wrong talking to the board."""

from __future__ import annotations

__all__ = ["BoardError", "TransportError", "BoardTimeout", "ProtocolError", "CommandRejected",
           "ConfigMismatch", "RunError"]


class BoardError(Exception):
    """Anything that went wrong talking to the board (the base class of the others)."""


class TransportError(BoardError):
    """The byte pipe to the board cannot be used: a missing or busy serial port, a closed
    simulation."""


class BoardTimeout(BoardError):
    """The board did not send a complete reply in time."""


class ProtocolError(BoardError):
    """A garbled reply: wrong sync byte, checksum, tag, status code or length."""


class CommandRejected(BoardError):
    """The bridge answered a command with an error status.

    Attributes
    ----------
    status : openlpu.link.Status
        The status the bridge sent.
    """

    def __init__(self, message: str, status):
        super().__init__(message)
        self.status = status


class ConfigMismatch(BoardError):
    """The board runs another chip config than the one expected (or than the program was
    assembled for), or is not an OpenLPU board at all."""


class RunError(BoardError):
    """The chip did not finish a run: it reports DEADLOCK or is still busy at the timeout."""
