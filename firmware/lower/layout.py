"""Where each element of a logical tensor lives in a matrix of SRAM words.

Every tensor of a lowered layer is stored as a matrix ``[rows, tiles * L]``: row ``r``, column
tile ``j`` is one SRAM word (one vector of ``L = config.lanes`` elements). A :class:`Layout`
maps each element of the logical tensor (the shape the integer reference records in its
:class:`~sim_models.transformer.trace.Trace`) to a ``(row, column)`` of that matrix. Elements
no logical index maps to are *padding*. Layouts describe, for example:

- a plain ``[T, C]`` activation (column ``c`` at column ``c``);
- a projection whose channels are grouped by attention head, each head starting on its own
  word (``[T, heads * dh]`` with head ``h`` at columns ``h * DT * L ..``), so that a head's
  slice of a row is a whole word and can feed the MXM directly;
- the per-head view ``[heads, T, dh]`` of the same matrix;
- a transposed tensor (the values ``V`` stored as ``V.T``, channels as rows);
- a *replicated* per-row scalar (a reduction result): one word per row with the value in every
  lane, so that it can be combined with any word of that row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Layout", "head_columns"]


def head_columns(heads: int, dh: int, lanes: int) -> np.ndarray:
    """Stored column of each channel ``h * dh + j`` when every head starts on a new word."""
    dt = -(-dh // lanes)
    return (np.arange(heads)[:, None] * dt * lanes + np.arange(dh)[None, :]).reshape(-1)


@dataclass(frozen=True)
class Layout:
    """Element ``i`` of the logical tensor is at ``(mrow[i], mcol[i])`` of the word matrix.

    ``replicated`` layouts (reduction results, ``mcol == 0``) hold each value in every lane.
    """

    shape: tuple[int, ...]
    mrow: np.ndarray
    mcol: np.ndarray
    rows: int
    tiles: int
    lanes: int
    replicated: bool = False

    @classmethod
    def matrix(cls, rows: np.ndarray, cols: np.ndarray, lanes: int, n_rows: int | None = None,
               n_cols: int | None = None, replicated: bool = False) -> Layout:
        """A layout from broadcastable row and column index arrays."""
        rows, cols = np.broadcast_arrays(np.asarray(rows, np.int64), np.asarray(cols, np.int64))
        n_rows = int(rows.max()) + 1 if n_rows is None else n_rows
        n_cols = int(cols.max()) + 1 if n_cols is None else n_cols
        return cls(rows.shape, rows.copy(), cols.copy(), n_rows, -(-n_cols // lanes), lanes,
                   replicated)

    @classmethod
    def plain(cls, shape: tuple[int, int], lanes: int, cols: np.ndarray | None = None,
              n_cols: int | None = None) -> Layout:
        """``[R, C]`` with row ``r`` at row ``r`` and column ``c`` at ``cols[c]`` (default
        ``c``)."""
        r, c = shape
        cols = np.arange(c) if cols is None else np.asarray(cols)
        return cls.matrix(np.arange(r)[:, None], cols[None, :], lanes, r,
                          n_cols if n_cols is not None else int(cols.max()) + 1)

    def col_map(self) -> np.ndarray:
        """The stored column of each index of the last axis (which must not depend on the
        other axes)."""
        cols = self.mcol.reshape(-1, self.shape[-1])
        if not (cols == cols[:1]).all():
            raise ValueError("the column of the last axis depends on the other axes")
        return cols[0]

    def reduced(self) -> Layout:
        """The layout of a reduction over the last axis: one replicated word per row."""
        rows = self.mrow.reshape(-1, self.shape[-1])
        if not (rows == rows[:, :1]).all():
            raise ValueError("a reduced axis must lie along one row of words")
        mrow = rows[:, 0].reshape(self.shape[:-1] + (1,))
        return Layout(mrow.shape, mrow, np.zeros_like(mrow), self.rows, 1, self.lanes, True)

    def store(self, values) -> np.ndarray:
        """The word matrix ``[rows, tiles * L]`` (int64, padding 0) holding ``values``
        (broadcast to the logical shape); replicated layouts fill every lane."""
        v = np.broadcast_to(np.asarray(values, np.int64), self.shape)
        out = np.zeros((self.rows, self.tiles * self.lanes), np.int64)
        if self.replicated:
            out[self.mrow.reshape(-1), :] = v.reshape(-1)[:, None]
        else:
            out[self.mrow, self.mcol] = v
        return out

    def load(self, matrix: np.ndarray) -> np.ndarray:
        """The logical tensor from a word matrix (``store``'s inverse)."""
        return np.asarray(matrix)[self.mrow, self.mcol]

    def words(self) -> np.ndarray:
        """``bool [rows, tiles]``: the words that hold at least one element."""
        used = np.zeros((self.rows, self.tiles), bool)
        used[self.mrow.reshape(-1), self.mcol.reshape(-1) // self.lanes] = True
        return used
