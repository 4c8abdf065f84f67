"""Lower an int8 GEMM with per-channel requantisation to an OpenLPU program.

``y = saturate(round_half_up((x @ w) * mult[n] >> shift))`` with ``x: int8 [M, K]``,
``w: int8 [K, N]`` (so ``y = x @ w``, the layout of a linear layer's transposed weight),
``mult: int32 [N]`` and one ``shift``: exactly what the MXM (int8 x int8 products, int32
wrapping accumulation) and the VXM ``REQ`` instruction compute, so the result equals
:func:`gemm_reference` bit for bit.

The pieces: :mod:`.tiling` cuts the GEMM into ``L x L`` weight tiles and output blocks per MXM
plane, :mod:`.roles` decides which MEM slices, streams and ALUs serve each plane, and
:mod:`.scheduler` places every instruction at its exact cycle with a
:class:`firmware.schedule.ScheduleBuilder`, which also predicts the cycle count the golden model
and the RTL report. :func:`lower_gemm` tries a few role variants and keeps the fastest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.program import OutputRegion, Program
from openlpu import fixedpoint as fx
from openlpu.config import ChipConfig
from openlpu.isa import DType

from .errors import LoweringError, QueueDepthError, SramCapacityError
from .roles import plan_roles
from .scheduler import GemmScheduler, ScheduleStats
from .tiling import Tiling, make_tiling

__all__ = ["LoweredGemm", "gemm_reference", "lower_gemm"]

_OUT_TYPES = {np.dtype(np.int8): DType.I8, np.dtype(np.int16): DType.I16,
              np.dtype(np.int32): DType.I32}


def gemm_reference(x: np.ndarray, w: np.ndarray, mult: np.ndarray, shift: int,
                   out_dtype=np.int8) -> np.ndarray:
    """The NumPy result the lowered program must reproduce exactly.

    ``acc = wrap32(x @ w)`` (int32 wrapping, as the MXM accumulates), then
    :func:`openlpu.fixedpoint.requantize` per output channel, saturated to ``out_dtype``.

    Parameters
    ----------
    x : array_like of int8, ``[M, K]``
    w : array_like of int8, ``[K, N]``
    mult : array_like of int32, ``[N]``
    shift : int
        0..63.
    out_dtype : numpy dtype
        ``int8``, ``int16`` or ``int32``.
    """
    out = np.dtype(out_dtype)
    acc = fx.wrap(np.asarray(x, np.int64) @ np.asarray(w, np.int64), 32)
    y = fx.requantize(acc, np.asarray(mult, np.int64)[None, :], shift, out.itemsize * 8)
    return np.asarray(y).astype(out)


@dataclass
class LoweredGemm:
    """A GEMM lowered to a program, with the figures of its schedule.

    The result lives in ``regions``: output region ``regions[i][0]`` of the program holds,
    from word ``offset`` on, rows ``row0 .. row0 + rows - 1`` of ``y`` for output channels
    ``nt * L .. nt * L + L - 1`` (one word per row, one lane per channel), for every
    ``(offset, row0, rows, nt)`` in ``regions[i][1]``. :meth:`read_output` assembles ``y``.
    When everything fits one bank of one group of writer slices (the usual case with one MXM
    plane) there is a single region, called ``name``.
    """

    program: Program
    name: str
    config: ChipConfig
    M: int
    K: int
    N: int
    tiling: Tiling
    variant: str
    out_dtype: np.dtype
    predicted_cycles: int
    stats: ScheduleStats
    sram_bytes: int
    regions: list[tuple[str, list[tuple[int, int, int, int]]]]

    @property
    def macs(self) -> int:
        """Useful multiply-accumulates, ``M * K * N``."""
        return self.M * self.K * self.N

    @property
    def issued_macs(self) -> int:
        """MACs the planes perform, padding included (``ABC`` count x ``L * L``)."""
        return self.stats.abc * self.config.lanes ** 2

    @property
    def matmul_cycles(self) -> int:
        """The matmul phase: cycles from the first ``ABC`` to the last ``ABCO`` (or ``ACC``),
        inclusive
        (the first weight load, the SRAM reads before it and the requantisation and writes
        after it are pipeline fill and drain)."""
        return self.stats.last_acc - self.stats.first_abc + 1

    @property
    def utilisation(self) -> float:
        """Useful MACs / (predicted cycles x ``config.macs_per_cycle``)."""
        return self.macs / (self.predicted_cycles * self.config.macs_per_cycle)

    @property
    def matmul_utilisation(self) -> float:
        """Useful MACs / (matmul-phase cycles x ``config.macs_per_cycle``)."""
        return self.macs / (self.matmul_cycles * self.config.macs_per_cycle)

    @property
    def issued_utilisation(self) -> float:
        """What the golden model's ``mxm_utilization`` counter reports (padding counts)."""
        return self.issued_macs / (self.predicted_cycles * self.config.macs_per_cycle)

    def read_output(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """``y [M, N]`` from a run's outputs (``run_program(...).outputs``)."""
        L = self.config.lanes  # noqa: N806
        y = np.zeros((self.M, self.tiling.Np), dtype=self.out_dtype)
        for rname, parts in self.regions:
            data = np.asarray(outputs[rname])
            for offset, row0, rows, nt in parts:
                y[row0:row0 + rows, nt * L:(nt + 1) * L] = data[offset:offset + rows]
        return y[:, :self.N]

    def report(self) -> dict:
        """The schedule's figures as a dict (for printing and benchmarks)."""
        t = self.tiling
        return {
            "config": self.config.name,
            "shape": (self.M, self.K, self.N),
            "padded": (self.M, t.Kp, t.Np),
            "planes": t.planes,
            "blocks": len(t.blocks),
            "variant": self.variant,
            "predicted_cycles": self.predicted_cycles,
            "macs": self.macs,
            "issued_macs": self.issued_macs,
            "abc": self.stats.abc,
            "lw": self.stats.lw,
            "acc": self.stats.acc,
            "matmul_cycles": self.matmul_cycles,
            "utilisation": self.utilisation,
            "matmul_utilisation": self.matmul_utilisation,
            "issued_utilisation": self.issued_utilisation,
            "sram_bytes": self.sram_bytes,
            "queue_words": max(len(q) for q in self.program.queues.values()),
        }


def _as_int(name: str, a, shape_len: int, lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != shape_len:
        raise LoweringError(f"{name} must have {shape_len} dimension(s), not shape "
                            f"{list(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise LoweringError(f"{name} must hold integers, not {arr.dtype}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise LoweringError(f"{name} has values in {arr.min()}..{arr.max()}, outside "
                            f"{lo}..{hi}")
    return arr.astype(np.int64)


def _sram_need(config: ChipConfig, t: Tiling, out_bytes: int) -> tuple[int, str]:
    """Bytes the placement stores, and how they split."""
    L = config.lanes  # noqa: N806
    x = w = 0
    for p in range(t.planes):
        blocks = t.plane_blocks(p)
        x += sum(t.row_blocks[mb][1] for mb in {b.mb for b in blocks}) * t.KT
        w += sum(t.nt_rows(nt) for nt in {b.nt for b in blocks}) * t.KT
    y = t.M * t.NT * out_bytes
    mult = 4 * t.NT
    parts = f"x {x * L}, weights {w * L}, multipliers {mult * L}, outputs {y * L}"
    return (x + w + y + mult) * L, parts


def _regions(name: str, sched: GemmScheduler, t: Tiling, dtype: np.dtype):
    """Output regions: runs of consecutive words per plane's writer slices and bank."""
    cfg = sched.config
    runs: list[list] = []  # [writers, addr, words, parts]
    for r in sched.roles.planes:
        for b in t.plane_blocks(r.plane):
            addr = sched.out_addr[b.index]
            last = runs[-1] if runs else None
            if (last is not None and last[0] == r.writers and last[1] + last[2] == addr
                    and addr >> cfg.offset_bits == last[1] >> cfg.offset_bits):
                last[3].append((last[2], b.row0, b.rows, b.nt))
                last[2] += b.rows
            else:
                runs.append([r.writers, addr, b.rows, [(0, b.row0, b.rows, b.nt)]])
    names = [name] if len(runs) == 1 else [f"{name}_{i}" for i in range(len(runs))]
    regions = [OutputRegion(n, tuple(run[0]), run[1], run[2], dtype.name)
               for n, run in zip(names, runs, strict=True)]
    return regions, [(n, run[3]) for n, run in zip(names, runs, strict=True)]


def lower_gemm(config: ChipConfig, x, w, mult, shift: int, *, out_dtype=np.int8,
               name: str = "y", block_rows: int | None = None, planes: int | None = None,
               search: bool = True, fused: bool = True) -> LoweredGemm:
    """Lower ``y = requantize(x @ w, mult, shift)`` to a program for ``config``.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    x : array_like of int8, ``[M, K]``
        Activations: row ``m`` becomes one vector per K tile.
    w : array_like of int8, ``[K, N]``
        Weights, ``y = x @ w`` (a PyTorch ``Linear`` weight is ``w.T``).
    mult : array_like of int32, ``[N]``
        Per-output-channel ``REQ`` multiplier.
    shift : int
        ``REQ`` right shift, 0..63 (round half up).
    out_dtype : numpy dtype
        ``int8`` (default), ``int16`` or ``int32``; results saturate to it.
    name : str
        Name of the output region (``name_0``, ``name_1``, .. if there are several).
    block_rows : int, optional
        Rows per output block (at most ``config.mxm_acc_depth``); default as large as fits.
    planes : int, optional
        MXM planes to use; default all.
    search : bool
        Try every role variant and keep the one with the fewest cycles (default); otherwise
        take the first that can be scheduled.
    fused : bool
        Emit each output row with the last K step's ``ABCO`` (default), or with ``ABC`` and
        then an ``ACC`` per row (one more plane cycle per row).

    Returns
    -------
    LoweredGemm
        The program and the figures of its schedule.

    Raises
    ------
    LoweringError
        Bad arguments, or nothing can be scheduled.
    SramCapacityError
        The tensors do not fit the SRAM (the message gives bytes needed and available).
    AccumulatorDepthError
        ``block_rows`` exceeds ``config.mxm_acc_depth``.
    QueueDepthError
        The program's longest queue exceeds ``config.queue_depth`` in every variant.
    """
    dtype = np.dtype(out_dtype)
    if dtype not in _OUT_TYPES:
        raise LoweringError(f"out_dtype must be int8, int16 or int32, not {dtype}")
    out_t = _OUT_TYPES[dtype]
    x = _as_int("x", x, 2, -128, 127)
    w = _as_int("w", w, 2, -128, 127)
    M, K = x.shape  # noqa: N806
    if w.shape[0] != K:
        raise LoweringError(f"w must be [K, N] with K = {K} (the columns of x), not shape "
                            f"{list(w.shape)}")
    N = w.shape[1]  # noqa: N806
    mult = _as_int("mult", mult, 1, -(1 << 31), (1 << 31) - 1)
    if mult.shape[0] != N:
        raise LoweringError(f"mult must have one multiplier per output channel ({N}), not "
                            f"{mult.shape[0]}")
    if not isinstance(shift, (int, np.integer)) or not 0 <= shift <= 63:
        raise LoweringError(f"shift must be an integer in 0..63 (the REQ shift field), not "
                            f"{shift!r}")
    if not name.isidentifier():
        raise LoweringError(f"output name {name!r} must be an identifier")
    errors: list[LoweringError] = []
    tried: set[int] = set()
    # More planes are faster; fewer are tried only if the slices cannot serve that many
    # (fewer planes would only make the queues longer, so not after a queue-depth failure).
    for n_planes in ([planes] if planes else range(config.mxm_planes, 0, -1)):
        tiling = make_tiling(config, M, K, N, block_rows=block_rows, planes=n_planes)
        if tiling.planes in tried or any(isinstance(e, QueueDepthError) for e in errors):
            continue
        tried.add(tiling.planes)
        need, parts = _sram_need(config, tiling, dtype.itemsize)
        if need > config.sram_bytes:
            raise SramCapacityError(
                f"GEMM {M}x{K}x{N} needs {need} bytes of SRAM ({parts}; K and N padded to "
                f"{tiling.Kp} and {tiling.Np}), config {config.name!r} has "
                f"{config.sram_bytes}", need, config.sram_bytes)
        best = _lower_variants(config, tiling, x, w, mult, int(shift), dtype, out_t, name,
                               need, search, errors, fused)
        if best is not None:
            return best
    depth = [e for e in errors if isinstance(e, QueueDepthError)]
    if depth:
        raise min(depth, key=lambda e: e.needed)
    # the last error comes from the fewest planes, the most permissive attempt
    raise errors[-1] if errors else LoweringError("no lowering variant applies")


def _lower_variants(config: ChipConfig, tiling: Tiling, x, w, mult, shift: int,
                    dtype: np.dtype, out_t: DType, name: str, need: int, search: bool,
                    errors: list[LoweringError], fused: bool) -> LoweredGemm | None:
    """Schedule every role variant for ``tiling``; the fastest that fits, or ``None`` (the
    reasons appended to ``errors``)."""
    M, K = x.shape  # noqa: N806
    N = w.shape[1]  # noqa: N806
    L = config.lanes  # noqa: N806
    xp = np.zeros((M, tiling.Kp), np.int8)
    xp[:, :K] = x
    wp = np.zeros((tiling.Kp, tiling.Np), np.int8)
    wp[:K, :N] = w
    mp = np.zeros(tiling.Np, np.int64)
    mp[:N] = mult
    best: LoweredGemm | None = None
    for kw in (dict(dedicated_writer=False), dict(dedicated_writer=True)):
        try:
            roles = plan_roles(config, tiling.planes, dtype.itemsize, **kw)
            sched = GemmScheduler(config, tiling, roles, xp, wp, mp, shift, out_t, need, fused)
            stats = sched.run()
        except SramCapacityError:
            raise
        except LoweringError as e:
            errors.append(e)
            continue
        queues = sched.builder.queues()
        longest = max(queues, key=lambda q: len(queues[q]))
        if len(queues[longest]) > config.queue_depth:
            errors.append(QueueDepthError(
                f"GEMM {M}x{K}x{N} on config {config.name!r} ({len(tiling.blocks)} output "
                f"blocks x {tiling.KT} K steps on {tiling.planes} plane(s)): queue {longest} "
                f"needs {len(queues[longest])} instruction words with its END, the queues "
                f"hold {config.queue_depth}; split the GEMM (fewer K or N tiles per program)",
                longest, len(queues[longest]), config.queue_depth))
            continue
        regions, layout = _regions(name, sched, tiling, dtype)
        program = Program(config_name=config.name, config_hash=config.config_hash,
                          lanes=L, queues=queues, mem_init=sched.sram.inits,
                          outputs=regions, source={})
        lowered = LoweredGemm(program, name, config, M, K, N, tiling, roles.variant, dtype,
                              sched.builder.predicted_cycles(), stats,
                              sched.sram.words * L, layout)
        if best is None or lowered.predicted_cycles < best.predicted_cycles:
            best = lowered
        if not search:
            break
    return best
