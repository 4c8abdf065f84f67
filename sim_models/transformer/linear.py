"""Integer linear layer: int8 per-channel weights on the MXM, int32 bias added on the VXM.

``acc = wrap32(x @ W.T)`` (``ABC``) then ``acc + bias`` (``ADD.i32``). ``x`` is int8 with a
scale ``in_scale`` that may differ per input channel (SmoothQuant-style: a channel with large
activations gets a coarse step, a quiet one a fine step); the input scales are folded into the
weight columns before the weights are quantised per output row, so ``acc[..., n]`` represents
``acc * acc_scale[n]`` either way. The bias is stored in those accumulator units.

No wrap in practice: ``|x @ W.T| <= K * 128 * 127 < 2**14 K`` and :meth:`IntLinear.quantize`
checks that ``2**14 K + max|bias| < 2**31`` (true for every ``K < 131072`` with a sane bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ops import INT32_MAX, IntOps
from .quantize import quantize_weight_per_channel

__all__ = ["IntLinear"]


@dataclass(frozen=True)
class IntLinear:
    """Constants of one integer linear layer ``y = x @ weight.T (+ bias)``."""

    weight: np.ndarray  #: int8 [N, K]
    bias: np.ndarray | None  #: int64 [N] in accumulator units, or None
    acc_scale: np.ndarray  #: float64 [N], real value of one accumulator unit per output
    in_scale: np.ndarray  #: float64, 0-d or [K]: real value of one unit of the int8 input

    @classmethod
    def quantize(cls, weight, bias, in_scale) -> IntLinear:
        """Quantise float ``weight`` [N, K] (times ``in_scale``, a scalar or one value per input
        channel) per output row, and ``bias`` [N] to accumulator units.

        Raises
        ------
        ValueError
            The bias is too large for the accumulator to hold ``x @ W.T + bias`` unwrapped.
        """
        in_scale = np.asarray(in_scale, dtype=np.float64)
        if in_scale.ndim > 1 or (in_scale.ndim == 1 and in_scale.shape[0] != weight.shape[1]):
            raise ValueError(f"in_scale must be a scalar or [{weight.shape[1]}]")
        wq, ws = quantize_weight_per_channel(np.asarray(weight, dtype=np.float64) * in_scale)
        wq.setflags(write=False)
        bq = None
        if bias is not None:
            bq = np.floor(np.asarray(bias, dtype=np.float64) / ws + 0.5)
            bound = float(np.max(np.abs(bq))) + (1 << 14) * wq.shape[1]
            if bound > INT32_MAX:
                raise ValueError(f"bias needs {bound:.3g} accumulator units, beyond int32")
            bq = bq.astype(np.int64)
            bq.setflags(write=False)
        return cls(wq, bq, ws, in_scale)

    def forward(self, ops: IntOps, name: str, x) -> np.ndarray:
        """``ABC`` (recorded as ``name.acc``) and, with a bias, ``ADD.i32`` (``name.bias``)."""
        acc = ops.abc(f"{name}.acc", self.weight, x)
        if self.bias is not None:
            acc = ops.add(f"{name}.bias", acc, self.bias)
        return acc
