"""Run programs on an RTL backend and on the golden model, and compare: the one entry point the
tests, the ``openlpu run`` command and the benchmarks use.

Backends: ``verilator`` and ``icarus`` (the generated Verilog under cocotb, several programs per
simulator process) and ``amaranth`` (the Amaranth design in Amaranth's own simulator, with the
same host driver).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from firmware.program import Program
from openlpu.config import ChipConfig
from sim_models.golden import RunResult, run_program

from .runner import SIMULATORS, RtlJob, RtlResult, RtlRunError, run_rtl
from .scoreboard import Comparison, compare, readback_words, result_words

__all__ = ["BACKENDS", "Verified", "verify", "run_amaranth", "locate_difference", "sram_image"]

BACKENDS = ("amaranth", *SIMULATORS)


@dataclass
class Verified:
    """One program's golden run, RTL run and their comparison."""

    name: str
    golden: RunResult
    rtl: RtlResult
    comparison: Comparison

    @property
    def matches(self) -> bool:
        """Whether the RTL agrees with the golden model exactly."""
        return self.comparison.matches


def run_amaranth(config: ChipConfig, jobs: list[RtlJob],
                 written: list[list[tuple[int, int]]],
                 continues: list[bool] | None = None) -> list[RtlResult]:
    """Run jobs on the Amaranth design in Amaranth's simulator (slow: small programs only);
    ``written`` and ``continues`` as for :func:`tb.runner.run_rtl`."""
    from amaranth.sim import Simulator

    from hdl.chip import Chip

    from .host import AmaranthPorts, HostBus
    from .runner import _init_words

    chip = Chip(config)
    sim = Simulator(chip)
    sim.add_clock(1e-8)
    results: list[RtlResult] = []
    t_start = time.perf_counter()

    async def bench(ctx):
        bus = HostBus(AmaranthPorts(ctx, chip), config)
        await bus.check_identity()
        clear: set = set()
        for i, job in enumerate(jobs):
            if not cont[i]:
                await bus.clear_words(sorted(clear))
            await bus.load(job.program)
            t0 = time.perf_counter()
            cycles = await bus.run(job.expected_cycles, max(10 * job.expected_cycles, 10_000))
            t1 = time.perf_counter()
            counters = await bus.read_counters()
            words = await bus.read_words(job.readback)
            results.append(RtlResult("amaranth", cycles, counters, words, job.readback, 0.0,
                                     t1 - t0, 0.0))
            clear = ((clear if cont[i] else set()) | _init_words(config, job.program)
                     | set(map(tuple, written[i])))

    cont = continues or [False] * len(jobs)
    sim.add_testbench(bench)
    sim.run()
    for r in results:
        r.wall_seconds = time.perf_counter() - t_start
    return results


def verify(config: ChipConfig, programs: dict[str, Program], backend: str, *,
           locate: bool = True, continues: frozenset[str] | set[str] = frozenset(),
           **kwargs) -> list[Verified]:
    """Run every program on the golden model and on ``backend``; compare each pair.

    The programs named in ``continues`` start from the SRAM the previous program left, on
    both sides (a layer lowered to several programs); the others from their own image.
    With ``locate`` (the default), a program whose results differ is run once more, traced, on
    the same simulator, and :func:`locate_difference` adds the first differing cycle, stream,
    slice and lane to its comparison (not for a program that continues another). Keyword
    arguments go to :func:`tb.runner.run_rtl` (``build_root``, ``waves``, ...);
    ``sram_access`` may also be a dict from program name to its access
    (:data:`tb.backdoor.PROGRAM_ACCESS`; ``"bus"`` for a name it lacks).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    names = list(programs)
    cont = [n in continues for n in names]
    if cont and cont[0]:
        raise ValueError(f"the first program ({names[0]}) has no program to continue")
    goldens: list[RunResult] = []
    for n, c in zip(names, cont, strict=True):
        goldens.append(run_program(config, programs[n], sram=goldens[-1].sram if c else None))
    jobs = [RtlJob(programs[n], g.cycles, readback_words(config, programs[n], g),
                   result_words(config, programs[n], g))
            for n, g in zip(names, goldens, strict=True)]
    access = kwargs.get("sram_access")
    if isinstance(access, dict):
        unknown = sorted(set(access) - set(names))
        if unknown:
            raise ValueError(f"sram_access names programs not in the batch: {unknown}")
        kwargs["sram_access"] = [access.get(n, "bus") for n in names]
    written = [g.written_words for g in goldens]
    if backend == "amaranth":
        rtls = run_amaranth(config, jobs, written, cont)
    else:
        rtls = run_rtl(config, jobs, backend, written=written, continues=cont, **kwargs)
    out = [Verified(n, g, r, compare(config, programs[n], g, r))
           for n, g, r in zip(names, goldens, rtls, strict=True)]
    for v, c in zip(out, cont, strict=True):
        if locate and not c and not v.matches and backend in SIMULATORS:
            build_root = kwargs.get("build_root", "build/rtl")
            v.comparison.problems.append(
                locate_difference(config, programs[v.name], backend, build_root=build_root))
    return out


def locate_difference(config: ChipConfig, program: Program, simulator: str, *,
                      build_root="build/rtl") -> str:
    """Run ``program`` traced on ``simulator`` and name the first stream-register byte that
    differs from the golden model (:func:`tb.stream_check.first_stream_difference`)."""
    import tempfile
    from pathlib import Path

    from .stream_check import first_stream_difference
    from .waveform import Waveform, WaveformError

    log: list = []
    golden = run_program(config, program, stream_log=log)
    job = RtlJob(program, golden.cycles, [])
    with tempfile.TemporaryDirectory(prefix="openlpu_locate_") as tmp:
        fst = Path(tmp) / "locate.fst"
        try:
            run_rtl(config, [job], simulator, build_root=build_root, trace_to=fst)
            with Waveform(fst) as wave:
                mismatch = first_stream_difference(config, log, wave)
        except (RtlRunError, WaveformError) as e:
            return f"could not locate the first difference on the streams: {e}"
    if mismatch is None:
        return ("every stream-register value matches the golden model in every cycle, so the "
                "difference arises inside a unit (SRAM write path, accumulators, counters or "
                "the end of the program)")
    return str(mismatch)


def sram_image(config: ChipConfig, program: Program, rtl: RtlResult,
               base: np.ndarray | None = None) -> np.ndarray:
    """The SRAM as the RTL left it, in the golden model's ``sram`` layout: ``base`` (the
    image the previous program left, for a program that continues it; default zeros), the
    program's own image and every word the RTL read back on top (the read-back covers every
    word the program writes, :func:`tb.scoreboard.readback_words`)."""
    from firmware.program import sram_shape, write_mem_init

    sram = np.zeros(sram_shape(config), dtype=np.uint8) if base is None else base.copy()
    write_mem_init(sram, program, config)
    for (mi, addr), word in zip(rtl.readback, rtl.words, strict=True):
        sram[mi, addr >> config.offset_bits, addr & (config.mem_words_per_bank - 1)] = word
    return sram


def outputs_from_words(config: ChipConfig, program: Program, rtl: RtlResult) -> dict:
    """The program's output regions as the RTL left them (for ``openlpu run``)."""
    from firmware.program import read_output

    sram = sram_image(config, program, rtl)
    return {r.name: read_output(sram, r, config) for r in program.outputs}
