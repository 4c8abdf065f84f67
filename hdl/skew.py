"""Delay lines that move data between superlane-0 time and each superlane's own time.

Superlane ``k`` does superlane 0's work ``k`` cycles later (docs/architecture.md, section 4.2).
A whole-chip unit (MXM plane, SXM) receives its instruction in superlane-0 time and superlane
``k``'s stream operand ``k`` cycles later; these helpers build the registers that

- **stagger** a value into every superlane (copy ``k`` is the value ``k`` cycles late: the
  instruction pipeline, one register per superlane, chained);
- **deskew** per-superlane values captured in tile time (``values[k]`` valid in cycle
  ``t + k``) so that all of them are valid together in cycle ``t + n - 1``;
- **reskew** per-superlane parts of a result computed in one cycle so that part ``k`` is
  valid ``k`` cycles after part 0 (plus a common extra delay).

Every register resets to zero. ``values`` may be plain Amaranth values or ``data.View`` s; the
delayed copies have the same shape (a View for a View).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import data

__all__ = ["delay", "stagger", "deskew", "reskew"]


def _register(m: Module, value, name: str):
    shape = value.shape() if isinstance(value, (Value, data.View)) else Value.cast(value).shape()
    reg = Signal(shape, name=name)
    m.d.sync += reg.eq(value)
    return reg


def delay(m: Module, value, cycles: int, *, name: str):
    """``value`` delayed by ``cycles`` registers (``cycles`` = 0 returns ``value`` itself).

    Raises
    ------
    ValueError
        ``cycles`` is negative.
    """
    if not isinstance(cycles, int) or cycles < 0:
        raise ValueError(f"delay of {name!r} must be a non-negative integer, not {cycles!r}")
    for i in range(cycles):
        value = _register(m, value, f"{name}_d{i + 1}")
    return value


def stagger(m: Module, value, count: int, *, name: str) -> list:
    """``[value delayed by k for k in range(count)]``, built as one chain of ``count - 1``
    registers (copy ``k`` is copy ``k - 1`` one cycle later)."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"stagger of {name!r} needs a positive count, not {count!r}")
    out = [value]
    for k in range(1, count):
        out.append(_register(m, out[-1], f"{name}_sl{k}"))
    return out


def deskew(m: Module, values: list, *, name: str) -> list:
    """``values[k]`` delayed by ``len(values) - 1 - k``: values that become valid one cycle
    apart (``values[k]`` in cycle ``t + k``) are all valid in cycle ``t + len(values) - 1``
    (the last one combinationally)."""
    n = len(values)
    return [delay(m, v, n - 1 - k, name=f"{name}_sl{k}") for k, v in enumerate(values)]


def reskew(m: Module, values: list, *, extra: int = 0, name: str) -> list:
    """``values[k]`` delayed by ``k + extra``: parts of a result valid together in cycle ``c``
    become valid in cycle ``c + extra + k`` for superlane ``k``."""
    if not isinstance(extra, int) or extra < 0:
        raise ValueError(f"reskew of {name!r}: extra must be a non-negative integer, "
                         f"not {extra!r}")
    return [delay(m, v, k + extra, name=f"{name}_sl{k}") for k, v in enumerate(values)]
