"""Lowering passes: operators of the transformer compiler turned into OpenLPU programs.

:func:`lower_gemm` lowers an int8 GEMM with per-channel requantisation (``x @ w`` on the MXM
planes, ``REQ`` on the VXM) to a :class:`firmware.program.Program` whose exact cycle count is
known before it runs. :func:`lower_bert_layer` and :func:`lower_llama_layer` lower a whole
integer transformer layer (prefill, and Llama decode steps over an SRAM-resident KV cache) to
one program whose every intermediate tensor can be compared with the integer reference
(:class:`LoweredLayer`).
"""

from .errors import AccumulatorDepthError, LoweringError, QueueDepthError, SramCapacityError
from .gemm import LoweredGemm, gemm_reference, lower_gemm
from .layer import PHASES, LoweredLayer, TensorMismatch, lower_bert_layer, lower_llama_layer

__all__ = [
    "AccumulatorDepthError",
    "LoweredGemm",
    "LoweredLayer",
    "PHASES",
    "TensorMismatch",
    "LoweringError",
    "QueueDepthError",
    "SramCapacityError",
    "gemm_reference",
    "lower_bert_layer",
    "lower_gemm",
    "lower_llama_layer",
]
