"""Integer-only transformer layers built from ISA-exact primitives (I-BERT style).

Every step of a layer is one OpenLPU instruction's semantics (:mod:`.ops`), recorded by name in
a :class:`Trace`, so that a compiled layer on the chip can be checked tensor by tensor.

Modules (one concept each):

* :mod:`.trace` - the ordered record of intermediate tensors, and first-difference search;
* :mod:`.ops` - :class:`IntOps`, one method per instruction (ABC, ADD, REQ, EXP, ...);
* :mod:`.quantize` - REQ ``(multiplier, shift)`` constants, per-channel int8 weights;
* :mod:`.linear`, :mod:`.softmax`, :mod:`.norm`, :mod:`.rope`, :mod:`.attention` - the
  integer building blocks (linear + bias, softmax, LayerNorm / RMSNorm, RoPE, GQA attention
  with a KV cache), each documenting its fixed-point formats and overflow bounds;
* :mod:`.bert`, :mod:`.llama` - whole integer layers;
* :mod:`.calibrate` - float reference on samples -> ranges -> layer constants.
"""

from .attention import AttentionParams, IntKVCache, int_attention
from .bert import IntBertLayer
from .calibrate import (
    activation_ranges,
    calibrate_bert_layer,
    calibrate_llama_layer,
    channel_ranges,
    choose_alpha,
    res_bits,
    smooth_scales,
)
from .linear import IntLinear
from .llama import IntLlamaLayer
from .norm import NormParams, int_layernorm, int_rmsnorm
from .ops import IntOps, QuantRangeError
from .quantize import (
    Requant,
    dequantize,
    quantize,
    quantize_multiplier,
    quantize_multipliers,
    quantize_weight_per_channel,
    symmetric_scale,
)
from .rope import RopeTables, int_rope
from .softmax import MASK_VALUE, PROB_ONE, SoftmaxParams, int_softmax
from .trace import Difference, Trace, TraceEntry

__all__ = [
    "MASK_VALUE",
    "PROB_ONE",
    "AttentionParams",
    "Difference",
    "IntBertLayer",
    "IntKVCache",
    "IntLinear",
    "IntLlamaLayer",
    "IntOps",
    "NormParams",
    "QuantRangeError",
    "Requant",
    "RopeTables",
    "SoftmaxParams",
    "Trace",
    "TraceEntry",
    "activation_ranges",
    "calibrate_bert_layer",
    "calibrate_llama_layer",
    "channel_ranges",
    "choose_alpha",
    "dequantize",
    "int_attention",
    "int_layernorm",
    "int_rmsnorm",
    "int_rope",
    "int_softmax",
    "quantize",
    "quantize_multiplier",
    "quantize_multipliers",
    "quantize_weight_per_channel",
    "res_bits",
    "smooth_scales",
    "symmetric_scale",
]
