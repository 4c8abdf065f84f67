"""Host runtime: drive an OpenLPU board (or a simulated one) over its UART link.

>>> from firmware.runtime import Board, SerialTransport
>>> board = Board(SerialTransport("/dev/ttyUSB0", 115200), get_config("ice40"))
>>> result = board.run_program(program)   # identify, load, run, read back, compare
>>> result.matches, result.cycles

:mod:`.transport` moves bytes (a serial port, or a simulation in :mod:`.sim`), :mod:`.link`
speaks the framed protocol of :mod:`openlpu.link`, :mod:`.board` is the API, :mod:`.cli` the
``openlpu board`` and ``openlpu build`` commands. Errors are :mod:`.errors` exceptions.
"""

from .board import Board, BoardResult, Identity
from .errors import (
    BoardError,
    BoardTimeout,
    CommandRejected,
    ConfigMismatch,
    ProtocolError,
    RunError,
    TransportError,
)
from .link import Link
from .transport import SerialTransport, Transport

__all__ = ["Board", "BoardResult", "Identity", "Link", "Transport", "SerialTransport",
           "BoardError", "BoardTimeout", "CommandRejected", "ConfigMismatch", "ProtocolError",
           "RunError", "TransportError"]
