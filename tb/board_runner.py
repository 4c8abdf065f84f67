"""Run the host runtime against the board top's Verilog under Verilator or Icarus.

:func:`run_board` generates (or reuses) the Verilog of :class:`hdl.board.BoardTop` (UART,
bridge and chip), builds it with ``cocotb_tools.runner`` like :mod:`tb.runner` builds the chip,
runs :mod:`tb.board_test` and returns what the runtime reported: the board's identity, the
bridge's answers to damaged frames, and each program's comparison with the golden model.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import verilog

from firmware.program import Program, save
from hdl.verilog import comb_at_time_zero, compact_memory_init, source_hash
from openlpu.config import ChipConfig
from openlpu.toolchain import apply_verilator_env, simulator_available

from .runner import (
    SIMULATORS,
    RtlRunError,
    _LeanVerilator,
    _simulator_output_to_stderr,
    _vlt_hash,
)

__all__ = ["BOARD_TOP", "board_verilog", "build_board", "run_board"]

BOARD_TOP = "openlpu_board"
_REPO = Path(__file__).resolve().parents[1]


#: The board top's own sources; :func:`hdl.verilog.source_hash` covers the chip's.
_BOARD_SOURCES = ("hdl/board.py", "hdl/bridge.py", "hdl/uart.py", "openlpu/link.py")


def _key(config: ChipConfig, clocks_per_bit: int, timeout: int) -> str:
    h = hashlib.sha256(f"{config.config_hash}/{clocks_per_bit}/{timeout}/{source_hash()}"
                       .encode())
    for name in _BOARD_SOURCES:
        h.update((_REPO / name).read_bytes())
    return h.hexdigest()[:12]


def board_verilog(config: ChipConfig, clocks_per_bit: int, timeout: int,
                  cache_dir: Path | str = "build/rtl/verilog") -> Path:
    """Path of the board top's Verilog, generated unless the cache has it (with a lock, so that
    parallel test workers generate it once)."""
    from hdl.board import BoardTop

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"board_{_key(config, clocks_per_bit, timeout)}.v"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            top = BoardTop(config, clocks_per_bit=clocks_per_bit, timeout=timeout)
            text = verilog.convert(top, name=BOARD_TOP, emit_src=False)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(comb_at_time_zero(compact_memory_init(text)))
            tmp.replace(path)
    return path


def build_board(config: ChipConfig, simulator: str, clocks_per_bit: int, timeout: int,
                build_root: Path | str = "build/rtl", optimize: bool = False):
    """Build the board top for ``simulator``; returns ``(runner, build_dir, seconds)``.

    Verilator models are compiled at ``-O0`` unless ``optimize`` (``-O2``: about 4 times the
    simulation speed for twice the build time; worth it for long runs only)."""
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise RtlRunError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    ok, why = simulator_available(simulator)
    if not ok:
        raise RtlRunError(f"{simulator} is not usable: {why}")
    apply_verilator_env()
    source = board_verilog(config, clocks_per_bit, timeout, Path(build_root) / "verilog")
    build_dir = Path(build_root) / (f"{simulator}_board_{config.name}_"
                                    f"{_key(config, clocks_per_bit, timeout)}"
                                    + (f"_{_vlt_hash()}" if simulator == "verilator" else "")
                                    + ("_O2" if optimize else ""))
    runner = _LeanVerilator() if simulator == "verilator" else get_runner(simulator)
    args = ["-Wno-fatal"] if simulator == "verilator" else []
    saved = os.environ.get("MAKEFLAGS", "")
    os.environ["MAKEFLAGS"] = " ".join(
        [f for f in saved.split() if not f.startswith(("OPT_FAST=", "OPT_SLOW="))]
        + [f"OPT_FAST={'-O2' if optimize else '-O0'}", "OPT_SLOW=-O0"])
    t0 = time.perf_counter()
    Path(build_root).mkdir(parents=True, exist_ok=True)
    lock = open(Path(build_root) / f"{build_dir.name}.lock", "w")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with _simulator_output_to_stderr():
            runner.build(sources=[source], hdl_toplevel=BOARD_TOP, build_dir=build_dir,
                         build_args=args, timescale=("1ns", "1ps"))
    except (SystemExit, Exception) as e:  # the runner exits on a failed build
        shutil.rmtree(build_dir, ignore_errors=True)
        raise RtlRunError(f"{simulator} build of {source} failed: {e}") from None
    finally:
        os.environ["MAKEFLAGS"] = saved
        lock.close()
    return runner, build_dir, time.perf_counter() - t0


def run_board(config: ChipConfig, simulator: str, programs: dict[str, Program], *,
              clocks_per_bit: int = 4, timeout: int | None = None,
              error_checks_against: ChipConfig | None = None, readback: str = "auto",
              build_root: Path | str = "build/rtl", optimize: bool = False) -> dict:
    """Run ``programs`` through the host runtime on the simulated board; returns the report of
    :mod:`tb.board_test` plus ``build_seconds`` and ``run_seconds``.

    With ``error_checks_against`` (another config), damaged frames are sent first and the
    runtime is asked to accept the board as that config (it must refuse).
    """
    from hdl.board import default_timeout

    timeout = default_timeout(clocks_per_bit) if timeout is None else timeout
    runner, build_dir, build_seconds = build_board(config, simulator, clocks_per_bit, timeout,
                                                   build_root, optimize)
    with tempfile.TemporaryDirectory(prefix="openlpu_board_") as tmp:
        tmp = Path(tmp)
        paths = []
        for name, program in programs.items():
            save(program, tmp / f"{name}.bin")
            paths.append([name, str(tmp / f"{name}.bin")])
        job = {"config": config.to_dict(), "clocks_per_bit": clocks_per_bit,
               "timeout": timeout, "programs": paths, "readback": readback,
               "other_config": error_checks_against and error_checks_against.to_dict(),
               "result": str(tmp / "result.json")}
        (tmp / "job.json").write_text(json.dumps(job))
        env = {"OPENLPU_BOARD_JOB": str(tmp / "job.json"),
               "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
               "PYTHONPATH": os.pathsep.join([str(_REPO), *sys.path])}
        t0 = time.perf_counter()
        try:
            with _simulator_output_to_stderr():
                results_xml = runner.test(test_module="tb.board_test", hdl_toplevel=BOARD_TOP,
                                          build_dir=build_dir, test_dir=tmp, extra_env=env)
        except SystemExit as e:
            raise RtlRunError(f"the board test failed on {simulator} (exit {e.code}); "
                              f"see the log above") from None
        from cocotb_tools.runner import get_results

        _, failed = get_results(results_xml)
        result_file = tmp / "result.json"
        if failed or not result_file.exists():
            raise RtlRunError(f"the board test failed on {simulator}; see the log above")
        report = json.loads(result_file.read_text())
    report["build_seconds"] = build_seconds
    report["run_seconds"] = time.perf_counter() - t0
    return report
