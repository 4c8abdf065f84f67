# amaranth: UnusedElaboratable=no
"""The ICU RTL (hdl/icu.py) against the golden timing: random and directed queue programs.

Each test loads queue programs into one or more :class:`hdl.icu.Icu` instances through the
host write port, pulses ``start`` and records, cycle by cycle, what every queue issues. The
record must equal ``firmware.timing.issue_times`` (the golden model's static timing: every
unit-instruction issue, every ``NOTIFY`` and the ``END`` cycle), and for READ-only programs the
golden model's own trace (``GoldenModel(trace=...)``). The issued words, including the stepped
``addr`` of every ``REPEAT`` repetition, are compared with an expansion of the program written
here from the REPEAT semantics (docs/architecture.md section 5.2). Several Icus in one design
share the notify wire (OR of every ``notify``), as the chip top wires it; a testbench-driven
notify is modelled for ``issue_times`` as a phantom queue that ``NOTIFY``s in those cycles.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from firmware.program import Program
from firmware.timing import issue_times
from hdl.icu import ICU_OPCODES, STEP_OPCODES, Icu
from openlpu import isa
from openlpu.config import PRESETS
from openlpu.isa import (
    FIELDS,
    OPS,
    Instruction,
    Opcode,
    Unit,
    check_queue_program,
    encode,
    stream_code,
    unit_for_slice,
    validate,
)
from sim_models.golden import GoldenModel

PRESET_NAMES = ("small", "ecp5", "sim")
# The presets, the small chip with ICUs that leave REPEAT out (icu_repeat = False) and the
# ecp5 chip with ICUs that decode the block RAM's output (icu_prefetch = False)
CONFIGS = {**{n: PRESETS[n] for n in PRESET_NAMES},
           "norepeat": PRESETS["small"].replace(name="norepeat", icu_repeat=False),
           "noprefetch": PRESETS["ecp5"].replace(name="noprefetch", icu_prefetch=False)}
OPC_LSB = FIELDS["opcode"].lsb
ADDR_MASK = (1 << FIELDS["addr"].width) - 1
PHANTOM = "sxm_e"  # a queue no test design instantiates: stands for a testbench notify


def I(op, **kw):  # noqa: E743 - short name for readable instruction lists
    return Instruction(op, **kw)


# --- the design under test ------------------------------------------------------------------


class _Top(Elaboratable):
    """Icus for some queues, their notify outputs OR'ed (with a testbench notify) into every
    ``notify_in``, as the chip top wires them."""

    def __init__(self, config, names):
        self.config = config
        self.icus = {n: Icu(config) for n in names}
        self.ext_notify = Signal()

    def elaborate(self, platform):
        m = Module()
        for n, icu in self.icus.items():
            m.submodules[n] = icu
        wire = self.ext_notify | Cat(*(i.notify for i in self.icus.values())).any()
        for icu in self.icus.values():
            m.d.comb += icu.notify_in.eq(wire)
        return m


@dataclass
class Trace:
    """What one queue did in one run, in ``issue_times`` form plus the issued words."""

    events: list[tuple[int, Opcode]] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    parked: list[int] = field(default_factory=list)
    ended_at: int | None = None
    issued: int = 0


def simulate(top, bench):
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


async def load(ctx, icu, words, base=0):
    """Write ``words`` at ``base..`` through the host port, one per cycle."""
    for i, w in enumerate(words):
        ctx.set(icu.wr_en, 1)
        ctx.set(icu.wr_addr, base + i)
        ctx.set(icu.wr_data, w)
        await ctx.tick()
    ctx.set(icu.wr_en, 0)


async def read_back(ctx, icu, n):
    """Read words ``0..n-1`` through the host port (pipelined, one per cycle)."""
    out = []
    for i in range(n + 1):
        ctx.set(icu.rd_en, int(i < n))
        ctx.set(icu.rd_addr, min(i, n - 1))
        await ctx.tick()
        if i < n:
            out.append(ctx.get(icu.rd_data))
    ctx.set(icu.rd_en, 0)
    return out


async def run(ctx, top, *, notify_at=(), max_cycles=5000, tail=3):
    """Pulse ``start`` (cycle -1) on every Icu and record until all have ended, plus ``tail``
    cycles in which nothing may happen."""
    icus = top.icus
    for icu in icus.values():
        ctx.set(icu.start, 1)
    for icu in icus.values():  # nothing happens in the start cycle
        assert (ctx.get(icu.issue), ctx.get(icu.notify), ctx.get(icu.ended),
                ctx.get(icu.parked)) == (0, 0, 0, 0)
    await ctx.tick()
    for icu in icus.values():
        ctx.set(icu.start, 0)
    traces = {n: Trace() for n in icus}
    notify_at = set(notify_at)
    t = 0
    left = tail
    while left:
        ctx.set(top.ext_notify, int(t in notify_at))
        for n, icu in icus.items():
            tr = traces[n]
            issue, instr = ctx.get(icu.issue), ctx.get(icu.instr.as_value())
            notify, ended, parked = ctx.get(icu.notify), ctx.get(icu.ended), ctx.get(icu.parked)
            if issue:
                tr.events.append((t, Opcode(instr >> OPC_LSB)))
                tr.words.append(instr)
            if notify:
                tr.events.append((t, Opcode.NOTIFY))
            if parked:
                tr.parked.append(t)
            assert not (parked and (issue or notify)), f"{n}: parked queue acts in cycle {t}"
            if tr.ended_at is not None:
                assert ended, f"{n}: ended dropped in cycle {t}"
            elif ended:
                tr.ended_at = t
                tr.events.append((t, Opcode.END))
            assert not (ended and (issue or notify or parked)), f"{n}: acts after END ({t})"
        await ctx.tick()
        t += 1
        assert t < max_cycles, "queues did not end"
        if all(tr.ended_at is not None for tr in traces.values()):
            left -= 1
    ctx.set(top.ext_notify, 0)
    for n, icu in icus.items():
        traces[n].issued = ctx.get(icu.issued)
    return traces


# --- expectations ----------------------------------------------------------------------------


def expected_words(code):
    """The words a queue issues, in order: unit instructions as written, each REPEAT
    repetition the previous issue with its step field advanced by ``step``."""
    out, prev = [], None
    for instr in code:
        op = instr.op
        if op is Opcode.END:
            break
        if op is Opcode.REPEAT:
            sf = prev.spec.step_field
            for _ in range(instr.rep_n):
                if sf:
                    prev = prev.replace(**{sf: getattr(prev, sf) + instr.rep_step})
                out.append(encode(prev))
        elif OPS[op].unit is not Unit.ICU:
            prev = instr
            out.append(encode(instr))
    return out


def phantom_code(cycles):
    """A queue program that NOTIFYs in exactly ``cycles`` (sorted, distinct)."""
    code, t = [], 0
    for c in sorted(cycles):
        if c > t:
            code.append(I(Opcode.NOP, nop_count=c - t))
        code.append(I(Opcode.NOTIFY))
        t = c + 1
    return code


def check(name, trace, expect, code, label):
    msg = f"{label}, queue {name}: program {[str(i) for i in code]}"
    assert trace.events == expect, msg
    assert trace.words == expected_words(code), msg
    assert trace.issued == len(trace.words), msg
    assert trace.ended_at == expect[-1][0], msg


# --- random programs -------------------------------------------------------------------------


def _stream(rng, config, width=1, last=None):
    s = config.streams_per_direction
    top = s - width if last is None else last
    idx = int(rng.integers(0, top // width + 1)) * width
    return stream_code(int(rng.integers(0, 2)), idx)


def random_unit_instr(rng, config, unit):
    """A valid unit instruction of ``unit`` with random fields (random addr where it has one)."""
    s = config.streams_per_direction
    if unit is Unit.MEM:
        op = [Opcode.READ, Opcode.WRITE, Opcode.GATHER, Opcode.SCATTER][rng.integers(0, 4)]
        addr = int(rng.integers(0, config.address_space))
        instr = {
            Opcode.READ: lambda: I(op, dst=_stream(rng, config), addr=addr),
            Opcode.WRITE: lambda: I(op, addr=addr, a=_stream(rng, config)),
            Opcode.GATHER: lambda: I(op, dst=_stream(rng, config), addr=addr,
                                     b=_stream(rng, config, 2)),
            Opcode.SCATTER: lambda: I(op, addr=addr, b=_stream(rng, config, 2),
                                      a=_stream(rng, config)),
        }[op]()
    elif unit is Unit.MXM:
        op = [Opcode.LW, Opcode.IW, Opcode.ABC, Opcode.ACC][rng.integers(0, 4)]
        depth = config.mxm_acc_depth
        if op is Opcode.LW:
            count = int(rng.integers(1, min(s, config.lanes) + 1))
            instr = I(op, addr=int(rng.integers(0, config.lanes - count + 1)),
                      a=_stream(rng, config, last=s - count), count=count)
        elif op is Opcode.IW:
            instr = I(op)
        elif op is Opcode.ABC:
            instr = I(op, addr=int(rng.integers(0, depth)), a=_stream(rng, config),
                      accumulate=int(rng.integers(0, 2)))
        else:
            instr = I(op, dst=_stream(rng, config, 4), addr=int(rng.integers(0, depth)))
    else:
        if rng.random() < 0.5:
            instr = I(Opcode.ADD, dst=_stream(rng, config), a=_stream(rng, config), bimm=1,
                      imm=int(rng.integers(-128, 128)))
        else:
            instr = I(Opcode.MOV, dst=_stream(rng, config), a=_stream(rng, config))
    validate(instr, config)
    return instr


def random_repeat(rng, config, prev):
    n, d = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    step = 0
    sf = prev.spec.step_field
    if sf:
        step = int(rng.integers(-4, 5))
        try:
            validate(prev.replace(**{sf: getattr(prev, sf) + n * step}), config)
        except isa.IsaError:
            step = 0
    return I(Opcode.REPEAT, rep_n=n, rep_d=d, rep_step=step)


def random_code(rng, config, queue, length, *, p_sync=0.0, p_notify=0.0, end=True):
    """A random valid queue program of ``length`` words (plus END if ``end``)."""
    unit = unit_for_slice(config.queue_by_name[queue].slice.kind)
    code = []
    while len(code) < length:
        r = rng.random()
        after_unit = bool(code) and code[-1].spec.unit is not Unit.ICU
        if after_unit and r < 0.3 and config.icu_repeat:
            code.append(random_repeat(rng, config, code[-1]))
        elif r < 0.45:
            code.append(I(Opcode.NOP, nop_count=int(rng.integers(1, 6))))
        elif r < 0.45 + p_sync:
            code.append(I(Opcode.SYNC))
        elif r < 0.45 + p_sync + p_notify:
            code.append(I(Opcode.NOTIFY))
        else:
            code.append(random_unit_instr(rng, config, unit))
    if end:
        code.append(I(Opcode.END))
    room = config.replace(queue_depth=2 * config.queue_depth)  # full-depth programs too
    check_queue_program(code, unit, room, queue)
    return code


def garbage(rng, config, queue, k):
    """Words to leave after END: they must never run."""
    unit = unit_for_slice(config.queue_by_name[queue].slice.kind)
    return [encode(random_unit_instr(rng, config, unit)) for _ in range(k)] + \
        [encode(I(Opcode.NOTIFY))]


# --- tests: random programs -----------------------------------------------------------------


@pytest.mark.parametrize("preset", list(CONFIGS))
def test_random_programs_match_issue_times(preset):
    """60 random single-queue programs (MEM, MXM and VXM queues) with NOP, REPEAT and NOTIFY,
    run back to back in one simulation, each followed in memory by words that must not run."""
    config = CONFIGS[preset]
    rng = np.random.default_rng(1000 + list(CONFIGS).index(preset))
    queues = ("mem_w0", "mxm0", "vxm0")
    top = _Top(config, queues)

    async def bench(ctx):
        for k in range(60):
            q = queues[k % len(queues)]
            code = random_code(rng, config, q, int(rng.integers(0, 25)), p_notify=0.05)
            await load(ctx, top.icus[q], [encode(i) for i in code] +
                       garbage(rng, config, q, int(rng.integers(0, 4))))
            expect = issue_times(config, {q: code})
            traces = await run(ctx, top)
            check(q, traces[q], expect[q], code, f"{preset} program {k}")

    simulate(top, bench)


@pytest.mark.parametrize("preset", list(CONFIGS))
def test_random_sync_programs_on_two_queues(preset):
    """Two Icus with SYNC and NOTIFY in both, releasing each other over the shared wire."""
    config = CONFIGS[preset]
    rng = np.random.default_rng(2000 + list(CONFIGS).index(preset))
    names = ("mem_w0", "mxm0")
    top = _Top(config, names)
    cases = []
    while len(cases) < 25:
        codes = {n: random_code(rng, config, n, int(rng.integers(1, 20)), p_sync=0.12,
                                p_notify=0.12) for n in names}
        if not any(i.op is Opcode.SYNC for c in codes.values() for i in c):
            continue
        try:
            expect = issue_times(config, codes)
        except ValueError:  # a SYNC nobody releases
            continue
        cases.append((codes, expect))

    async def bench(ctx):
        for k, (codes, expect) in enumerate(cases):
            for n in names:
                await load(ctx, top.icus[n], [encode(i) for i in codes[n]])
            traces = await run(ctx, top)
            for n in names:
                check(n, traces[n], expect[n], codes[n], f"{preset} case {k}")

    simulate(top, bench)


@pytest.mark.parametrize("preset", list(CONFIGS))
def test_random_sync_programs_with_testbench_notify(preset):
    """One Icu whose notify_in the testbench drives in chosen cycles."""
    config = CONFIGS[preset]
    rng = np.random.default_rng(3000 + list(CONFIGS).index(preset))
    q = "mem_e0"
    top = _Top(config, (q,))
    cases = []
    while len(cases) < 20:
        code = random_code(rng, config, q, int(rng.integers(1, 20)), p_sync=0.2)
        cycles = sorted({int(c) for c in rng.integers(0, 60, size=int(rng.integers(1, 12)))})
        try:
            expect = issue_times(config, {q: code, PHANTOM: phantom_code(cycles)})
        except ValueError:
            continue
        assert [t for t, op in expect[PHANTOM] if op is Opcode.NOTIFY] == cycles
        cases.append((code, cycles, expect[q]))

    async def bench(ctx):
        for k, (code, cycles, expect) in enumerate(cases):
            await load(ctx, top.icus[q], [encode(i) for i in code])
            traces = await run(ctx, top, notify_at=cycles)
            check(q, traces[q], expect, code, f"{preset} case {k}, notify at {cycles}")

    simulate(top, bench)


@pytest.mark.parametrize("preset", list(CONFIGS))
def test_read_programs_match_the_golden_model_trace(preset):
    """READ-only queues (always a valid schedule) on two MEM slices with SYNC/NOTIFY: the RTL
    issues what GoldenModel traces, in the same cycles, and counts the same issues."""
    config = CONFIGS[preset]
    rng = np.random.default_rng(4000 + list(CONFIGS).index(preset))
    names = ("mem_w0", "mem_e0")
    top = _Top(config, names)
    cases = []
    while len(cases) < 15:
        codes = {}
        for n in names:
            code = random_code(rng, config, n, int(rng.integers(1, 16)), p_sync=0.1,
                               p_notify=0.1, end=False)
            # every MEM instruction becomes a READ of the same address (REPEAT steps stay valid)
            codes[n] = [I(Opcode.READ, dst=_stream(rng, config), addr=i.addr)
                        if OPS[i.op].unit is Unit.MEM else i for i in code]
        try:
            issue_times(config, codes)
        except ValueError:
            continue
        cases.append(codes)

    async def bench(ctx):
        for k, codes in enumerate(cases):
            program = Program(config_name=config.name, config_hash=config.config_hash,
                              lanes=config.lanes, queues=codes)
            golden = []
            result = GoldenModel(config, program, trace=golden).run()
            for n in names:
                await load(ctx, top.icus[n], [encode(i) for i in codes[n]] + [0])
            traces = await run(ctx, top)
            for n in names:
                tr = traces[n]
                issues = [(t, op.name) for t, op in tr.events if op not in ICU_OPCODES]
                assert issues == [(t, m) for t, qn, m, _ in golden if qn == n], \
                    f"{preset} case {k}, {n}: {codes[n]}"
                assert tr.issued == result.counters["issued"][n]
                assert tr.words == expected_words(codes[n])

    simulate(top, bench)


@pytest.mark.parametrize("preset", ("small", "ecp5", "noprefetch"))
def test_implicit_end_at_queue_depth(preset):
    """A memory full of code with no END: word index queue_depth behaves as END."""
    config = CONFIGS[preset]
    rng = np.random.default_rng(5000)
    q = "mem_w1"
    top = _Top(config, (q,))
    code = random_code(rng, config, q, config.queue_depth, p_notify=0.05, end=False)
    code = code[:config.queue_depth]
    if code[-1].op is Opcode.NOP:  # end on a stall right at the edge
        code[-1] = I(Opcode.NOP, nop_count=3)
    expect = issue_times(config, {q: code})

    async def bench(ctx):
        await load(ctx, top.icus[q], [encode(i) for i in code])
        traces = await run(ctx, top)
        check(q, traces[q], expect[q], code, preset)

    simulate(top, bench)


# --- tests: directed ------------------------------------------------------------------------

ECP5 = PRESETS["ecp5"]
# the directed tests of the fetch pipeline run with and without the prefetch register
FETCH_CONFIGS = pytest.mark.parametrize("config", [ECP5, CONFIGS["noprefetch"]],
                                        ids=lambda c: c.name)
E0 = stream_code(0, 0)
E1 = stream_code(0, 1)
W0 = stream_code(1, 0)


def run_directed(config, codes, *, notify_at=(), extra=None):
    """Load and run ``codes`` ({queue: [Instruction]}) once; returns the traces."""
    top = _Top(config, tuple(codes))
    out = {}

    async def bench(ctx):
        for n, code in codes.items():
            await load(ctx, top.icus[n], [encode(i) for i in code])
        out.update(await run(ctx, top, notify_at=notify_at))
        if extra:
            await extra(ctx, top, out)

    simulate(top, bench)
    return out


def test_doc_repeat_example_issues_at_1_3_5_7_8_with_stepped_addresses():
    code = [I(Opcode.NOP, nop_count=1), I(Opcode.READ, dst=E0, addr=0),
            I(Opcode.REPEAT, rep_n=3, rep_d=2, rep_step=1), I(Opcode.READ, dst=E1, addr=9)]
    tr = run_directed(ECP5, {"mem_w0": code})["mem_w0"]
    assert tr.events == [(1, Opcode.READ), (3, Opcode.READ), (5, Opcode.READ), (7, Opcode.READ),
                         (8, Opcode.READ), (9, Opcode.END)]
    assert [w & ADDR_MASK for w in tr.words] == [0, 1, 2, 3, 9]
    assert tr.issued == 5


def test_doc_sync_example_releases_all_three_reads_in_cycle_6():
    codes = {"mem_w0": [I(Opcode.SYNC), I(Opcode.READ, dst=E0, addr=0)],
             "mem_w1": [I(Opcode.NOP, nop_count=5), I(Opcode.SYNC),
                        I(Opcode.READ, dst=E1, addr=0)],
             "mem_e0": [I(Opcode.NOP, nop_count=5), I(Opcode.NOTIFY),
                        I(Opcode.READ, dst=W0, addr=0)]}
    tr = run_directed(ECP5, codes)
    for n in codes:
        assert [t for t, op in tr[n].events if op is Opcode.READ] == [6]
    assert tr["mem_w0"].parked == [0, 1, 2, 3, 4, 5]
    assert tr["mem_w1"].parked == [5]  # parks and is released in the same cycle
    assert tr["mem_e0"].events[0] == (5, Opcode.NOTIFY)


def test_parked_until_testbench_notify_then_next_word_the_cycle_after():
    code = [I(Opcode.SYNC), I(Opcode.READ, dst=E0, addr=7), I(Opcode.SYNC), I(Opcode.SYNC),
            I(Opcode.READ, dst=E0, addr=8)]
    tr = run_directed(ECP5, {"mem_w0": code}, notify_at=(5, 9, 10))["mem_w0"]
    # SYNC 0..5, READ 6, SYNC 7..9, SYNC 10 (released at once), READ 11, END 12
    assert tr.parked == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10]
    assert tr.events == [(6, Opcode.READ), (11, Opcode.READ), (12, Opcode.END)]


def test_repeat_d1_issues_in_its_fetch_cycle_and_n1_continues_next_cycle():
    code = [I(Opcode.READ, dst=E0, addr=100), I(Opcode.REPEAT, rep_n=1, rep_d=1, rep_step=-3),
            I(Opcode.WRITE, addr=5, a=E0), I(Opcode.REPEAT, rep_n=3, rep_d=1, rep_step=2),
            I(Opcode.READ, dst=E0, addr=0), I(Opcode.REPEAT, rep_n=2, rep_d=4, rep_step=0)]
    tr = run_directed(ECP5, {"mem_w0": code})["mem_w0"]
    assert [t for t, _ in tr.events] == [0, 1, 2, 3, 4, 5, 6, 10, 14, 15]
    assert [w & ADDR_MASK for w in tr.words] == [100, 97, 5, 7, 9, 11, 0, 0, 0]
    assert tr.issued == 9


def test_empty_queue_ends_in_cycle_0_and_is_idle_before_the_first_start():
    top = _Top(ECP5, ("mem_w0",))
    icu = top.icus["mem_w0"]

    async def bench(ctx):
        await load(ctx, icu, [encode(I(Opcode.READ, dst=E0, addr=1))])
        ctx.set(top.ext_notify, 1)
        for _ in range(5):  # loaded but never started: idle
            assert (ctx.get(icu.issue), ctx.get(icu.ended), ctx.get(icu.parked),
                    ctx.get(icu.notify)) == (0, 0, 0, 0)
            await ctx.tick()
        await load(ctx, icu, [0])
        tr = (await run(ctx, top))["mem_w0"]
        assert tr.events == [(0, Opcode.END)] and tr.issued == 0

    simulate(top, bench)


def test_ended_goes_high_in_the_end_cycle_and_stays():
    code = [I(Opcode.READ, dst=E0, addr=1), I(Opcode.NOP, nop_count=2), I(Opcode.NOTIFY)]
    tr = run_directed(ECP5, {"mem_w0": code})["mem_w0"]
    assert tr.events == [(0, Opcode.READ), (3, Opcode.NOTIFY), (4, Opcode.END)]
    assert tr.ended_at == 4  # run() also checks it never drops


@FETCH_CONFIGS
def test_back_to_back_starts_rerun_the_program(config):
    """Start again in the cycle after the run, in the END cycle itself, mid-run (parked at
    SYNC) and with start held for two cycles: every time the run is the same as the first."""
    code = [I(Opcode.NOP, nop_count=2), I(Opcode.READ, dst=E0, addr=3),
            I(Opcode.REPEAT, rep_n=2, rep_d=3, rep_step=4), I(Opcode.SYNC),
            I(Opcode.READ, dst=E0, addr=9)]
    q = "mem_w0"
    notify = [12]
    expect = issue_times(config, {q: code, PHANTOM: phantom_code(notify)})[q]
    end = expect[-1][0]
    top = _Top(config, (q,))
    icu = top.icus[q]

    async def partial_run(ctx, cycles):
        ctx.set(icu.start, 1)
        await ctx.tick()
        ctx.set(icu.start, 0)
        for t in range(cycles):
            ctx.set(top.ext_notify, int(t in notify))
            await ctx.tick()
        ctx.set(top.ext_notify, 0)

    async def bench(ctx):
        await load(ctx, icu, [encode(i) for i in code])
        first = (await run(ctx, top, notify_at=notify, tail=1))[q]
        check(q, first, expect, code, "first run")
        assert first.parked == [9, 10, 11, 12]
        # the cycle right after the previous run
        assert (await run(ctx, top, notify_at=notify, tail=1))[q] == first
        # in the END cycle itself: start wins, the END cycle is the new cycle -1
        await partial_run(ctx, end)
        assert (await run(ctx, top, notify_at=notify, tail=1))[q] == first
        # mid-run, while parked at SYNC
        await partial_run(ctx, 10)
        assert ctx.get(icu.parked) == 1
        assert (await run(ctx, top, notify_at=notify, tail=1))[q] == first
        # start held for two cycles: the run follows the second
        ctx.set(icu.start, 1)
        await ctx.tick()
        assert (await run(ctx, top, notify_at=notify, tail=1))[q] == first

    simulate(top, bench)


@FETCH_CONFIGS
def test_memory_is_unchanged_by_runs_and_host_writes_are_ignored_while_running(config):
    rng = np.random.default_rng(6)
    q = "mem_w0"
    code = [I(Opcode.READ, dst=E0, addr=1), I(Opcode.REPEAT, rep_n=4, rep_d=2, rep_step=1),
            I(Opcode.END)]
    image = [encode(i) for i in code] + garbage(rng, config, q, 20) + [0, 0]
    top = _Top(config, (q,))
    icu = top.icus[q]
    expect = issue_times(config, {q: code})[q]

    async def bench(ctx):
        await load(ctx, icu, image)
        assert await read_back(ctx, icu, len(image)) == image
        ctx.set(icu.start, 1)
        ctx.set(icu.wr_en, 1)  # ignored: start cycle
        ctx.set(icu.wr_addr, 1)
        ctx.set(icu.wr_data, encode(I(Opcode.NOTIFY)))
        await ctx.tick()
        ctx.set(icu.start, 0)
        for t in range(5):  # ignored while running (the chip top hides rd_data then)
            ctx.set(icu.wr_addr, 1 + t)
            ctx.set(icu.rd_en, 1)
            ctx.set(icu.rd_addr, 0)
            await ctx.tick()
        ctx.set(icu.wr_en, 0)
        ctx.set(icu.rd_en, 0)
        for _ in range(20):
            await ctx.tick()
        assert ctx.get(icu.ended) and ctx.get(icu.issued) == 5
        assert await read_back(ctx, icu, len(image)) == image
        tr = (await run(ctx, top))[q]
        check(q, tr, expect, code, "rerun")
        assert await read_back(ctx, icu, len(image)) == image

    simulate(top, bench)


@FETCH_CONFIGS
def test_a_reloaded_queue_runs_its_new_words_from_the_first(config):
    """With prefetch word 0 is taken from a copy the host's writes keep (the block RAM's port
    already reads word 1 in the start cycle); without it the port reads word 0 in that cycle.
    Either way a program loaded over another, its first two words written in the very cycles
    before ``start``, runs as loaded, as does a rerun."""
    q = "mem_w0"
    first = [I(Opcode.READ, dst=E0, addr=3), I(Opcode.NOP, nop_count=2),
             I(Opcode.WRITE, a=E0, addr=4), I(Opcode.END)]
    second = [I(Opcode.WRITE, a=E0, addr=9), I(Opcode.READ, dst=E0, addr=7),
              I(Opcode.REPEAT, rep_n=2, rep_d=3, rep_step=1), I(Opcode.END)]
    top = _Top(config, (q,))
    icu = top.icus[q]

    async def bench(ctx):
        await load(ctx, icu, [encode(i) for i in first])
        check(q, (await run(ctx, top))[q], issue_times(config, {q: first})[q], first, "first")
        await load(ctx, icu, [encode(i) for i in second[2:]], base=2)
        await load(ctx, icu, [encode(i) for i in second[:2]])  # words 0 and 1 last
        for label in ("second", "rerun"):
            check(q, (await run(ctx, top))[q], issue_times(config, {q: second})[q], second,
                  label)

    simulate(top, bench)


def test_repeat_steps_only_the_opcodes_with_a_step_field():
    """REPEAT with a step after opcodes without a step field (rejected by
    check_queue_program, so the words are written raw) re-issues them unchanged: ADD's imm
    overlaps addr, IW has no operands."""
    assert set(STEP_OPCODES) == {op for op, s in OPS.items() if s.step_field == "addr"}
    add = I(Opcode.ADD, dst=E0, a=E1, bimm=1, imm=-5)
    rep = I(Opcode.REPEAT, rep_n=2, rep_d=1, rep_step=7)
    q = "vxm0"
    top = _Top(ECP5, (q, "mxm0"))

    async def bench(ctx):
        await load(ctx, top.icus[q], [encode(add), encode(rep)])
        await load(ctx, top.icus["mxm0"], [encode(I(Opcode.IW)), encode(rep),
                                           encode(I(Opcode.ACC, dst=E0, addr=1)), encode(rep)])
        tr = await run(ctx, top)
        assert tr[q].words == [encode(add)] * 3
        iw, acc = encode(I(Opcode.IW)), encode(I(Opcode.ACC, dst=E0, addr=1))
        assert tr["mxm0"].words == [iw] * 3 + [acc, acc + 7, acc + 14]

    simulate(top, bench)


def test_without_repeat_a_repeat_word_runs_as_nop_1():
    """``icu_repeat = False``: the ISA refuses REPEAT, and a REPEAT word written raw takes
    one cycle, as ``NOP 1``, and re-issues nothing (the queue never hangs on it)."""
    config = CONFIGS["norepeat"]
    read = I(Opcode.READ, dst=E0, addr=4)
    rep = I(Opcode.REPEAT, rep_n=3, rep_d=2, rep_step=1)
    with pytest.raises(isa.IsaError, match="icu_repeat = False"):
        check_queue_program([read, rep], Unit.MEM, config, "mem_w0")
    tr = run_directed(config, {"mem_w0": [read, rep, I(Opcode.READ, dst=E0, addr=9)]})
    as_nop = issue_times(config, {"mem_w0": [read, I(Opcode.NOP, nop_count=1),
                                             I(Opcode.READ, dst=E0, addr=9)]})["mem_w0"]
    assert tr["mem_w0"].events == as_nop == [(0, Opcode.READ), (2, Opcode.READ),
                                             (3, Opcode.END)]
    assert [w & ADDR_MASK for w in tr["mem_w0"].words] == [4, 9]


def test_issued_counter_saturates():
    q = "mem_w0"
    code = [I(Opcode.READ, dst=E0, addr=0), I(Opcode.REPEAT, rep_n=5, rep_d=1, rep_step=0)]
    top = _Top(ECP5, (q,))
    icu = top.icus[q]

    async def bench(ctx):
        await load(ctx, icu, [encode(i) for i in code])
        ctx.set(icu.start, 1)
        await ctx.tick()
        ctx.set(icu.start, 0)
        ctx.set(icu.issued, 2**32 - 3)
        for _ in range(8):
            await ctx.tick()
        assert ctx.get(icu.issued) == 2**32 - 1
        ctx.set(icu.start, 1)  # start clears it
        await ctx.tick()
        ctx.set(icu.start, 0)
        assert ctx.get(icu.issued) == 0

    simulate(top, bench)


@FETCH_CONFIGS
def test_a_host_read_in_the_cycle_of_a_host_write_is_dropped(config):
    """The memory's ports never address a word in one cycle (its ``no_rw_check`` lets
    synthesis leave that case undefined): a read strobed together with a write is not done,
    the write is, and ``rd_data`` keeps the word of the read before."""
    q = "mem_w0"
    top = _Top(config, (q,))
    icu = top.icus[q]
    old, new = 0x1111_2222_3333_4444, 0x5555_6666_7777_8888

    async def bench(ctx):
        await load(ctx, icu, [old, 7])
        assert await read_back(ctx, icu, 2) == [old, 7]  # rd_data now holds word 1
        for k, v in (("wr_en", 1), ("wr_addr", 0), ("wr_data", new), ("rd_en", 1),
                     ("rd_addr", 0)):
            ctx.set(getattr(icu, k), v)
        await ctx.tick()
        for k in ("wr_en", "rd_en"):
            ctx.set(getattr(icu, k), 0)
        assert ctx.get(icu.rd_data) == 7
        assert await read_back(ctx, icu, 2) == [new, 7]

    simulate(top, bench)


def test_the_queue_memory_tells_synthesis_its_ports_never_collide():
    assert "no_rw_check" in verilog.convert(Icu(ECP5), name="icu", emit_src=False)


def test_constructor_and_isa_checks(monkeypatch):
    with pytest.raises(TypeError, match="ChipConfig"):
        Icu("ecp5")
    assert set(ICU_OPCODES) == {op for op, s in OPS.items() if s.unit is Unit.ICU}
    # if the ISA gave a REPEAT step field other than addr, the ICU must refuse to build
    monkeypatch.setitem(OPS, Opcode.READ, dataclasses.replace(OPS[Opcode.READ],
                                                              step_field="imm"))
    with pytest.raises(RuntimeError, match="step"):
        Icu(ECP5)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_verilog_generation(preset, tmp_path):
    v = verilog.convert(Icu(PRESETS[preset]), name=f"icu_{preset}", emit_src=False)
    assert f"module icu_{preset}" in v
    if preset == "ecp5":
        import shutil
        import subprocess

        if shutil.which("iverilog") is None:
            pytest.skip("iverilog not installed")
        path = tmp_path / "icu.v"
        path.write_text(v)
        subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "icu.vvp"), str(path)],
                       check=True)
