"""Tiling of a GEMM ``y[M, N] = x[M, K] @ w[K, N]`` onto ``L x L`` MXM planes.

``K`` and ``N`` are padded to multiples of ``L = config.lanes`` (the array is ``L x L``): ``KT``
weight-tile rows along ``K``, ``NT`` along ``N``. The ``M`` rows are cut into *row blocks* of
at most ``mxm_acc_depth`` rows (one accumulator entry per row); an *output block* is one row
block times one ``N`` tile. A plane computes an output block by ``KT`` *tile steps*: install the
weight tile ``(kt, nt)`` and stream the block's rows of ``x[:, kt]`` through it (``ABC``, with
``.acc`` after the first step), then emit every row once (``ACC``). Output blocks are shared
out among the MXM planes so that each plane gets about the same number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from openlpu.config import ChipConfig

from .errors import AccumulatorDepthError, LoweringError

__all__ = ["Block", "Tiling", "make_tiling"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Block:
    """One output block: rows ``row0 .. row0 + rows - 1`` of ``y`` times ``N`` tile ``nt``,
    computed by MXM plane ``plane``."""

    index: int
    mb: int
    row0: int
    rows: int
    nt: int
    plane: int


@dataclass(frozen=True)
class Tiling:
    """How a GEMM is cut into weight tiles and output blocks (see the module docstring)."""

    M: int
    K: int
    N: int
    L: int
    KT: int
    NT: int
    #: ``(first row, rows)`` of every row block.
    row_blocks: tuple[tuple[int, int], ...]
    blocks: tuple[Block, ...]
    planes: int

    @property
    def Kp(self) -> int:  # noqa: N802 - the padded K of the docs
        """``K`` padded to a multiple of ``L``."""
        return self.KT * self.L

    @property
    def Np(self) -> int:  # noqa: N802 - the padded N of the docs
        """``N`` padded to a multiple of ``L``."""
        return self.NT * self.L

    def nt_rows(self, nt: int) -> int:
        """Output channels of tile ``nt`` that exist (the rest of the tile is padding, so
        its weight rows need not be loaded: those output lanes are never read)."""
        return min(self.L, self.N - nt * self.L)

    def plane_blocks(self, plane: int) -> list[Block]:
        """The output blocks of ``plane``, in the order it computes them."""
        return [b for b in self.blocks if b.plane == plane]


def make_tiling(config: ChipConfig, M: int, K: int, N: int, *,  # noqa: N803 - GEMM names
                block_rows: int | None = None, planes: int | None = None) -> Tiling:
    """Cut an ``M x K x N`` GEMM for ``config``.

    Parameters
    ----------
    config : ChipConfig
        The chip.
    M, K, N : int
        The GEMM's sizes, each at least 1.
    block_rows : int, optional
        Rows per row block (default: as many as the accumulators hold, split evenly).
    planes : int, optional
        MXM planes to use (default: all of them, fewer if there are fewer output blocks).

    Raises
    ------
    AccumulatorDepthError
        ``block_rows`` exceeds ``config.mxm_acc_depth``.
    LoweringError
        A size below 1 or an impossible plane count.
    """
    for name, value in (("M", M), ("K", K), ("N", N)):
        if value < 1:
            raise LoweringError(f"GEMM size {name} = {value}; every size must be at least 1")
    L, A = config.lanes, config.mxm_acc_depth
    if block_rows is not None:
        if block_rows > A:
            raise AccumulatorDepthError(
                f"a row block of {block_rows} rows needs {block_rows} accumulator entries per "
                f"MXM plane; config {config.name!r} has mxm_acc_depth {A}", block_rows, A)
        if block_rows < 1:
            raise LoweringError(f"block_rows = {block_rows}; it must be at least 1")
    planes = config.mxm_planes if planes is None else planes
    if not 1 <= planes <= config.mxm_planes:
        raise LoweringError(f"planes = {planes}; config {config.name!r} has "
                            f"{config.mxm_planes} MXM plane(s)")
    KT, NT = _ceil_div(K, L), _ceil_div(N, L)  # noqa: N806
    if block_rows is None:
        MB = _ceil_div(M, A)  # noqa: N806
        # Enough output blocks to give every plane work, and a multiple of the plane count
        # where that at most halves the blocks (a 2:1 imbalance between planes costs more).
        MB = max(MB, min(M, _ceil_div(planes, NT)))  # noqa: N806
        for extra in range(MB + 1):
            if (NT * (MB + extra)) % planes == 0 and MB + extra <= M:
                MB += extra  # noqa: N806
                break
    else:
        MB = _ceil_div(M, block_rows)  # noqa: N806
    base, rest = divmod(M, MB)
    row_blocks, row = [], 0
    for i in range(MB):
        rows = base + (1 if i < rest else 0)
        row_blocks.append((row, rows))
        row += rows
    used = min(planes, MB * NT)
    load = [0] * used
    blocks = []
    for nt in range(NT):
        for mb, (row0, rows) in enumerate(row_blocks):
            plane = min(range(used), key=lambda p: (load[p], p))
            load[plane] += rows
            blocks.append(Block(len(blocks), mb, row0, rows, nt, plane))
    return Tiling(M, K, N, L, KT, NT, tuple(row_blocks), tuple(blocks), used)
