"""Lane sums of int32 rows through the MXM (:mod:`firmware.lower.lane_sum`) against the
butterfly and NumPy's wrapping sum, on the golden model, over the whole int32 range."""

from __future__ import annotations

import numpy as np
import pytest

import firmware.lower.graph as graph_module
from firmware.lower.lane_sum import lane_sum_constant, mxm_sum_is_faster
from firmware.lower.layer import _lower
from firmware.lower.layout import Layout
from firmware.lower.placer import Placer
from openlpu import fixedpoint as fx
from openlpu.config import PRESETS
from openlpu.isa import Opcode

SIM = PRESETS["sim"].replace(queue_depth=1 << 14)
#: One MXM plane holding one row's four byte planes: every row is a block of its own.
TINY_ACC = PRESETS["ecp5"].replace(name="acc4", mxm_acc_depth=4, queue_depth=1 << 14)


def lower_sum(config, values: np.ndarray, path: str, monkeypatch):
    """Lower and run ``ADD`` over the last axis of int32 ``values`` with the MXM (``path ==
    "mxm"``) or the butterfly; returns (the result's first lane of every row, the lowered
    layer)."""
    monkeypatch.setattr(graph_module, "mxm_sum_is_faster", lambda pl, rows, n: path == "mxm")
    rows, width = values.shape

    def body(g):
        x = g.input("x", 32, Layout.plain((rows, width), g.L))
        g.reduce("total", Opcode.ADD, x)
        return "total", x, None

    lowered = _lower(config, "lane sum", rows, 0, body)
    runs = lowered.run_golden(values)
    assert sum(r.cycles for r in runs) == lowered.predicted_cycles
    return lowered.read("total", runs[-1].sram).reshape(rows, -1)[:, 0], lowered


@pytest.mark.parametrize("config", [SIM, TINY_ACC], ids=["sim", "acc4"])
@pytest.mark.parametrize("width", [1, 7, 16, 32, 70])
def test_mxm_lane_sum_wraps_like_add(config, width, monkeypatch):
    """Random words over the full int32 range, with the extremes in every byte pattern: the
    MXM's sum equals the wrapping sum (and the butterfly's), in as many cycles as
    predicted."""
    rng = np.random.default_rng(width)
    rows = 3
    values = rng.integers(-(1 << 31), 1 << 31, (rows, width), dtype=np.int64)
    values[0, :] = -(1 << 31)
    values[1, ::2] = (1 << 31) - 1
    values[2, :1] = -1
    want = fx.wrap(values.sum(axis=1), 32)
    got, lowered = lower_sum(config, values, "mxm", monkeypatch)
    assert np.array_equal(got, want)
    assert any(i.op is Opcode.ABCO for _, _, i, op in lowered.instructions() if op == "total")
    got_butterfly, _ = lower_sum(config, values, "butterfly", monkeypatch)
    assert np.array_equal(got_butterfly, want)


def test_lane_sum_constant_is_the_correction_of_the_flipped_bytes():
    """Summing the flipped bytes as the MXM reads them and adding the constant gives the
    wrapping sum (the identity of the module docstring, without the chip)."""
    rng = np.random.default_rng(0)
    for n in (1, 5, 32, 320):
        x = rng.integers(-(1 << 31), 1 << 31, n, dtype=np.int64)
        raw = (x ^ -0x7F7F80).astype("<i4").view(np.int8).reshape(n, 4).astype(np.int64)
        s = raw.sum(axis=0)
        total = s[0] + (s[1] << 8) + (s[2] << 16) - (s[3] << 24) + lane_sum_constant(n)
        assert fx.wrap(total, 32) == fx.wrap(x.sum(), 32)


def test_the_mxm_is_chosen_where_the_sxm_is_far():
    """The full chip's SXMs are 45 hops from the VXM: a decode step's sums go through the
    MXM; on sim (9 hops) many rows still take the butterfly, and a chip with accumulators
    too shallow for one row's four planes never uses the MXM."""
    full = Placer(PRESETS["groqchip"])
    assert mxm_sum_is_faster(full, 1, 320) and mxm_sum_is_faster(full, 96, 320)
    sim = Placer(SIM)
    assert not mxm_sum_is_faster(sim, 64, 16)
    assert not mxm_sum_is_faster(Placer(SIM.replace(mxm_acc_depth=3)), 1, 32)
