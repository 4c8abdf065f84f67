"""Lowering passes: operators of the transformer compiler turned into OpenLPU programs.

:func:`lower_gemm` lowers an int8 GEMM with per-channel requantisation (``x @ w`` on the MXM
planes, ``REQ`` on the VXM) to a :class:`firmware.program.Program` whose exact cycle count is
known before it runs.
"""

from .errors import AccumulatorDepthError, LoweringError, QueueDepthError, SramCapacityError
from .gemm import LoweredGemm, gemm_reference, lower_gemm

__all__ = [
    "AccumulatorDepthError",
    "LoweredGemm",
    "LoweringError",
    "QueueDepthError",
    "SramCapacityError",
    "gemm_reference",
    "lower_gemm",
]
