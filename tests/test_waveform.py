"""Traced RTL runs: the stream registers in the FST hold the golden model's values cycle for
cycle (which fixes the cycle <-> time mapping), a difference is located to its first cycle,
stream, slice and lane, and ``--trace-window`` cuts a waveform down to a range of cycles.

Each simulator builds a traced model of the small preset (a separate build from the untraced
one of tests/test_rtl_chip.py).
"""

import dataclasses
import random

import numpy as np
import pytest

from firmware.random_program import random_program
from openlpu.config import PRESETS
from openlpu.toolchain import simulator_available
from sim_models.golden import run_program
from tb.runner import RtlJob, run_rtl
from tb.stream_check import first_stream_difference
from tb.waveform import Waveform, WaveformError, cut_cycles, cycle_edge

CONFIG = PRESETS["small"]
SIMULATORS = ["verilator", "icarus"]


def need(simulator: str):
    ok, why = simulator_available(simulator)
    if not ok:
        pytest.skip(why)


def busy_program(seed: int):
    """A random program that writes streams from several kinds of unit."""
    return random_program(CONFIG, seed, 20)


@pytest.fixture(scope="module", params=SIMULATORS)
def traced(request, tmp_path_factory):
    """One traced run per simulator: (simulator, program, golden stream log, FST path)."""
    simulator = request.param
    need(simulator)
    seed = random.SystemRandom().randrange(2**32)
    print(f"{simulator}: random program seed {seed}")
    program = busy_program(seed)
    log: list = []
    golden = run_program(CONFIG, program, stream_log=log)
    assert log, "the program writes no stream"
    fst = tmp_path_factory.mktemp(simulator) / "run.fst"
    (rtl,) = run_rtl(CONFIG, [RtlJob(program, golden.cycles, [])], simulator, trace_to=fst)
    assert rtl.cycles == golden.cycles
    return simulator, program, log, fst


def test_every_golden_stream_write_is_in_the_rtl_registers(traced):
    _, _, log, fst = traced
    with Waveform(fst) as wave:
        assert first_stream_difference(CONFIG, log, wave) is None


def test_a_changed_byte_is_located_to_its_cycle_stream_and_lane(traced):
    _, _, log, fst = traced
    rng = random.Random(len(log))
    i = rng.randrange(len(log))
    lane = rng.randrange(CONFIG.lanes)
    value = log[i].value.copy()
    value[lane] ^= 0x40
    wrong = list(log)
    wrong[i] = dataclasses.replace(log[i], value=value)
    # an earlier write of the same cycle might be reported first only if it differs too
    with Waveform(fst) as wave:
        m = first_stream_difference(CONFIG, wrong, wave)
    assert m is not None
    w = log[i]
    assert (m.cycle, m.direction, m.stream, m.position, m.lane) == \
        (w.cycle, w.direction, w.stream, w.position, lane)
    assert m.golden == value[lane] and m.rtl == w.value[lane]
    text = str(m)
    assert f"cycle {w.cycle}" in text and f"lane {lane}" in text
    assert w.producer.op in text and w.producer.queue in text


def test_different_sram_data_is_located_at_the_read_that_streams_it(traced, tmp_path):
    simulator, program, log, fst = traced
    reads = [w for w in log if w.producer.op in ("READ", "GATHER")]
    if not reads:
        pytest.skip("this random program streams nothing out of SRAM")
    # The golden model of the same program with every initial SRAM byte changed: the first
    # stream write that carries SRAM data must be reported, not anything earlier.
    changed = dataclasses.replace(program, mem_init=[
        dataclasses.replace(m, data=(np.asarray(m.data, np.uint8) ^ 0x5A))
        for m in program.mem_init])
    other: list = []
    run_program(CONFIG, changed, stream_log=other)
    with Waveform(fst) as wave:
        m = first_stream_difference(CONFIG, other, wave)
    differing = [w for w, o in zip(log, other, strict=True)
                 if not np.array_equal(w.value, o.value)]
    if not differing:
        pytest.skip("the changed data never reaches a stream")
    first = min(differing, key=lambda w: (w.cycle, w.direction, w.stream, w.position))
    assert m is not None and (m.cycle, m.stream, m.position) == \
        (first.cycle, first.stream, first.position)


def test_window_keeps_only_the_requested_cycles(traced, tmp_path):
    _, _, log, fst = traced
    first = min(w.cycle for w in log)
    stop = max(w.cycle for w in log) + 1
    out = tmp_path / "window.fst"
    t0, t1 = cut_cycles(fst, out, first, stop)
    with Waveform(fst) as full, Waveform(out) as cut:
        edges = full.rising_edges()
        start = full.start_edge()
        assert t0 == edges[cycle_edge(start, edges, first)]
        assert cut.start_time == t0 and cut.end_time < t1
        assert {v.path for v in cut.vars} == {v.path for v in full.vars}
        # the stream registers inside the window agree with the golden model there
        inside = [w for w in log if first <= w.cycle and w.cycle + CONFIG.superlanes <= stop]
        cut_edges = cut.rising_edges()
        assert cut_edges[0] >= t0 and cut_edges[-1] < t1
        assert len(cut_edges) <= stop - first
        assert _registers_match(cut, full, inside)


def _registers_match(cut: Waveform, full: Waveform, writes) -> bool:
    """Every register value the window holds at a written cycle equals the full trace's."""
    names = {f"{'e' if w.direction == 0 else 'w'}_sl0_p{w.position}" for w in writes}
    cut_vars = [cut.find(n) for n in names]
    full_vars = [full.find(n) for n in names]
    c = cut.changes(cut_vars)
    f = full.changes(full_vars)
    for cv, fv in zip(cut_vars, full_vars, strict=True):
        t0 = c[cv.handle][0][0]
        later = [x for x in f[fv.handle] if x[0] > t0]
        before = [x for x in f[fv.handle] if x[0] <= t0]
        want = ([before[-1][1]] if before else []) + [b for t, b in later
                                                        if t <= c[cv.handle][-1][0]]
        if [b for _, b in c[cv.handle]] != want:
            return False
    return True


def test_window_errors_name_the_problem(traced, tmp_path):
    _, _, _, fst = traced
    with pytest.raises(WaveformError, match="0 <= A < B"):
        cut_cycles(fst, tmp_path / "x.fst", 5, 5)
    with pytest.raises(WaveformError, match="after the end of the trace"):
        cut_cycles(fst, tmp_path / "x.fst", 10**9, 10**9 + 1)
    with pytest.raises(WaveformError, match="no such waveform"):
        Waveform(tmp_path / "missing.fst")


def test_verify_locates_a_mismatch_with_a_traced_rerun(monkeypatch):
    """When the scoreboard reports a difference, verify() re-runs the program traced and adds
    the stream-level finding (here the chip is right, so it says the streams all agree)."""
    import tb.verify as verify_module
    from tb.scoreboard import Comparison

    need("icarus")
    monkeypatch.setattr(verify_module, "compare",
                        lambda *a: Comparison(False, ["SRAM mem_w0 b0:0 lane 0: injected"]))
    (v,) = verify_module.verify(CONFIG, {"p": busy_program(7)}, "icarus")
    assert not v.matches
    assert v.comparison.problems[0].endswith("injected")
    assert "every stream-register value matches the golden model" in v.comparison.problems[1]
